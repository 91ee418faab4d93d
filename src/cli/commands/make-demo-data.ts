/**
 * `cavmae make-demo-data --out D [--n N]`: the AV-digits demo set (train.json, test.json, labels.csv
 * + media); `--sync`: the multi-digit set for CAV-MAE Sync (sync-train.json, sync-test.json: 10.24 s
 * clips of spoken digits + 16 frames showing the digit spoken at each pair; src/data/sync-demo.ts).
 */
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';

function int(name: string, min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min)
      throw new UserError(`${name} must be an integer >= ${min}, got '${v}'`);
    return n;
  };
}

function num(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new UserError(`${name} must be a number, got '${v}'`);
    return n;
  };
}

const list = (v: string): string[] =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);

interface Flags {
  out: string;
  sync?: boolean;
  digitsPerClip?: number;
  n: number;
  testN?: number;
  seed: number;
  snrMin: number;
  snrMax: number;
  duration: number;
  voices?: string[];
  langs?: string[];
  speedMin: number;
  speedMax: number;
  pitchMin: number;
  pitchMax: number;
  imageSize: number;
  jobs: number;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('make-demo-data')
    .description(
      'make the AV-digits demo set: MNIST digit images paired with espeak-ng speech of the digit name (varied voices, speeds, pitches, noise); ' +
        'writes <out>/train.json, <out>/test.json (manifests), <out>/labels.csv and the media; train/test split by voice and by MNIST image; resumable',
    )
    .requiredOption('--out <dir>', 'output folder')
    .option('--n <n>', 'training examples', int('--n', 1), 3000)
    .option('--test-n <n>', 'test examples (default n/10, at least 10)', int('--test-n', 0))
    .option('--seed <s>', 'random seed (example i depends only on seed, split and i)', int('--seed', 0), 0)
    .option('--snr-min <db>', 'lowest speech-to-noise ratio (dB)', num('--snr-min'), 20)
    .option('--snr-max <db>', 'highest speech-to-noise ratio (dB)', num('--snr-max'), 40)
    .option(
      '--duration <s>',
      'clip length in seconds (the word is placed near the centre)',
      num('--duration'),
      1.0,
    )
    .option(
      '--voices <list>',
      'comma-separated espeak-ng voice variants (default: all installed; every 5th goes to test)',
      list,
    )
    .option(
      '--langs <list>',
      'comma-separated espeak-ng languages (the digit is spoken in each) (default: en)',
      list,
    )
    .option('--speed-min <wpm>', 'slowest speech rate (words per minute)', int('--speed-min', 80), 120)
    .option('--speed-max <wpm>', 'fastest speech rate', int('--speed-max', 80), 220)
    .option('--pitch-min <p>', 'lowest espeak-ng pitch (0-99)', int('--pitch-min', 0), 20)
    .option('--pitch-max <p>', 'highest espeak-ng pitch (0-99)', int('--pitch-max', 0), 80)
    .option(
      '--image-size <px>',
      'stored image side (28 keeps the MNIST pixels; the image pipeline resizes)',
      int('--image-size', 8),
      28,
    )
    .option('--jobs <n>', 'examples made in parallel (each runs espeak-ng and sox)', int('--jobs', 1), 2)
    .option('--sync', 'multi-digit clips for CAV-MAE Sync segment retrieval (default --n 500; --duration, --langs, --speed-*, --pitch-* do not apply)')
    .option('--digits-per-clip <k>', 'with --sync: digits per 10.24 s clip, a divisor of 16 (default 8)', int('--digits-per-clip', 1))
    .option('--quiet', 'no progress bar')
    .action(async (o: Flags, cmd: Command) => {
      if (o.sync) return makeSyncSet(o, cmd);
      if (o.digitsPerClip !== undefined) throw new UserError('--digits-per-clip applies to --sync only');
      const { makeDemoData } = await import('../../data/demo.js');
      let bar: import('cli-progress').SingleBar | undefined;
      if (!o.quiet && process.stderr.isTTY) {
        const { default: cliProgress } = await import('cli-progress');
        bar = new cliProgress.SingleBar(
          {
            format: 'make-demo-data |{bar}| {value}/{total} examples | ETA {eta_formatted}',
            stream: process.stderr,
            hideCursor: true,
            etaBuffer: 50,
          },
          cliProgress.Presets.shades_classic,
        );
      }
      let started = false;
      const summary = await makeDemoData({
        out: o.out,
        n: o.n,
        testN: o.testN,
        seed: o.seed,
        snrMin: o.snrMin,
        snrMax: o.snrMax,
        duration: o.duration,
        voices: o.voices,
        langs: o.langs,
        speedMin: o.speedMin,
        speedMax: o.speedMax,
        pitchMin: o.pitchMin,
        pitchMax: o.pitchMax,
        imageSize: o.imageSize,
        jobs: o.jobs,
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
    });
}

/** `--sync`: the multi-digit AV-digits set (makeSyncDemoData). */
async function makeSyncSet(o: Flags, cmd: Command): Promise<void> {
  const given = (k: string): boolean => cmd.getOptionValueSource(k) === 'cli';
  const foreign = ['duration', 'langs', 'speedMin', 'speedMax', 'pitchMin', 'pitchMax'].filter(given);
  if (foreign.length)
    throw new UserError(
      `--${foreign[0].replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} does not apply to --sync (its clips are 10.24 s, English, speed 150-220 wpm and pitch 20-80 drawn per clip)`,
    );
  const { makeSyncDemoData } = await import('../../data/sync-demo.js');
  const n = given('n') ? o.n : 500;
  let shown = -1;
  const s = await makeSyncDemoData({
    out: o.out,
    n,
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
