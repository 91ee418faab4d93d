/**
 * CAV-MAE Sync evaluation for training runs and `cavmae retrieval` (spec 8.6), and the
 * segment-level protocol that compares a Sync model with a clip-level CAV-MAE.
 *
 * Design contract:
 * - Clip level (the release's protocol): every clip gives its F = total_frame (segment, frame)
 *   pairs, each pair one L2-normalised audio and visual vector (`syncRetrievalFeatures`: the
 *   global tokens, or the patch-token means without them); clip i is compared with clip j by
 *   a strategy of src/eval/retrieval.ts (diagonal_mean by default). Item i pairs with item i.
 * - Segment level: every (clip, pair) is an item of its own: audio segment k of clip i must
 *   retrieve frame k of clip i among all frames of all clips (and the reverse), pooled cosine.
 *   A Sync model embeds each segment and frame as it trained (its pair features). A clip-level
 *   CAV-MAE (audio_length 1024, trained on whole clips) embeds segment k through its own
 *   masking path: the segment's patches, and only those, stay visible AT THEIR TRUE PLACE in
 *   the clip (position table of the full clip), so the audio vector is exactly the
 *   contrastive representation its training loss used (mean of the normalised visible tokens
 *   of the audio contrastive stream); the frame is embedded unmasked (mean of its tokens).
 *   Segments must sit on whole patch columns (start and L multiples of 16).
 * - Per-pair labels for class-match@1 come from the manifest entries' `pair_labels` or
 *   `pair_digits` lists (the multi-digit AV-digits set writes `pair_digits`); clip-level
 *   class-match uses the item labels when every item has exactly one.
 * - Ranks use the strict rule of src/eval/retrieval.ts (ties favour the true pair), so two
 *   pairs showing the identical frame both count as hits for a frame query's tie.
 * - Unreadable clips are left out (reported once each); both modalities drop together.
 */
import { readFileSync, statSync } from 'node:fs';
import { Tape } from '../autograd/tape.js';
import { ActivationPool } from '../tensor/pool.js';
import { Rng } from '../tensor/rng.js';
import { Tensor } from '../tensor/tensor.js';
import {
  CAVMAE,
  CAVMAEFT,
  CAVMAESync,
  CAVMAESyncFT,
  MEL_BINS,
  syncRetrievalFeatures,
  type AnyModel,
  type ClipFeatures,
  type SyncRepresentation,
} from '../models/index.js';
import { MAX_DATAFILE_BYTES, loadDataset, loadLabelCsv, resolveLabels, buildLabelMap, type Dataset, type LabelMap } from '../data/datafile.js';
import { createLoader } from '../data/loader.js';
import { SYNC_PAIRS, SYNC_SPECTROGRAM_ROWS, segmentBounds, syncClipBatches, syncLoaderOptions, type SyncClipBatch, type SyncClipFailure } from '../data/sync.js';
import { CLIP_STRATEGIES, evaluateRetrieval, type ClipStrategy, type RetrievalMetrics } from '../eval/retrieval.js';
import { chanceLevels, embedDataset, formatRetrieval, loadInferenceModel, readEmbeddings, retrievalFromEmbeddings, type RetrievalReport } from '../eval/embed.js';
import { UserError, fileError } from '../util/errors.js';
import { stepRng } from './run.js';
import { syncPretrainScalars } from './sync-pretrain.js';

/** Pair features of every readable clip of a dataset, datafile order. */
export interface PairFeatureSet {
  /** [n, F, D], rows L2-normalised. */
  audio: ClipFeatures;
  video: ClipFeatures;
  ids: string[];
  /** Dataset index of each clip. */
  indices: number[];
  failures: SyncClipFailure[];
}

export interface FeatureRunOptions {
  /** Clips decoded per batch (default 8). */
  clipsPerBatch?: number;
  /** Pairs per forward pass (default 32). */
  batchPairs?: number;
  bf16?: boolean;
  audioNorm?: { mean: number; std: number };
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
  o: { segmentLength: number; imageSize: number; pairs?: number; clipsPerBatch?: number; audioNorm?: { mean: number; std: number }; onFailure?: (f: SyncClipFailure) => void },
): Promise<SyncClipBatch[]> {
  const out: SyncClipBatch[] = [];
  for await (const b of syncClipBatches(dataset, { segmentLength: o.segmentLength, pairs: o.pairs ?? SYNC_PAIRS, imageSize: o.imageSize, audioMean: o.audioNorm?.mean, audioStd: o.audioNorm?.std, clipsPerBatch: o.clipsPerBatch ?? 8, onFailure: o.onFailure }))
    out.push(b);
  return out;
}

/** The clip batches of a feature run: the preloaded ones (checked against the geometry) or the dataset's. */
function clipSource(dataset: Dataset, geometry: { segmentLength: number; pairs: number; imageSize: number }, o: FeatureRunOptions, report: (f: SyncClipFailure) => void): AsyncIterable<SyncClipBatch> | readonly SyncClipBatch[] {
  if (!o.clips) {
    return syncClipBatches(dataset, { ...geometry, audioMean: o.audioNorm?.mean, audioStd: o.audioNorm?.std, clipsPerBatch: o.clipsPerBatch ?? 8, onFailure: report });
  }
  for (const b of o.clips) {
    if (b.pairs !== geometry.pairs || b.audio.length !== b.n * b.pairs * geometry.segmentLength * MEL_BINS || b.image.length !== b.n * b.pairs * 3 * geometry.imageSize ** 2)
      throw new UserError(`preloaded clips do not have the model's geometry (${geometry.pairs} pairs of ${geometry.segmentLength}-row segments and ${geometry.imageSize}-px frames)`);
  }
  return o.clips;
}

function collector(o: FeatureRunOptions): { failures: SyncClipFailure[]; report: (f: SyncClipFailure) => void } {
  const failures: SyncClipFailure[] = [];
  const report = (f: SyncClipFailure): void => {
    failures.push(f);
    if (o.onFailure) o.onFailure(f);
    else process.stderr.write(`cavmae: warning: unreadable clip (entry ${f.index}, id "${f.id}"): ${f.message}; left out\n`);
  };
  return { failures, report };
}

/** Growable row store for [n, F, D] features. */
class FeatureRows {
  private chunks: Float32Array[] = [];
  n = 0;
  constructor(readonly frames: number, readonly dim: number) {}
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

/** Sync pair features of every clip (`syncRetrievalFeatures` over `syncClipBatches`). */
export async function syncDatasetFeatures(
  model: CAVMAESync,
  dataset: Dataset,
  o: FeatureRunOptions & { representation?: SyncRepresentation } = {},
): Promise<PairFeatureSet> {
  const c = model.config;
  const F = c.total_frame;
  const D = c.embed_dim;
  const { failures, report } = collector(o);
  const audio = new FeatureRows(F, D);
  const video = new FeatureRows(F, D);
  const ids: string[] = [];
  const indices: number[] = [];
  for await (const b of clipSource(dataset, { segmentLength: c.audio_length, pairs: F, imageSize: c.img_size }, o, report)) {
    const f = syncRetrievalFeatures(model, { audio: b.audio, image: b.image, n: b.n, frames: F }, { representation: o.representation, batchPairs: o.batchPairs, bf16: o.bf16 });
    audio.push(f.audio.data, b.n);
    video.push(f.video.data, b.n);
    ids.push(...b.ids);
    indices.push(...b.indices);
    o.onBatch?.(indices.length + failures.length, dataset.items.length);
  }
  if (indices.length === 0) throw fileError(dataset.path, 'no clip could be read');
  return { audio: audio.done(), video: video.done(), ids, indices, failures };
}

/** The clip-level CAV-MAE segment protocol's geometry (see the contract). */
export interface SegmentGeometry {
  /** Segment length in fbank rows. */
  segmentLength: number;
  pairs: number;
  /** Audio patch grid of the model: 8 frequency rows x `cols` time columns. */
  cols: number;
  /** First time column of each pair's segment. */
  firstCol: number[];
  /** Visible audio patches per segment (8 x L/16) and the mask ratio that keeps exactly them. */
  keep: number;
  maskRatio: number;
}

export function segmentGeometry(model: CAVMAE, segmentLength: number, pairs = SYNC_PAIRS): SegmentGeometry {
  const c = model.config;
  const p = c.patch_size;
  const T = c.audio_length;
  const fRows = MEL_BINS / p;
  const cols = T / p;
  if (!(Number.isInteger(segmentLength) && segmentLength > 0 && segmentLength % p === 0))
    throw new UserError(`segment length must be a positive multiple of the patch size ${p}, got ${segmentLength}`);
  if (T > SYNC_SPECTROGRAM_ROWS) throw new UserError(`segment-level retrieval: the model's audio_length ${T} exceeds the ${SYNC_SPECTROGRAM_ROWS}-row clip`);
  const firstCol: number[] = [];
  for (let k = 0; k < pairs; k++) {
    const [s, e] = segmentBounds(k, segmentLength, pairs);
    if (e > T)
      throw new UserError(
        `segment-level retrieval: segment ${k} (rows ${s}..${e}) lies outside the model's ${T}-row input; a clip-level CAV-MAE needs audio_length ${SYNC_SPECTROGRAM_ROWS} (the clip the segments are cut from)`,
      );
    if (s % p !== 0) throw new UserError(`segment-level retrieval: segment ${k} starts at row ${s}, not on a ${p}-row patch column (use a segment length L with L/2 a multiple of ${p})`);
    firstCol.push(s / p);
  }
  const N = fRows * cols;
  const keep = fRows * (segmentLength / p);
  const maskRatio = 1 - keep / N;
  if (Math.trunc(N * (1 - maskRatio)) !== keep) throw new Error(`segment mask: ratio ${maskRatio} does not keep ${keep} of ${N} patches`);
  return { segmentLength, pairs, cols, firstCol, keep, maskRatio };
}

/**
 * Segment features of a clip-level CAV-MAE (see the contract): audio [n, F, D] from each
 * segment's own patches in place, video [n, F, D] from each unmasked frame.
 */
export async function cavmaeSegmentFeatures(
  model: CAVMAE,
  dataset: Dataset,
  o: FeatureRunOptions & { segmentLength?: number; pairs?: number } = {},
): Promise<PairFeatureSet & { geometry: SegmentGeometry }> {
  const c = model.config;
  if (!model.dims.hasAudio || !model.dims.hasVideo || !['cavmae', 'cav'].includes(c.variant))
    throw new UserError(`segment-level retrieval needs a model with both contrastive streams (variant cavmae or cav), got "${c.variant}"`);
  const F = o.pairs ?? SYNC_PAIRS;
  const g = segmentGeometry(model, o.segmentLength ?? 96, F);
  const T = c.audio_length;
  const S = c.img_size;
  const D = c.embed_dim;
  const L = g.segmentLength;
  const N = (MEL_BINS / c.patch_size) * g.cols;
  const chunk = Math.max(1, Math.floor(o.batchPairs ?? 32));
  const { failures, report } = collector(o);
  const audio = new FeatureRows(F, D);
  const video = new FeatureRows(F, D);
  const ids: string[] = [];
  const indices: number[] = [];
  const pool = new ActivationPool();
  const segRow = L * MEL_BINS;
  const vRow = 3 * S * S;
  const aIn = new Float32Array(chunk * T * MEL_BINS);
  const noise = new Float32Array(chunk * N);
  for await (const b of clipSource(dataset, { segmentLength: L, pairs: F, imageSize: S }, o, report)) {
    const P = b.n * F;
    const outA = new Float32Array(P * D);
    const outV = new Float32Array(P * D);
    for (let p0 = 0; p0 < P; p0 += chunk) {
      const n = Math.min(chunk, P - p0);
      aIn.fill(0);
      noise.fill(1);
      for (let r = 0; r < n; r++) {
        const k = (p0 + r) % F; // pair index within its clip
        const start = g.firstCol[k] * c.patch_size;
        // Rows [start, start + L) of the clip hold the segment; the rest is never seen (masked).
        aIn.set(b.audio.subarray((p0 + r) * segRow, (p0 + r + 1) * segRow), (r * T + start) * MEL_BINS);
        for (let f = 0; f < MEL_BINS / c.patch_size; f++)
          for (let t = g.firstCol[k]; t < g.firstCol[k] + L / c.patch_size; t++) noise[r * N + f * g.cols + t] = 0;
      }
      const tp = new Tape({ grad: false, bf16: o.bf16 ?? false, pool });
      const out = model.forward(
        tp,
        {
          audio: new Tensor([n, T, MEL_BINS], aIn.subarray(0, n * T * MEL_BINS)),
          image: new Tensor([n, 3, S, S], b.image.subarray(p0 * vRow, (p0 + n) * vRow)),
        },
        { maskRatioA: g.maskRatio, maskRatioV: 0, maskMode: 'unstructured', noiseA: noise.subarray(0, n * N), rng: new Rng(0), maeLossWeight: 0, contrastLossWeight: 1 },
      );
      if (!out.audioRep || !out.videoRep || out.maskA?.lenKeep !== g.keep) throw new Error('segment features: the masked forward did not keep the segment patches');
      outA.set(normalizeRows(out.audioRep.data, n, D), p0 * D);
      outV.set(normalizeRows(out.videoRep.data, n, D), p0 * D);
      tp.reset();
    }
    audio.push(outA, b.n);
    video.push(outV, b.n);
    ids.push(...b.ids);
    indices.push(...b.indices);
    o.onBatch?.(indices.length + failures.length, dataset.items.length);
  }
  if (indices.length === 0) throw fileError(dataset.path, 'no clip could be read');
  return { audio: audio.done(), video: video.done(), ids, indices, failures, geometry: g };
}

function normalizeRows(x: Float32Array, rows: number, dim: number): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += x[r * dim + d] * x[r * dim + d];
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let d = 0; d < dim; d++) out[r * dim + d] = x[r * dim + d] * inv;
  }
  return out;
}

/**
 * Per-pair class indices from the manifest entries' `pair_labels` (or `pair_digits`), [n·F] for
 * the given clips; undefined when the file is not a manifest or some entry has no such list.
 */
export function readPairLabels(dataset: Dataset, indices: readonly number[], pairs: number): Int32Array | undefined {
  if (dataset.format !== 'manifest') return undefined;
  const size = statSync(dataset.path).size;
  if (size > MAX_DATAFILE_BYTES) throw fileError(dataset.path, `is ${size} bytes, more than the ${MAX_DATAFILE_BYTES}-byte datafile limit`);
  let entries: unknown;
  try {
    entries = (JSON.parse(readFileSync(dataset.path, 'utf8')) as { items?: unknown }).items;
  } catch (e) {
    throw fileError(dataset.path, `not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(entries) || entries.length !== dataset.items.length) return undefined;
  const classOf = new Map<string, number>();
  const out = new Int32Array(indices.length * pairs);
  for (let r = 0; r < indices.length; r++) {
    const e = entries[indices[r]] as Record<string, unknown> | null;
    const list = e && typeof e === 'object' ? (e.pair_labels ?? e.pair_digits) : undefined;
    if (list === undefined) return undefined;
    if (!Array.isArray(list) || list.length !== pairs || !list.every((x) => typeof x === 'string' || (typeof x === 'number' && Number.isFinite(x))))
      throw fileError(dataset.path, `items entry ${indices[r]}: "pair_labels"/"pair_digits" must list ${pairs} labels (strings or numbers)`);
    for (let k = 0; k < pairs; k++) {
      const key = String(list[k]);
      if (!classOf.has(key)) classOf.set(key, classOf.size);
      out[r * pairs + k] = classOf.get(key)!;
    }
  }
  return out;
}

/** Class index of every item when each has exactly one label (else undefined). */
function singleLabels(dataset: Dataset, indices: readonly number[], labelMap?: LabelMap): Int32Array | undefined {
  const items = indices.map((i) => dataset.items[i]);
  if (!items.every((it) => it.labels.length === 1)) return undefined;
  const map = labelMap ?? buildLabelMap(dataset);
  const all = resolveLabels(dataset, map);
  return Int32Array.from(indices, (i) => all[i][0]);
}

export type RetrievalLevel = 'clip' | 'segment';

/** A retrieval report of any model at either level (a superset of the pooled CAV-MAE report). */
export interface LevelRetrievalReport {
  level: RetrievalLevel;
  /** Items ranked: clips (clip level) or clips x pairs (segment level). */
  n: number;
  clips: number;
  /** Pairs per clip (1 for the pooled CAV-MAE clip protocol). */
  pairs: number;
  dim: number;
  strategy: ClipStrategy | 'pooled';
  /** How the vectors were made (one sentence). */
  protocol: string;
  segmentLength?: number;
  tieRule: 'strict';
  chance: RetrievalReport['chance'];
  audioToVideo: RetrievalMetrics;
  videoToAudio: RetrievalMetrics;
  /** Clips left out as unreadable. */
  skipped: number;
}

/** Clip-level retrieval from pair features (strategy over the F x F pair similarities). */
export function clipLevelReport(f: PairFeatureSet, strategy: ClipStrategy, labels: Int32Array | undefined, protocol: string): LevelRetrievalReport {
  const r = evaluateRetrieval(f.audio, f.video, { strategy, labels });
  return {
    level: 'clip',
    n: f.audio.n,
    clips: f.audio.n,
    pairs: f.audio.frames,
    dim: f.audio.dim,
    strategy,
    protocol,
    tieRule: 'strict',
    chance: chanceLevels(f.audio.n, labels),
    audioToVideo: r.audioToVideo,
    videoToAudio: r.videoToAudio,
    skipped: f.failures.length,
  };
}

/** Segment-level retrieval from pair features: every (clip, pair) one item, pooled cosine. */
export function segmentLevelReport(f: PairFeatureSet, labels: Int32Array | undefined, protocol: string, segmentLength: number): LevelRetrievalReport {
  const n = f.audio.n * f.audio.frames;
  const D = f.audio.dim;
  const r = evaluateRetrieval({ data: f.audio.data, n, dim: D }, { data: f.video.data, n, dim: D }, { labels });
  return {
    level: 'segment',
    n,
    clips: f.audio.n,
    pairs: f.audio.frames,
    dim: D,
    strategy: 'pooled',
    protocol,
    segmentLength,
    tieRule: 'strict',
    chance: chanceLevels(n, labels),
    audioToVideo: r.audioToVideo,
    videoToAudio: r.videoToAudio,
    skipped: f.failures.length,
  };
}

export const SYNC_PROTOCOL = 'CAV-MAE Sync pair features: forward_feat (no masking) of each (segment, frame) pair, global tokens (patch-token means without them), L2-normalised';
export const CAVMAE_SEGMENT_PROTOCOL = "clip-level CAV-MAE: each segment's own patches kept visible at their place in the clip (everything else masked), mean of the normalised audio contrastive-stream tokens; frames unmasked, mean of their tokens";

/** Segment-level retrieval of a Sync model or a clip-level CAV-MAE on a dataset. */
export async function segmentRetrieval(
  model: CAVMAESync | CAVMAE,
  dataset: Dataset,
  o: FeatureRunOptions & { segmentLength?: number } = {},
): Promise<LevelRetrievalReport> {
  if (model instanceof CAVMAESync) {
    const L = model.config.audio_length;
    if (o.segmentLength !== undefined && o.segmentLength !== L)
      throw new UserError(`--segment-length ${o.segmentLength}: this Sync model was built for ${L}-row segments`);
    const f = await syncDatasetFeatures(model, dataset, o);
    return segmentLevelReport(f, readPairLabels(dataset, f.indices, f.audio.frames), SYNC_PROTOCOL, L);
  }
  const f = await cavmaeSegmentFeatures(model, dataset, o);
  return segmentLevelReport(f, readPairLabels(dataset, f.indices, f.audio.frames), CAVMAE_SEGMENT_PROTOCOL, f.geometry.segmentLength);
}

export interface RetrievalCommandOptions {
  model?: string;
  data?: string;
  embeddings?: string;
  config?: string;
  labelCsv?: string;
  strategy?: string;
  segments?: boolean;
  segmentLength?: number;
  batchSize?: number;
  workers?: number;
  bf16?: boolean;
}

function checkStrategy(s: string | undefined): ClipStrategy | 'pooled' | undefined {
  if (s === undefined || s === 'pooled' || (CLIP_STRATEGIES as readonly string[]).includes(s)) return s as ClipStrategy | 'pooled' | undefined;
  throw new UserError(`--strategy must be one of pooled, ${CLIP_STRATEGIES.join(', ')}; got "${s}"`);
}

function pooledAsLevel(r: RetrievalReport): LevelRetrievalReport {
  return { level: 'clip', clips: r.n, pairs: 1, protocol: 'CAV-MAE: forward_feat (no masking) of the whole clip and the middle frame, token means, L2-normalised', skipped: 0, ...r };
}

/**
 * `cavmae retrieval` for every model kind: pooled clip vectors (CAV-MAE), clip-level strategies
 * (Sync, default diagonal_mean), or `segments` (both, see the contract).
 */
export async function retrievalCommand(o: RetrievalCommandOptions): Promise<LevelRetrievalReport> {
  const strategy = checkStrategy(o.strategy);
  if (o.embeddings) {
    if (o.model || o.data) throw new UserError('--embeddings replaces --model and --data; pass one or the other');
    if (o.segments) throw new UserError('--segments needs --model and --data (embeddings files hold one pooled vector per clip)');
    if (strategy !== undefined && strategy !== 'pooled') throw new UserError(`--strategy ${strategy}: per-frame clip strategies need CAV-MAE Sync embeddings; an embeddings file holds one pooled vector per clip (use --strategy pooled)`);
    return pooledAsLevel(retrievalFromEmbeddings(readEmbeddings(o.embeddings)));
  }
  if (!o.model || !o.data) throw new UserError('retrieval needs --model <checkpoint> and --data <datafile> (or --embeddings <file>)');
  const m = loadInferenceModel(o.model, { config: o.config });
  const model: AnyModel = m.model;
  if (model instanceof CAVMAESyncFT)
    throw new UserError(`${o.model}: is a CAV-MAE Sync fine-tuning (classification) model; retrieval needs the pretraining model (class CAVMAESync)`);
  const dataset = loadDataset(o.data);
  const labelMap = o.labelCsv ? loadLabelCsv(o.labelCsv) : undefined;
  const run: FeatureRunOptions = { bf16: o.bf16, audioNorm: m.audioNorm, clipsPerBatch: o.batchSize ? Math.max(1, Math.ceil(o.batchSize / SYNC_PAIRS)) : undefined, batchPairs: o.batchSize };
  if (o.segments) {
    if (strategy !== undefined && strategy !== 'pooled') throw new UserError(`--strategy ${strategy}: segment-level retrieval compares single pairs (pooled cosine); leave --strategy out`);
    if (model instanceof CAVMAEFT) throw new UserError(`${o.model}: segment-level retrieval needs a pretraining model (CAVMAE or CAVMAESync), not a fine-tuned classifier`);
    return segmentRetrieval(model, dataset, { ...run, segmentLength: o.segmentLength });
  }
  if (o.segmentLength !== undefined) throw new UserError('--segment-length applies to --segments only');
  if (model instanceof CAVMAESync) {
    if (strategy === 'pooled') throw new UserError(`--strategy pooled: a CAV-MAE Sync model gives ${model.config.total_frame} pair vectors per clip; use ${CLIP_STRATEGIES.join(', ')} (default diagonal_mean)`);
    const f = await syncDatasetFeatures(model, dataset, run);
    return clipLevelReport(f, strategy ?? 'diagonal_mean', singleLabels(dataset, f.indices, labelMap), SYNC_PROTOCOL);
  }
  if (strategy !== undefined && strategy !== 'pooled')
    throw new UserError(`--strategy ${strategy}: per-frame clip strategies need CAV-MAE Sync embeddings; CAV-MAE models give one pooled vector per clip (use --strategy pooled)`);
  const e = await embedDataset(model, dataset, { batchSize: o.batchSize, workers: o.workers, bf16: o.bf16, labelMap, audioNorm: m.audioNorm });
  return pooledAsLevel(retrievalFromEmbeddings(e));
}

export function formatLevelRetrieval(r: LevelRetrievalReport): string {
  if (r.level === 'clip' && r.pairs === 1) return formatRetrieval({ ...r, strategy: 'pooled' });
  const p = (x: number): string => x.toFixed(3);
  const cls = r.chance.classMatchAt1 !== undefined;
  const what =
    r.level === 'segment'
      ? `${r.n} segments (${r.clips} clips x ${r.pairs} pairs, ${r.segmentLength}-row segments), pooled ${r.dim}-d cosine`
      : r.pairs > 1
        ? `${r.clips} clips (${r.pairs} pair vectors each, ${r.dim}-d, clip similarity ${r.strategy})`
        : `${r.clips} clips (pooled ${r.dim}-d embeddings, cosine similarity)`;
  const lines = [
    `${r.level}-level retrieval over ${what}; rank = number of candidates scoring strictly higher than the true pair`,
    `vectors: ${r.protocol}`,
    `direction  R@1    R@5    R@10   MedR${cls ? '    class@1' : ''}`,
  ];
  const row = (name: string, m: { r1: number; r5: number; r10: number; medianRank: number; classMatchAt1?: number }): string =>
    `${name.padEnd(9)}  ${p(m.r1)}  ${p(m.r5)}  ${p(m.r10)}  ${m.medianRank.toFixed(1).padStart(5)}${cls ? `   ${p(m.classMatchAt1!)}` : ''}`;
  lines.push(row('A->V', r.audioToVideo), row('V->A', r.videoToAudio), row('chance', r.chance));
  if (cls) lines.push(r.level === 'segment' ? "class@1: share of queries whose top-1 candidate has the query pair's label" : "class@1: share of queries whose top-1 candidate has the query's label");
  if (r.skipped) lines.push(`${r.skipped} unreadable clip(s) left out`);
  return lines.join('\n');
}

/**
 * Validation of a Sync pretraining run: the masked forward on every clip's evaluation pair
 * (the middle one; masks from a fixed seed so epochs compare) and, with `retrieval`, clip-level
 * retrieval (`strategy`, both directions) and segment-level retrieval (`seg_*`; class-match
 * when the manifest lists per-pair labels).
 */
export async function evaluateSyncPretrain(
  model: CAVMAESync,
  val: Dataset,
  o: { batchSize: number; seed: number; bf16?: boolean; retrieval?: boolean; strategy?: ClipStrategy; workers?: number },
): Promise<Record<string, number>> {
  const c = model.config;
  const out: Record<string, number> = {};
  const B = Math.min(o.batchSize, val.items.length);
  const loader = createLoader(val, syncLoaderOptions({ batchSize: B, train: false, dropLast: true, imageSize: c.img_size, labelMap: buildLabelMap(val), workers: o.workers ?? 2 }, c.audio_length, c.total_frame));
  try {
    const sums: Record<string, number> = {};
    let count = 0;
    for await (const batch of loader.batches(0, 0)) {
      const tp = new Tape({ grad: false, bf16: o.bf16 ?? false });
      const r = model.forward(
        tp,
        { audio: new Tensor([batch.size, c.audio_length, MEL_BINS], batch.audio), image: new Tensor([batch.size, 3, c.img_size, c.img_size], batch.image) },
        { rng: stepRng(o.seed, batch.batchIndex, 0, 0x6576616c) },
      );
      for (const [k, v] of Object.entries(syncPretrainScalars(r))) sums[k] = (sums[k] ?? 0) + v;
      count++;
    }
    for (const [k, v] of Object.entries(sums)) out[k] = v / count;
  } finally {
    await loader.close();
  }
  if (o.retrieval ?? true) {
    const f = await syncDatasetFeatures(model, val, { bf16: o.bf16 });
    const clip = clipLevelReport(f, o.strategy ?? 'diagonal_mean', singleLabels(val, f.indices), SYNC_PROTOCOL);
    const seg = segmentLevelReport(f, readPairLabels(val, f.indices, f.audio.frames), SYNC_PROTOCOL, c.audio_length);
    for (const [prefix, rep] of [['', clip], ['seg_', seg]] as const) {
      for (const [dir, m] of [['a2v', rep.audioToVideo], ['v2a', rep.videoToAudio]] as const) {
        out[`${prefix}${dir}_r1`] = m.r1;
        if (prefix === '') {
          out[`${dir}_r5`] = m.r5;
          out[`${dir}_r10`] = m.r10;
        }
        if (m.classMatchAt1 !== undefined) out[`${prefix}${dir}_class1`] = m.classMatchAt1;
      }
    }
  }
  return out;
}
