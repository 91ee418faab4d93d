/**
 * `cavmae finetune`: supervised fine-tuning of CAVMAEFT (spec 4.3, 4.4, 4.6), linear probing and
 * training from scratch.
 *
 * Design contract:
 * - Defaults are the AS-20K recipe: lr 5e-5 with the head at 100x ("mlp" group), batch 36,
 *   15 epochs, MultiStepLR start 5 / step 1 / decay 0.5, Adam (0.95, 0.999), wd 5e-7, mixup 0.5,
 *   label smoothing 0.1, SpecAugment freqm 48 / timem 192 (timem scaled by audio_length/1024 for
 *   shorter inputs), noise + roll, weight averaging of epochs 3..15, frame aggregation at the end.
 *   The loss is BCE (multi-label) or CE with soft targets (single-label); `auto` picks CE when
 *   every training item has exactly one label.
 * - Initialisation: --init loads a pretrained CAVMAE (decoder keys ignored, fresh head) or a
 *   fine-tuned CAVMAEFT (its head is kept when the class count matches); without --init the
 *   model is built from --config with fresh weights (the "from scratch" baseline).
 *   --freeze-base trains the head only (linear probe): the base gets no gradient at all.
 * - Every epoch: validation on the middle frame (loss, mAP, mAUC, d', acc), the epoch's weights
 *   kept when it lies in wa_start..wa_end (1-based, as the reference's audio_model.<e>.pth) and
 *   best.safetensors when the main metric (mAP for BCE, acc for CE) improves.
 * - At the end: the element-wise mean of the kept epoch weights (or the best epoch's weights
 *   without --wa), then the final evaluation with 10-frame probability aggregation; the weights
 *   go to model.safetensors with the label names, loss and mode in the metadata, the aggregated
 *   probabilities and targets to predictions.safetensors (readable by `cavmae eval --pred`).
 * - CAV-MAE Sync classifiers (a Sync --config / --init, or kind 'cavmae-sync-ft') train on
 *   whole clips of 16 (segment, frame) pairs: src/train/sync-finetune.ts.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as ops from '../autograd/ops.js';
import { loadStateDict } from '../io/checkpoint.js';
import { writeSafetensors } from '../io/safetensors.js';
import { writeFileAtomic } from '../io/atomic.js';
import { CAVMAEFT, FT_MODES, HEAD_PARAM_PREFIX, buildModel, loadInto, resolveModelConfig, type AnyModel, type CavmaeConfig, type FtMode } from '../models/index.js';
import { buildLabelMap, computeSampleWeights, loadDataset, loadLabelCsv, readWeights, resolveLabels, type Dataset, type LabelMap } from '../data/datafile.js';
import { createLoader } from '../data/loader.js';
import { Tensor } from '../tensor/tensor.js';
import { UserError, fileError } from '../util/errors.js';
import { FT_META } from '../eval/embed.js';
import { evaluateClassifier, type ClassifierEval, type ClassifierLoss } from '../eval/evaluate.js';
import { JsonlLogger } from './logger.js';
import { headAndBaseGroups } from './optim.js';
import { makeSchedule } from './schedule.js';
import { scheduleConfig, type ScheduleKind } from './pretrain.js';
import {
  checkSameRun,
  makeAdam,
  openRun,
  restoreCheckpoint,
  stepsPerEpoch,
  stopMessage,
  trainLoop,
  truncateLogAfter,
  writeModelFile,
  type LoopResult,
} from './run.js';

export interface FinetuneOptions {
  data: string;
  val: string;
  out: string;
  /** Pretrained (CAVMAE) or fine-tuned (CAVMAEFT) weights; absent: from scratch with --config. */
  init?: string;
  /** Model config for a from-scratch run (preset or JSON), or to override the checkpoint's. */
  config?: string | Record<string, unknown>;
  /** The classifier: CAVMAEFT, or the CAV-MAE Sync one (default: a Sync --config or --init picks Sync; src/train/sync-finetune.ts). */
  kind?: 'cavmae-ft' | 'cavmae-sync-ft';
  labelCsv?: string;
  mode?: string;
  lr?: number;
  headLr?: number;
  batchSize?: number;
  epochs?: number;
  schedule?: ScheduleKind;
  lrStart?: number;
  lrStep?: number;
  lrDecay?: number;
  warmupSteps?: number;
  minLrRatio?: number;
  beta1?: number;
  beta2?: number;
  weightDecay?: number;
  loss?: 'bce' | 'ce' | 'auto';
  freezeBase?: boolean;
  mixup?: number;
  labelSmooth?: number;
  freqm?: number;
  timem?: number;
  noise?: boolean;
  /** Balanced sampling: weights from the data (true) or from a weight file. */
  balanced?: boolean;
  weights?: string;
  wa?: boolean;
  waStart?: number;
  waEnd?: number;
  frameAgg?: boolean;
  accum?: number;
  bf16?: boolean;
  seed?: number;
  maxSteps?: number;
  maxMinutes?: number;
  checkpointEvery?: number;
  keepCheckpoints?: number;
  resume?: boolean;
  workers?: number;
  quiet?: boolean;
  log?: (msg: string) => void;
}

export interface FinetuneRunConfig {
  task: 'finetune';
  data: string;
  val: string;
  init: string | null;
  model: Record<string, unknown>;
  labels: { mids: string[]; names: string[] };
  mode: FtMode;
  seed: number;
  batchSize: number;
  epochs: number;
  accum: number;
  lr: number;
  headLr: number;
  schedule: { kind: ScheduleKind; start: number; step: number; decay: number; warmupSteps: number | null; minLrRatio: number };
  beta1: number;
  beta2: number;
  weightDecay: number;
  loss: ClassifierLoss;
  freezeBase: boolean;
  mixup: number;
  labelSmooth: number;
  freqm: number;
  timem: number;
  noise: boolean;
  balanced: boolean;
  weights: string | null;
  wa: boolean;
  waStart: number;
  waEnd: number;
  frameAgg: boolean;
  bf16: boolean;
}

export interface FinetuneResult {
  out: string;
  model: string;
  loop: LoopResult;
  planned: number;
  final: ClassifierEval;
  /** How the final weights were chosen. */
  weights: string;
  history: EpochRecord[];
}

interface EpochRecord {
  epoch: number;
  step: number;
  metrics: Record<string, number>;
}

const num = (v: number | undefined, d: number): number => (v === undefined ? d : v);

/** The label index: the CSV, else the labels of train + val in natural order. */
export function labelIndex(o: FinetuneOptions, train: Dataset, val: Dataset): LabelMap {
  const map = o.labelCsv ? loadLabelCsv(o.labelCsv) : buildLabelMap(train, val);
  if (map.numLabels === 0) throw fileError(train.path, 'no item has a label; fine-tuning needs labelled data (and --label-csv)');
  return map;
}

/** The fine-tuning model config: from --config, else the checkpoint's; label_dim = the label count. */
function finetuneModelConfig(o: FinetuneOptions, K: number, init: ReturnType<typeof loadStateDict> | undefined): CavmaeConfig {
  if (!init && o.config === undefined) throw new UserError('finetune: pass --init <pretrained model> (or --config <preset> to train from scratch)');
  return resolveModelConfig(o.init ?? 'config', init?.tensors ?? new Map(), init?.metadata ?? {}, { config: o.config, kind: 'cavmae-ft', overrides: { label_dim: K } });
}

export async function finetune(o: FinetuneOptions): Promise<FinetuneResult> {
  const sync = await import('./sync-finetune.js'); // imported lazily: it builds on this module
  if (sync.wantsSyncFinetune(o)) return sync.syncFinetune(o);
  const log = o.log ?? ((m: string) => process.stderr.write(`cavmae: ${m}\n`));
  const { folder, checkpointer, resumed } = openRun(o.out, o.resume ?? false, log, o);
  const train = loadDataset(o.data);
  const val = loadDataset(o.val);
  const labelMap = labelIndex(o, train, val);
  const K = labelMap.numLabels;
  const trainLabels = resolveLabels(train, labelMap);
  resolveLabels(val, labelMap); // unknown labels in --val are an error now, not after training
  const init = o.init && !resumed ? loadStateDict(o.init) : undefined;
  // On resume the weights come from the checkpoint; the config must still be derivable.
  const initForConfig = init ?? (o.init ? loadStateDict(o.init) : undefined);
  const modelConfig = finetuneModelConfig(o, K, initForConfig);
  const mode = (o.mode ?? 'multimodal') as FtMode;
  if (!['multimodal', 'audioonly', 'videoonly'].includes(mode)) throw new UserError(`--mode must be multimodal, audioonly or videoonly (got "${o.mode}"); the missing* modes are inference-only (${FT_MODES.join(', ')})`);
  const lossKind: ClassifierLoss = o.loss === undefined || o.loss === 'auto' ? (trainLabels.every((l) => l.length === 1) ? 'ce' : 'bce') : o.loss;
  if (lossKind !== 'bce' && lossKind !== 'ce') throw new UserError(`--loss must be bce, ce or auto, got "${o.loss as string}"`);
  const T = modelConfig.audio_length;
  const rc: FinetuneRunConfig = {
    task: 'finetune',
    data: resolve(o.data),
    val: resolve(o.val),
    init: o.init ? resolve(o.init) : null,
    model: { ...modelConfig },
    labels: { mids: labelMap.mids, names: labelMap.names },
    mode,
    seed: num(o.seed, 0),
    batchSize: num(o.batchSize, 36),
    epochs: num(o.epochs, 15),
    accum: num(o.accum, 1),
    lr: num(o.lr, 5e-5),
    headLr: num(o.headLr, 100),
    schedule: {
      kind: o.schedule ?? 'multistep',
      start: num(o.lrStart, 5),
      step: num(o.lrStep, 1),
      decay: num(o.lrDecay, 0.5),
      warmupSteps: o.warmupSteps ?? null,
      minLrRatio: num(o.minLrRatio, 0.1),
    },
    beta1: num(o.beta1, 0.95),
    beta2: num(o.beta2, 0.999),
    weightDecay: num(o.weightDecay, 5e-7),
    loss: lossKind,
    freezeBase: o.freezeBase ?? false,
    mixup: num(o.mixup, 0.5),
    labelSmooth: num(o.labelSmooth, 0.1),
    freqm: num(o.freqm, 48),
    timem: num(o.timem, Math.round((192 * T) / 1024)),
    noise: o.noise ?? true,
    balanced: o.balanced ?? false,
    weights: o.weights ? resolve(o.weights) : null,
    wa: o.wa ?? true,
    waStart: num(o.waStart, 3),
    waEnd: num(o.waEnd, 15),
    frameAgg: o.frameAgg ?? mode !== 'audioonly',
    bf16: o.bf16 ?? false,
  };
  validateRunConfig(rc);
  if (resumed) checkSameRun(resumed.state.config as Record<string, unknown>, rc as unknown as Record<string, unknown>, resumed.path);

  const model = buildModel(modelConfig, { seed: rc.seed }) as CAVMAEFT;
  if (init) {
    const tensors = new Map(init.tensors);
    const head = tensors.get(`${HEAD_PARAM_PREFIX}1.weight`);
    if (head && head.shape[0] !== K) {
      log(`${o.init}: its head has ${head.shape[0]} classes, the labels ${K}: the head starts fresh`);
      for (const k of [...tensors.keys()]) if (k.startsWith(HEAD_PARAM_PREFIX)) tensors.delete(k);
    }
    const report = loadInto(model, tensors, o.init!);
    log(`initialised from ${o.init}: ${report.missing.length} missing key(s) (fresh: ${report.missing.slice(0, 4).join(', ') || 'none'}), ${report.unexpected.length} unused`);
  }
  if (rc.freezeBase) model.arena.setRequiresGrad((p) => !p.name.startsWith(HEAD_PARAM_PREFIX), false);
  const layout = model.arena.params.filter((p) => p.requiresGrad).map((p) => ({ name: p.name, offset: p.offset, length: p.size }));
  const groups = headAndBaseGroups(layout, { headLr: rc.headLr, freezeBase: rc.freezeBase });
  const optimizer = makeAdam(model, groups, rc);

  let weights: Float64Array | undefined;
  if (rc.weights) weights = readWeights(rc.weights, train.items.length);
  else if (rc.balanced) weights = computeSampleWeights(trainLabels, K);
  const loader = createLoader(train, {
    batchSize: rc.batchSize,
    train: true,
    seed: rc.seed,
    targetLength: T,
    imageSize: modelConfig.img_size,
    labelMap,
    mixup: rc.mixup,
    labelSmooth: rc.labelSmooth,
    freqm: rc.freqm,
    timem: rc.timem,
    noise: rc.noise,
    weights,
    workers: o.workers ?? 2,
  });
  const spe = stepsPerEpoch(loader, rc.accum);
  const schedule = makeSchedule(scheduleConfig(rc, spe));
  const start = { epoch: 0, batchInEpoch: 0, globalStep: 0 };
  // Mutated by the epoch-end hook (a holder object keeps TypeScript's narrowing honest).
  const track: { history: EpochRecord[]; best: { epoch: number; value: number } | null } = { history: [], best: null };
  if (resumed) {
    restoreCheckpoint(resumed, model, optimizer);
    Object.assign(start, { epoch: resumed.state.epoch, batchInEpoch: resumed.state.batchInEpoch, globalStep: resumed.state.globalStep });
    track.history = (resumed.state.history as EpochRecord[] | undefined) ?? [];
    track.best = (resumed.state.best as typeof track.best | undefined) ?? null;
    truncateLogAfter(folder.log, start.globalStep);
    log(`resuming ${folder.dir} at step ${start.globalStep} (epoch ${start.epoch + 1}, batch ${start.batchInEpoch})`);
  }
  writeFileAtomic(folder.runJson, JSON.stringify({ ...rc, budget: { maxSteps: o.maxSteps ?? null, maxMinutes: o.maxMinutes ?? null } }, null, 1) + '\n');
  const epochsDir = join(folder.dir, 'epochs');
  const bestPath = join(folder.dir, 'best.safetensors');
  const mainMetric = rc.loss === 'ce' ? 'acc' : 'mAP';
  const meta = { [FT_META.labels]: JSON.stringify(rc.labels), [FT_META.loss]: rc.loss, [FT_META.mode]: rc.mode, 'cavmae.task': 'finetune' };
  const logger = new JsonlLogger(folder.log);
  if (!resumed) logger.log({ kind: 'info', step: 0, message: 'finetune', params: model.arena.numTrainable, stepsPerEpoch: spe, classes: K, loss: rc.loss });
  const needA = mode !== 'videoonly';
  const needV = mode !== 'audioonly';
  const S = modelConfig.img_size;
  const planned = Math.min(rc.epochs * spe, o.maxSteps ?? Infinity);
  let loop: LoopResult;
  try {
    loop = await trainLoop({
      folder,
      checkpointer,
      logger,
      model,
      optimizer,
      schedule,
      loader,
      epochs: rc.epochs,
      accum: rc.accum,
      maxSteps: o.maxSteps,
      maxMinutes: o.maxMinutes,
      start,
      bf16: rc.bf16,
      label: 'finetune',
      samplesPerStep: rc.batchSize,
      quiet: o.quiet,
      extraState: () => ({ config: rc, history: track.history, best: track.best }),
      microStep: (batch, ctx) => {
        const B = batch.size;
        const logits = model.forward(
          ctx.tape,
          { audio: needA ? new Tensor([B, T, 128], batch.audio) : undefined, image: needV ? new Tensor([B, 3, S, S], batch.image) : undefined },
          mode,
        );
        const loss = rc.loss === 'ce' ? ops.crossEntropy(ctx.tape, logits, batch.labels) : ops.bceWithLogits(ctx.tape, logits, batch.labels);
        ctx.tape.backward(loss, Float32Array.of(1 / ctx.groupSize));
        return { loss: loss.item(), acc: batchAccuracy(logits.data, batch.labels, B, K) };
      },
      endOfEpoch: async (epoch, step) => {
        const r = await evaluateClassifier(model, val, { mode, labelMap, loss: rc.loss, frameAgg: false, batchSize: rc.batchSize, workers: o.workers, bf16: rc.bf16 });
        const metrics = { loss: r.loss, mAP: r.stats.mAP, mAUC: r.stats.mAUC, dprime: r.stats.dprime, acc: r.stats.acc };
        track.history = [...track.history.filter((h) => h.epoch !== epoch), { epoch, step, metrics }];
        const e1 = epoch + 1;
        if (rc.wa && e1 >= rc.waStart && e1 <= rc.waEnd) {
          mkdirSync(epochsDir, { recursive: true });
          writeModelFile(join(epochsDir, `epoch-${e1}.safetensors`), model, meta);
        }
        const value = metrics[mainMetric];
        if (!track.best || value > track.best.value) {
          track.best = { epoch, value };
          if (!rc.wa) writeModelFile(bestPath, model, meta);
        }
        return metrics;
      },
    });
  } finally {
    logger.close();
    await loader.close();
  }

  // The final weights: weight averaging, else the best epoch, else the current weights.
  let chosen = `the weights after step ${loop.globalStep}`;
  if (rc.wa) {
    const files: string[] = [];
    for (let e = rc.waStart; e <= Math.min(rc.waEnd, loop.epoch); e++) {
      const p = join(epochsDir, `epoch-${e}.safetensors`);
      if (existsSync(p)) files.push(p);
    }
    if (files.length) {
      averageInto(model, files);
      chosen = `the mean of epochs ${rc.waStart}..${rc.waStart + files.length - 1} (weight averaging)`;
    } else log(`no epoch in ${rc.waStart}..${rc.waEnd} finished; using the current weights instead of weight averaging`);
  } else if (track.best && existsSync(bestPath)) {
    model.arena.load(loadStateDict(bestPath).tensors, bestPath);
    chosen = `the best epoch (${track.best.epoch + 1}, ${mainMetric} ${track.best.value.toFixed(4)})`;
  }
  const final = await evaluateClassifier(model, val, { mode, labelMap, loss: rc.loss, frameAgg: rc.frameAgg, batchSize: rc.batchSize, workers: o.workers, bf16: rc.bf16 });
  writeModelFile(folder.model, model, meta);
  writeSafetensors(join(folder.dir, 'predictions.safetensors'), new Map([
    ['pred', { dtype: 'F32' as const, shape: [final.N, final.K], data: final.probs }],
    ['target', { dtype: 'F32' as const, shape: [final.N, final.K], data: final.target }],
  ]), { data: rc.val, mode, loss: rc.loss, frames: JSON.stringify(final.frames) });
  const result = {
    task: 'finetune',
    out: folder.dir,
    model: folder.model,
    stop: loop.reason,
    steps: loop.globalStep,
    planned,
    epochsDone: loop.epoch,
    secondsThisRun: loop.seconds,
    weights: chosen,
    loss: rc.loss,
    mode,
    final: { mAP: final.stats.mAP, mAUC: final.stats.mAUC, dprime: final.stats.dprime, acc: final.stats.acc, frames: final.frames, perFrame: final.perFrame.map((s, i) => ({ frame: final.frames[i], mAP: s.mAP, acc: s.acc })) },
    history: track.history,
  };
  writeFileAtomic(folder.result, JSON.stringify(result, null, 1) + '\n');
  log(stopMessage(loop, planned));
  return { out: folder.dir, model: folder.model, loop, planned, final, weights: chosen, history: track.history };
}

function validateRunConfig(rc: FinetuneRunConfig): void {
  const pos = (v: number, what: string, int = false): void => {
    if (!(v > 0) || !Number.isFinite(v) || (int && !Number.isInteger(v))) throw new UserError(`${what} must be a positive ${int ? 'integer' : 'number'}, got ${v}`);
  };
  pos(rc.batchSize, '--batch-size', true);
  pos(rc.epochs, '--epochs', true);
  pos(rc.accum, '--accum', true);
  pos(rc.lr, '--lr');
  pos(rc.headLr, '--head-lr');
  if (!(rc.mixup >= 0 && rc.mixup <= 1)) throw new UserError(`--mixup must be a probability in [0, 1], got ${rc.mixup}`);
  if (!(rc.labelSmooth >= 0 && rc.labelSmooth < 1)) throw new UserError(`--label-smooth must be in [0, 1), got ${rc.labelSmooth}`);
  if (!(rc.freqm >= 0 && rc.timem >= 0)) throw new UserError('--freqm and --timem must be >= 0');
  if (!(Number.isInteger(rc.waStart) && Number.isInteger(rc.waEnd) && rc.waStart >= 1 && rc.waEnd >= rc.waStart)) {
    throw new UserError(`--wa-start/--wa-end must be epochs 1 <= start <= end, got ${rc.waStart}..${rc.waEnd}`);
  }
}

/** Share of rows whose argmax logit is the argmax of the (soft) target. */
export function batchAccuracy(logits: Float32Array, target: Float32Array, B: number, K: number): number {
  let hit = 0;
  for (let b = 0; b < B; b++) {
    let bl = 0;
    let bt = 0;
    for (let k = 1; k < K; k++) {
      if (logits[b * K + k] > logits[b * K + bl]) bl = k;
      if (target[b * K + k] > target[b * K + bt]) bt = k;
    }
    if (bl === bt) hit++;
  }
  return hit / B;
}

/**
 * Weight averaging as the reference: every tensor summed in float32 in epoch order, then divided
 * by the number of checkpoints (an element-wise mean, not an ensemble).
 */
export function averageInto(model: Pick<AnyModel, 'arena'>, files: string[]): void {
  const sum = new Float32Array(model.arena.size);
  for (const f of files) {
    const { tensors } = loadStateDict(f);
    for (const p of model.arena.params) {
      const t = tensors.get(p.name);
      if (!t || t.data.length !== p.size) throw fileError(f, `parameter ${p.name} missing or of the wrong size`);
      const o = p.offset;
      for (let i = 0; i < p.size; i++) sum[o + i] = Math.fround(sum[o + i] + t.data[i]);
    }
  }
  const n = files.length;
  const data = model.arena.data;
  for (let i = 0; i < sum.length; i++) data[i] = Math.fround(sum[i] / n);
}
