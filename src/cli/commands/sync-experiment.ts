/**
 * `cavmae sync-experiment --out DIR [--steps N] [--arms sync,clip] ...`: the CAV-MAE Sync
 * acceptance experiment (docs/sync-training.md): makes multi-digit AV-digits, trains Sync
 * (frame-aligned pairs) and the clip-level CAV-MAE with the same recipe, evaluates both on
 * segment-level retrieval along their checkpoints and writes the curves and a table.
 * Resumable: finished stages are skipped. src/train/sync-experiment.ts does the work.
 */
import type { Command } from 'commander';
import { QUIET, WORKERS } from '../options.js';
import { defineCommand, flag, int, list, parseChoice, str } from '../schema.js';

const ARMS = ['sync', 'clip'] as const;

const OPTIONS = {
  out: str('--out <dir>', 'experiment folder (data/, sync/, clip/, eval/)', { default: 'sync-exp' }),
  steps: int('--steps <n>', 'optimizer steps per arm (default 800)', { min: 1 }),
  n: int('--n <n>', 'training clips to make (default 1000)', { min: 10 }),
  testN: int('--test-n <n>', 'test clips to make (default 100)', { min: 2 }),
  arms: list('--arms <list>', 'arms to train and compare: sync, clip or both (default sync,clip)', (s, f) =>
    parseChoice(s, f, ARMS),
  ),
  seed: int('--seed <n>', 'seed of data, initialisation and training (default 0)', { min: 0 }),
  workers: WORKERS,
  markdown: flag('--markdown', 'print the result table as markdown'),
  quiet: QUIET,
};

export function register(program: Command): void {
  defineCommand(
    program,
    'sync-experiment',
    'CAV-MAE Sync vs clip-level CAV-MAE on multi-digit AV-digits: segment-level retrieval curves (docs/sync-training.md)',
    OPTIONS,
    async ({ markdown, ...o }) => {
      const { runSyncExperiment, formatExperiment } = await import('../../train/sync-experiment.js');
      const r = await runSyncExperiment(o);
      process.stdout.write(formatExperiment(r, { markdown }) + '\n');
    },
  );
}
