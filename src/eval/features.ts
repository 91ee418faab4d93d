/**
 * Retrieval features of any model of the family, the one evaluation path: per clip, F
 * (segment, frame) pairs (model.dims.framesPerClip: CAV-MAE F = 1, the whole clip and one frame;
 * Sync F = total_frame) go through forward_feat (no masking), and each pair gives one audio and
 * one visual vector, L2-normalised (`l2NormalizeRows`): the global tokens (`representation:
 * 'global'`, the Sync release's retrieval) or the mean of the patch tokens ('local': CAV-MAE, and
 * Sync's local_matching or a Sync model without global tokens). The result is an [n, F, D] set
 * per modality, ready for src/eval/retrieval.ts (`evaluateRetrieval`; F > 1 with a clip strategy).
 *
 * Design contract:
 * - Pairs run in chunks of `batchPairs` through one reused activation pool, so memory stays at
 *   one chunk's activations however many clips there are; weights are frozen for the pass (bf16
 *   copies made once).
 * - `datasetFeatures` reads a datafile in datafile order: whole clips of F pairs
 *   (src/data/sync.ts: syncClipBatches) when F > 1, else the evaluation loader (no shuffle, no
 *   augmentation, middle frame). Unreadable clips are left out and reported once each (both
 *   modalities drop together); callers that need every entry check `indices`.
 * - The means over tokens are summed in float64; one normalisation for every caller.
 */
import { FrozenWeights, Tape } from '../autograd/tape.js';
import { buildLabelMap, type Dataset, type LabelMap } from '../data/datafile.js';
import { createLoader, type DataLoader } from '../data/loader.js';
import { SYNC_PAIRS, syncClipBatches, type SyncClipBatch, type SyncClipFailure } from '../data/sync.js';
import { MEL_BINS, type AnyModel, type CavmaeConfig } from '../models/index.js';
import { ActivationPool } from '../tensor/pool.js';
import { Tensor } from '../tensor/tensor.js';
import { UserError, fileError } from '../util/errors.js';
import { l2NormalizeRows } from './retrieval.js';

export type Representation = 'global' | 'local';

export interface FeatureOptions {
  /** 'global' (default with cls_token) or 'local' (patch-token means; the only one without). */
  representation?: Representation;
  /** Pairs per forward pass (default 32). */
  batchPairs?: number;
  bf16?: boolean;
}

/** Per-clip pair features, the shape src/eval/retrieval.ts takes (rows L2-normalised). */
export interface ClipFeatures {
  /** [n, frames, dim]. */
  data: Float32Array;
  n: number;
  frames: number;
  dim: number;
}

/** Clips as stacked pairs: audio [n, F, L, 128], image [n, F, 3, S, S] (pair k of clip i at row i·F + k). */
export interface ClipPairs {
  audio?: Float32Array;
  image?: Float32Array;
  n: number;
  /** Pairs per clip (default the model's framesPerClip). */
  frames?: number;
}

/** [B, L, D] tokens → their mean over L [B, D] (float64 sums). */
export function meanTokenRows(tokens: Tensor): Float64Array {
  const [B, L, D] = tokens.shape;
  const out = new Float64Array(B * D);
  const x = tokens.data;
  for (let b = 0; b < B; b++)
    for (let l = 0; l < L; l++) {
      const o = (b * L + l) * D;
      for (let d = 0; d < D; d++) out[b * D + d] += x[o + d];
    }
  for (let i = 0; i < out.length; i++) out[i] /= L;
  return out;
}

/** [B, L, D] tokens → mean over L → unit L2 norm per row. */
export function poolNormalize(tokens: Tensor): Float32Array {
  return l2NormalizeRows(meanTokenRows(tokens), tokens.shape[0], tokens.shape[2]);
}

/** The representation a model's retrieval uses (global tokens when it has them). */
export function representationOf(model: AnyModel, asked?: Representation): Representation {
  const rep = asked ?? (model.dims.lead ? 'global' : 'local');
  if (rep === 'global' && !model.dims.lead)
    throw new UserError(
      'retrieval: this model has no global tokens (cls_token false); use the local representation',
    );
  return rep;
}

/** Vectors of a batch of pairs: audio [P, D] and video [P, D], L2-normalised rows (undefined for a missing modality). */
export function pairVectors(
  model: AnyModel,
  audio: Tensor | undefined,
  image: Tensor | undefined,
  opts: FeatureOptions & { pool?: ActivationPool; frozen?: FrozenWeights } = {},
): { audio?: Float32Array; video?: Float32Array } {
  const rep = representationOf(model, opts.representation);
  const tp = new Tape({ grad: false, bf16: opts.bf16 ?? false, pool: opts.pool, frozen: opts.frozen });
  const f = model.forwardFeat(tp, { audio, image });
  const D = model.config.embed_dim;
  const vector = (tokens: Tensor | undefined, cls: Tensor | undefined): Float32Array | undefined => {
    if (!tokens) return undefined;
    return rep === 'global' ? l2NormalizeRows(cls!.data, cls!.shape[0], D) : poolNormalize(tokens);
  };
  const out = { audio: vector(f.audioTokens, f.clsA), video: vector(f.videoTokens, f.clsV) };
  tp.reset();
  return out;
}

/** Per-clip [F, D] features of every clip, each modality the model has (see the contract at the top). */
export function clipFeatures(
  model: AnyModel,
  clips: ClipPairs,
  opts: FeatureOptions & { frozen?: FrozenWeights } = {},
): { audio?: ClipFeatures; video?: ClipFeatures } {
  const c = model.config;
  const { hasAudio, hasVideo } = model.dims;
  const F = clips.frames ?? model.dims.framesPerClip;
  const [L, S, D] = [c.audio_length, c.img_size, c.embed_dim];
  const pairs = clips.n * F;
  const aRow = L * MEL_BINS;
  const vRow = 3 * S * S;
  if (!(Number.isInteger(clips.n) && clips.n > 0 && Number.isInteger(F) && F > 0))
    throw new UserError(`retrieval: need a positive number of clips and pairs (got ${clips.n} x ${F})`);
  if (hasAudio && clips.audio?.length !== pairs * aRow)
    throw new UserError(
      `retrieval: audio holds ${clips.audio?.length ?? 0} values, expected ${clips.n} clips x ${F} pairs x [${L}, ${MEL_BINS}]`,
    );
  if (hasVideo && clips.image?.length !== pairs * vRow)
    throw new UserError(
      `retrieval: image holds ${clips.image?.length ?? 0} values, expected ${clips.n} clips x ${F} pairs x [3, ${S}, ${S}]`,
    );
  const chunk = Math.max(1, Math.floor(opts.batchPairs ?? 32));
  const audio = hasAudio ? new Float32Array(pairs * D) : undefined;
  const video = hasVideo ? new Float32Array(pairs * D) : undefined;
  const pool = new ActivationPool(); // tracked: each chunk reuses the previous chunk's buffers
  const frozen = opts.frozen ?? new FrozenWeights();
  for (let p0 = 0; p0 < pairs; p0 += chunk) {
    const P = Math.min(chunk, pairs - p0);
    const f = pairVectors(
      model,
      audio && new Tensor([P, L, MEL_BINS], clips.audio!.subarray(p0 * aRow, (p0 + P) * aRow)),
      video && new Tensor([P, 3, S, S], clips.image!.subarray(p0 * vRow, (p0 + P) * vRow)),
      { ...opts, pool, frozen },
    );
    audio?.set(f.audio!, p0 * D);
    video?.set(f.video!, p0 * D);
  }
  const set = (data: Float32Array | undefined): ClipFeatures | undefined =>
    data && { data, n: clips.n, frames: F, dim: D };
  return { audio: set(audio), video: set(video) };
}

/** Pair features of every readable clip of a dataset, datafile order. */
export interface PairFeatureSet {
  /** [n, F, D], rows L2-normalised (undefined for a modality the model lacks). */
  audio?: ClipFeatures;
  video?: ClipFeatures;
  ids: string[];
  /** Dataset index of each clip. */
  indices: number[];
  failures: SyncClipFailure[];
}

export interface FeatureRunOptions extends FeatureOptions {
  /** Clips decoded per batch (default 8; F = 1: 32). */
  clipsPerBatch?: number;
  audioNorm?: { mean: number; std: number };
  /** F = 1: the evaluation frame (default the middle one) and loader workers. */
  frameUse?: number;
  workers?: number;
  onBatch?: (done: number, total: number) => void;
  /** Unreadable clips (default: one warning line each on stderr). */
  onFailure?: (f: SyncClipFailure) => void;
  /**
   * Clips already decoded (`loadClipBatches`) with the geometry the model needs, used instead of
   * reading the dataset again (evaluating many checkpoints on one set).
   */
  clips?: readonly SyncClipBatch[];
}

/** Every clip of a dataset decoded once, in batches (see FeatureRunOptions.clips). */
export async function loadClipBatches(
  dataset: Dataset,
  o: {
    segmentLength: number;
    imageSize: number;
    pairs?: number;
    clipsPerBatch?: number;
    audioNorm?: { mean: number; std: number };
    onFailure?: (f: SyncClipFailure) => void;
  },
): Promise<SyncClipBatch[]> {
  const out: SyncClipBatch[] = [];
  const geometry = { segmentLength: o.segmentLength, pairs: o.pairs ?? SYNC_PAIRS, imageSize: o.imageSize };
  for await (const b of clipSource(dataset, geometry, o, failureCollector(o).report)) out.push(b);
  return out;
}

/** Unreadable clips: collected, and reported once each. */
export function failureCollector(o: { onFailure?: (f: SyncClipFailure) => void }): {
  failures: SyncClipFailure[];
  report: (f: SyncClipFailure) => void;
} {
  const failures: SyncClipFailure[] = [];
  const report = (f: SyncClipFailure): void => {
    failures.push(f);
    if (o.onFailure) o.onFailure(f);
    else
      process.stderr.write(
        `cavmae: warning: unreadable clip (entry ${f.index}, id "${f.id}"): ${f.message}; left out\n`,
      );
  };
  return { failures, report };
}

/** The whole-clip batches of a feature run: the preloaded ones (checked against the geometry) or the dataset's. */
export function clipSource(
  dataset: Dataset,
  geometry: { segmentLength: number; pairs: number; imageSize: number },
  o: FeatureRunOptions,
  report: (f: SyncClipFailure) => void,
): AsyncIterable<SyncClipBatch> | readonly SyncClipBatch[] {
  if (!o.clips)
    return syncClipBatches(dataset, {
      ...geometry,
      audioMean: o.audioNorm?.mean,
      audioStd: o.audioNorm?.std,
      clipsPerBatch: o.clipsPerBatch ?? 8,
      onFailure: report,
    });
  for (const b of o.clips) {
    if (
      b.pairs !== geometry.pairs ||
      b.audio.length !== b.n * b.pairs * geometry.segmentLength * MEL_BINS ||
      b.image.length !== b.n * b.pairs * 3 * geometry.imageSize ** 2
    )
      throw new UserError(
        `preloaded clips do not have the model's geometry (${geometry.pairs} pairs of ${geometry.segmentLength}-row segments and ${geometry.imageSize}-px frames)`,
      );
  }
  return o.clips;
}

/** The evaluation loader for a model: every entry in datafile order, one frame (default the middle one), no augmentation. */
export function evalLoader(
  dataset: Dataset,
  c: CavmaeConfig,
  o: Pick<FeatureRunOptions, 'frameUse' | 'audioNorm' | 'workers'> & {
    batchSize?: number;
    totalFrames?: number;
    labelMap?: LabelMap;
  },
): DataLoader {
  return createLoader(dataset, {
    batchSize: o.batchSize ?? 32,
    train: false,
    shuffle: false,
    dropLast: false,
    targetLength: c.audio_length,
    imageSize: c.img_size,
    frameUse: o.frameUse,
    totalFrames: o.totalFrames,
    labelMap: o.labelMap ?? buildLabelMap(dataset),
    audioMean: o.audioNorm?.mean,
    audioStd: o.audioNorm?.std,
    workers: o.workers ?? 2,
  });
}

/** F = 1: clips from the evaluation loader (whole clip, one frame), as one-pair clip batches. */
async function* loaderClips(
  model: AnyModel,
  dataset: Dataset,
  o: FeatureRunOptions,
): AsyncGenerator<SyncClipBatch> {
  const loader = evalLoader(dataset, model.config, { ...o, batchSize: o.clipsPerBatch });
  try {
    for await (const b of loader.batches(0, 0)) {
      const indices = Array.from(b.indices);
      yield {
        audio: b.audio,
        image: b.image,
        n: b.size,
        pairs: 1,
        ids: indices.map((i) => dataset.items[i].id),
        indices,
      };
    }
  } finally {
    await loader.close();
  }
}

/** Growable row store for [n, F, D] rows (pair features; logits with F = 1). */
export class FeatureRows {
  private chunks: Float32Array[] = [];
  n = 0;
  constructor(
    readonly frames: number,
    readonly dim: number,
  ) {}
  push(x: Float32Array, n: number): void {
    this.chunks.push(x);
    this.n += n;
  }
  done(): ClipFeatures {
    const data = new Float32Array(this.n * this.frames * this.dim);
    let o = 0;
    for (const c of this.chunks) {
      data.set(c, o);
      o += c.length;
    }
    return { data, n: this.n, frames: this.frames, dim: this.dim };
  }
}

/** Pair features of every readable clip of a dataset (see the contract at the top). */
export async function datasetFeatures(
  model: AnyModel,
  dataset: Dataset,
  o: FeatureRunOptions = {},
): Promise<PairFeatureSet> {
  const c = model.config;
  const F = model.dims.framesPerClip;
  const D = c.embed_dim;
  const { failures, report } = failureCollector(o);
  const audio = model.dims.hasAudio ? new FeatureRows(F, D) : undefined;
  const video = model.dims.hasVideo ? new FeatureRows(F, D) : undefined;
  const ids: string[] = [];
  const indices: number[] = [];
  const frozen = new FrozenWeights();
  const source =
    F > 1
      ? clipSource(dataset, { segmentLength: c.audio_length, pairs: F, imageSize: c.img_size }, o, report)
      : loaderClips(model, dataset, o);
  for await (const b of source) {
    const f = clipFeatures(
      model,
      { audio: b.audio, image: b.image, n: b.n, frames: F },
      { ...o, batchPairs: o.batchPairs ?? (F > 1 ? 32 : b.n), frozen },
    );
    audio?.push(f.audio!.data, b.n);
    video?.push(f.video!.data, b.n);
    ids.push(...b.ids);
    indices.push(...b.indices);
    o.onBatch?.(indices.length + failures.length, dataset.items.length);
  }
  if (indices.length === 0) throw fileError(dataset.path, 'no clip could be read');
  return { audio: audio?.done(), video: video?.done(), ids, indices, failures };
}
