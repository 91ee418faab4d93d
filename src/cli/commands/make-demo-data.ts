/**
 * `cavmae make-demo-data --out D [--n N]`: the AV-digits demo set (train.json, test.json,
 * labels.csv + media, and the held-out real-speech set real-test.json when its Debian packages
 * are installed); `--sync`: the multi-digit set for CAV-MAE Sync (sync-train.json,
 * sync-test.json: 10.24 s clips of spoken digits + 16 frames showing the digit spoken at each
 * pair). One generator (src/data/avdigits.ts); unset flags take the layout's defaults, which for
 * the single-digit set are the demo's data recipe (docs/demo.md).
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import type { AvDigitsParams } from '../../data/avdigits.js';
import { MAX_DATAFILE_BYTES, readBounded } from '../../data/datafile.js';
import { UserError } from '../../util/errors.js';
import { progressBar } from '../progress-bar.js';
import { custom, defineCommand, flag, int, list, negatable, num, oneOf, str } from '../schema.js';

/** `--params`: inline JSON, a JSON file of parameters, or a manifest whose `params` they are. */
function readParams(v: string, flag: string): Partial<AvDigitsParams> {
  let text = v;
  if (!v.trim().startsWith('{')) {
    if (!existsSync(v)) throw new UserError(`${flag}: ${v} is neither JSON nor an existing file`);
    text = readBounded(v, MAX_DATAFILE_BYTES, 'a parameter file or manifest').toString('utf8');
  }
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${flag}: ${v}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof j !== 'object' || j === null || Array.isArray(j))
    throw new UserError(`${flag}: ${v}: expected a JSON object`);
  const o = j as Record<string, unknown>;
  const p = (typeof o.params === 'object' && o.params !== null ? o.params : o) as Record<string, unknown>;
  // A manifest's params also say which split it is and how many items it has: not parameters.
  const rest = { ...p };
  for (const k of ['split', 'n', 'splitVoices']) delete rest[k];
  return rest as Partial<AvDigitsParams>;
}

const OPTIONS = {
  out: str('--out <dir>', 'output folder', { required: true }),
  n: int('--n <n>', 'training examples (default 3000; --sync 500)', { min: 1 }),
  testN: int('--test-n <n>', 'test examples (default n/10, at least 10)', { min: 0 }),
  seed: int('--seed <s>', 'random seed (example i depends only on seed, split and i) (default 0)', {
    min: 0,
  }),
  snrMin: num('--snr-min <db>', 'lowest speech-to-noise ratio, dB (default 25; --sync 20)'),
  snrMax: num('--snr-max <db>', 'highest speech-to-noise ratio, dB (default 50; --sync 40)'),
  duration: num('--duration <s>', 'clip length in seconds, the word near the centre (default 1.0)'),
  voices: list(
    '--voices <list>',
    'comma-separated espeak-ng voice variants (default: all installed; --sync: f1-f5, m1-m7); every 5th goes to test',
  ),
  langs: list(
    '--langs <list>',
    'comma-separated espeak-ng languages / accents, the digit spoken in each (default: the 8 English accents; --sync: en)',
  ),
  speedMin: int('--speed-min <wpm>', 'slowest speech rate, words per minute (default 110; --sync 150)', {
    min: 80,
  }),
  speedMax: int('--speed-max <wpm>', 'fastest speech rate (default 220)', { min: 80 }),
  pitchMin: int('--pitch-min <p>', 'lowest pitch, espeak-ng scale 0-99 (default 10; --sync 20)', { min: 0 }),
  pitchMax: int('--pitch-max <p>', 'highest pitch (default 90; --sync 80)', { min: 0 }),
  imageSize: int(
    '--image-size <px>',
    'stored image side (default 28: the MNIST pixels; the image pipeline resizes)',
    {
      min: 8,
    },
  ),
  recording: oneOf(
    '--recording <preset>',
    'recording conditions: varied (rooms, microphones, telephone codecs, noise, levels, clipping; the default) | clean (--sync default)',
    ['varied', 'clean'] as const,
  ),
  params: custom(
    '--params <json|file>',
    "all generator parameters as JSON, or a file: a manifest's params rebuild that set exactly; the other flags override",
    readParams,
  ),
  realTest: negatable('--no-real-test', 'do not make the held-out real-speech set (real-test.json)'),
  jobs: int('--jobs <n>', 'examples made in parallel (each runs espeak-ng or flite, and sox)', {
    min: 1,
    default: 2,
  }),
  sync: flag(
    '--sync',
    'multi-digit 10.24 s clips for CAV-MAE Sync segment retrieval (sync-train.json, sync-test.json)',
  ),
  digitsPerClip: int('--digits-per-clip <k>', 'with --sync: digits per clip, a divisor of 16 (default 8)', {
    min: 1,
  }),
  quiet: flag('--quiet', 'no progress bar'),
};

export function register(program: Command): void {
  defineCommand(
    program,
    'make-demo-data',
    'make the AV-digits demo set: MNIST digit images paired with speech of the digit name (espeak-ng and flite voices, speeds, pitches, rooms, microphones, noise); ' +
      'writes <out>/train.json, <out>/test.json (manifests), <out>/labels.csv, the media, and the held-out real-speech set <out>/real-test.json; train/test split by voice and by MNIST image; resumable',
    OPTIONS,
    async ({ sync, quiet, realTest, ...o }) => {
      if (!sync && o.digitsPerClip !== undefined)
        throw new UserError('--digits-per-clip applies to --sync only');
      const { makeAvDigits } = await import('../../data/avdigits.js');
      const bar = await progressBar(
        !quiet,
        'make-demo-data |{bar}| {value}/{total} examples | ETA {eta_formatted}',
        {
          etaBuffer: 50,
        },
      );
      let started = false;
      const s = await makeAvDigits({
        ...o,
        // --params of a multi-digit set rebuilds a multi-digit set without --sync
        layout: sync ? 'sequence' : (o.params?.layout ?? 'single'),
        realTest: realTest ? 'auto' : false,
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
    },
  );
}
