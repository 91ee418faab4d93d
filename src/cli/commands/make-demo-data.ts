/**
 * `cavmae make-demo-data --out D [--n N]`: the AV-digits demo set (train.json, test.json,
 * labels.csv + media, and the held-out real-speech set real-test.json when its Debian packages
 * are installed); `--sync`: the multi-digit set for CAV-MAE Sync (sync-train.json,
 * sync-test.json: 10.24 s clips of spoken digits + 16 frames showing the digit spoken at each
 * pair). One generator (src/data/avdigits.ts); unset flags take the layout's defaults, which for
 * the single-digit set are the demo's data recipe (docs/demo.md).
 */
import { existsSync, readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { UserError } from '../../util/errors.js';
import type { AvDigitsParams } from '../../data/avdigits.js';

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

/** `--params`: inline JSON, a JSON file of parameters, or a manifest whose `params` they are. */
function readParams(v: string): Partial<AvDigitsParams> {
  let text = v;
  if (!v.trim().startsWith('{')) {
    if (!existsSync(v)) throw new UserError(`--params: ${v} is neither JSON nor an existing file`);
    text = readFileSync(v, 'utf8');
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new UserError(`--params: ${v}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j))
    throw new UserError(`--params: ${v}: expected a JSON object`);
  const o = j as Record<string, unknown>;
  const p = (typeof o.params === 'object' && o.params !== null ? o.params : o) as Record<string, unknown>;
  // A manifest's params also say which split it is and how many items it has: not parameters.
  const rest = { ...p };
  for (const k of ['split', 'n', 'splitVoices']) delete rest[k];
  return rest as Partial<AvDigitsParams>;
}

interface Flags {
  out: string;
  sync?: boolean;
  digitsPerClip?: number;
  n?: number;
  testN?: number;
  seed?: number;
  snrMin?: number;
  snrMax?: number;
  duration?: number;
  voices?: string[];
  langs?: string[];
  speedMin?: number;
  speedMax?: number;
  pitchMin?: number;
  pitchMax?: number;
  imageSize?: number;
  recording?: string;
  params?: Partial<AvDigitsParams>;
  realTest: boolean;
  jobs: number;
  quiet?: boolean;
}

export function register(program: Command): void {
  program
    .command('make-demo-data')
    .description(
      'make the AV-digits demo set: MNIST digit images paired with speech of the digit name (espeak-ng and flite voices, speeds, pitches, rooms, microphones, noise); ' +
        'writes <out>/train.json, <out>/test.json (manifests), <out>/labels.csv, the media, and the held-out real-speech set <out>/real-test.json; train/test split by voice and by MNIST image; resumable',
    )
    .requiredOption('--out <dir>', 'output folder')
    .option('--n <n>', 'training examples (default 3000; --sync 500)', int('--n', 1))
    .option('--test-n <n>', 'test examples (default n/10, at least 10)', int('--test-n', 0))
    .option(
      '--seed <s>',
      'random seed (example i depends only on seed, split and i) (default 0)',
      int('--seed', 0),
    )
    .option('--snr-min <db>', 'lowest speech-to-noise ratio, dB (default 25; --sync 20)', num('--snr-min'))
    .option('--snr-max <db>', 'highest speech-to-noise ratio, dB (default 50; --sync 40)', num('--snr-max'))
    .option(
      '--duration <s>',
      'clip length in seconds, the word near the centre (default 1.0)',
      num('--duration'),
    )
    .option(
      '--voices <list>',
      'comma-separated espeak-ng voice variants (default: all installed; --sync: f1-f5, m1-m7); every 5th goes to test',
      list,
    )
    .option(
      '--langs <list>',
      'comma-separated espeak-ng languages / accents, the digit spoken in each (default: the 8 English accents; --sync: en)',
      list,
    )
    .option(
      '--speed-min <wpm>',
      'slowest speech rate, words per minute (default 110; --sync 150)',
      int('--speed-min', 80),
    )
    .option('--speed-max <wpm>', 'fastest speech rate (default 220)', int('--speed-max', 80))
    .option(
      '--pitch-min <p>',
      'lowest pitch, espeak-ng scale 0-99 (default 10; --sync 20)',
      int('--pitch-min', 0),
    )
    .option('--pitch-max <p>', 'highest pitch (default 90; --sync 80)', int('--pitch-max', 0))
    .option(
      '--image-size <px>',
      'stored image side (default 28: the MNIST pixels; the image pipeline resizes)',
      int('--image-size', 8),
    )
    .option(
      '--recording <preset>',
      'recording conditions: varied (rooms, microphones, telephone codecs, noise, levels, clipping; the default) | clean (--sync default)',
    )
    .option(
      '--params <json|file>',
      "all generator parameters as JSON, or a file: a manifest's params rebuild that set exactly; the other flags override",
      readParams,
    )
    .option('--no-real-test', 'do not make the held-out real-speech set (real-test.json)')
    .option(
      '--jobs <n>',
      'examples made in parallel (each runs espeak-ng or flite, and sox)',
      int('--jobs', 1),
      2,
    )
    .option(
      '--sync',
      'multi-digit 10.24 s clips for CAV-MAE Sync segment retrieval (sync-train.json, sync-test.json)',
    )
    .option(
      '--digits-per-clip <k>',
      'with --sync: digits per clip, a divisor of 16 (default 8)',
      int('--digits-per-clip', 1),
    )
    .option('--quiet', 'no progress bar')
    .action(async (o: Flags) => {
      if (o.recording !== undefined && o.recording !== 'clean' && o.recording !== 'varied')
        throw new UserError(`--recording must be varied or clean, got '${o.recording}'`);
      if (!o.sync && o.digitsPerClip !== undefined)
        throw new UserError('--digits-per-clip applies to --sync only');
      const { makeAvDigits } = await import('../../data/avdigits.js');
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
      const s = await makeAvDigits({
        ...o,
        // --params of a multi-digit set rebuilds a multi-digit set without --sync
        layout: o.sync ? 'sequence' : (o.params?.layout ?? 'single'),
        recording: o.recording as 'clean' | 'varied' | undefined,
        realTest: o.realTest ? 'auto' : false,
        onProgress: (done, total) => {
          if (!bar) return;
          if (!started) {
            bar.start(total, done);
            started = true;
          } else bar.update(done);
        },
      });
      bar?.stop();
      const kind = s.params.layout === 'sequence' ? 'AV-digits (multi-digit, Sync)' : 'AV-digits';
      const lines = [
        `${kind}: ${s.trainCount} train + ${s.testCount} test examples in ${s.out} (${s.generated} made, ${s.reused} reused, ${s.seconds.toFixed(1)} s)`,
        `  ${s.train}`,
        `  ${s.test}`,
        `  ${s.labels}`,
      ];
      if (s.real)
        lines.push(
          `  ${s.real.path} (held-out real speech: ${s.real.clips} recordings of ${s.real.speakers} speakers, ${s.real.items} pairs)`,
        );
      process.stdout.write(lines.join('\n') + '\n');
    });
}
