/**
 * `cavmae sync-experiment --out DIR [--steps N] [--arms sync,clip] ...`: the CAV-MAE Sync
 * acceptance experiment (docs/sync-training.md): makes multi-digit AV-digits, trains Sync
 * (frame-aligned pairs) and the clip-level CAV-MAE with the same recipe, evaluates both on
 * segment-level retrieval along their checkpoints and writes the curves and a table.
 * Resumable: finished stages are skipped. src/train/sync-experiment.ts does the work.
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';
import { number } from './pretrain.js';

interface Flags {
  out: string;
  steps?: number;
  n?: number;
  testN?: number;
  arms?: string;
  seed?: number;
  workers?: number;
  markdown?: boolean;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('sync-experiment')
    .description('CAV-MAE Sync vs clip-level CAV-MAE on multi-digit AV-digits: segment-level retrieval curves (docs/sync-training.md)')
    .option('--out <dir>', 'experiment folder (data/, sync/, clip/, eval/)', 'sync-exp')
    .option('--steps <n>', 'optimizer steps per arm (default 800)', number('--steps', { int: true, min: 1 }))
    .option('--n <n>', 'training clips to make (default 1000)', number('--n', { int: true, min: 10 }))
    .option('--test-n <n>', 'test clips to make (default 100)', number('--test-n', { int: true, min: 2 }))
    .option('--arms <list>', 'arms to train and compare: sync, clip or both (default sync,clip)')
    .option('--seed <n>', 'seed of data, initialisation and training (default 0)', number('--seed', { int: true, min: 0 }))
    .option('--workers <n>', 'data loader threads (default 2)', number('--workers', { int: true, min: 0 }))
    .option('--markdown', 'print the result table as markdown')
    .option('--quiet', 'no progress bars')
    .action(async (f: Flags) => {
      const { runSyncExperiment, formatExperiment } = await import('../../train/sync-experiment.js');
      const arms = f.arms?.split(',').map((s) => s.trim());
      if (arms && (arms.length === 0 || arms.some((a) => a !== 'sync' && a !== 'clip')))
        throw new UserError(`--arms: expected a list of "sync" and "clip", got "${f.arms}"`);
      const r = await runSyncExperiment({
        out: f.out,
        steps: f.steps,
        n: f.n,
        testN: f.testN,
        arms: arms as ('sync' | 'clip')[] | undefined,
        seed: f.seed,
        workers: f.workers,
        quiet: f.quiet,
      });
      process.stdout.write(formatExperiment(r, { markdown: f.markdown }) + '\n');
    });
}
