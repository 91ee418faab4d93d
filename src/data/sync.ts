/**
 * CAV-MAE Sync data (docs/reference.md#sync-segments): training / evaluation pairs and whole clips for retrieval.
 *
 * Contract:
 * - Pairs for training and evaluation come from the ordinary loader with `syncSegments: true`
 *   (`syncLoaderOptions` fills the Sync settings): one (segment, frame) pair per clip, a random
 *   pair per epoch in training and the middle pair ⌊16/2⌋ = 8 in evaluation; `targetLength` is
 *   the segment length L. The Sync loader has no audio augmentation (mixup, SpecAugment and
 *   noise are off).
 * - Retrieval clips (`buildSyncClip`, `syncClipBatches`): all F = 16 pairs of a clip stacked,
 *   audio [F, L, 128] (the 16 segments of one normalised 1024-row fbank) and image [F, 3, S, S]
 *   (frame k of the clip's F frames, with the loader's transforms). The fbank is computed once
 *   per clip and a video is decoded once per clip.
 * - A frame that cannot be read is replaced by the previous readable frame (the release's
 *   retrieval rule; frames before the first readable one take that one instead of the release's
 *   zeros) and counted in `replacedFrames`. A clip whose audio or every frame is unreadable is
 *   left out and reported (`onFailure`), as evaluation loaders do.
 */
import { readFileSync, statSync } from 'node:fs';
import {
  AUDIO_NORM,
  computeFbank,
  decodeAudio,
  normalizeFbank,
  NUM_MEL_BINS,
  padOrCrop,
} from '../audio/index.js';
import {
  centerCrop,
  decodeImage,
  encodeJpeg,
  extractFrames,
  imageToTensor,
  normalizeToTensor,
  resizeShorter,
} from '../vision/index.js';
import { UserError, fileError } from '../util/errors.js';
import type { Dataset, VisualSource } from './datafile.js';
import type { LoaderOptions } from './loader.js';
import { visualPath } from './sample.js';
import {
  SYNC_PAIRS,
  SYNC_SPECTROGRAM_ROWS,
  cropAllSegments,
  evalPair,
  segmentBounds,
} from './sync-segments.js';

export {
  SYNC_PAIRS,
  SYNC_SPECTROGRAM_ROWS,
  cropAllSegments,
  cropSegment,
  evalPair,
  segmentBounds,
  syncFrameIndices,
} from './sync-segments.js';

/** Loader options for Sync pairs: segment length L, 16 frames, no audio augmentation. */
export function syncLoaderOptions(
  base: Omit<LoaderOptions, 'targetLength'>,
  segmentLength: number,
  pairs = SYNC_PAIRS,
): LoaderOptions {
  segmentBounds(0, segmentLength, pairs); // validates L
  return {
    ...base,
    targetLength: segmentLength,
    totalFrames: pairs,
    syncSegments: true,
    mixup: 0,
    freqm: 0,
    timem: 0,
    noise: false,
    frameUse: base.train ? undefined : (base.frameUse ?? evalPair(pairs)),
  };
}

export interface SyncClipConfig {
  segmentLength: number;
  /** Pairs per clip (default 16). */
  pairs?: number;
  /** Image side (default 224). */
  imageSize?: number;
  audioMean?: number;
  audioStd?: number;
}

export interface SyncClip {
  /** [F, L, 128], normalised. */
  audio: Float32Array;
  /** [F, 3, S, S], ImageNet-normalised. */
  image: Float32Array;
  /** Pairs whose frame could not be read and took a neighbour's. */
  replacedFrames: number[];
}

/** The item fields a clip needs (a DataItem or a loader SampleItem). */
export interface SyncClipItem {
  audioPath: string;
  visual: VisualSource;
}

/** The normalised 1024-row fbank of an audio file. */
async function clipFbank(path: string, mean: number, std: number): Promise<Float32Array> {
  let input: string | Uint8Array = path;
  // Small WAV files in one synchronous read (as the loader); anything unusual takes decodeAudio's path.
  try {
    const st = statSync(path);
    if (/\.wav$/i.test(path) && st.isFile() && st.size > 0 && st.size <= 64 << 20) input = readFileSync(path);
  } catch {
    /* reported by decodeAudio */
  }
  const { samples } = await decodeAudio(input, { what: path });
  if (samples.length < 400)
    throw fileError(path, `audio too short for one fbank frame (${samples.length} samples)`);
  const fb = computeFbank(samples, 16000, path);
  return normalizeFbank(padOrCrop(fb.data, fb.frames, SYNC_SPECTROGRAM_ROWS), mean, std);
}

/** Frame images of a clip (undefined where unreadable), with the loader's transforms. */
async function clipFrames(v: VisualSource, pairs: number, S: number): Promise<(Float32Array | undefined)[]> {
  if (v.kind === 'video' && visualPath(v, 0, pairs) === v.path) {
    // A video file: one decode for all frames; at 224 the JPEG round trip of the reference's frame files.
    try {
      const frames = await extractFrames(v.path, { count: pairs });
      return Promise.all(
        frames.map(async (f) =>
          S === 224
            ? imageToTensor(await decodeImage(await encodeJpeg(f), { what: v.path }))
            : imageToTensor(f, { size: S }),
        ),
      );
    } catch {
      return new Array<undefined>(pairs).fill(undefined);
    }
  }
  const out: (Float32Array | undefined)[] = [];
  for (let k = 0; k < pairs; k++) {
    try {
      const path = visualPath(v, k, pairs);
      out.push(normalizeToTensor(centerCrop(resizeShorter(await decodeImage(path), S, 'bicubic'), S)));
    } catch {
      out.push(undefined);
    }
  }
  return out;
}

/** All pairs of one clip (see the contract). Throws a UserError naming the file when unusable. */
export async function buildSyncClip(item: SyncClipItem, cfg: SyncClipConfig): Promise<SyncClip> {
  const F = cfg.pairs ?? SYNC_PAIRS;
  const L = cfg.segmentLength;
  const S = cfg.imageSize ?? 224;
  segmentBounds(0, L, F); // validates L and F
  const fbank = await clipFbank(
    item.audioPath,
    cfg.audioMean ?? AUDIO_NORM.mean,
    cfg.audioStd ?? AUDIO_NORM.std,
  );
  const audio = cropAllSegments(fbank, L, F); // [F, L, 128]
  const frames = await clipFrames(item.visual, F, S);
  const first = frames.findIndex((f) => f !== undefined);
  if (first < 0) {
    const where = item.visual.kind === 'frames' ? item.visual.dir : item.visual.path;
    throw fileError(where, `none of the ${F} frames of the clip could be read`);
  }
  const image = new Float32Array(F * 3 * S * S);
  const replacedFrames: number[] = [];
  let last = frames[first]!;
  for (let k = 0; k < F; k++) {
    const f = frames[k];
    if (f) last = f;
    else replacedFrames.push(k);
    image.set(last, k * 3 * S * S);
  }
  return { audio, image, replacedFrames };
}

export interface SyncClipBatch {
  /** [n, F, L, 128]. */
  audio: Float32Array;
  /** [n, F, 3, S, S]. */
  image: Float32Array;
  n: number;
  pairs: number;
  ids: string[];
  /** Dataset index of each clip. */
  indices: number[];
}

export interface SyncClipFailure {
  index: number;
  id: string;
  message: string;
}

/**
 * Batches of whole clips (retrieval; fine-tuning of the Sync aggregator) in datafile order, or
 * in `order` (dataset indices, e.g. a per-epoch shuffle). Unreadable clips are left out and
 * reported. `concurrency` clips are decoded at once (file and ffmpeg I/O overlap).
 */
export async function* syncClipBatches(
  dataset: Dataset,
  cfg: SyncClipConfig & {
    clipsPerBatch?: number;
    concurrency?: number;
    /** Dataset indices to visit (default 0..n-1). */
    order?: ArrayLike<number>;
    onFailure?: (f: SyncClipFailure) => void;
    onReplacedFrames?: (index: number, frames: number[]) => void;
  },
): AsyncGenerator<SyncClipBatch> {
  const F = cfg.pairs ?? SYNC_PAIRS;
  const L = cfg.segmentLength;
  const S = cfg.imageSize ?? 224;
  const per = Math.max(1, Math.floor(cfg.clipsPerBatch ?? 8));
  const conc = Math.max(1, Math.floor(cfg.concurrency ?? 4));
  const items = dataset.items;
  if (items.length === 0) throw new UserError(`${dataset.path}: the data file has no entries`);
  const order = cfg.order ? Array.from(cfg.order) : items.map((_, i) => i);
  for (const i of order)
    if (!(Number.isInteger(i) && i >= 0 && i < items.length))
      throw new UserError(`${dataset.path}: clip order names entry ${i}, outside 0..${items.length - 1}`);
  const report =
    cfg.onFailure ??
    ((f: SyncClipFailure) =>
      process.stderr.write(
        `cavmae: warning: unreadable clip (entry ${f.index}, id "${f.id}"): ${f.message}; left out\n`,
      ));
  for (let i0 = 0; i0 < order.length; i0 += per) {
    const idx = order.slice(i0, i0 + per);
    const clips: (SyncClip | undefined)[] = new Array(idx.length);
    for (let c0 = 0; c0 < idx.length; c0 += conc) {
      await Promise.all(
        idx.slice(c0, c0 + conc).map(async (i, k) => {
          try {
            clips[c0 + k] = await buildSyncClip(items[i], cfg);
          } catch (e) {
            if (!(e instanceof UserError) && !(e instanceof Error && /ENOENT|EACCES/.test(e.message)))
              throw e;
            report({ index: i, id: items[i].id, message: e.message });
          }
        }),
      );
    }
    const ok = idx.map((i, k) => [i, clips[k]] as const).filter(([, c]) => c !== undefined);
    if (ok.length === 0) continue;
    const audio = new Float32Array(ok.length * F * L * NUM_MEL_BINS);
    const image = new Float32Array(ok.length * F * 3 * S * S);
    ok.forEach(([i, c], r) => {
      audio.set(c!.audio, r * F * L * NUM_MEL_BINS);
      image.set(c!.image, r * F * 3 * S * S);
      if (c!.replacedFrames.length > 0) cfg.onReplacedFrames?.(i, c!.replacedFrames);
    });
    yield {
      audio,
      image,
      n: ok.length,
      pairs: F,
      ids: ok.map(([i]) => items[i].id),
      indices: ok.map(([i]) => i),
    };
  }
}
