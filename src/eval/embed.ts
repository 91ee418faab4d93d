/**
 * Clip embeddings files and inference models: one [D] vector per clip and modality (the pair
 * features of src/eval/features.ts with F = 1: forward_feat, mean over tokens, L2-normalised),
 * computed in batches from a datafile, and the checkpoint loading every evaluation uses.
 *
 * Design contract:
 * - Row order is datafile order (an evaluation loader: no shuffle, no drop_last, middle frame 5
 *   of 10, no augmentation), so row i is the datafile's entry i; every entry must be readable.
 * - Single-modality variants (audio-mae, visual-mae) give one side only. Sync models give F pair
 *   vectors per clip: `audio` / `video` are [N, F, D] (every pair row L2-normalised, the pair
 *   features of src/eval/features.ts), with metadata "cavmae.frames" (F) and
 *   "cavmae.clip_strategy" (how clips compare, src/eval/retrieval.ts).
 * - Preprocessing follows the checkpoint: audio_length and img_size from its config, the fbank
 *   normalisation from its "cavmae.preprocess" metadata when present (else AudioSet's).
 * - Output file (`writeEmbeddings`): safetensors with `audio` [N,D] and `video` [N,D] (F32),
 *   `labels` [N] (I32, first label index, -1 for none) when the items are labelled; metadata
 *   "ids" (JSON list of the item ids, datafile order), "cavmae.kind" = "embeddings", the model
 *   path and the label names.
 */
import {
  readSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
  type WritableTensor,
} from '../io/safetensors.js';
import { withFile } from '../io/bytes.js';
import { checkpointPreprocess, type PreprocessConstants } from '../io/checkpoint.js';
import { loadModel, type AnyModel, type CavmaeConfig, type LoadModelOptions } from '../models/index.js';
import {
  buildLabelMap,
  loadDataset,
  loadLabelCsv,
  resolveLabels,
  type Dataset,
  type LabelMap,
} from '../data/datafile.js';
import { AUDIO_NORM } from '../audio/index.js';
import { OptionError, UserError, fileError } from '../util/errors.js';
import { datasetFeatures } from './features.js';
import { CLIP_STRATEGIES, evaluateRetrieval, type ClipStrategy, type RetrievalMetrics } from './retrieval.js';

export interface Embeddings {
  n: number;
  dim: number;
  /** Pair vectors per clip (CAV-MAE Sync: F; rows [n, frames, dim]); 1 or absent: one vector per clip. */
  frames?: number;
  /** How clips with frames > 1 compare (default diagonal_mean). */
  strategy?: ClipStrategy;
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
export function loadInferenceModel(
  path: string,
  opts: Pick<LoadModelOptions, 'config' | 'kind' | 'overrides'> = {},
): InferenceModel {
  const { model, config, format } = loadModel(path, { ...opts, grad: false });
  let metadata: Record<string, string> = {};
  if (format === 'safetensors') metadata = withFile(path, (src) => readSafetensorsHeader(src)).metadata;
  const pre: PreprocessConstants | undefined = checkpointPreprocess(metadata, path);
  return {
    model,
    config,
    audioNorm: pre ? { mean: pre.audio.mean, std: pre.audio.std } : { ...AUDIO_NORM },
    path,
    metadata,
  };
}

/** Metadata keys a fine-tuning run stores with its model (src/train/finetune.ts). */
export const FT_META = { labels: 'cavmae.labels', loss: 'cavmae.ft_loss', mode: 'cavmae.ft_mode' } as const;

/** The label index, loss and mode a fine-tuned model was trained with (when recorded). */
export function fineTuneMeta(
  metadata: Record<string, string>,
  what: string,
): { labelMap?: LabelMap; loss?: string; mode?: string } {
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
    if (!ok(v.mids) || !ok(v.names) || v.mids.length !== v.names.length)
      throw fileError(what, `metadata "${FT_META.labels}" must hold equal-length "mids" and "names" lists`);
    labelMap = { numLabels: v.mids.length, mids: v.mids, names: v.names, source: `${what} (stored labels)` };
  }
  return { labelMap, loss: metadata[FT_META.loss], mode: metadata[FT_META.mode] };
}

/** Checkpoint metadata key of the clip strategy a Sync model was validated with (src/train/pretrain.ts). */
export const CLIP_STRATEGY_METADATA = 'cavmae.clip_strategy';

/** The clip strategy of a Sync model: the asked one, else the checkpoint's, else diagonal_mean. */
export function clipStrategyOf(
  metadata: Record<string, string>,
  source: string,
  asked?: ClipStrategy,
): ClipStrategy {
  const stored = metadata[CLIP_STRATEGY_METADATA];
  if (stored !== undefined && !CLIP_STRATEGIES.includes(stored as ClipStrategy))
    throw fileError(
      source,
      `metadata "${CLIP_STRATEGY_METADATA}" must be one of ${CLIP_STRATEGIES.join(', ')}, got "${stored}"`,
    );
  if (asked !== undefined && !CLIP_STRATEGIES.includes(asked))
    throw new OptionError(
      (n) => `${n('strategy')} must be one of ${CLIP_STRATEGIES.join(', ')}, got "${asked}"`,
    );
  return asked ?? (stored as ClipStrategy | undefined) ?? 'diagonal_mean';
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

/** Embeddings of every item of a dataset, in datafile order (a Sync model: F pair vectors per clip). */
export async function embedDataset(
  model: AnyModel,
  dataset: Dataset,
  opts: EmbedOptions & { strategy?: ClipStrategy } = {},
): Promise<Embeddings> {
  const F = model.dims.framesPerClip;
  const labelMap = opts.labelMap ?? buildLabelMap(dataset);
  const f = await datasetFeatures(model, dataset, {
    ...opts,
    clipsPerBatch: F > 1 ? undefined : (opts.batchSize ?? 32),
    batchPairs: F > 1 ? opts.batchSize : undefined,
    onFailure: () => {},
  });
  const n = dataset.items.length;
  const missing = f.indices.findIndex((idx, i) => idx !== i);
  if (f.failures.length > 0 || missing >= 0 || f.indices.length !== n) {
    const row = missing >= 0 ? missing : f.indices.length;
    throw fileError(
      dataset.path,
      `entry ${row} could not be read and was replaced; embeddings need every entry (fix or remove the unreadable files)`,
    );
  }
  return {
    n,
    dim: model.config.embed_dim,
    ...(F > 1 ? { frames: F, strategy: opts.strategy ?? 'diagonal_mean' } : {}),
    audio: f.audio?.data,
    video: f.video?.data,
    ids: f.ids,
    labels: firstLabels(dataset, labelMap),
    labelNames: labelMap.names,
  };
}

export function writeEmbeddings(path: string, e: Embeddings, meta: Record<string, string> = {}): void {
  const t = new Map<string, WritableTensor>();
  const F = e.frames ?? 1;
  const shape = F > 1 ? [e.n, F, e.dim] : [e.n, e.dim];
  if (e.audio) t.set('audio', { dtype: 'F32', shape, data: e.audio });
  if (e.video) t.set('video', { dtype: 'F32', shape, data: e.video });
  if (e.labels) t.set('labels', { dtype: 'I32', shape: [e.n], data: e.labels });
  const metadata: Record<string, string> = {
    'cavmae.kind': 'embeddings',
    ids: JSON.stringify(e.ids),
    ...(F > 1 ? { 'cavmae.frames': String(F), [CLIP_STRATEGY_METADATA]: e.strategy ?? 'diagonal_mean' } : {}),
    ...meta,
  };
  if (e.labels && e.labelNames) metadata.label_names = JSON.stringify(e.labelNames);
  writeSafetensors(path, t, metadata);
}

/** Reads a file written by writeEmbeddings (or any safetensors with audio/video [N,D], or [N,F,D] pair vectors). */
export function readEmbeddings(path: string): Embeddings {
  const { tensors, metadata } = readSafetensors(path);
  const get = (name: string): { shape: number[]; data: Float32Array } | undefined => {
    const t = tensors.get(name);
    if (!t) return undefined;
    if (t.dtype !== 'F32' || (t.shape.length !== 2 && t.shape.length !== 3))
      throw fileError(
        path,
        `"${name}" must be F32 [N, D] or [N, F, D], got ${t.dtype} [${t.shape.join(', ')}]`,
      );
    return { shape: t.shape, data: t.data as Float32Array };
  };
  const a = get('audio');
  const v = get('video');
  if (!a && !v) throw fileError(path, 'holds neither "audio" nor "video" embeddings');
  const shape = (a ?? v)!.shape;
  const [n, frames, dim] = shape.length === 3 ? shape : [shape[0], 1, shape[1]];
  if (a && v && a.shape.join() !== v.shape.join())
    throw fileError(path, `"audio" [${a.shape}] and "video" [${v.shape}] differ in shape`);
  const strategy = frames > 1 ? clipStrategyOf(metadata, path) : undefined;
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
    if (l.dtype !== 'I32' || l.shape.length !== 1 || l.shape[0] !== n)
      throw fileError(path, `"labels" must be I32 [${n}]`);
    labels = l.data as Int32Array;
  }
  return { n, dim, ...(frames > 1 ? { frames, strategy } : {}), audio: a?.data, video: v?.data, ids, labels };
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
  const e = await embedWith(m, dataset, o);
  writeEmbeddings(o.out, e, { model: o.model, data: dataset.path });
  return e;
}

/**
 * A loaded checkpoint's embeddings of a dataset: its preprocessing, a Sync model's stored clip
 * strategy, the label index of `labelCsv` (else the data's own).
 */
export async function embedWith(
  m: InferenceModel,
  dataset: Dataset,
  o: Pick<EmbedOptions, 'batchSize' | 'workers' | 'bf16' | 'onBatch'> & { labelCsv?: string },
): Promise<Embeddings> {
  return embedDataset(m.model, dataset, {
    strategy: m.model.dims.framesPerClip > 1 ? clipStrategyOf(m.metadata, m.path) : undefined,
    batchSize: o.batchSize,
    workers: o.workers,
    bf16: o.bf16,
    labelMap: o.labelCsv ? loadLabelCsv(o.labelCsv) : undefined,
    audioNorm: m.audioNorm,
    onBatch: o.onBatch,
  });
}

export interface RetrievalReport {
  n: number;
  dim: number;
  strategy: ClipStrategy | 'pooled';
  /** Ranks count only candidates scoring STRICTLY higher than the true pair (ties favour the pair). */
  tieRule: 'strict';
  chance: { r1: number; r5: number; r10: number; medianRank: number; classMatchAt1?: number };
  audioToVideo: RetrievalMetrics;
  videoToAudio: RetrievalMetrics;
}

/** Expected scores of a random ranking: R@k = k/N, median rank (N+1)/2, class-match Σ_c (n_c/N)². */
export function chanceLevels(n: number, labels?: Int32Array): RetrievalReport['chance'] {
  const out: RetrievalReport['chance'] = {
    r1: Math.min(1, 1 / n),
    r5: Math.min(1, 5 / n),
    r10: Math.min(1, 10 / n),
    medianRank: (n + 1) / 2,
  };
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
  if (!e.audio || !e.video)
    throw new UserError('retrieval needs both audio and video embeddings (this model has one modality)');
  const labels = e.labels && e.labels.every((l) => l >= 0) ? e.labels : undefined;
  const frames = e.frames ?? 1;
  const strategy = frames > 1 ? (e.strategy ?? 'diagonal_mean') : undefined;
  const r = evaluateRetrieval(
    { data: e.audio, n: e.n, dim: e.dim, frames },
    { data: e.video, n: e.n, dim: e.dim, frames },
    { labels, strategy },
  );
  return {
    n: e.n,
    dim: e.dim,
    strategy: strategy ?? 'pooled',
    tieRule: 'strict',
    chance: chanceLevels(e.n, labels),
    audioToVideo: r.audioToVideo,
    videoToAudio: r.videoToAudio,
  };
}

/**
 * `cavmae retrieval` of one pooled vector per clip: an embeddings file, or a model (F = 1, given
 * or loaded from `o.model`) run over a datafile.
 */
/** A retrieval reads stored embeddings, or embeds a datafile with a model: exactly one of the two. */
export function checkRetrievalSource(o: { model?: string; data?: string; embeddings?: string }): void {
  if (o.embeddings && (o.model || o.data))
    throw new OptionError(
      (n) => `${n('embeddings')} replaces ${n('model')} and ${n('data')}; pass one or the other`,
    );
  if (!o.embeddings && (!o.model || !o.data))
    throw new OptionError(
      (n) =>
        `retrieval needs ${n('model')} <checkpoint> and ${n('data')} <datafile> (or ${n('embeddings')} <file>)`,
    );
}

export async function retrievalReport(
  o: {
    model?: string;
    data?: string;
    embeddings?: string;
    config?: string;
    labelCsv?: string;
    batchSize?: number;
    workers?: number;
    bf16?: boolean;
  },
  loaded?: InferenceModel,
): Promise<RetrievalReport> {
  checkRetrievalSource(o);
  if (o.embeddings) return retrievalFromEmbeddings(readEmbeddings(o.embeddings));
  const m = loaded ?? loadInferenceModel(o.model!, { config: o.config });
  return retrievalFromEmbeddings(await embedWith(m, loadDataset(o.data!), o));
}
