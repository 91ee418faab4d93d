/**
 * One training or evaluation sample: (fbank, image, label vector), as the reference dataset's
 * `__getitem__` builds it (docs/reference.md#fbank, #normalisation-and-augmentation, #mixup, #image-transform, #frame-choice). Runs inside loader worker threads (and on the
 * main thread when the loader has no workers).
 *
 * Contract: `buildSample(task, config)` is a pure function of the task (items, seed words) and
 * the media files: its random numbers come only from `Rng.derive(seed, epoch, position)`, in a
 * fixed draw order: frame index; [λ, partner frame index] when mixing; SpecAugment; noise + roll;
 * and the level change and time shift (when on) from `Rng.derive(seed, epoch, position, tag)`.
 * A file that cannot be read raises `SampleLoadError` naming the file and which item (primary or
 * mixup partner) it belongs to; the loader replaces that item and tries again. It never falls
 * back to constant tensors as the reference does.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { computeFbank, decodeAudio, normalizeFbank, NUM_MEL_BINS, padOrCrop } from '../audio/index.js';
import {
  centerCrop,
  decodeImage,
  extractFrames,
  imageToTensor,
  loadVideoFrameTensor,
  normalizeToTensor,
  resizeShorter,
  type RgbImage,
} from '../vision/index.js';
import { fileError } from '../util/errors.js';
import {
  addNoiseAndRoll,
  applyGainDb,
  labelVector,
  mixImages,
  mixLabelVector,
  mixWaveforms,
  MIXUP_BETA,
  shiftTime,
  specAugment,
} from './augment.js';
import { naturalCompare, officialFramePath, type VisualSource } from './datafile.js';
import { Rng } from './rng.js';
import { ByteLru } from './cache.js';
import { cropSegment, SYNC_SPECTROGRAM_ROWS } from './sync-segments.js';

const TAG_LEVEL_SHIFT = 0x6c767368;

/** What a worker needs to know about one dataset item (structured-clone friendly). */
export interface SampleItem {
  index: number;
  id: string;
  audioPath: string;
  visual: VisualSource;
  labels: Int32Array;
}

export interface SampleConfig {
  train: boolean;
  targetLength: number;
  /** Frames per clip (10 for CAV-MAE, 16 for Sync). */
  totalFrames: number;
  /** Frame used in evaluation; default floor(totalFrames / 2). */
  frameUse?: number;
  freqm: number;
  timem: number;
  noise: boolean;
  /** Random level change, uniform in ±gainDb dB (0: off). Drawn from its own stream (TAG_LEVEL_SHIFT). */
  gainDb?: number;
  /** Random time shift without wrap-around, uniform in ±timeShift fbank rows (0: off). */
  timeShift?: number;
  labelSmooth: number;
  numLabels: number;
  imageSize: number;
  audioMean: number;
  audioStd: number;
  /** Bytes of decoded media kept per thread (raw fbanks, resized images, video frames); 0 = none. */
  cacheBytes: number;
  /**
   * CAV-MAE Sync pairs (docs/reference.md#sync-segments): the fbank is padded/cut to 1024 rows and the targetLength
   * rows centred on the chosen frame are taken (src/data/sync-segments.ts), before normalising.
   */
  syncSegments?: boolean;
}

export interface SampleTask {
  seed: number;
  epoch: number;
  position: number;
  primary: SampleItem;
  /** Mixup partner (train only), chosen by the loader. */
  partner?: SampleItem;
}

export interface SampleResult {
  audio: Float32Array; // [T, 128]
  image: Float32Array; // [3, S, S]
  labels: Float32Array; // [K]
  lambda: number | undefined;
  frame: number;
}

export class SampleLoadError extends Error {
  constructor(
    readonly which: 'primary' | 'partner',
    readonly path: string,
    message: string,
  ) {
    super(message);
    this.name = 'SampleLoadError';
  }
}

const IMAGE_EXTS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.bmp', '.tif', '.tiff', '.gif']);
const frameDirCache = new Map<string, string[]>();

/** Frame images of a folder, natural order; frame i of `count` is file floor(i·n/count). */
function frameFromFolder(dir: string, i: number, count: number): string {
  let files = frameDirCache.get(dir);
  if (!files) {
    files = readdirSync(dir)
      .filter((f) => IMAGE_EXTS.has(extname(f).toLowerCase()))
      .sort(naturalCompare)
      .map((f) => join(dir, f));
    if (files.length === 0) throw fileError(dir, 'folder holds no frame images (.jpg/.png/...)');
    if (frameDirCache.size > 10_000) frameDirCache.clear();
    frameDirCache.set(dir, files);
  }
  return files[Math.min(files.length - 1, Math.floor((i * files.length) / count))];
}

function isDirectory(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The file a visual source's frame `i` is read from (for error messages), or the video path. */
export function visualPath(v: VisualSource, i: number, count: number): string {
  switch (v.kind) {
    case 'frames': {
      // Reference: step down while the frame is missing; frame 0 is not checked.
      let k = i;
      while (k > 0 && !isFile(officialFramePath(v.dir, v.videoId, k))) k--;
      return officialFramePath(v.dir, v.videoId, k);
    }
    case 'image':
      return v.path;
    case 'video':
      return isDirectory(v.path) ? frameFromFolder(v.path, i, count) : v.path;
  }
}

// Per-thread cache of deterministic intermediate results (no augmentation touches them), one
// byte budget for all kinds: raw fbank per audio file ("a:"), resized+cropped uint8 image per
// (file, size) ("i:"), tensor per video frame ("v:").
type Cached = { data: Float32Array; frames: number } | RgbImage | Float32Array;
const cache = new ByteLru<Cached>(0);

function configureCache(bytes: number): void {
  if (cache.maxBytes === bytes) return;
  cache.maxBytes = bytes;
  cache.clear();
}

export function cacheStats(): { hits: number; misses: number; bytes: number } {
  return { hits: cache.hits, misses: cache.misses, bytes: cache.bytes };
}

/** The image transform of the vision module (imageToTensor), with its uint8 stage cached. */
/** visualPath, with a folder that cannot be listed reported as an unreadable sample. */
function framePathOf(v: VisualSource, i: number, count: number, which: 'primary' | 'partner'): string {
  try {
    return visualPath(v, i, count);
  } catch (e) {
    const base = v.kind === 'frames' ? v.dir : v.path;
    throw new SampleLoadError(which, base, (e as Error)?.message ?? String(e));
  }
}

async function loadFrame(v: VisualSource, path: string, i: number, cfg: SampleConfig): Promise<Float32Array> {
  const S = cfg.imageSize;
  if (v.kind === 'video' && path === v.path) {
    const key = `v:${S}:${i}/${cfg.totalFrames}:${path}`;
    const hit = cache.get(key) as Float32Array | undefined;
    if (hit) return hit.slice();
    let t: Float32Array;
    if (S === 224) t = await loadVideoFrameTensor(path, i, cfg.totalFrames);
    else
      t = imageToTensor((await extractFrames(path, { count: cfg.totalFrames, only: [i] }))[0], { size: S });
    cache.set(key, t.slice(), t.byteLength);
    return t;
  }
  const key = `i:${S}:${path}`;
  let img = cache.get(key) as RgbImage | undefined;
  if (!img) {
    img = centerCrop(resizeShorter(await decodeImage(path), S, 'bicubic'), S);
    cache.set(key, img, img.data.byteLength);
  }
  return normalizeToTensor(img);
}

async function rawFbank(item: SampleItem): Promise<{ data: Float32Array; frames: number }> {
  const key = `a:${item.audioPath}`;
  const hit = cache.get(key) as { data: Float32Array; frames: number } | undefined;
  if (hit) return hit;
  const fb = computeFbank(await waveform(item, 'primary'), 16000, item.audioPath);
  cache.set(key, fb, fb.data.byteLength);
  return fb;
}

async function guard<T>(which: 'primary' | 'partner', path: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof SampleLoadError) throw e;
    const msg = (e as Error)?.message ?? String(e);
    throw new SampleLoadError(which, path, msg);
  }
}

/** WAV files up to this size are read in one synchronous call (4x faster than the async path). */
const SYNC_READ_BYTES = 64 << 20;

async function waveform(item: SampleItem, which: 'primary' | 'partner'): Promise<Float32Array> {
  return guard(which, item.audioPath, async () => {
    const path = item.audioPath;
    let input: string | Uint8Array = path;
    if (/\.wav$/i.test(path)) {
      // Anything unusual (missing, special file, huge) takes decodeAudio's path, which explains it.
      let size = -1;
      try {
        const st = statSync(path);
        if (st.isFile()) size = st.size;
      } catch {
        /* reported by decodeAudio below */
      }
      if (size > 0 && size <= SYNC_READ_BYTES) input = readFileSync(path);
    }
    const { samples } = await decodeAudio(input, { what: path });
    if (samples.length < 400)
      throw fileError(item.audioPath, `audio too short for one fbank frame (${samples.length} samples)`);
    return samples;
  });
}

function frameIndex(cfg: SampleConfig, rng: Rng): number {
  if (cfg.train) return rng.int(cfg.totalFrames);
  return cfg.frameUse ?? Math.floor(cfg.totalFrames / 2);
}

export async function buildSample(task: SampleTask, cfg: SampleConfig): Promise<SampleResult> {
  const rng = Rng.derive(task.seed, task.epoch, task.position);
  const T = cfg.targetLength;
  const F = NUM_MEL_BINS;
  const frame = frameIndex(cfg, rng);
  const partner = cfg.train ? task.partner : undefined;
  let lambda: number | undefined;
  let partnerFrame = frame;
  if (partner) {
    lambda = rng.beta(MIXUP_BETA, MIXUP_BETA);
    partnerFrame = frameIndex(cfg, rng);
  }

  configureCache(cfg.cacheBytes);
  // Audio: [frames, 128] log-mel -> pad/crop to [T, 128] (a copy, so the cache stays intact)
  let fb: { data: Float32Array; frames: number };
  if (partner) {
    const mixed = mixWaveforms(
      await waveform(task.primary, 'primary'),
      await waveform(partner, 'partner'),
      lambda!,
    );
    fb = computeFbank(mixed, 16000, task.primary.audioPath);
  } else fb = await guard('primary', task.primary.audioPath, () => rawFbank(task.primary));
  let audio = cfg.syncSegments
    ? cropSegment(padOrCrop(fb.data, fb.frames, SYNC_SPECTROGRAM_ROWS), frame, T, cfg.totalFrames) // [T, 128]
    : padOrCrop(fb.data, fb.frames, T); // [T, 128]

  // Image(s): [3, S, S], each normalised before mixing
  const path1 = framePathOf(task.primary.visual, frame, cfg.totalFrames, 'primary');
  const image = await guard('primary', path1, () => loadFrame(task.primary.visual, path1, frame, cfg));
  if (partner) {
    const path2 = framePathOf(partner.visual, partnerFrame, cfg.totalFrames, 'partner');
    const image2 = await guard('partner', path2, () => loadFrame(partner.visual, path2, partnerFrame, cfg));
    mixImages(image, image2, lambda!);
  }

  const labels = partner
    ? mixLabelVector(task.primary.labels, partner.labels, lambda!, cfg.numLabels, cfg.labelSmooth)
    : labelVector(task.primary.labels, cfg.numLabels, cfg.labelSmooth);

  if (cfg.train && ((cfg.gainDb ?? 0) > 0 || (cfg.timeShift ?? 0) > 0)) {
    // Level and time shift come from their own generator, so the reference's draws (above and
    // below) are the same with or without them.
    const lr = Rng.derive(task.seed, task.epoch, task.position, TAG_LEVEL_SHIFT);
    const gain = (2 * lr.uniform() - 1) * (cfg.gainDb ?? 0);
    const shift = cfg.timeShift ? lr.intRange(-cfg.timeShift, cfg.timeShift + 1) : 0;
    applyGainDb(audio, Math.min(fb.frames, T), F, gain);
    if (shift !== 0) audio = shiftTime(audio, T, F, shift);
  }
  if (cfg.train) specAugment(audio, T, F, cfg.freqm, cfg.timem, rng);
  normalizeFbank(audio, cfg.audioMean, cfg.audioStd);
  if (cfg.train && cfg.noise) audio = addNoiseAndRoll(audio, T, F, rng).fbank;
  return { audio, image, labels, lambda, frame };
}
