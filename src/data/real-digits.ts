/**
 * The held-out real-speech test set: recordings of people saying the digit names, taken from
 * Debian packages (docs/data.md lists the sources and their licences), each paired with unseen
 * MNIST images (the test split, index % 5 == 0). It is never used for training: it measures
 * whether what a model learned from synthetic voices transfers to human speech.
 *
 * Sources (REAL_SOURCES): four speakers and five recording channels:
 * - Allison Smith (asterisk-core-sounds-en-{wav,g722,gsm}): a professional female voice, studio,
 *   the same takes stored three ways: 8 kHz PCM, G.722 wideband (16 kHz), GSM 06.10 (telephone);
 * - saytime (David C Dawson, male): 8 kHz u-law recordings made for a talking clock;
 * - pocketsphinx-testdata: digits cut from two connected-digit recordings (a CMU Sphinx test
 *   utterance and TIDIGITS speaker "dhd"), 16 kHz; a cut is kept only when the TIDIGITS
 *   recogniser shipped in the same package hears the digit in the cut alone (docs/data.md).
 *
 * Contract:
 * - Every source file is checked against the SHA-256 prefix recorded here; a changed package is
 *   an error naming the file (the set must stay the same set).
 * - Clip: the recording (or its cut) decoded to 16 kHz mono, silence trimmed (whole files) and
 *   centred in `duration` s of digital silence, at the level it was recorded (no normalising),
 *   written as PCM16 WAV `<out>/real/<source>_<digit>[_<k>].wav`.
 * - Items: each clip paired with `imagesPerClip` MNIST test images drawn from
 *   Rng.derive(seed, REAL_TAG, clip, k); manifest `<out>/real-test.json`, labels = digit names
 *   (the same labels.csv as AV-digits).
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { spawnSync } from 'node:child_process';
import { writeFileAtomic } from '../io/atomic.js';
import { encodeWavPcm16 } from '../audio/wav.js';
import { rawFloatToSamples, runSpeechTool, SOX_RAW_OUT } from '../audio/speech.js';
import { runFfmpeg } from '../util/ffmpeg.js';
import { UserError } from '../util/errors.js';
import { DIGIT_NAMES, digitPng, loadMnist } from './mnist.js';
import { Rng } from './rng.js';

const SR = 16000;
const REAL_TAG = 0x7265616c;

type Decoder = 'wav' | 'g722' | 'gsm' | 'ulaw8k' | 'raw16k';

export interface RealSource {
  id: string;
  /** Debian package that installs the files. */
  package: string;
  speaker: string;
  channel: string;
  licence: string;
  decoder: Decoder;
  /** [digit, file, sha256 prefix, cut start s, cut end s] */
  clips: [number, string, string, number?, number?][];
}

const ALLISON = '/usr/share/asterisk/sounds/en_US_f_Allison/digits';
const SPHINX = '/usr/share/pocketsphinx/test/data';
const allison = (ext: string, sums: string[]): RealSource['clips'] =>
  sums.map((s, d) => [d, `${ALLISON}/${d}.${ext}`, s]);

export const REAL_SOURCES: RealSource[] = [
  {
    id: 'allison-wav',
    package: 'asterisk-core-sounds-en-wav',
    speaker: 'Allison Smith (female, US English, professional voice talent)',
    channel: 'studio, 8 kHz 16-bit PCM',
    licence: 'CC-BY-SA-3.0',
    decoder: 'wav',
    clips: allison('wav', [
      '62debe1daf11',
      'fb38aca5558d',
      '6ef0a6b67a17',
      '4ec0371d15f7',
      'f1c007fbd2ee',
      '412b4b7729a8',
      '89c80e3c120f',
      '125c9acb8b5b',
      '854114f9f3bb',
      '535d4117923a',
    ]),
  },
  {
    id: 'allison-g722',
    package: 'asterisk-core-sounds-en-g722',
    speaker: 'Allison Smith (female, US English, professional voice talent)',
    channel: 'studio, G.722 wideband codec (16 kHz)',
    licence: 'CC-BY-SA-3.0',
    decoder: 'g722',
    clips: allison('g722', [
      '3fb9b85b67c8',
      'af3bbae924bd',
      '3f8ab40f21cb',
      'b3b2ad379855',
      '70d27d4c78e6',
      '8ab160b7cecd',
      '1d5676c9ec18',
      '08483a7ba4d2',
      '7c1a594cfee8',
      '56501aecab15',
    ]),
  },
  {
    id: 'allison-gsm',
    package: 'asterisk-core-sounds-en-gsm',
    speaker: 'Allison Smith (female, US English, professional voice talent)',
    channel: 'studio, GSM 06.10 telephone codec (8 kHz)',
    licence: 'CC-BY-SA-3.0',
    decoder: 'gsm',
    clips: allison('gsm', [
      'be56951f5391',
      'bc8d3c44d3dd',
      '1fdb4c6cce54',
      'f52978af2a00',
      '2585b6995015',
      '2d5e4a07a768',
      '6d2109fedb0f',
      'a3848e9a09ca',
      '544e22553de5',
      '7490b85da30a',
    ]),
  },
  {
    id: 'saytime',
    package: 'saytime',
    speaker: 'David C Dawson (male, English)',
    channel: '8 kHz u-law recording',
    licence: 'GPL-2+ (sound files), per /usr/share/doc/saytime/copyright',
    decoder: 'ulaw8k',
    clips: [
      '59013b215989',
      '76e758aec245',
      'b977763f4373',
      '565fcbebe461',
      'f02e668d0bab',
      '93faee853004',
      'cc8c2f304e9a',
      'b5f09940acdc',
      'aa9e693ba756',
      '5e16a63d629e',
    ].map((s, d) => [d, `/usr/share/saytime/${d}.au`, s]),
  },
  {
    id: 'sphinx-numbers',
    package: 'pocketsphinx-testdata',
    speaker: 'CMU Sphinx test speaker (male, F0 about 107 Hz), connected digits',
    channel: '16 kHz recording',
    licence: 'BSD-2-Clause (CMU), per /usr/share/doc/pocketsphinx-testdata/copyright',
    decoder: 'raw16k',
    // "three three four six nine eight two"; "nine" (2.37-2.57 s) is left out: cut alone it is heard as "eight"
    clips: [
      [3, `${SPHINX}/numbers.raw`, '45b5f6d3f88e', 0.47, 0.79],
      [3, `${SPHINX}/numbers.raw`, '45b5f6d3f88e', 0.82, 1.34],
      [4, `${SPHINX}/numbers.raw`, '45b5f6d3f88e', 1.29, 1.94],
      [6, `${SPHINX}/numbers.raw`, '45b5f6d3f88e', 2.05, 2.39],
      [8, `${SPHINX}/numbers.raw`, '45b5f6d3f88e', 2.55, 2.87],
      [2, `${SPHINX}/numbers.raw`, '45b5f6d3f88e', 2.82, 3.29],
    ],
  },
  {
    id: 'tidigits-dhd',
    package: 'pocketsphinx-testdata',
    speaker: 'TIDIGITS speaker dhd (male, F0 about 130 Hz), connected digits',
    channel: 'TIDIGITS studio recording, 16 kHz',
    licence: 'BSD-2-Clause (CMU), per /usr/share/doc/pocketsphinx-testdata/copyright',
    decoder: 'raw16k',
    // "two nine three four zero"; "two" and "nine" are left out: cut alone they are heard as other digits
    clips: [
      [3, `${SPHINX}/tidigits/dhd.2934z.raw`, '60c14412ad14', 0.61, 0.93],
      [4, `${SPHINX}/tidigits/dhd.2934z.raw`, '60c14412ad14', 0.9, 1.16],
      [0, `${SPHINX}/tidigits/dhd.2934z.raw`, '60c14412ad14', 1.13, 1.65],
    ],
  },
];

/** The Debian packages the real-speech set reads (for scripts/setup.sh and error messages). */
export const REAL_PACKAGES = [...new Set(REAL_SOURCES.map((s) => s.package))];

/** Packages whose files are missing on this machine. */
export function missingRealPackages(): string[] {
  return REAL_PACKAGES.filter((pkg) =>
    REAL_SOURCES.some((s) => s.package === pkg && s.clips.some((c) => !existsSync(c[1]))),
  );
}

/** The recording as 16 kHz mono float samples (the cut only, when the clip is a cut). */
async function decode(src: RealSource, file: string, start?: number, end?: number): Promise<Float32Array> {
  // a cut of connected speech starts and ends mid-sound: 10 ms fades so the edges do not click
  const cut =
    start !== undefined && end !== undefined
      ? ['trim', String(start), `=${end}`, 'fade', '0.01', '0', '0.01']
      : [];
  if (src.decoder === 'g722') {
    const r = await runFfmpeg(
      ['-f', 'g722', '-i', file, '-ar', String(SR), '-ac', '1', '-f', 'f32le', 'pipe:1'],
      { what: file, maxBytes: 64 << 20 },
    );
    return rawFloatToSamples(r.stdout);
  }
  const input: Record<Exclude<Decoder, 'g722'>, string[]> = {
    wav: [file],
    gsm: ['-t', 'gsm', '-r', '8000', '-c', '1', file],
    ulaw8k: ['-t', 'ul', '-r', '8000', '-c', '1', file],
    raw16k: ['-t', 'raw', '-e', 'signed', '-b', '16', '-r', String(SR), '-c', '1', '-L', file],
  };
  // prettier-ignore
  return rawFloatToSamples(await runSpeechTool('sox', ['-R', '-D', ...input[src.decoder], ...SOX_RAW_OUT, ...cut, 'rate', '-h', String(SR)]));
}

/** Leading and trailing samples below 0.5% of full scale removed (sox's `silence` rule of the synthetic speech). */
function trimSilence(x: Float32Array): Float32Array {
  let a = 0;
  let b = x.length;
  while (a < b && Math.abs(x[a]) < 0.005) a++;
  while (b > a && Math.abs(x[b - 1]) < 0.005) b--;
  return x.subarray(a, b);
}

function sha256Prefix(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 12);
}

export interface RealDigitsOptions {
  out: string;
  seed?: number;
  /** Clip length, s (default 1.0: the AV-digits clips). */
  duration?: number;
  /** MNIST test images paired with each recording (default 3). */
  imagesPerClip?: number;
  imageSize?: number;
}

export interface RealDigitsSummary {
  path: string;
  clips: number;
  items: number;
  speakers: number;
  sources: string[];
}

export interface RealItem {
  id: string;
  audio: string;
  image: string;
  label: string;
  digit: number;
  source: string;
  speaker: string;
  channel: string;
  package: string;
  file: string;
  cut_s: [number, number] | null;
  speech_dur_s: number;
  mnist_index: number;
}

/** Writes `<out>/real-test.json` and `<out>/real/` (see the contract). */
export async function makeRealDigits(o: RealDigitsOptions): Promise<RealDigitsSummary> {
  const out = resolve(o.out);
  const duration = o.duration ?? 1.0;
  const perClip = o.imagesPerClip ?? 3;
  const seed = o.seed ?? 0;
  const size = o.imageSize ?? 28;
  const missing = missingRealPackages();
  if (missing.length)
    throw new UserError(
      `the real-speech test set needs Debian packages that are not installed: apt-get install ${missing.join(' ')} (scripts/setup.sh installs them)`,
    );
  mkdirSync(join(out, 'real'), { recursive: true });
  const mnist = loadMnist();
  const n = Math.round(duration * SR);
  const items: RealItem[] = [];
  let clipIndex = 0;
  for (const src of REAL_SOURCES) {
    for (const [digit, file, sum, start, end] of src.clips) {
      const got = sha256Prefix(file);
      if (got !== sum)
        throw new UserError(
          `${file}: not the recording this test set was made from (sha256 ${got}..., expected ${sum}...; package ${src.package} changed?)`,
        );
      const cut = start !== undefined && end !== undefined;
      let speech = await decode(src, file, start, end);
      if (!cut) speech = trimSilence(speech);
      if (speech.length > n)
        speech = speech.subarray((speech.length - n) >> 1, ((speech.length - n) >> 1) + n);
      const clip = new Float32Array(n);
      clip.set(speech, (n - speech.length) >> 1);
      const name = `${src.id}_${digit}${cut ? `_${Math.round(start! * 100)}` : ''}`;
      const audio = `real/${name}.wav`;
      writeFileAtomic(join(out, audio), encodeWavPcm16(clip));
      for (let k = 0; k < perClip; k++) {
        const rng = Rng.derive(seed, REAL_TAG, clipIndex, k);
        const pool = mnist.idx.test[digit];
        const mnistIndex = pool[rng.int(pool.length)];
        const image = `real/${name}_img${k}.png`;
        writeFileAtomic(join(out, image), await digitPng(mnist, digit, mnistIndex, size));
        items.push({
          id: `${name}_${k}`,
          audio,
          image,
          label: DIGIT_NAMES[digit],
          digit,
          source: src.id,
          speaker: src.speaker,
          channel: src.channel,
          package: src.package,
          file,
          cut_s: cut ? [start!, end!] : null,
          speech_dur_s: Math.round((speech.length / SR) * 1000) / 1000,
          mnist_index: mnistIndex,
        });
      }
      clipIndex++;
    }
  }
  const versions = Object.fromEntries(REAL_PACKAGES.map((p) => [p, packageVersion(p)]));
  const path = join(out, 'real-test.json');
  writeFileAtomic(
    path,
    JSON.stringify(
      {
        name: 'real-digits-test',
        description:
          'Held-out real speech: people saying the digit names (Debian packages, see docs/data.md), each recording paired with unseen MNIST test images; never for training; made by src/data/real-digits.ts',
        params: { seed, duration, imagesPerClip: perClip, imageSize: size, packages: versions },
        items,
      },
      null,
      1,
    ),
  );
  return {
    path,
    clips: clipIndex,
    items: items.length,
    speakers: new Set(REAL_SOURCES.map((s) => s.speaker)).size,
    sources: REAL_SOURCES.map((s) => s.id),
  };
}

function packageVersion(pkg: string): string | null {
  const r = spawnSync('dpkg-query', ['-W', '-f', '${Version}', pkg], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}
