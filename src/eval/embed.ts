/**
 * Clip embeddings files and inference models: one [D] vector per clip and modality (the pair
 * features of src/eval/features.ts with F = 1: forward_feat, mean over tokens, L2-normalised),
 * computed in batches from a datafile, and the checkpoint loading every evaluation uses.
 *
 * Design contract:
 * - Row order is datafile order (an evaluation loader: no shuffle, no drop_last, middle frame 5
 *   of 10, no augmentation), so row i is the datafile's entry i; every entry must be readable.
 * - Single-modality variants (audio-mae, visual-mae) give one side only. Sync models give F pair
 *   vectors per clip and go through `cavmae retrieval` instead.
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
import { UserError, fileError } from '../util/errors.js';
import { datasetFeatures } from './features.js';
import { evaluateRetrieval, type RetrievalMetrics } from './retrieval.js';

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

/** Embeddings of every item of a dataset, in datafile order (one vector per clip: models with F = 1). */
export async function embedDataset(
  model: AnyModel,
  dataset: Dataset,
  opts: EmbedOptions = {},
): Promise<Embeddings> {
  const F = model.dims.framesPerClip;
  if (F > 1)
    throw new UserError(
      `this CAV-MAE Sync model gives ${F} pair vectors per clip; an embeddings file holds one vector per clip (use cavmae retrieval)`,
    );
  const labelMap = opts.labelMap ?? buildLabelMap(dataset);
  const f = await datasetFeatures(model, dataset, {
    ...opts,
    clipsPerBatch: opts.batchSize ?? 32,
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
    audio: f.audio?.data,
    video: f.video?.data,
    ids: f.ids,
    labels: firstLabels(dataset, labelMap),
    labelNames: labelMap.names,
  };
}

export function writeEmbeddings(path: string, e: Embeddings, meta: Record<string, string> = {}): void {
  const t = new Map<string, WritableTensor>();
  if (e.audio) t.set('audio', { dtype: 'F32', shape: [e.n, e.dim], data: e.audio });
  if (e.video) t.set('video', { dtype: 'F32', shape: [e.n, e.dim], data: e.video });
  if (e.labels) t.set('labels', { dtype: 'I32', shape: [e.n], data: e.labels });
  const metadata: Record<string, string> = {
    'cavmae.kind': 'embeddings',
    ids: JSON.stringify(e.ids),
    ...meta,
  };
  if (e.labels && e.labelNames) metadata.label_names = JSON.stringify(e.labelNames);
  writeSafetensors(path, t, metadata);
}

/** Reads a file written by writeEmbeddings (or any safetensors with audio/video [N,D]). */
export function readEmbeddings(path: string): Embeddings {
  const { tensors, metadata } = readSafetensors(path);
  const get = (name: string): { shape: number[]; data: Float32Array } | undefined => {
    const t = tensors.get(name);
    if (!t) return undefined;
    if (t.dtype !== 'F32' || t.shape.length !== 2)
      throw fileError(path, `"${name}" must be F32 [N, D], got ${t.dtype} [${t.shape.join(', ')}]`);
    return { shape: t.shape, data: t.data as Float32Array };
  };
  const a = get('audio');
  const v = get('video');
  if (!a && !v) throw fileError(path, 'holds neither "audio" nor "video" embeddings');
  const [n, dim] = (a ?? v)!.shape;
  if (a && v && (a.shape[0] !== v.shape[0] || a.shape[1] !== v.shape[1]))
    throw fileError(path, `"audio" [${a.shape}] and "video" [${v.shape}] differ in shape`);
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
  const e = await embedDataset(m.model, dataset, {
    batchSize: o.batchSize,
    workers: o.workers,
    bf16: o.bf16,
    labelMap,
    audioNorm: m.audioNorm,
    onBatch: o.onBatch,
  });
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
  const r = evaluateRetrieval(
    { data: e.audio, n: e.n, dim: e.dim },
    { data: e.video, n: e.n, dim: e.dim },
    { labels },
  );
  return {
    n: e.n,
    dim: e.dim,
    strategy: 'pooled',
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
  if (o.embeddings) {
    if (o.model || o.data)
      throw new UserError('--embeddings replaces --model and --data; pass one or the other');
    return retrievalFromEmbeddings(readEmbeddings(o.embeddings));
  }
  if (!o.model || !o.data)
    throw new UserError(
      'retrieval needs --model <checkpoint> and --data <datafile> (or --embeddings <file>)',
    );
  const m = loaded ?? loadInferenceModel(o.model, { config: o.config });
  const labelMap = o.labelCsv ? loadLabelCsv(o.labelCsv) : undefined;
  const e = await embedDataset(m.model, loadDataset(o.data), {
    batchSize: o.batchSize,
    workers: o.workers,
    bf16: o.bf16,
    labelMap,
    audioNorm: m.audioNorm,
  });
  return retrievalFromEmbeddings(e);
}
