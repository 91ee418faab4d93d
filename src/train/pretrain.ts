/**
 * `cavmae pretrain`: self-supervised CAV-MAE pretraining (spec 4.1, 4.2) and its variants.
 *
 * Design contract:
 * - Defaults are the reference recipe (AS-2M base): Adam betas (0.95, 0.999), weight decay 5e-7
 *   as L2, lr 5e-5, batch 48, 25 epochs, MultiStepLR per epoch with start 10 / step 5 / decay 0.5,
 *   λc 0.01, λmae 1, masking 0.75 unstructured, noise + roll augmentation on, no mixup or
 *   SpecAugment. Additions for CPU users: gradient accumulation, the Sync recipe's cosine schedule
 *   with warm-up, bf16 GEMMs, contrastive groups (DataParallel's per-replica negatives),
 *   --max-steps / --max-minutes, --init from a checkpoint, model variants.
 * - Loss terms, the masks and the forward pass are the model's (src/models/cavmae.ts); CLI flags
 *   for λc, mask ratio and mode, bidirectional NCE and groups are written into the model config,
 *   so model.safetensors records exactly what was trained.
 * - Evaluation at every epoch end on --val: the same masked forward (masks from a fixed seed,
 *   so epochs are comparable) and zero-shot retrieval of the unmasked pooled embeddings in both
 *   directions (R@1/5/10, class-match@1 when labelled).
 * - Exact resumption: see run.ts.
 * - CAV-MAE Sync (`"model": "cavmae-sync"`, e.g. the preset sync-tiny): (segment, frame) pairs
 *   from the Sync loader, the Sync recipe as defaults (--recipe), --init through loadSyncInit,
 *   and validation by clip-level (--strategy) and segment-level retrieval: src/train/sync-*.ts.
 */
import { resolve } from 'node:path';
import { Tape } from '../autograd/tape.js';
import { loadStateDict, formatKeyReport } from '../io/checkpoint.js';
import { buildModel, isSyncKind, loadInto, readConfigArg, resolveConfig, CAVMAE, CAVMAESync, VARIANTS, type CavmaeConfig, type Variant } from '../models/index.js';
import { MASK_MODES, type MaskMode } from '../models/masking.js';
import { buildLabelMap, loadDataset, type Dataset } from '../data/datafile.js';
import { createLoader } from '../data/loader.js';
import { syncLoaderOptions } from '../data/sync.js';
import { writeFileAtomic } from '../io/atomic.js';
import { Tensor } from '../tensor/tensor.js';
import { UserError } from '../util/errors.js';
import { embedDataset, firstLabels } from '../eval/embed.js';
import { CLIP_STRATEGIES, evaluateRetrieval, type ClipStrategy } from '../eval/retrieval.js';
import { JsonlLogger } from './logger.js';
import { makeSchedule, type ScheduleConfig } from './schedule.js';
import { NO_AUGMENT, PRETRAIN_RECIPES, applyRecipeToConfig, initSyncModel, noiseFor, recipeFor, syncPretrainScalars, type PretrainAugment } from './sync-pretrain.js';
import { evaluateSyncPretrain } from './sync-eval.js';
import {
  allTrainableGroup,
  checkSameRun,
  makeAdam,
  openRun,
  restoreCheckpoint,
  runRecords,
  stepRng,
  stepsPerEpoch,
  stopMessage,
  trainLoop,
  truncateLogAfter,
  writeModelFile,
  type LoopResult,
} from './run.js';

export type ScheduleKind = 'multistep' | 'cosine' | 'constant';

export interface PretrainOptions {
  data: string;
  val?: string;
  /** Preset name, JSON file, or config object. */
  config: string | Record<string, unknown>;
  out: string;
  variant?: Variant;
  /**
   * Defaults of the optimisation: 'cavmae' (the reference AS-2M recipe) or 'sync' (the CAV-MAE
   * Sync recipe: lr 2e-4, batch 512, cosine with 10% warm-up to 0.1·lr, λc 0.1, no noise);
   * default: 'sync' for a Sync model, else 'cavmae'. Explicit options win.
   */
  recipe?: string;
  /** Sync models: clip similarity of the validation retrieval (default diagonal_mean). */
  strategy?: string;
  /** Initial weights (e.g. an ImageNet MAE adapted with `cavmae adapt-mae`, or a CAV-MAE). */
  init?: string;
  lr?: number;
  batchSize?: number;
  epochs?: number;
  schedule?: ScheduleKind;
  lrStart?: number;
  lrStep?: number;
  lrDecay?: number;
  /** Cosine: warm-up steps (default 10% of all steps) and final lr ratio (default 0.1). */
  warmupSteps?: number;
  minLrRatio?: number;
  beta1?: number;
  beta2?: number;
  weightDecay?: number;
  contrastWeight?: number;
  maeWeight?: number;
  maskRatio?: number;
  maskRatioA?: number;
  maskRatioV?: number;
  maskMode?: string;
  bidirectional?: boolean;
  contrastiveGroups?: number;
  normPixLoss?: boolean;
  accum?: number;
  bf16?: boolean;
  seed?: number;
  /** Noise + time-roll augmentation of the fbank (reference pretraining: on). */
  noise?: boolean;
  /** Loader augmentation: mixup, SpecAugment, level, time shift (default: the recipe's; CAV-MAE models only). */
  augment?: Partial<PretrainAugment>;
  maxSteps?: number;
  maxMinutes?: number;
  /** Checkpoint every N optimizer steps (0: only at epoch ends). */
  checkpointEvery?: number;
  keepCheckpoints?: number;
  resume?: boolean;
  workers?: number;
  quiet?: boolean;
  /** Zero-shot retrieval on --val at each evaluation (default true). */
  evalRetrieval?: boolean;
  /** Evaluate on --val every N epochs (default 1) and after the last epoch. */
  evalEvery?: number;
  /** Messages (default: stderr). */
  log?: (msg: string) => void;
}

/** Everything that determines the computation (stored in checkpoints, compared on --resume). */
export interface PretrainRunConfig {
  task: 'pretrain';
  data: string;
  val: string | null;
  model: Record<string, unknown>;
  init: string | null;
  seed: number;
  batchSize: number;
  epochs: number;
  accum: number;
  lr: number;
  schedule: { kind: ScheduleKind; start: number; step: number; decay: number; warmupSteps: number | null; minLrRatio: number };
  beta1: number;
  beta2: number;
  weightDecay: number;
  noise: boolean;
  augment: PretrainAugment;
  bf16: boolean;
}

export interface PretrainResult {
  out: string;
  model: string;
  loop: LoopResult;
  planned: number;
  lastEval?: Record<string, number>;
  config: CavmaeConfig;
}

const num = (v: number | undefined, d: number): number => (v === undefined ? d : v);

/** The model config: preset/file + variant + the loss and masking flags. */
export function pretrainModelConfig(o: PretrainOptions): CavmaeConfig {
  const partial = { ...readConfigArg(o.config) };
  const where = typeof o.config === 'string' ? o.config : 'config';
  if (partial.model === 'cavmae-ft' || partial.model === 'cavmae-sync-ft' || partial.label_dim !== undefined)
    throw new UserError(`${where}: is a fine-tuning config; pretraining needs a CAVMAE or CAVMAESync config (e.g. the preset "tiny", "base" or "sync-tiny")`);
  if (!isSyncKind(String(partial.model))) partial.model = 'cavmae';
  applyRecipeToConfig(partial, recipeFor(o.recipe, String(partial.model), o.config), o, where);
  if (o.variant !== undefined) {
    if (!VARIANTS.includes(o.variant)) throw new UserError(`--variant must be one of ${VARIANTS.join(', ')}, got "${o.variant}"`);
    partial.variant = o.variant;
  }
  const variant = (partial.variant ?? 'cavmae') as Variant;
  if (variant === 'vanilla-av-mae' && partial.modality_specific_depth !== 0) {
    // One joint encoder of the same total depth (paper table 1's vanilla AV-MAE).
    const msd = Number(partial.modality_specific_depth ?? 11);
    const shared = Number(partial.shared_depth ?? 12 - msd);
    partial.modality_specific_depth = 0;
    partial.shared_depth = msd + shared;
  }
  const noContrast = variant === 'av-mae' || variant === 'vanilla-av-mae' || variant === 'audio-mae' || variant === 'visual-mae';
  if (o.contrastWeight !== undefined) {
    if (noContrast && o.contrastWeight !== 0) throw new UserError(`--contrast-weight: variant "${variant}" has no contrastive term (λc = 0)`);
    partial.contrast_loss_weight = o.contrastWeight;
  } else if (noContrast) partial.contrast_loss_weight = 0;
  if (o.maeWeight !== undefined) partial.mae_loss_weight = o.maeWeight;
  if (o.maskRatio !== undefined) partial.mask_ratio_a = partial.mask_ratio_v = o.maskRatio;
  if (o.maskRatioA !== undefined) partial.mask_ratio_a = o.maskRatioA;
  if (o.maskRatioV !== undefined) partial.mask_ratio_v = o.maskRatioV;
  if (o.maskMode !== undefined) {
    if (!MASK_MODES.includes(o.maskMode as MaskMode)) throw new UserError(`--mask-mode must be one of ${MASK_MODES.join(', ')}, got "${o.maskMode}"`);
    partial.mask_mode = o.maskMode;
  }
  if (o.bidirectional !== undefined) partial.bidirect_contrast = o.bidirectional;
  if (o.contrastiveGroups !== undefined) partial.contrastive_groups = o.contrastiveGroups;
  if (o.normPixLoss !== undefined) partial.norm_pix_loss = o.normPixLoss;
  return resolveConfig(partial, where);
}

export function pretrainRunConfig(o: PretrainOptions, model: CavmaeConfig): PretrainRunConfig {
  const positive = (v: number, what: string, int = false): number => {
    if (!(v > 0) || !Number.isFinite(v) || (int && !Number.isInteger(v))) throw new UserError(`${what} must be a positive ${int ? 'integer' : 'number'}, got ${v}`);
    return v;
  };
  const recipe = recipeFor(o.recipe, model.model, o.config);
  const d = PRETRAIN_RECIPES[recipe];
  const augment = { ...(d.augment ?? NO_AUGMENT), ...(o.augment ?? {}) };
  if (isSyncKind(model.model) && Object.values(augment).some((v) => v !== 0)) throw new UserError('augmentation: the CAV-MAE Sync loader has no audio augmentation (spec 8.2); leave it off');
  const schedule = o.schedule ?? d.schedule;
  if (!['multistep', 'cosine', 'constant'].includes(schedule)) throw new UserError(`--schedule must be multistep, cosine or constant, got "${schedule}"`);
  const warmup = o.warmupSteps ?? d.warmupSteps;
  if (warmup !== undefined && !(Number.isInteger(warmup) && warmup >= 0)) throw new UserError(`--warmup-steps must be an integer >= 0, got ${warmup}`);
  return {
    task: 'pretrain',
    data: resolve(o.data),
    val: o.val ? resolve(o.val) : null,
    model: { ...model },
    init: o.init ? resolve(o.init) : null,
    seed: num(o.seed, 0),
    batchSize: positive(num(o.batchSize, d.batchSize), '--batch-size', true),
    epochs: positive(num(o.epochs, d.epochs), '--epochs', true),
    accum: positive(num(o.accum, 1), '--accum', true),
    lr: positive(num(o.lr, d.lr), '--lr'),
    schedule: {
      kind: schedule,
      start: num(o.lrStart, 10),
      step: num(o.lrStep, 5),
      decay: num(o.lrDecay, 0.5),
      warmupSteps: warmup ?? null,
      minLrRatio: num(o.minLrRatio, d.minLrRatio),
    },
    beta1: num(o.beta1, d.beta1),
    beta2: num(o.beta2, d.beta2),
    weightDecay: num(o.weightDecay, d.weightDecay),
    noise: noiseFor(o.noise, recipe, isSyncKind(model.model)),
    augment,
    bf16: o.bf16 ?? d.bf16 ?? false,
  };
}

/** The lr schedule of a run, given its steps per epoch. */
export function scheduleConfig(rc: { lr: number; epochs: number; schedule: PretrainRunConfig['schedule'] }, spe: number): ScheduleConfig {
  const s = rc.schedule;
  switch (s.kind) {
    case 'multistep':
      return { kind: 'multistep', lr: rc.lr, start: s.start, step: s.step, gamma: s.decay };
    case 'cosine': {
      const total = rc.epochs * spe;
      const warmupFraction = s.warmupSteps === null ? 0.1 : Math.min(0.99, s.warmupSteps / total);
      return { kind: 'cosine', lr: rc.lr, totalIterations: total, warmupFraction, minLrRatio: s.minLrRatio };
    }
    default:
      return { kind: 'constant', lr: rc.lr };
  }
}

export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  const log = o.log ?? ((m: string) => process.stderr.write(`cavmae: ${m}\n`));
  const { folder, checkpointer, resumed } = openRun(o.out, o.resume ?? false, log, o);
  const modelConfig = pretrainModelConfig(o);
  const rc = pretrainRunConfig(o, modelConfig);
  if (resumed) checkSameRun(resumed.state.config as Record<string, unknown>, rc as unknown as Record<string, unknown>, resumed.path);

  const train = loadDataset(rc.data);
  const val = rc.val ? loadDataset(rc.val) : undefined;
  const model = buildModel(modelConfig, { seed: rc.seed }) as CAVMAE | CAVMAESync;
  const strategy = o.strategy as ClipStrategy | undefined;
  if (strategy !== undefined && (!(model instanceof CAVMAESync) || !CLIP_STRATEGIES.includes(strategy)))
    throw new UserError(model instanceof CAVMAESync ? `--strategy must be one of ${CLIP_STRATEGIES.join(', ')}, got "${strategy}"` : '--strategy: clip strategies apply to CAV-MAE Sync models (CAV-MAE validation uses pooled clip vectors)');
  if (rc.init && !resumed && model instanceof CAVMAESync) log(`initialised from ${rc.init}: ${initSyncModel(model, rc.init)}`);
  else if (rc.init && !resumed) {
    const { tensors } = loadStateDict(rc.init);
    const report = loadInto(model, tensors, rc.init, { allowMissing: () => true });
    log(`initialised from ${rc.init}: ${formatKeyReport(report).split('\n')[0]}`);
  }
  const optimizer = makeAdam(model, allTrainableGroup(model), rc);
  const loaderBase = { batchSize: rc.batchSize, train: true, seed: rc.seed, imageSize: modelConfig.img_size, labelMap: buildLabelMap(train), workers: o.workers ?? 2 };
  const loader = createLoader(
    train,
    model instanceof CAVMAESync
      ? syncLoaderOptions(loaderBase, modelConfig.audio_length, model.config.total_frame) // one random (segment, frame) pair per clip
      : { ...loaderBase, targetLength: modelConfig.audio_length, noise: rc.noise, ...rc.augment },
  );
  const spe = stepsPerEpoch(loader, rc.accum);
  const schedule = makeSchedule(scheduleConfig(rc, spe));
  const start = { epoch: 0, batchInEpoch: 0, globalStep: 0 };
  if (resumed) {
    restoreCheckpoint(resumed, model, optimizer);
    Object.assign(start, { epoch: resumed.state.epoch, batchInEpoch: resumed.state.batchInEpoch, globalStep: resumed.state.globalStep });
    truncateLogAfter(folder.log, start.globalStep);
    log(`resuming ${folder.dir} at step ${start.globalStep} (epoch ${start.epoch + 1}, batch ${start.batchInEpoch})`);
  }
  writeFileAtomic(folder.runJson, JSON.stringify({ ...rc, recipe: recipeFor(o.recipe, modelConfig.model, o.config), budget: { maxSteps: o.maxSteps ?? null, maxMinutes: o.maxMinutes ?? null } }, null, 1) + '\n');
  const logger = new JsonlLogger(folder.log);
  if (!resumed) logger.log({ kind: 'info', step: 0, message: 'pretrain', params: model.arena.numTrainable, stepsPerEpoch: spe, batches: loader.numBatches });
  const T = modelConfig.audio_length;
  const S = modelConfig.img_size;
  let lastEval: Record<string, number> | undefined;
  const planned = Math.min(rc.epochs * spe, o.maxSteps ?? Infinity);
  const evalEvery = o.evalEvery ?? 1;
  if (!(Number.isInteger(evalEvery) && evalEvery >= 1)) throw new UserError(`--eval-every must be a positive integer (epochs), got ${evalEvery}`);
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
      label: 'pretrain',
      samplesPerStep: rc.batchSize,
      quiet: o.quiet,
      extraState: () => ({ config: rc }),
      microStep: (batch, ctx) => {
        const B = batch.size;
        const out = model.forward(ctx.tape, { audio: new Tensor([B, T, 128], batch.audio), image: new Tensor([B, 3, S, S], batch.image) }, { rng: stepRng(rc.seed, ctx.step, ctx.micro) });
        ctx.tape.backward(out.loss, Float32Array.of(1 / ctx.groupSize));
        return model instanceof CAVMAESync ? syncPretrainScalars(out) : pretrainScalars(out);
      },
      endOfEpoch: val
        ? async (epoch) => {
            if ((epoch + 1) % evalEvery !== 0 && epoch + 1 !== rc.epochs) return undefined;
            const evalOpts = { batchSize: rc.batchSize, seed: rc.seed, bf16: rc.bf16, retrieval: o.evalRetrieval ?? true, workers: o.workers };
            if (model instanceof CAVMAESync) return (lastEval = await evaluateSyncPretrain(model, val, { ...evalOpts, strategy }));
            lastEval = await evaluatePretrain(model, val, { batchSize: rc.batchSize, seed: rc.seed, bf16: rc.bf16, retrieval: o.evalRetrieval ?? true, workers: o.workers });
            return lastEval;
          }
        : undefined,
    });
  } finally {
    logger.close();
    await loader.close();
  }
  writeModelFile(folder.model, model, { 'cavmae.task': 'pretrain', 'cavmae.steps': String(loop.globalStep) });
  if (!lastEval) {
    const evals = runRecords(folder).filter((r) => r.kind === 'eval');
    if (evals.length) lastEval = numericFields(evals[evals.length - 1]);
  }
  const result = { task: 'pretrain', out: folder.dir, model: folder.model, stop: loop.reason, steps: loop.globalStep, planned, epochsDone: loop.epoch, secondsThisRun: loop.seconds, train: loop.recent, eval: lastEval ?? null };
  writeFileAtomic(folder.result, JSON.stringify(result, null, 1) + '\n');
  log(stopMessage(loop, planned));
  return { out: folder.dir, model: folder.model, loop, planned, lastEval, config: modelConfig };
}

/** The scalars of one pretraining forward (as the reference logs them, per device). */
export function pretrainScalars(out: { loss: Tensor; lossMaeA: Tensor; lossMaeV: Tensor; lossC: Tensor; cAcc: number }): Record<string, number> {
  return { loss: out.loss.item(), loss_mae_a: out.lossMaeA.item(), loss_mae_v: out.lossMaeV.item(), loss_c: out.lossC.item(), c_acc: out.cAcc };
}

function numericFields(r: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(r)) if (typeof v === 'number' && !['step', 'epoch', 'time'].includes(k)) out[k] = v;
  return out;
}

/**
 * Validation of a pretraining model: the masked forward's losses (masks from a fixed seed) and
 * zero-shot retrieval in both directions on the unmasked embeddings.
 */
export async function evaluatePretrain(
  model: CAVMAE,
  val: Dataset,
  o: { batchSize: number; seed: number; bf16?: boolean; retrieval?: boolean; workers?: number },
): Promise<Record<string, number>> {
  const c = model.config;
  const out: Record<string, number> = {};
  const n = val.items.length;
  const B = Math.min(o.batchSize, n);
  const labelMap = buildLabelMap(val);
  const loader = createLoader(val, {
    batchSize: B,
    train: false,
    dropLast: true,
    targetLength: c.audio_length,
    imageSize: c.img_size,
    labelMap,
    workers: o.workers ?? 2,
  });
  try {
    const sums: Record<string, number> = {};
    let count = 0;
    for await (const batch of loader.batches(0, 0)) {
      const tp = new Tape({ grad: false, bf16: o.bf16 ?? false });
      const r = model.forward(
        tp,
        { audio: new Tensor([batch.size, c.audio_length, 128], batch.audio), image: new Tensor([batch.size, 3, c.img_size, c.img_size], batch.image) },
        { rng: stepRng(o.seed, batch.batchIndex, 0, 0x6576616c) },
      );
      for (const [k, v] of Object.entries(pretrainScalars(r))) sums[k] = (sums[k] ?? 0) + v;
      count++;
    }
    for (const [k, v] of Object.entries(sums)) out[k] = v / count;
  } finally {
    await loader.close();
  }
  const d = model.dims;
  if ((o.retrieval ?? true) && d.hasAudio && d.hasVideo) {
    const e = await embedDataset(model, val, { batchSize: B, labelMap, workers: o.workers, bf16: o.bf16 });
    const labels = firstLabels(val, labelMap);
    const usable = labels && labels.every((l) => l >= 0) ? labels : undefined;
    const r = evaluateRetrieval({ data: e.audio!, n: e.n, dim: e.dim }, { data: e.video!, n: e.n, dim: e.dim }, { labels: usable });
    // Mean pairwise cosine of each side: near 1 means the embeddings collapsed to one point.
    out.a_mean_cos = meanPairwiseCosine(e.audio!, e.n, e.dim);
    out.v_mean_cos = meanPairwiseCosine(e.video!, e.n, e.dim);
    for (const [dir, m] of [['a2v', r.audioToVideo], ['v2a', r.videoToAudio]] as const) {
      out[`${dir}_r1`] = m.r1;
      out[`${dir}_r5`] = m.r5;
      out[`${dir}_r10`] = m.r10;
      if (m.classMatchAt1 !== undefined) out[`${dir}_class1`] = m.classMatchAt1;
    }
  }
  return out;
}

/** Mean cosine over all pairs i != j of unit rows: (|sum of rows|^2 - n) / (n (n - 1)), O(n D). */
export function meanPairwiseCosine(x: Float32Array, n: number, dim: number): number {
  if (n < 2) return NaN;
  const sum = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) sum[d] += x[i * dim + d];
  let s2 = 0;
  for (let d = 0; d < dim; d++) s2 += sum[d] * sum[d];
  return (s2 - n) / (n * (n - 1));
}
