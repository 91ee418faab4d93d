/**
 * Multi-digit AV-digits for CAV-MAE Sync: one 10.24 s clip = a sequence of K spoken digits and a
 * 16-frame "video" showing, at each frame, the handwritten digit being spoken around that
 * frame's audio segment. Segment-level retrieval (which of all (clip, pair) frames belongs to
 * this audio segment?) then needs temporal alignment, which is what Sync adds over a pooled
 * CAV-MAE clip embedding. Built from the AV-digits pieces (src/data/demo.ts: espeak-ng speech,
 * MNIST images, noise, WAV writing).
 *
 * Contract:
 * - Clip: 163,840 samples (10.24 s = the 1024 fbank rows Sync pads to). Pair k (0..15) has its
 *   segment centred at 0.64·k s (src/data/sync-segments.ts). Digit j of K (16 / K pairs each)
 *   covers pairs j·16/K .. (j+1)·16/K − 1 and is spoken centred at the mean centre of those
 *   pairs (± 50 ms jitter), trimmed to 90% of its 0.64·16/K s share. One voice variant, speed
 *   and pitch per clip; noise (white / pink / brown) over the whole clip at a drawn SNR.
 * - Frames: `<split>/<id>/frame_00.png … frame_15.png` (a frame folder: frame k = file k), frame
 *   k = one MNIST image of digit floor(k·K/16) (one MNIST instance per digit position).
 * - Manifest `<out>/sync-train.json` / `sync-test.json` (our format): `{id, audio, video,
 *   labels: digit names present, digits: [K], pair_digits: [16]}`. Train and test use disjoint
 *   MNIST images (index % 5) and voice variants (every 5th), as AV-digits.
 * - Example i of a split is a pure function of (seed, split, i, parameters).
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import sharp from 'sharp';
import { writeFileAtomic } from '../io/atomic.js';
import { UserError } from '../util/errors.js';
import { DIGIT_NAMES, encodeWavPcm16, loadMnist, makeNoise, splitVoices, synthesize } from './demo.js';
import { Rng } from './rng.js';
import { SYNC_PAIRS, segmentBounds } from './sync-segments.js';

const SR = 16000;
/** 10.24 s: the 1024 fbank rows (10 ms hop) the Sync loader pads every clip to. */
export const SYNC_DEMO_SAMPLES = 163840;
const MNIST_SIDE = 28;
/** espeak-ng 1.51's standard voice variants. */
const DEFAULT_VOICES = ['f1', 'f2', 'f3', 'f4', 'f5', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7'];

export interface SyncDemoOptions {
  out: string;
  /** Training clips (default 500). */
  n?: number;
  /** Test clips (default n/10, at least 10). */
  testN?: number;
  /** Digits per clip; must divide 16 (default 8: each digit spans two pairs). */
  digitsPerClip?: number;
  seed?: number;
  snrMin?: number;
  snrMax?: number;
  voices?: string[];
  /** Stored frame side (default 28, MNIST's own pixels). */
  imageSize?: number;
  jobs?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface SyncDemoItem {
  id: string;
  audio: string;
  video: string;
  labels: string[];
  digits: number[];
  pair_digits: number[];
  voice_variant: string;
  speed_wpm: number;
  pitch: number;
  noise: 'white' | 'pink' | 'brown';
  snr_db: number;
}

export interface SyncDemoSummary {
  train: string;
  test: string;
  trainCount: number;
  testCount: number;
  seconds: number;
}

type Split = 'train' | 'test';
const SPLIT_TAG: Record<Split, number> = { train: 0x73747261, test: 0x73746573 };

/** Centre time (s) of pair k's segment: the segment's middle row × 10 ms. */
function pairCentre(k: number): number {
  const [s, e] = segmentBounds(k, 2); // a 2-row segment sits on the centre row
  return ((s + e) / 2) * 0.01;
}

/** The digit index (0..K-1) each of the 16 pairs shows. */
export function pairDigitSlots(K: number): number[] {
  return Array.from({ length: SYNC_PAIRS }, (_, k) => Math.floor((k * K) / SYNC_PAIRS));
}

async function framePng(pixels: ArrayLike<number>, offset: number, size: number): Promise<Buffer> {
  const rgb = Buffer.alloc(MNIST_SIDE * MNIST_SIDE * 3);
  for (let p = 0; p < MNIST_SIDE * MNIST_SIDE; p++) {
    const v = Math.round(Math.max(0, Math.min(1, pixels[offset + p])) * 255);
    rgb[3 * p] = rgb[3 * p + 1] = rgb[3 * p + 2] = v;
  }
  let img = sharp(rgb, { raw: { width: MNIST_SIDE, height: MNIST_SIDE, channels: 3 } });
  if (size !== MNIST_SIDE) img = img.resize(size, size, { kernel: 'cubic' });
  return img.png({ compressionLevel: 9, adaptiveFiltering: false, palette: false }).toBuffer();
}

function writeMedia(path: string, bytes: Uint8Array): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, bytes);
  renameSync(tmp, path);
}

interface Params {
  seed: number;
  K: number;
  snrMin: number;
  snrMax: number;
  imageSize: number;
}

async function makeClip(
  p: Params,
  split: Split,
  i: number,
  voices: string[],
  out: string,
): Promise<SyncDemoItem> {
  const rng = Rng.derive(p.seed, SPLIT_TAG[split], i);
  const mnist = loadMnist();
  const digits = Array.from({ length: p.K }, () => rng.int(10));
  const variant = voices[rng.int(voices.length)];
  const speed = rng.intRange(150, 221);
  const pitch = rng.intRange(20, 81);
  const id = `avds_${split}_${String(i).padStart(5, '0')}`;
  const per = SYNC_PAIRS / p.K;
  const clip = new Float32Array(SYNC_DEMO_SAMPLES);
  let ss = 0;
  let speechSamples = 0;
  for (let j = 0; j < p.K; j++) {
    const speech = await synthesize(String(digits[j]), `en+${variant}`, speed, pitch);
    if (speech.length < SR / 50)
      throw new UserError(`espeak-ng produced no speech for "${digits[j]}" (voice en+${variant})`);
    const maxLen = Math.floor(0.9 * per * 0.64 * SR);
    const sp = speech.subarray(0, Math.min(speech.length, maxLen));
    let centre = 0;
    for (let k = j * per; k < (j + 1) * per; k++) centre += pairCentre(k) / per;
    centre += (rng.uniform() - 0.5) * 0.1;
    const start = Math.max(
      0,
      Math.min(SYNC_DEMO_SAMPLES - sp.length, Math.round(centre * SR - sp.length / 2)),
    );
    let peak = 0;
    for (let t = 0; t < sp.length; t++) peak = Math.max(peak, Math.abs(sp[t]));
    const gain = Math.pow(10, (-12 + 11 * rng.uniform()) / 20) / (peak || 1);
    for (let t = 0; t < sp.length; t++) {
      const v = sp[t] * gain;
      clip[start + t] += v;
      ss += v * v;
    }
    speechSamples += sp.length;
  }
  const kinds = ['white', 'pink', 'brown'] as const;
  const kind = kinds[rng.int(3)];
  const snr = p.snrMin + (p.snrMax - p.snrMin) * rng.uniform();
  const noise = makeNoise(rng, kind, SYNC_DEMO_SAMPLES);
  const a = Math.sqrt(ss / Math.max(1, speechSamples)) / Math.pow(10, snr / 20);
  let outPeak = 0;
  for (let t = 0; t < clip.length; t++) {
    clip[t] += a * noise[t];
    outPeak = Math.max(outPeak, Math.abs(clip[t]));
  }
  if (outPeak > 0.99) for (let t = 0; t < clip.length; t++) clip[t] *= 0.99 / outPeak;

  const slots = pairDigitSlots(p.K);
  const dirRel = `sync-${split}/${id}`;
  mkdirSync(join(out, dirRel), { recursive: true });
  const pool = mnist.idx[split];
  const images = await Promise.all(
    digits.map((d) => framePng(mnist.data[d], pool[d][rng.int(pool[d].length)] * 784, p.imageSize)),
  );
  for (let k = 0; k < SYNC_PAIRS; k++)
    writeMedia(join(out, dirRel, `frame_${String(k).padStart(2, '0')}.png`), images[slots[k]]);
  const audioRel = `sync-${split}/${id}.wav`;
  writeMedia(join(out, audioRel), encodeWavPcm16(clip));
  return {
    id,
    audio: audioRel,
    video: dirRel,
    labels: [...new Set(digits)].sort((x, y) => x - y).map((d) => DIGIT_NAMES[d]),
    digits,
    pair_digits: slots.map((s) => digits[s]),
    voice_variant: variant,
    speed_wpm: speed,
    pitch,
    noise: kind,
    snr_db: Math.round(snr * 100) / 100,
  };
}

/** Writes the multi-digit Sync demo set (see the contract) and returns where. */
export async function makeSyncDemoData(opts: SyncDemoOptions): Promise<SyncDemoSummary> {
  const t0 = performance.now();
  const out = resolve(opts.out);
  const n = opts.n ?? 500;
  const testN = opts.testN ?? Math.max(10, Math.round(n / 10));
  const p: Params = {
    seed: opts.seed ?? 0,
    K: opts.digitsPerClip ?? 8,
    snrMin: opts.snrMin ?? 20,
    snrMax: opts.snrMax ?? 40,
    imageSize: opts.imageSize ?? MNIST_SIDE,
  };
  const jobs = opts.jobs ?? 2;
  const int = (v: number, lo: number, hi: number): boolean => Number.isInteger(v) && v >= lo && v <= hi;
  if (!int(n, 1, 1e7) || !int(testN, 0, 1e7))
    throw new UserError(`clip counts must be integers >= 1 (train) and >= 0 (test), got ${n}, ${testN}`);
  if (!int(p.K, 1, 16) || SYNC_PAIRS % p.K !== 0)
    throw new UserError(`digits per clip must divide 16 (1, 2, 4, 8, 16), got ${p.K}`);
  if (!(p.snrMax >= p.snrMin)) throw new UserError(`SNR range [${p.snrMin}, ${p.snrMax}] is empty`);
  if (!int(p.imageSize, 8, 1024))
    throw new UserError(`image size must be an integer in [8, 1024], got ${p.imageSize}`);
  if (!int(jobs, 1, 64)) throw new UserError(`jobs must be an integer in [1, 64], got ${jobs}`);
  const voiceSplit = splitVoices(opts.voices?.length ? [...new Set(opts.voices)] : DEFAULT_VOICES);
  const tasks: [Split, number][] = [
    ...Array.from({ length: n }, (_, i) => ['train', i] as [Split, number]),
    ...Array.from({ length: testN }, (_, i) => ['test', i] as [Split, number]),
  ];
  const items: Record<Split, SyncDemoItem[]> = { train: new Array(n), test: new Array(testN) };
  let next = 0;
  let done = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const [split, i] = tasks[next++];
      items[split][i] = await makeClip(p, split, i, voiceSplit[split], out);
      opts.onProgress?.(++done, tasks.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, tasks.length) }, worker));
  const write = (split: Split): string => {
    const path = join(out, `sync-${split}.json`);
    writeFileAtomic(
      path,
      JSON.stringify(
        {
          name: `avdigits-sync-${split}`,
          description:
            'multi-digit AV-digits for CAV-MAE Sync: 10.24 s clips of spoken digits + 16 frames showing the digit spoken around each frame segment (src/data/sync-demo.ts)',
          params: { ...p, split, voices: voiceSplit[split] },
          items: items[split],
        },
        null,
        1,
      ),
    );
    return path;
  };
  return {
    train: write('train'),
    test: write('test'),
    trainCount: n,
    testCount: testN,
    seconds: (performance.now() - t0) / 1000,
  };
}
