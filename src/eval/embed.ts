/**
 * Clip embeddings for retrieval: forward_feat (no masking) → mean over tokens → L2-normalise,
 * one [D] vector per clip and modality (spec 5), computed in batches from a datafile.
 *
 * Design contract:
 * - Row order is datafile order (an evaluation loader: no shuffle, no drop_last, middle frame 5
 *   of 10, no augmentation), so row i is the datafile's entry i.
 * - A pretraining model (CAVMAE) uses its `forwardFeat`; a fine-tuning model (CAVMAEFT) its
 *   `forwardFeat(mode 'av')`. Single-modality variants (audio-mae, visual-mae) give one side only.
 * - Preprocessing follows the checkpoint: audio_length and img_size from its config, the fbank
 *   normalisation from its "cavmae.preprocess" metadata when present (else AudioSet's).
 * - Output file (`writeEmbeddings`): safetensors with `audio` [N,D] and `video` [N,D] (F32),
 *   `labels` [N] (I32, first label index, -1 for none) when the items are labelled; metadata
 *   "ids" (JSON list of the item ids, datafile order), "cavmae.kind" = "embeddings", the model
 *   path and the label names.
 */
import { FrozenWeights, Tape } from '../autograd/tape.js';
import { readSafetensors, readSafetensorsHeader, writeSafetensors, type WritableTensor } from '../io/safetensors.js';
import { withFile } from '../io/bytes.js';
import { checkpointPreprocess, type PreprocessConstants } from '../io/checkpoint.js';
import { CAVMAE, CAVMAEFT, loadModel, type AnyModel, type CavmaeConfig, type LoadModelOptions } from '../models/index.js';
import { buildLabelMap, loadDataset, loadLabelCsv, resolveLabels, type Dataset, type LabelMap } from '../data/datafile.js';
import { createLoader } from '../data/loader.js';
import { AUDIO_NORM } from '../audio/index.js';
import { Tensor } from '../tensor/tensor.js';
import { evaluateRetrieval, type RetrievalMetrics } from './retrieval.js';
import { UserError, fileError } from '../util/errors.js';

export interface Embeddings {
  n: number;
  dim: number;
  /** [n, dim], rows L2-normalised (undefined for a visual-only model). */
  audio?: Float32Array;
  /** [n, dim] (undefined for an audio-only model). */
  video?: Float32Array;
  ids: string[];
  /** First label index per item, -1 when an item has none (undefined: no item is labelled). */
  labels?: Int32Array;
  labelNames?: string[];
}

export interface InferenceModel {
  model: AnyModel;
  config: CavmaeConfig;
  /** Audio normalisation the model was trained with. */
  audioNorm: { mean: number; std: number };
  path: string;
  /** The checkpoint's string metadata (empty for a .pth). */
  metadata: Record<string, string>;
}

/** Loads a checkpoint for inference, with the preprocessing constants stored next to it. */
export function loadInferenceModel(path: string, opts: Pick<LoadModelOptions, 'config' | 'kind' | 'overrides'> = {}): InferenceModel {
  const { model, config, format } = loadModel(path, { ...opts, grad: false });
  let metadata: Record<string, string> = {};
  if (format === 'safetensors') metadata = withFile(path, (src) => readSafetensorsHeader(src)).metadata;
  const pre: PreprocessConstants | undefined = checkpointPreprocess(metadata, path);
  return { model, config, audioNorm: pre ? { mean: pre.audio.mean, std: pre.audio.std } : { ...AUDIO_NORM }, path, metadata };
}

/** Metadata keys a fine-tuning run stores with its model (src/train/finetune.ts). */
export const FT_META = { labels: 'cavmae.labels', loss: 'cavmae.ft_loss', mode: 'cavmae.ft_mode' } as const;

/** The label index, loss and mode a fine-tuned model was trained with (when recorded). */
export function fineTuneMeta(metadata: Record<string, string>, what: string): { labelMap?: LabelMap; loss?: string; mode?: string } {
  let labelMap: LabelMap | undefined;
  const text = metadata[FT_META.labels];
  if (text !== undefined) {
    let v: { mids?: unknown; names?: unknown };
    try {
      v = JSON.parse(text) as typeof v;
    } catch {
      throw fileError(what, `metadata "${FT_META.labels}" is not valid JSON`);
    }
    const ok = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string');
    if (!ok(v.mids) || !ok(v.names) || v.mids.length !== v.names.length) throw fileError(what, `metadata "${FT_META.labels}" must hold equal-length "mids" and "names" lists`);
    labelMap = { numLabels: v.mids.length, mids: v.mids, names: v.names, source: `${what} (stored labels)` };
  }
  return { labelMap, loss: metadata[FT_META.loss], mode: metadata[FT_META.mode] };
}

/** Pooled, L2-normalised embeddings of one batch: audio [B,D] / video [B,D]. */
export function embedBatch(model: AnyModel, audio: Tensor | undefined, image: Tensor | undefined, opts: { bf16?: boolean; frozen?: FrozenWeights } = {}): { audio?: Float32Array; video?: Float32Array } {
  const tp = new Tape({ grad: false, bf16: opts.bf16 ?? false, frozen: opts.frozen });
  const feat = model instanceof CAVMAEFT ? model.forwardFeat(tp, { audio, image }, image ? 'av' : 'a') : (model as CAVMAE).forwardFeat(tp, { audio, image });
  return {
    audio: feat.audioTokens ? poolNormalize(feat.audioTokens) : undefined,
    video: feat.videoTokens ? poolNormalize(feat.videoTokens) : undefined,
  };
}

/** [B, L, D] tokens → mean over L → unit L2 norm per row (float64 sums). */
export function poolNormalize(tokens: Tensor): Float32Array {
  const [B, L, D] = tokens.shape;
  const out = new Float32Array(B * D);
  const acc = new Float64Array(D);
  const x = tokens.data;
  for (let b = 0; b < B; b++) {
    acc.fill(0);
    for (let l = 0; l < L; l++) {
      const o = (b * L + l) * D;
      for (let d = 0; d < D; d++) acc[d] += x[o + d];
    }
    let ss = 0;
    for (let d = 0; d < D; d++) {
      acc[d] /= L;
      ss += acc[d] * acc[d];
    }
    const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
    for (let d = 0; d < D; d++) out[b * D + d] = acc[d] * inv;
  }
  return out;
}

export interface EmbedOptions {
  batchSize?: number;
  workers?: number;
  /** Evaluation frame (default 5 of 10, the reference's middle frame). */
  frameUse?: number;
  labelMap?: LabelMap;
  bf16?: boolean;
  audioNorm?: { mean: number; std: number };
  onBatch?: (done: number, total: number) => void;
}

/** First label index of every item (-1 when unlabelled); undefined when no item has a label. */
export function firstLabels(dataset: Dataset, map: LabelMap): Int32Array | undefined {
  if (!dataset.items.some((it) => it.labels.length > 0)) return undefined;
  const idx = resolveLabels(dataset, map);
  return Int32Array.from(idx, (l) => (l.length ? l[0] : -1));
}

/** Embeddings of every item of a dataset, in datafile order. */
export async function embedDataset(model: AnyModel, dataset: Dataset, opts: EmbedOptions = {}): Promise<Embeddings> {
  const c = model.config;
  const hasAudio = model instanceof CAVMAEFT || c.variant !== 'visual-mae';
  const hasVideo = model instanceof CAVMAEFT || c.variant !== 'audio-mae';
  const labelMap = opts.labelMap ?? buildLabelMap(dataset);
  // The weights do not change during one pass over the dataset: bf16 copies made once.
  const frozen = new FrozenWeights();
  const loader = createLoader(dataset, {
    batchSize: opts.batchSize ?? 32,
    train: false,
    shuffle: false,
    dropLast: false,
    targetLength: c.audio_length,
    imageSize: c.img_size,
    frameUse: opts.frameUse,
    labelMap,
    audioMean: opts.audioNorm?.mean,
    audioStd: opts.audioNorm?.std,
    workers: opts.workers ?? 2,
  });
  const n = dataset.items.length;
  const D = c.embed_dim;
  const audio = hasAudio ? new Float32Array(n * D) : undefined;
  const video = hasVideo ? new Float32Array(n * D) : undefined;
  let row = 0;
  try {
    for await (const batch of loader.batches(0, 0)) {
      const B = batch.size;
      const a = hasAudio ? new Tensor([B, c.audio_length, 128], batch.audio) : undefined;
      const v = hasVideo ? new Tensor([B, 3, c.img_size, c.img_size], batch.image) : undefined;
      const e = embedBatch(model, a, v, { bf16: opts.bf16, frozen });
      if (batch.indices.some((idx, i) => idx !== row + i)) {
        throw fileError(dataset.path, `entry ${row} could not be read and was replaced; embeddings need every entry (fix or remove the unreadable files)`);
      }
      if (audio && e.audio) audio.set(e.audio, row * D);
      if (video && e.video) video.set(e.video, row * D);
      row += B;
      opts.onBatch?.(row, n);
    }
  } finally {
    await loader.close();
  }
  if (row !== n) throw new Error(`embed: ${row} rows for ${n} items`);
  return { n, dim: D, audio, video, ids: dataset.items.map((it) => it.id), labels: firstLabels(dataset, labelMap), labelNames: labelMap.names };
}

export function writeEmbeddings(path: string, e: Embeddings, meta: Record<string, string> = {}): void {
  const t = new Map<string, WritableTensor>();
  if (e.audio) t.set('audio', { dtype: 'F32', shape: [e.n, e.dim], data: e.audio });
  if (e.video) t.set('video', { dtype: 'F32', shape: [e.n, e.dim], data: e.video });
  if (e.labels) t.set('labels', { dtype: 'I32', shape: [e.n], data: e.labels });
  const metadata: Record<string, string> = { 'cavmae.kind': 'embeddings', ids: JSON.stringify(e.ids), ...meta };
  if (e.labels && e.labelNames) metadata.label_names = JSON.stringify(e.labelNames);
  writeSafetensors(path, t, metadata);
}

/** Reads a file written by writeEmbeddings (or any safetensors with audio/video [N,D]). */
export function readEmbeddings(path: string): Embeddings {
  const { tensors, metadata } = readSafetensors(path);
  const get = (name: string): { shape: number[]; data: Float32Array } | undefined => {
    const t = tensors.get(name);
    if (!t) return undefined;
    if (t.dtype !== 'F32' || t.shape.length !== 2) throw fileError(path, `"${name}" must be F32 [N, D], got ${t.dtype} [${t.shape.join(', ')}]`);
    return { shape: t.shape, data: t.data as Float32Array };
  };
  const a = get('audio');
  const v = get('video');
  if (!a && !v) throw fileError(path, 'holds neither "audio" nor "video" embeddings');
  const [n, dim] = (a ?? v)!.shape;
  if (a && v && (a.shape[0] !== v.shape[0] || a.shape[1] !== v.shape[1])) throw fileError(path, `"audio" [${a.shape}] and "video" [${v.shape}] differ in shape`);
  let ids: string[] = [];
  if (metadata.ids !== undefined) {
    try {
      ids = JSON.parse(metadata.ids) as string[];
    } catch {
      throw fileError(path, 'metadata "ids" is not valid JSON');
    }
    if (!Array.isArray(ids) || ids.length !== n) throw fileError(path, `metadata "ids" must list ${n} ids`);
  }
  let labels: Int32Array | undefined;
  const l = tensors.get('labels');
  if (l) {
    if (l.dtype !== 'I32' || l.shape.length !== 1 || l.shape[0] !== n) throw fileError(path, `"labels" must be I32 [${n}]`);
    labels = l.data as Int32Array;
  }
  return { n, dim, audio: a?.data, video: v?.data, ids, labels };
}

/** `cavmae embed`: model + datafile → embeddings file. */
export async function embedToFile(o: {
  model: string;
  data: string;
  out: string;
  config?: string;
  labelCsv?: string;
  batchSize?: number;
  workers?: number;
  bf16?: boolean;
  onBatch?: (done: number, total: number) => void;
}): Promise<Embeddings> {
  const m = loadInferenceModel(o.model, { config: o.config });
  const dataset = loadDataset(o.data);
  const labelMap = o.labelCsv ? loadLabelCsv(o.labelCsv) : undefined;
  const e = await embedDataset(m.model, dataset, { batchSize: o.batchSize, workers: o.workers, bf16: o.bf16, labelMap, audioNorm: m.audioNorm, onBatch: o.onBatch });
  writeEmbeddings(o.out, e, { model: o.model, data: dataset.path });
  return e;
}

export interface RetrievalReport {
  n: number;
  dim: number;
  strategy: 'pooled';
  /** Ranks count only candidates scoring STRICTLY higher than the true pair (ties favour the pair). */
  tieRule: 'strict';
  chance: { r1: number; r5: number; r10: number; medianRank: number; classMatchAt1?: number };
  audioToVideo: RetrievalMetrics;
  videoToAudio: RetrievalMetrics;
}

/** Expected scores of a random ranking: R@k = k/N, median rank (N+1)/2, class-match Σ_c (n_c/N)². */
export function chanceLevels(n: number, labels?: Int32Array): RetrievalReport['chance'] {
  const out: RetrievalReport['chance'] = { r1: Math.min(1, 1 / n), r5: Math.min(1, 5 / n), r10: Math.min(1, 10 / n), medianRank: (n + 1) / 2 };
  if (labels) {
    const counts = new Map<number, number>();
    for (const l of labels) counts.set(l, (counts.get(l) ?? 0) + 1);
    let p = 0;
    for (const c of counts.values()) p += (c / n) ** 2;
    out.classMatchAt1 = p;
  }
  return out;
}

/** Cross-modal retrieval in both directions from embeddings (class-match@1 when every item is labelled). */
export function retrievalFromEmbeddings(e: Embeddings): RetrievalReport {
  if (!e.audio || !e.video) throw new UserError('retrieval needs both audio and video embeddings (this model has one modality)');
  const labels = e.labels && e.labels.every((l) => l >= 0) ? e.labels : undefined;
  const r = evaluateRetrieval({ data: e.audio, n: e.n, dim: e.dim }, { data: e.video, n: e.n, dim: e.dim }, { labels });
  return { n: e.n, dim: e.dim, strategy: 'pooled', tieRule: 'strict', chance: chanceLevels(e.n, labels), audioToVideo: r.audioToVideo, videoToAudio: r.videoToAudio };
}

/** `cavmae retrieval`: a model + datafile (or an embeddings file) → both directions. */
export async function retrievalReport(o: {
  model?: string;
  data?: string;
  embeddings?: string;
  config?: string;
  labelCsv?: string;
  batchSize?: number;
  workers?: number;
  bf16?: boolean;
}): Promise<RetrievalReport> {
  let e: Embeddings;
  if (o.embeddings) {
    if (o.model || o.data) throw new UserError('--embeddings replaces --model and --data; pass one or the other');
    e = readEmbeddings(o.embeddings);
  } else {
    if (!o.model || !o.data) throw new UserError('retrieval needs --model <checkpoint> and --data <datafile> (or --embeddings <file>)');
    const m = loadInferenceModel(o.model, { config: o.config });
    const dataset = loadDataset(o.data);
    const labelMap = o.labelCsv ? loadLabelCsv(o.labelCsv) : undefined;
    e = await embedDataset(m.model, dataset, { batchSize: o.batchSize, workers: o.workers, bf16: o.bf16, labelMap, audioNorm: m.audioNorm });
  }
  return retrievalFromEmbeddings(e);
}

export function formatRetrieval(r: RetrievalReport): string {
  const p = (x: number) => x.toFixed(3);
  const cls = r.chance.classMatchAt1 !== undefined;
  const lines = [
    `retrieval over ${r.n} clips (pooled ${r.dim}-d embeddings, cosine similarity; rank = number of candidates scoring strictly higher than the true pair)`,
    `direction  R@1    R@5    R@10   MedR${cls ? '    class@1' : ''}`,
  ];
  const row = (name: string, m: RetrievalMetrics) =>
    `${name.padEnd(9)}  ${p(m.r1)}  ${p(m.r5)}  ${p(m.r10)}  ${m.medianRank.toFixed(1).padStart(5)}${cls ? `   ${p(m.classMatchAt1!)}` : ''}`;
  lines.push(row('A->V', r.audioToVideo), row('V->A', r.videoToAudio));
  lines.push(`${'chance'.padEnd(9)}  ${p(r.chance.r1)}  ${p(r.chance.r5)}  ${p(r.chance.r10)}  ${r.chance.medianRank.toFixed(1).padStart(5)}${cls ? `   ${p(r.chance.classMatchAt1!)}` : ''}`);
  if (cls) lines.push('class@1: share of queries whose top-1 candidate has the query\'s label');
  return lines.join('\n');
}
