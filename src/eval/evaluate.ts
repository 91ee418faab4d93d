/**
 * Classification with a fine-tuned model on a datafile: logits → probabilities (sigmoid for
 * multi-label BCE models, softmax for single-label CE models) → the reference's statistics
 * (metrics.ts: mAP, mAUC, d', acc, per class).
 *
 * Design contract:
 * - Frame aggregation (the reference's src/traintest_ft.py evaluates frame_use 0..9): for frame =
 *   0..9 the evaluation loader uses that frame (no augmentation, no drop_last), probabilities are averaged over the frames, metrics are computed
 *   on the average; per-frame metrics are kept too. Audio-only models skip it (frame 5 only, the
 *   frames are not used). When every item's visual is a single still image all frames are the
 *   same picture, so one pass stands for all ten (identical numbers, a tenth of the work).
 * - Targets are the items' 0/1 label vectors (label smoothing off); items without labels give
 *   an all-zero row.
 * - Row order is datafile order.
 * - A classifier with the Sync aggregator head reads every (segment, frame) pair of a clip at
 *   once (src/data/sync.ts: syncClipBatches): there is no frame aggregation to do. Unreadable
 *   clips are left out (reported) and `ids` lists the clips evaluated.
 */
import { Tape } from '../autograd/tape.js';
import { writeSafetensors } from '../io/safetensors.js';
import { CAVMAEFT, FT_MODES, MEL_BINS, modeInputs, type FtMode } from '../models/index.js';
import { labelVector } from '../data/augment.js';
import {
  buildLabelMap,
  loadDataset,
  loadLabelCsv,
  resolveLabels,
  type Dataset,
  type LabelMap,
} from '../data/datafile.js';
import { syncClipBatches } from '../data/sync.js';
import { Tensor } from '../tensor/tensor.js';
import { OptionError, UserError, fileError } from '../util/errors.js';
import { calculateStats, type ClassificationStats } from './metrics.js';
import { evalLoader, FeatureRows } from './features.js';
import { fineTuneMeta, loadInferenceModel } from './embed.js';
import type { PredictionReport } from './predictions.js';

export type ClassifierLoss = 'bce' | 'ce';

export interface ClassifierEvalOptions {
  mode?: FtMode;
  labelMap: LabelMap;
  /** Probability transform: sigmoid (bce) or softmax (ce). */
  loss: ClassifierLoss;
  /** Average over frames 0..totalFrames-1 (default true unless the mode is audio-only). */
  frameAgg?: boolean;
  /** The single frame when not aggregating (default totalFrames/2 = 5). */
  frameUse?: number;
  totalFrames?: number;
  batchSize?: number;
  /** Aggregator head: clips per forward pass (default 8). */
  clipsPerBatch?: number;
  workers?: number;
  bf16?: boolean;
  audioNorm?: { mean: number; std: number };
}

export interface ClassifierEval {
  N: number;
  K: number;
  /** [N, K] probabilities averaged over the evaluated frames. */
  probs: Float32Array;
  /** [N, K] 0/1 targets. */
  target: Float32Array;
  /** Mean loss over items on the (averaged) logits of each frame, averaged over frames. */
  loss: number;
  frames: number[];
  /** Statistics of each evaluated frame alone (same order as `frames`). */
  perFrame: ClassificationStats[];
  stats: ClassificationStats;
  /** Ids of the evaluated items, row order. */
  ids: string[];
}

/** Sigmoid or row-softmax of logits [N, K] (float64 internally). */
export function toProbabilities(
  logits: Float32Array,
  N: number,
  K: number,
  loss: ClassifierLoss,
): Float32Array {
  const out = new Float32Array(N * K);
  if (loss === 'bce') {
    for (let i = 0; i < N * K; i++) out[i] = 1 / (1 + Math.exp(-logits[i]));
    return out;
  }
  for (let n = 0; n < N; n++) {
    let m = -Infinity;
    for (let k = 0; k < K; k++) m = Math.max(m, logits[n * K + k]);
    let s = 0;
    for (let k = 0; k < K; k++) s += Math.exp(logits[n * K + k] - m);
    for (let k = 0; k < K; k++) out[n * K + k] = Math.exp(logits[n * K + k] - m) / s;
  }
  return out;
}

/** Mean BCE (over N·K) or mean soft-target CE (over N) of logits, as the training losses. */
export function meanLoss(
  logits: Float32Array,
  target: Float32Array,
  N: number,
  K: number,
  loss: ClassifierLoss,
): number {
  let s = 0;
  if (loss === 'bce') {
    for (let i = 0; i < N * K; i++) {
      const x = logits[i];
      s += Math.max(x, 0) - x * target[i] + Math.log1p(Math.exp(-Math.abs(x)));
    }
    return s / (N * K);
  }
  for (let n = 0; n < N; n++) {
    let m = -Infinity;
    for (let k = 0; k < K; k++) m = Math.max(m, logits[n * K + k]);
    let z = 0;
    for (let k = 0; k < K; k++) z += Math.exp(logits[n * K + k] - m);
    const lse = m + Math.log(z);
    for (let k = 0; k < K; k++) s -= target[n * K + k] * (logits[n * K + k] - lse);
  }
  return s / N;
}

/** Logits [N, K] of a fine-tuning model on one frame of every item (datafile order). */
async function classifierLogits(
  model: CAVMAEFT,
  dataset: Dataset,
  o: {
    mode: FtMode;
    labelMap: LabelMap;
    frameUse: number;
    totalFrames: number;
    batchSize?: number;
    workers?: number;
    bf16?: boolean;
    audioNorm?: { mean: number; std: number };
  },
): Promise<{ logits: Float32Array; target: Float32Array }> {
  const c = model.config;
  const K = c.label_dim!; // = o.labelMap.numLabels (checked by evaluateClassifier)
  const loader = evalLoader(dataset, c, o); // targets without label smoothing
  const N = dataset.items.length;
  const logits = new Float32Array(N * K);
  const target = new Float32Array(N * K);
  const need = modeInputs(o.mode);
  let row = 0;
  try {
    for await (const batch of loader.batches(0, 0)) {
      const B = batch.size;
      if (batch.indices.some((idx, i) => idx !== row + i))
        throw fileError(dataset.path, `entry ${row} could not be read; evaluation needs every entry`);
      const tp = new Tape({ grad: false, bf16: o.bf16 ?? false });
      const out = model.forward(
        tp,
        {
          audio: need.audio ? new Tensor([B, c.audio_length, MEL_BINS], batch.audio) : undefined,
          image: need.video ? new Tensor([B, 3, c.img_size, c.img_size], batch.image) : undefined,
        },
        o.mode,
      );
      logits.set(out.data, row * K);
      target.set(batch.labels, row * K);
      row += B;
    }
  } finally {
    await loader.close();
  }
  return { logits, target };
}

function stillImagesOnly(dataset: Dataset): boolean {
  return dataset.items.every((it) => it.visual.kind === 'image');
}

/** Logits [N, K] of a Sync aggregator classifier on all pairs of every readable clip (datafile order). */
async function clipLogits(
  model: CAVMAEFT,
  dataset: Dataset,
  o: Pick<ClassifierEvalOptions, 'labelMap' | 'clipsPerBatch' | 'bf16' | 'audioNorm'>,
): Promise<{ logits: Float32Array; target: Float32Array; ids: string[] }> {
  const c = model.config;
  const K = c.label_dim!;
  const F = model.dims.framesPerClip;
  const [L, S] = [c.audio_length, c.img_size];
  const all = resolveLabels(dataset, o.labelMap);
  const need = modeInputs(model.mode);
  const logits = new FeatureRows(1, K); // [n, K]
  const target = new FeatureRows(1, K);
  const ids: string[] = [];
  for await (const b of syncClipBatches(dataset, {
    segmentLength: L,
    pairs: F,
    imageSize: S,
    audioMean: o.audioNorm?.mean,
    audioStd: o.audioNorm?.std,
    clipsPerBatch: o.clipsPerBatch ?? 8,
  })) {
    const tp = new Tape({ grad: false, bf16: o.bf16 ?? false });
    const P = b.n * F;
    const audio = need.audio ? new Tensor([P, L, MEL_BINS], b.audio) : undefined;
    const image = need.video ? new Tensor([P, 3, S, S], b.image) : undefined;
    logits.push(Float32Array.from(model.forward(tp, { audio, image }).data), b.n);
    tp.reset();
    for (const i of b.indices) target.push(labelVector(all[i], K, 0), 1);
    ids.push(...b.ids);
  }
  if (ids.length === 0) throw fileError(dataset.path, 'no clip could be read');
  return { logits: logits.done().data, target: target.done().data, ids };
}

/** Evaluates a classifier on a dataset, with the reference's frame aggregation (mlp head) or on whole clips (aggregator). */
export async function evaluateClassifier(
  model: CAVMAEFT,
  dataset: Dataset,
  o: ClassifierEvalOptions,
): Promise<ClassifierEval> {
  const K = model.config.label_dim!;
  if (o.labelMap.numLabels !== K)
    throw new UserError(
      `the model has ${K} classes but the labels list ${o.labelMap.numLabels} (${o.labelMap.source})`,
    );
  if (model.head === 'aggregator') {
    const r = await clipLogits(model, dataset, o);
    const N = r.ids.length;
    const probs = toProbabilities(r.logits, N, K, o.loss);
    const frames = Array.from({ length: model.dims.framesPerClip }, (_, k) => k);
    return {
      N,
      K,
      probs,
      target: r.target,
      loss: meanLoss(r.logits, r.target, N, K, o.loss),
      frames,
      perFrame: [],
      stats: calculateStats(probs, r.target, N, K),
      ids: r.ids,
    };
  }
  const mode = o.mode ?? 'multimodal';
  if (!FT_MODES.includes(mode))
    throw new OptionError((n) => `${n('mode')} must be one of ${FT_MODES.join(', ')}, got "${mode}"`);
  const totalFrames = o.totalFrames ?? 10;
  const usesFrames = mode !== 'audioonly' && mode !== 'missingaudioonly';
  const agg = (o.frameAgg ?? true) && usesFrames;
  const frames = agg
    ? Array.from({ length: totalFrames }, (_, f) => f)
    : [o.frameUse ?? Math.floor(totalFrames / 2)];
  const passes = agg && stillImagesOnly(dataset) ? [frames[Math.floor(totalFrames / 2)]] : frames;
  const N = dataset.items.length;
  const sum = new Float64Array(N * K);
  let target: Float32Array = new Float32Array(0);
  const perPass: { stats: ClassificationStats; loss: number }[] = [];
  for (const f of passes) {
    const r = await classifierLogits(model, dataset, {
      mode,
      labelMap: o.labelMap,
      frameUse: f,
      totalFrames,
      batchSize: o.batchSize,
      workers: o.workers,
      bf16: o.bf16,
      audioNorm: o.audioNorm,
    });
    const p = toProbabilities(r.logits, N, K, o.loss);
    for (let i = 0; i < N * K; i++) sum[i] += p[i];
    target = r.target;
    perPass.push({
      stats: calculateStats(p, r.target, N, K),
      loss: meanLoss(r.logits, r.target, N, K, o.loss),
    });
  }
  const probs = Float32Array.from(sum, (s) => s / passes.length);
  // With still images every frame is the same pass: repeat its numbers for each frame.
  const perFrame = frames.map((_, i) => perPass[passes.length === frames.length ? i : 0].stats);
  const loss = perPass.reduce((s, x) => s + x.loss, 0) / perPass.length;
  return {
    N,
    K,
    probs,
    target,
    loss,
    frames,
    perFrame,
    stats: calculateStats(probs, target, N, K),
    ids: dataset.items.map((it) => it.id),
  };
}

/** The probabilities and targets as safetensors `pred` and `target` [N, K] (what `cavmae eval --pred` reads). */
export function writePredictions(
  path: string,
  r: Pick<ClassifierEval, 'N' | 'K' | 'probs' | 'target'>,
  metadata: Record<string, string>,
): void {
  writeSafetensors(
    path,
    new Map([
      ['pred', { dtype: 'F32' as const, shape: [r.N, r.K], data: r.probs }],
      ['target', { dtype: 'F32' as const, shape: [r.N, r.K], data: r.target }],
    ]),
    metadata,
  );
}

/** `cavmae eval --model M --data F`: the fine-tuned model's report on a datafile. */
export async function evaluateModelFile(o: {
  model: string;
  data: string;
  labelCsv?: string;
  mode?: string;
  loss?: string;
  frameAgg?: boolean;
  batchSize?: number;
  workers?: number;
  bf16?: boolean;
  predOut?: string;
}): Promise<
  PredictionReport & {
    frames: number[];
    perFrame: { frame: number; mAP: number; acc: number }[];
    loss: ClassifierLoss;
    mode: FtMode;
  }
> {
  const m = loadInferenceModel(o.model);
  if (!(m.model instanceof CAVMAEFT))
    throw new UserError(
      `${o.model}: is a pretraining model; classification needs a fine-tuned one (cavmae finetune)`,
    );
  const dataset = loadDataset(o.data);
  const header = fineTuneMeta(m.metadata, o.model);
  const labelMap = o.labelCsv ? loadLabelCsv(o.labelCsv) : (header.labelMap ?? buildLabelMap(dataset));
  const lossText = o.loss ?? header.loss ?? 'bce';
  if (lossText !== 'bce' && lossText !== 'ce')
    throw new OptionError((n) => `${n('loss')} must be bce or ce, got "${lossText}"`);
  const mode = (o.mode ?? header.mode ?? 'multimodal') as FtMode;
  const r = await evaluateClassifier(m.model, dataset, {
    mode,
    labelMap,
    loss: lossText,
    frameAgg: o.frameAgg,
    batchSize: o.batchSize,
    workers: o.workers,
    bf16: o.bf16,
    audioNorm: m.audioNorm,
  });
  if (o.predOut) writePredictions(o.predOut, r, { model: o.model, data: dataset.path, mode, loss: lossText });
  return {
    ...r.stats,
    N: r.N,
    K: r.K,
    classNames: labelMap.names,
    frames: r.frames,
    perFrame: r.perFrame.map((s, i) => ({ frame: r.frames[i], mAP: s.mAP, acc: s.acc })),
    loss: lossText,
    mode,
  };
}
