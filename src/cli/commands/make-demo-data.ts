/**
 * `cavmae make-demo-data --out D [--n N]`: the AV-digits demo set (train.json, test.json, labels.csv
 * + media); `--sync`: the multi-digit set for CAV-MAE Sync (sync-train.json, sync-test.json: 10.24 s
 * clips of spoken digits + 16 frames showing the digit spoken at each pair; src/data/sync-demo.ts).
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';
import { progressBar } from '../progress-bar.js';
import {
  defineCommand,
  flag,
  flagName,
  int,
  list,
  num,
  str,
  type Parsed,
  type RunContext,
} from '../schema.js';

const OPTIONS = {
  out: str('--out <dir>', 'output folder', { required: true }),
  n: int('--n <n>', 'training examples', { min: 1, default: 3000 }),
  testN: int('--test-n <n>', 'test examples (default n/10, at least 10)', { min: 0 }),
  seed: int('--seed <s>', 'random seed (example i depends only on seed, split and i)', {
    min: 0,
    default: 0,
  }),
  snrMin: num('--snr-min <db>', 'lowest speech-to-noise ratio (dB)', { default: 20 }),
  snrMax: num('--snr-max <db>', 'highest speech-to-noise ratio (dB)', { default: 40 }),
  duration: num('--duration <s>', 'clip length in seconds (the word is placed near the centre)', {
    default: 1.0,
  }),
  voices: list(
    '--voices <list>',
    'comma-separated espeak-ng voice variants (default: all installed; every 5th goes to test)',
  ),
  langs: list(
    '--langs <list>',
    'comma-separated espeak-ng languages (the digit is spoken in each) (default: en)',
  ),
  speedMin: int('--speed-min <wpm>', 'slowest speech rate (words per minute)', { min: 80, default: 120 }),
  speedMax: int('--speed-max <wpm>', 'fastest speech rate', { min: 80, default: 220 }),
  pitchMin: int('--pitch-min <p>', 'lowest espeak-ng pitch (0-99)', { min: 0, default: 20 }),
  pitchMax: int('--pitch-max <p>', 'highest espeak-ng pitch (0-99)', { min: 0, default: 80 }),
  imageSize: int(
    '--image-size <px>',
    'stored image side (28 keeps the MNIST pixels; the image pipeline resizes)',
    { min: 8, default: 28 },
  ),
  jobs: int('--jobs <n>', 'examples made in parallel (each runs espeak-ng and sox)', { min: 1, default: 2 }),
  sync: flag(
    '--sync',
    'multi-digit clips for CAV-MAE Sync segment retrieval (default --n 500; --duration, --langs, --speed-*, --pitch-* do not apply)',
  ),
  digitsPerClip: int(
    '--digits-per-clip <k>',
    'with --sync: digits per 10.24 s clip, a divisor of 16 (default 8)',
    {
      min: 1,
    },
  ),
  quiet: flag('--quiet', 'no progress bar'),
};

type Flags = Parsed<typeof OPTIONS>;

export function register(program: Command): void {
  defineCommand(
    program,
    'make-demo-data',
    'make the AV-digits demo set: MNIST digit images paired with espeak-ng speech of the digit name (varied voices, speeds, pitches, noise); ' +
      'writes <out>/train.json, <out>/test.json (manifests), <out>/labels.csv and the media; train/test split by voice and by MNIST image; resumable',
    OPTIONS,
    async ({ sync, digitsPerClip, quiet, ...o }, ctx) => {
      if (sync) return makeSyncSet({ ...o, digitsPerClip, quiet }, ctx);
      if (digitsPerClip !== undefined) throw new UserError('--digits-per-clip applies to --sync only');
      const { makeDemoData } = await import('../../data/demo.js');
      const bar = await progressBar(
        !quiet,
        'make-demo-data |{bar}| {value}/{total} examples | ETA {eta_formatted}',
        { etaBuffer: 50 },
      );
      let started = false;
      const summary = await makeDemoData({
        ...o,
        onProgress: (done, total) => {
          if (!bar) return;
          if (!started) {
            bar.start(total, done);
            started = true;
          } else bar.update(done);
        },
      });
      bar?.stop();
      process.stdout.write(
        `AV-digits: ${summary.trainCount} train + ${summary.testCount} test examples in ${summary.out} ` +
          `(${summary.generated} made, ${summary.reused} reused, ${summary.seconds.toFixed(1)} s)\n` +
          `  ${summary.train}\n  ${summary.test}\n  ${summary.labels}\n`,
      );
    },
  );
}

/** `--sync`: the multi-digit AV-digits set (makeSyncDemoData). */
async function makeSyncSet(o: Omit<Flags, 'sync'>, ctx: RunContext): Promise<void> {
  const foreign = (['duration', 'langs', 'speedMin', 'speedMax', 'pitchMin', 'pitchMax'] as const).filter(
    ctx.given,
  );
  if (foreign.length)
    throw new UserError(
      `${flagName(OPTIONS[foreign[0]].flags)} does not apply to --sync (its clips are 10.24 s, English, speed 150-220 wpm and pitch 20-80 drawn per clip)`,
    );
  const { makeSyncDemoData } = await import('../../data/sync-demo.js');
  let shown = -1;
  const s = await makeSyncDemoData({
    out: o.out,
    n: ctx.given('n') ? o.n : 500,
    testN: o.testN,
    digitsPerClip: o.digitsPerClip,
    seed: o.seed,
    snrMin: o.snrMin,
    snrMax: o.snrMax,
    voices: o.voices,
    imageSize: o.imageSize,
    jobs: o.jobs,
    onProgress: (done, total) => {
      // One line per 10% on stderr (the generator is not resumable, so progress matters).
      const tenth = Math.floor((10 * done) / total);
      if (!o.quiet && tenth !== shown) {
        shown = tenth;
        process.stderr.write(`make-demo-data --sync: ${done}/${total} clips\n`);
      }
    },
  });
  process.stdout.write(
    `AV-digits (multi-digit, Sync): ${s.trainCount} train + ${s.testCount} test clips (${s.seconds.toFixed(1)} s)\n  ${s.train}\n  ${s.test}\n`,
  );
}
