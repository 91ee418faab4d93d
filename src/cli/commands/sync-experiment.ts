/**
 * `cavmae sync-experiment --out DIR [--steps N] [--arms sync,clip] ...`: the CAV-MAE Sync
 * acceptance experiment (docs/sync-training.md): makes multi-digit AV-digits, trains Sync
 * (frame-aligned pairs) and the clip-level CAV-MAE with the same recipe, evaluates both on
 * segment-level retrieval along their checkpoints and writes the curves and a table.
 * Resumable: finished stages are skipped. `--eval name=RUN_DIR ... --data TEST` evaluates
 * existing pretraining runs instead (curves into --out); `--plots-only` redraws the PNGs of an
 * evaluated --out. src/train/sync-experiment.ts does the work.
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';
import { QUIET, WORKERS } from '../options.js';
import { defineCommand, flag, int, list, parseChoice, repeated, str } from '../schema.js';

const ARMS = ['sync', 'clip'] as const;

const OPTIONS = {
  out: str('--out <dir>', 'experiment folder (data/, sync/, clip/, eval/); with --eval: the curves folder', {
    default: 'sync-exp',
  }),
  steps: int('--steps <n>', 'optimizer steps per arm (default 800)', { min: 1 }),
  n: int('--n <n>', 'training clips to make (default 1000)', { min: 10 }),
  testN: int('--test-n <n>', 'test clips to make (default 100)', { min: 2 }),
  arms: list('--arms <list>', 'arms to train and compare: sync, clip or both (default sync,clip)', (s, f) =>
    parseChoice(s, f, ARMS),
  ),
  seed: int('--seed <n>', 'seed of data, initialisation and training (default 0)', { min: 0 }),
  runs: repeated(
    '--eval <name=dir>',
    'evaluate this existing pretraining run folder instead of running the experiment (repeatable; needs --data)',
  ),
  data: str(
    '--data <file>',
    'with --eval: the test manifest (per-pair labels, e.g. <out>/data/sync-test.json)',
  ),
  segmentLength: int(
    '--segment-length <rows>',
    "with --eval: segment rows (default: the Sync runs', else 96)",
    {
      min: 16,
    },
  ),
  pointEvery: int('--point-every <steps>', 'with --eval: score checkpoints at multiples of this step', {
    min: 1,
  }),
  plotsOnly: flag('--plots-only', 'redraw the PNGs of an evaluated --out from its segment-curves.json'),
  workers: WORKERS,
  markdown: flag('--markdown', 'print the result table as markdown'),
  quiet: QUIET,
};

function parseRun(spec: string): { name: string; dir: string } {
  const m = /^([^=]+)=(.+)$/.exec(spec);
  if (!m) throw new UserError(`--eval ${spec}: expected name=RUN_DIR`);
  return { name: m[1], dir: m[2] };
}

export function register(program: Command): void {
  defineCommand(
    program,
    'sync-experiment',
    'CAV-MAE Sync vs clip-level CAV-MAE on multi-digit AV-digits: segment-level retrieval curves (docs/sync-training.md)',
    OPTIONS,
    async ({ markdown, runs, data, segmentLength, pointEvery, plotsOnly, ...o }) => {
      const m = await import('../../train/sync-experiment.js');
      let r;
      if (plotsOnly) r = m.redrawPlots(o.out);
      else if (runs.length) {
        const parsed = runs.map(parseRun);
        if (!data) throw new UserError('--eval needs --data (the test manifest)');
        r = await m.evaluateExperiment({
          runs: parsed,
          data,
          out: o.out,
          segmentLength,
          pointEvery,
        });
      } else r = await m.runSyncExperiment({ ...o, pointEvery });
      process.stdout.write(m.formatExperiment(r, { markdown }) + '\n');
    },
  );
}
