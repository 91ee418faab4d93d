/**
 * `cavmae finetune` with the CAV-MAE Sync classifier (spec 8.7: CAVMAESyncFT, the
 * self_attention_cls aggregator over the 16 per-pair features of a clip).
 *
 * Design contract:
 * - Chosen by `kind: 'cavmae-sync-ft'`, a Sync config (`"model": "cavmae-sync"` or
 *   `"cavmae-sync-ft"`, e.g. the preset sync-tiny-ft) or a Sync checkpoint as --init.
 * - Batches are whole clips: `batchSize` clips x F = total_frame (segment, frame) pairs, audio
 *   [B·F, L, 128] and image [B·F, 3, S, S] (`syncClipBatches`), labels [B, K] (label smoothing
 *   as the CAV-MAE loader). Clips are shuffled per epoch by a permutation that is a pure function
 *   of (seed, epoch), so a resumed run replays the same batches; the last partial batch is
 *   dropped. The Sync loader has no audio augmentation: mixup, SpecAugment, noise and balanced
 *   sampling are refused. Unreadable clips are left out of their batch (reported).
 * - Initialisation: a Sync pretraining checkpoint (its encoder and tokens; the head starts
 *   fresh), a Sync fine-tuning checkpoint (its head kept when the class count matches), or a
 *   CAV-MAE / IN-initial checkpoint with --config (the audio position tables recomputed for the
 *   segment grid, as `loadSyncInit`). --freeze-base trains the head only.
 * - Two Adam groups: the head (`isSyncFtHead`: cls_cls_token, classifier_layers, classifier_norm,
 *   classifier_head) at lr·head_lr, the rest at lr, under any schedule (src/train/schedule.ts).
 * - Validation every epoch on all pairs of every --val clip (loss, mAP, mAUC, d', acc), weight
 *   averaging / best epoch and the final files exactly as CAV-MAE fine-tuning; there is no frame
 *   aggregation to do (the head already reads all F pairs).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as ops from '../autograd/ops.js';
import { Tape } from '../autograd/tape.js';
import { loadStateDict } from '../io/checkpoint.js';
import { readSafetensorsHeader, writeSafetensors } from '../io/safetensors.js';
import { withFile } from '../io/bytes.js';
import { writeFileAtomic } from '../io/atomic.js';
import {
  CAVMAESyncFT,
  adaptToSyncGrid,
  buildModel,
  configFromMetadata,
  inferConfigFromShapes,
  isSyncFtHead,
  isSyncKind,
  isSyncOnlyParam,
  loadInto,
  readConfigArg,
  resolveModelConfig,
  type CavmaeConfig,
  type FtMode,
} from '../models/index.js';
import { loadDataset, resolveLabels, type Dataset, type LabelMap } from '../data/datafile.js';
import { labelVector } from '../data/augment.js';
import { Rng } from '../data/rng.js';
import type { Batch } from '../data/loader.js';
import { syncClipBatches, type SyncClipFailure } from '../data/sync.js';
import { Tensor } from '../tensor/tensor.js';
import { UserError, fileError } from '../util/errors.js';
import { FT_META } from '../eval/embed.js';
import { calculateStats } from '../eval/metrics.js';
import { meanLoss, toProbabilities, type ClassifierEval, type ClassifierLoss } from '../eval/evaluate.js';
import { JsonlLogger } from './logger.js';
import { headAndBaseGroups } from './optim.js';
import { makeSchedule } from './schedule.js';
import { scheduleConfig } from './pretrain.js';
import { averageInto, batchAccuracy, labelIndex, type FinetuneOptions, type FinetuneResult } from './finetune.js';
import { checkSameRun, makeAdam, openRun, restoreCheckpoint, stepsPerEpoch, stopMessage, trainLoop, truncateLogAfter, writeModelFile, type LoopResult } from './run.js';

/** The model kind of a checkpoint (its stored config, else the preset its shapes match). */
export function checkpointKind(path: string): string | undefined {
  let header: ReturnType<typeof readSafetensorsHeader> | undefined;
  try {
    header = withFile(path, (src) => readSafetensorsHeader(src));
  } catch {
    header = undefined; // not safetensors (a .pth): read it whole below
  }
  if (header) {
    const cfg = configFromMetadata(header.metadata, path);
    if (cfg) return String(cfg.model ?? 'cavmae');
    return inferConfigFromShapes(new Map(header.entries.map((e) => [e.name.replace(/^module\./, ''), { shape: e.shape }])))?.model;
  }
  const { tensors, metadata } = loadStateDict(path);
  const cfg = configFromMetadata(metadata, path);
  return cfg ? String(cfg.model ?? 'cavmae') : inferConfigFromShapes(tensors)?.model;
}

/** Whether a fine-tuning run uses the Sync classifier (see the contract). */
export function wantsSyncFinetune(o: Pick<FinetuneOptions, 'kind' | 'config' | 'init'>): boolean {
  if (o.kind !== undefined) {
    if (o.kind !== 'cavmae-ft' && o.kind !== 'cavmae-sync-ft') throw new UserError(`--kind must be cavmae-ft or cavmae-sync-ft, got "${o.kind as string}"`);
    return o.kind === 'cavmae-sync-ft';
  }
  if (o.config !== undefined) return isSyncKind(String(readConfigArg(o.config).model ?? 'cavmae'));
  if (o.init !== undefined) return isSyncKind(String(checkpointKind(o.init) ?? 'cavmae'));
  return false;
}

export interface SyncFinetuneRunConfig {
  task: 'finetune';
  kind: 'cavmae-sync-ft';
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
  schedule: { kind: 'multistep' | 'cosine' | 'constant'; start: number; step: number; decay: number; warmupSteps: number | null; minLrRatio: number };
  beta1: number;
  beta2: number;
  weightDecay: number;
  loss: ClassifierLoss;
  freezeBase: boolean;
  labelSmooth: number;
  wa: boolean;
  waStart: number;
  waEnd: number;
  bf16: boolean;
}

/** Clip batches for the training loop (the slice of DataLoader that trainLoop uses). */
export class SyncClipLoader {
  readonly batchSize: number;
  readonly size: number;
  private readonly labels: Int32Array[];
  private readonly failed = new Set<number>();

  constructor(
    readonly dataset: Dataset,
    private readonly o: { batchSize: number; seed: number; segmentLength: number; pairs: number; imageSize: number; labelMap: LabelMap; labelSmooth: number; audioNorm?: { mean: number; std: number } },
  ) {
    if (!(Number.isInteger(o.batchSize) && o.batchSize >= 1)) throw new UserError(`--batch-size must be a positive integer (clips), got ${o.batchSize}`);
    this.batchSize = o.batchSize;
    this.size = dataset.items.length;
    this.labels = resolveLabels(dataset, o.labelMap);
  }

  get numBatches(): number {
    return Math.floor(this.size / this.batchSize);
  }

  /** Dataset indices of epoch `epoch` in visiting order (Fisher-Yates from (seed, epoch)). */
  epochOrder(epoch: number): Int32Array {
    const order = Int32Array.from({ length: this.size }, (_, i) => i);
    const rng = Rng.derive(this.o.seed, 0x73796e63, epoch);
    for (let i = this.size - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      const t = order[i];
      order[i] = order[j];
      order[j] = t;
    }
    return order;
  }

  private async build(order: Int32Array, epoch: number, b: number): Promise<Batch> {
    const B = this.batchSize;
    const idx = order.subarray(b * B, (b + 1) * B);
    const report = (f: SyncClipFailure): void => {
      if (this.failed.has(f.index)) return;
      this.failed.add(f.index);
      process.stderr.write(`cavmae: warning: unreadable clip (entry ${f.index}, id "${f.id}"): ${f.message}; left out of its batches\n`);
    };
    let got: Batch | undefined;
    for await (const c of syncClipBatches(this.dataset, {
      segmentLength: this.o.segmentLength,
      pairs: this.o.pairs,
      imageSize: this.o.imageSize,
      audioMean: this.o.audioNorm?.mean,
      audioStd: this.o.audioNorm?.std,
      clipsPerBatch: B,
      order: idx,
      onFailure: report,
    })) {
      const K = this.o.labelMap.numLabels;
      const labels = new Float32Array(c.n * K);
      c.indices.forEach((i, r) => labels.set(labelVector(this.labels[i], K, this.o.labelSmooth), r * K));
      got = { audio: c.audio, image: c.image, labels, ids: c.ids, indices: c.indices, lambdas: new Float32Array(c.n).fill(NaN), size: c.n, epoch, batchIndex: b };
    }
    if (!got) throw fileError(this.dataset.path, `no clip of batch ${b} (epoch ${epoch + 1}) could be read: ${[...idx].map((i) => this.dataset.items[i].id).join(', ')}`);
    return got;
  }

  /** Batches of epoch `epoch` from `startBatch`, decoding one batch ahead of the consumer. */
  async *batches(epoch = 0, startBatch = 0): AsyncGenerator<Batch> {
    const order = this.epochOrder(epoch);
    const nb = this.numBatches;
    let next = startBatch < nb ? this.build(order, epoch, startBatch) : undefined;
    for (let b = startBatch; b < nb; b++) {
      const cur = await next!;
      next = b + 1 < nb ? this.build(order, epoch, b + 1) : undefined;
      next?.catch(() => {}); // surfaced when awaited
      yield cur;
    }
  }

  async close(): Promise<void> {}
}

/** Logits and metrics of a Sync classifier on every clip of a dataset (all pairs per clip). */
export async function evaluateSyncClassifier(
  model: CAVMAESyncFT,
  dataset: Dataset,
  o: { labelMap: LabelMap; loss: ClassifierLoss; clipsPerBatch?: number; bf16?: boolean; audioNorm?: { mean: number; std: number } },
): Promise<ClassifierEval & { ids: string[] }> {
  const c = model.config;
  const K = c.label_dim!;
  const F = c.total_frame;
  if (o.labelMap.numLabels !== K) throw new UserError(`the model has ${K} classes but the labels list ${o.labelMap.numLabels} (${o.labelMap.source})`);
  const all = resolveLabels(dataset, o.labelMap);
  const logitRows: Float32Array[] = [];
  const targetRows: Float32Array[] = [];
  const ids: string[] = [];
  const needA = model.mode !== 'videoonly';
  const needV = model.mode !== 'audioonly';
  const L = c.audio_length;
  const S = c.img_size;
  for await (const b of syncClipBatches(dataset, { segmentLength: L, pairs: F, imageSize: S, audioMean: o.audioNorm?.mean, audioStd: o.audioNorm?.std, clipsPerBatch: o.clipsPerBatch ?? 8 })) {
    const tp = new Tape({ grad: false, bf16: o.bf16 ?? false });
    const P = b.n * F;
    const logits = model.forward(tp, { audio: needA ? new Tensor([P, L, 128], b.audio) : undefined, image: needV ? new Tensor([P, 3, S, S], b.image) : undefined }); // [n, K]
    logitRows.push(Float32Array.from(logits.data));
    tp.reset();
    for (const i of b.indices) targetRows.push(labelVector(all[i], K, 0));
    ids.push(...b.ids);
  }
  const N = ids.length;
  if (N === 0) throw fileError(dataset.path, 'no clip could be read');
  const logitsAll = new Float32Array(N * K);
  let r = 0;
  for (const x of logitRows) {
    logitsAll.set(x, r);
    r += x.length;
  }
  const target = new Float32Array(N * K);
  targetRows.forEach((t, i) => target.set(t, i * K));
  const probs = toProbabilities(logitsAll, N, K, o.loss);
  const stats = calculateStats(probs, target, N, K);
  return { N, K, probs, target, loss: meanLoss(logitsAll, target, N, K, o.loss), frames: Array.from({ length: F }, (_, k) => k), perFrame: [], stats, ids };
}

const num = (v: number | undefined, d: number): number => (v === undefined ? d : v);

/** The Sync fine-tuning run (see the contract); same result shape as `finetune`. */
export async function syncFinetune(o: FinetuneOptions): Promise<FinetuneResult> {
  const log = o.log ?? ((m: string) => process.stderr.write(`cavmae: ${m}\n`));
  for (const [flag, given] of [
    ['--mixup', o.mixup !== undefined && o.mixup !== 0],
    ['--freqm', o.freqm !== undefined && o.freqm !== 0],
    ['--timem', o.timem !== undefined && o.timem !== 0],
    ['noise augmentation', o.noise === true],
    ['--bal', o.balanced === true],
    ['--weights', o.weights !== undefined],
  ] as const) {
    if (given) throw new UserError(`${flag}: the CAV-MAE Sync loader has no audio augmentation or balanced sampling (spec 8.2); leave it out`);
  }
  const { folder, checkpointer, resumed } = openRun(o.out, o.resume ?? false, log, o);
  const train = loadDataset(o.data);
  const val = loadDataset(o.val);
  const labelMap = labelIndex(o, train, val);
  const K = labelMap.numLabels;
  const trainLabels = resolveLabels(train, labelMap);
  resolveLabels(val, labelMap);
  if (!o.init && o.config === undefined) throw new UserError('finetune: pass --init <pretrained model> (or --config <preset> to train from scratch)');
  const init = o.init ? loadStateDict(o.init) : undefined;
  const initKind = o.init ? checkpointKind(o.init) : undefined;
  const overrides: Record<string, unknown> = { label_dim: K };
  if (o.mode !== undefined) overrides.mode = o.mode;
  // A CAV-MAE checkpoint's config is not a Sync one: then --config gives the Sync layout.
  if (init && !isSyncKind(String(initKind ?? 'cavmae')) && o.config === undefined)
    throw new UserError(`${o.init}: is a CAV-MAE (not Sync) checkpoint; pass --config with the Sync layout (e.g. sync-tiny-ft) to fine-tune the Sync classifier from it`);
  const modelConfig: CavmaeConfig = resolveModelConfig(o.init ?? 'config', init?.tensors ?? new Map(), init?.metadata ?? {}, { config: o.config, kind: 'cavmae-sync-ft', overrides });
  const mode = (modelConfig.mode ?? 'multimodal') as FtMode;
  const lossKind: ClassifierLoss = o.loss === undefined || o.loss === 'auto' ? (trainLabels.every((l) => l.length === 1) ? 'ce' : 'bce') : o.loss;
  if (lossKind !== 'bce' && lossKind !== 'ce') throw new UserError(`--loss must be bce, ce or auto, got "${o.loss as string}"`);
  const rc: SyncFinetuneRunConfig = {
    task: 'finetune',
    kind: 'cavmae-sync-ft',
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
    schedule: { kind: o.schedule ?? 'multistep', start: num(o.lrStart, 5), step: num(o.lrStep, 1), decay: num(o.lrDecay, 0.5), warmupSteps: o.warmupSteps ?? null, minLrRatio: num(o.minLrRatio, 0.1) },
    beta1: num(o.beta1, 0.95),
    beta2: num(o.beta2, 0.999),
    weightDecay: num(o.weightDecay, 5e-7),
    loss: lossKind,
    freezeBase: o.freezeBase ?? false,
    labelSmooth: num(o.labelSmooth, 0.1),
    wa: o.wa ?? true,
    waStart: num(o.waStart, 3),
    waEnd: num(o.waEnd, 15),
    bf16: o.bf16 ?? false,
  };
  const pos = (v: number, what: string, int = false): void => {
    if (!(v > 0) || !Number.isFinite(v) || (int && !Number.isInteger(v))) throw new UserError(`${what} must be a positive ${int ? 'integer' : 'number'}, got ${v}`);
  };
  pos(rc.batchSize, '--batch-size', true);
  pos(rc.epochs, '--epochs', true);
  pos(rc.accum, '--accum', true);
  pos(rc.lr, '--lr');
  pos(rc.headLr, '--head-lr');
  if (!(rc.labelSmooth >= 0 && rc.labelSmooth < 1)) throw new UserError(`--label-smooth must be in [0, 1), got ${rc.labelSmooth}`);
  if (!(Number.isInteger(rc.waStart) && Number.isInteger(rc.waEnd) && rc.waStart >= 1 && rc.waEnd >= rc.waStart))
    throw new UserError(`--wa-start/--wa-end must be epochs 1 <= start <= end, got ${rc.waStart}..${rc.waEnd}`);
  if (resumed) checkSameRun(resumed.state.config as Record<string, unknown>, rc as unknown as Record<string, unknown>, resumed.path);

  const model = buildModel(modelConfig, { seed: rc.seed }) as CAVMAESyncFT;
  if (init && !resumed) {
    const tensors = new Map(init.tensors);
    const head = tensors.get('classifier_head.weight');
    if (head && head.shape[0] !== K) {
      log(`${o.init}: its head has ${head.shape[0]} classes, the labels ${K}: the head starts fresh`);
      for (const k of [...tensors.keys()]) if (isSyncFtHead(k)) tensors.delete(k);
    }
    let allow = (name: string): boolean => isSyncFtHead(name);
    if (!isSyncKind(String(initKind ?? 'cavmae'))) {
      // CAV-MAE / IN-initial weights: the audio tables follow the segment grid (spec 8.5).
      const expected = new Map(model.arena.params.map((p) => [p.name, p.shape]));
      const adapted = adaptToSyncGrid(tensors, expected);
      tensors.clear();
      for (const [k, v] of adapted.tensors) tensors.set(k, v);
      const dropped = new Set(adapted.dropped);
      allow = (name) => isSyncFtHead(name) || isSyncOnlyParam(name) || dropped.has(name);
    }
    const report = loadInto(model, tensors, o.init!, { allowMissing: allow });
    log(`initialised from ${o.init}: ${report.missing.length} missing key(s) (fresh: ${report.missing.slice(0, 4).join(', ') || 'none'}${report.missing.length > 4 ? ', ...' : ''}), ${report.unexpected.length} unused`);
  }
  if (rc.freezeBase) model.arena.setRequiresGrad((p) => !isSyncFtHead(p.name), false);
  const layout = model.arena.params.filter((p) => p.requiresGrad).map((p) => ({ name: p.name, offset: p.offset, length: p.size }));
  const optimizer = makeAdam(model, headAndBaseGroups(layout, { headLr: rc.headLr, freezeBase: rc.freezeBase, isHead: isSyncFtHead }), rc);
  const c = model.config;
  const F = c.total_frame;
  const L = c.audio_length;
  const S = c.img_size;
  const loader = new SyncClipLoader(train, { batchSize: rc.batchSize, seed: rc.seed, segmentLength: L, pairs: F, imageSize: S, labelMap, labelSmooth: rc.labelSmooth });
  const spe = stepsPerEpoch(loader, rc.accum);
  const schedule = makeSchedule(scheduleConfig(rc, spe));
  const start = { epoch: 0, batchInEpoch: 0, globalStep: 0 };
  const track: { history: { epoch: number; step: number; metrics: Record<string, number> }[]; best: { epoch: number; value: number } | null } = { history: [], best: null };
  if (resumed) {
    restoreCheckpoint(resumed, model, optimizer);
    Object.assign(start, { epoch: resumed.state.epoch, batchInEpoch: resumed.state.batchInEpoch, globalStep: resumed.state.globalStep });
    track.history = (resumed.state.history as typeof track.history | undefined) ?? [];
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
  if (!resumed) logger.log({ kind: 'info', step: 0, message: 'finetune (CAV-MAE Sync classifier)', params: model.arena.numTrainable, stepsPerEpoch: spe, classes: K, loss: rc.loss, pairsPerClip: F });
  const needA = mode !== 'videoonly';
  const needV = mode !== 'audioonly';
  const evalOpts = { labelMap, loss: rc.loss, bf16: rc.bf16 };
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
        const B = batch.size; // clips
        const logits = model.forward(ctx.tape, {
          audio: needA ? new Tensor([B * F, L, 128], batch.audio) : undefined,
          image: needV ? new Tensor([B * F, 3, S, S], batch.image) : undefined,
        }); // [B, K]
        const loss = rc.loss === 'ce' ? ops.crossEntropy(ctx.tape, logits, batch.labels) : ops.bceWithLogits(ctx.tape, logits, batch.labels);
        ctx.tape.backward(loss, Float32Array.of(1 / ctx.groupSize));
        return { loss: loss.item(), acc: batchAccuracy(logits.data, batch.labels, B, K) };
      },
      endOfEpoch: async (epoch, step) => {
        const r = await evaluateSyncClassifier(model, val, evalOpts);
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
  const final = await evaluateSyncClassifier(model, val, evalOpts);
  writeModelFile(folder.model, model, meta);
  writeSafetensors(
    join(folder.dir, 'predictions.safetensors'),
    new Map([
      ['pred', { dtype: 'F32' as const, shape: [final.N, final.K], data: final.probs }],
      ['target', { dtype: 'F32' as const, shape: [final.N, final.K], data: final.target }],
    ]),
    { data: rc.val, mode, loss: rc.loss, ids: JSON.stringify(final.ids), pairs: String(F) },
  );
  const result = {
    task: 'finetune',
    kind: rc.kind,
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
    final: { mAP: final.stats.mAP, mAUC: final.stats.mAUC, dprime: final.stats.dprime, acc: final.stats.acc, clips: final.N, pairsPerClip: F },
    history: track.history,
  };
  writeFileAtomic(folder.result, JSON.stringify(result, null, 1) + '\n');
  log(stopMessage(loop, planned));
  return { out: folder.dir, model: folder.model, loop, planned, final, weights: chosen, history: track.history };
}
