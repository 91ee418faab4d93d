/**
 * `cavmae pretrain`: self-supervised pretraining of any model of the family: CAV-MAE (and its
 * table-1 variants) and CAV-MAE Sync (`"model": "cavmae-sync"`, e.g. the preset sync-tiny).
 *
 * Design contract:
 * - Defaults come from the recipe (src/train/recipes.ts; default: the model family's own). The
 *   CAV-MAE recipe is the reference AS-2M one: Adam betas (0.95, 0.999), weight decay 5e-7 as L2,
 *   lr 5e-5, batch 48, 25 epochs, MultiStepLR per epoch with start 10 / step 5 / decay 0.5, λc
 *   0.01, λmae 1, masking 0.75 unstructured, noise + roll augmentation on, no mixup or
 *   SpecAugment. Additions for CPU users: gradient accumulation, the Sync recipe's cosine schedule
 *   with warm-up, bf16 GEMMs, contrastive groups (DataParallel's per-replica negatives),
 *   --max-steps / --max-minutes, --init from a checkpoint, model variants.
 * - Loss terms, the masks and the forward pass are the model's (src/models/cavmae.ts); CLI flags
 *   for λc, mask ratio and mode, bidirectional NCE and groups are written into the model config,
 *   so model.safetensors records exactly what was trained.
 * - The per-family strategy (PRETRAIN_STRATEGY): the batches (CAV-MAE: whole clips with the
 *   reference augmentation; Sync: one random (segment, frame) pair per clip and epoch, segment
 *   length = the config's audio_length, no augmentation, src/data/sync.ts) and --init (CAV-MAE: any
 *   checkpoint, missing keys allowed; Sync: `loadSyncInit`, CAV-MAE / IN-initial weights with the
 *   audio position tables recomputed for the segment grid, Sync tokens fresh).
 * - Evaluation at every --eval-every epoch end on --val: the same masked forward (masks from a
 *   fixed seed, so epochs are comparable) and zero-shot retrieval of the unmasked pair features
 *   in both directions (src/eval/features.ts; R@1/5/10, class-match@1 when labelled): CAV-MAE one
 *   pooled vector per clip (plus the mean pairwise cosine, a collapse check), Sync the clip level
 *   (--strategy, default diagonal_mean) and the segment level (`seg_*`).
 * - Exact resumption: see run.ts.
 */
import { resolve } from 'node:path';
import { Tape } from '../autograd/tape.js';
import { loadStateDict, formatKeyReport } from '../io/checkpoint.js';
import {
  MEL_BINS,
  VARIANTS,
  VARIANT_TRAITS,
  buildModel,
  kindTraits,
  loadInto,
  loadSyncInit,
  readConfigArg,
  resolveConfig,
  type CAVMAE,
  type CavmaeConfig,
  type PretrainOutput,
  type Variant,
} from '../models/index.js';
import { MASK_MODES, type MaskMode } from '../models/masking.js';
import { buildLabelMap, loadDataset, type Dataset } from '../data/datafile.js';
import { createLoader, type LoaderOptions } from '../data/loader.js';
import { syncLoaderOptions } from '../data/sync.js';
import { Tensor } from '../tensor/tensor.js';
import { OptionError, UserError } from '../util/errors.js';
import { firstLabels } from '../eval/embed.js';
import { datasetFeatures } from '../eval/features.js';
import { CLIP_STRATEGIES, type ClipStrategy } from '../eval/retrieval.js';
import {
  SYNC_PROTOCOL,
  clipLevelReport,
  segmentLevelReport,
  singleLabels,
  type LevelRetrievalReport,
} from '../eval/retrieval-report.js';
import { readPairLabels } from '../eval/segments.js';
import { bf16IsFast } from '../kernels/index.js';
import {
  NO_AUGMENT,
  PRETRAIN_RECIPES,
  applyRecipeToConfig,
  noiseFor,
  recipeFor,
  type PretrainAugment,
} from './recipes.js';
import {
  allTrainableGroup,
  checkSameRun,
  commonRunConfig,
  finishRun,
  makeAdam,
  openRun,
  runRecords,
  runTraining,
  stepRng,
  writeModelFile,
  type CommonRunConfig,
  type LoopResult,
  type TrainOptions,
} from './run.js';

export type { ScheduleKind } from './run.js';

export interface PretrainOptions extends TrainOptions {
  /** Loader augmentation: mixup, SpecAugment, level, time shift (default: the recipe's; CAV-MAE models only). */
  augment?: Partial<PretrainAugment>;
  val?: string;
  /** Preset name, JSON file, or config object. */
  config: string | Record<string, unknown>;
  variant?: Variant;
  /**
   * Defaults of the optimisation: 'cavmae' (the reference AS-2M recipe) or 'sync' (the CAV-MAE
   * Sync recipe: lr 2e-4, batch 512, cosine with 10% warm-up to 0.1·lr, λc 0.1, no noise);
   * default: 'sync' for a Sync model, else 'cavmae'. Explicit options win.
   */
  recipe?: string;
  /** Sync models: clip similarity of the validation retrieval (default diagonal_mean). */
  strategy?: string;
  contrastWeight?: number;
  maeWeight?: number;
  maskRatio?: number;
  maskRatioA?: number;
  maskRatioV?: number;
  maskMode?: string;
  bidirectional?: boolean;
  contrastiveGroups?: number;
  normPixLoss?: boolean;
  /** Zero-shot retrieval on --val at each evaluation (default true). */
  evalRetrieval?: boolean;
  /** Evaluate on --val every N epochs (default 1) and after the last epoch. */
  evalEvery?: number;
}

/** Everything that determines the computation (stored in checkpoints, compared on --resume). */
export interface PretrainRunConfig extends CommonRunConfig {
  task: 'pretrain';
  data: string;
  val: string | null;
  model: Record<string, unknown>;
  init: string | null;
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

/** The model config: preset/file + variant + the loss and masking flags. */
export function pretrainModelConfig(o: PretrainOptions): CavmaeConfig {
  const partial = { ...readConfigArg(o.config) };
  const where = typeof o.config === 'string' ? o.config : 'config';
  const kt = kindTraits({
    model: partial.model === undefined ? 'cavmae' : (partial.model as CavmaeConfig['model']),
  });
  if (kt?.task === 'finetune' || partial.label_dim !== undefined)
    throw new UserError(
      `${where}: is a fine-tuning config; pretraining needs a CAVMAE or CAVMAESync config (e.g. the preset "tiny", "base" or "sync-tiny")`,
    );
  partial.model = kt?.pretrainKind ?? 'cavmae';
  applyRecipeToConfig(
    partial,
    recipeFor(o.recipe, partial.model as CavmaeConfig['model'], o.config),
    o,
    where,
  );
  if (o.variant !== undefined) {
    if (!VARIANTS.includes(o.variant))
      throw new OptionError(
        (n) => `${n('variant')} must be one of ${VARIANTS.join(', ')}, got "${o.variant}"`,
      );
    partial.variant = o.variant;
  }
  const variant = (partial.variant ?? 'cavmae') as Variant;
  const vt = VARIANT_TRAITS[variant];
  if (vt?.jointEncoder && partial.modality_specific_depth !== 0) {
    // One joint encoder of the same total depth (paper table 1's vanilla AV-MAE).
    const msd = Number(partial.modality_specific_depth ?? 11);
    const shared = Number(partial.shared_depth ?? 12 - msd);
    partial.modality_specific_depth = 0;
    partial.shared_depth = msd + shared;
  }
  // The variants defined by λc = 0 (av-mae, vanilla-av-mae, the one-modality MAEs).
  const noContrast = vt !== undefined && vt.contrastWeight === 0;
  if (o.contrastWeight !== undefined) {
    if (noContrast && o.contrastWeight !== 0)
      throw new OptionError(
        (n) => `${n('contrastWeight')}: variant "${variant}" has no contrastive term (λc = 0)`,
      );
    partial.contrast_loss_weight = o.contrastWeight;
  } else if (noContrast) partial.contrast_loss_weight = 0;
  if (o.maeWeight !== undefined) partial.mae_loss_weight = o.maeWeight;
  if (o.maskRatio !== undefined) partial.mask_ratio_a = partial.mask_ratio_v = o.maskRatio;
  if (o.maskRatioA !== undefined) partial.mask_ratio_a = o.maskRatioA;
  if (o.maskRatioV !== undefined) partial.mask_ratio_v = o.maskRatioV;
  if (o.maskMode !== undefined) {
    if (!MASK_MODES.includes(o.maskMode as MaskMode))
      throw new OptionError(
        (n) => `${n('maskMode')} must be one of ${MASK_MODES.join(', ')}, got "${o.maskMode}"`,
      );
    partial.mask_mode = o.maskMode;
  }
  if (o.bidirectional !== undefined) partial.bidirect_contrast = o.bidirectional;
  if (o.contrastiveGroups !== undefined) partial.contrastive_groups = o.contrastiveGroups;
  if (o.normPixLoss !== undefined) partial.norm_pix_loss = o.normPixLoss;
  return resolveConfig(partial, where);
}

export function pretrainRunConfig(o: PretrainOptions, model: CavmaeConfig): PretrainRunConfig {
  const recipe = recipeFor(o.recipe, model.model, o.config);
  const d = PRETRAIN_RECIPES[recipe];
  const augment = { ...(d.augment ?? NO_AUGMENT), ...(o.augment ?? {}) };
  const augmented = Object.entries(augment).filter(([, v]) => v !== 0);
  if (kindTraits(model).sync && augmented.length > 0)
    throw new OptionError(
      (n) =>
        `augmentation (${augmented.map(([k]) => n(k)).join(', ')}): the CAV-MAE Sync loader has no audio augmentation (src/data/sync.ts); leave it off`,
    );
  return {
    task: 'pretrain',
    data: resolve(o.data),
    val: o.val ? resolve(o.val) : null,
    model: { ...model },
    init: o.init ? resolve(o.init) : null,
    ...commonRunConfig(o, { ...d, multistep: [10, 5, 0.5] }),
    noise: noiseFor(o.noise, recipe, kindTraits(model).sync),
    augment,
    // A recipe's bf16 only where the CPU computes bf16 natively (kernels/index.ts bf16IsFast).
    bf16: o.bf16 ?? (d.bf16 === true && bf16IsFast()),
  };
}

/** The batches and --init of each model family (see the contract). */
const PRETRAIN_STRATEGY = {
  cavmae: {
    loaderOptions: (
      base: Omit<LoaderOptions, 'targetLength'>,
      c: CavmaeConfig,
      rc: Pick<PretrainRunConfig, 'noise' | 'augment'>,
    ): LoaderOptions => ({ ...base, targetLength: c.audio_length, noise: rc.noise, ...rc.augment }),
    init(model: CAVMAE, path: string): string {
      const report = loadInto(model, loadStateDict(path).tensors, path, { allowMissing: () => true });
      return formatKeyReport(report).split('\n')[0];
    },
  },
  sync: {
    // One random (segment, frame) pair per clip and epoch (the middle pair in evaluation).
    loaderOptions: (base: Omit<LoaderOptions, 'targetLength'>, c: CavmaeConfig): LoaderOptions =>
      syncLoaderOptions(base, c.audio_length, c.total_frame),
    init(model: CAVMAE, path: string): string {
      const r = loadSyncInit(model, path);
      const first = formatKeyReport(r).split('\n')[0];
      return `${first}${r.dropped.length ? `; recomputed for the ${model.dims.fRows} x ${model.dims.tCols} segment grid: ${r.dropped.join(', ')}` : ''}`;
    },
  },
};
const strategyOf = (c: CavmaeConfig) => PRETRAIN_STRATEGY[kindTraits(c).sync ? 'sync' : 'cavmae'];

export async function pretrain(o: PretrainOptions): Promise<PretrainResult> {
  const log = o.log ?? ((m: string) => process.stderr.write(`cavmae: ${m}\n`));
  const run = openRun(o.out, o.resume ?? false, log, o);
  const { folder, resumed } = run;
  const modelConfig = pretrainModelConfig(o);
  const rc = pretrainRunConfig(o, modelConfig);
  checkSameRun(run, rc);

  const train = loadDataset(rc.data);
  const val = rc.val ? loadDataset(rc.val) : undefined;
  const model = buildModel(modelConfig, { seed: rc.seed }) as CAVMAE;
  const strategy = strategyOf(modelConfig);
  const clipStrategy = o.strategy as ClipStrategy | undefined;
  const perPair = model.dims.framesPerClip > 1;
  if (clipStrategy !== undefined && (!perPair || !CLIP_STRATEGIES.includes(clipStrategy)))
    throw new OptionError((n) =>
      perPair
        ? `${n('strategy')} must be one of ${CLIP_STRATEGIES.join(', ')}, got "${clipStrategy}"`
        : `${n('strategy')}: clip strategies apply to CAV-MAE Sync models (CAV-MAE validation uses pooled clip vectors)`,
    );
  if (rc.init && !resumed) log(`initialised from ${rc.init}: ${strategy.init(model, rc.init)}`);
  const optimizer = makeAdam(model, allTrainableGroup(model), rc);
  const base = {
    batchSize: rc.batchSize,
    train: true,
    seed: rc.seed,
    imageSize: modelConfig.img_size,
    labelMap: buildLabelMap(train),
    workers: o.workers ?? 2,
  };
  const loader = createLoader(train, strategy.loaderOptions(base, modelConfig, rc));
  const [T, S] = [modelConfig.audio_length, modelConfig.img_size];
  let lastEval: Record<string, number> | undefined;
  const evalEvery = o.evalEvery ?? 1;
  if (!(Number.isInteger(evalEvery) && evalEvery >= 1))
    throw new OptionError((n) => `${n('evalEvery')} must be a positive integer (epochs), got ${evalEvery}`);
  const { loop, planned } = await runTraining({
    run,
    rc,
    runJson: { recipe: recipeFor(o.recipe, modelConfig.model, o.config) },
    budget: o,
    model,
    optimizer,
    loader,
    label: 'pretrain',
    info: { message: 'pretrain', batches: loader.numBatches },
    log,
    microStep: (batch, ctx) => {
      const B = batch.size;
      const out = model.forward(
        ctx.tape,
        { audio: new Tensor([B, T, MEL_BINS], batch.audio), image: new Tensor([B, 3, S, S], batch.image) },
        { rng: stepRng(rc.seed, ctx.step, ctx.micro) },
      );
      ctx.tape.backward(out.loss, Float32Array.of(1 / ctx.groupSize));
      return pretrainScalars(out);
    },
    endOfEpoch: val
      ? async (epoch) => {
          if ((epoch + 1) % evalEvery !== 0 && epoch + 1 !== rc.epochs) return undefined;
          return (lastEval = await evaluatePretrain(model, val, {
            batchSize: rc.batchSize,
            seed: rc.seed,
            bf16: rc.bf16,
            retrieval: o.evalRetrieval ?? true,
            workers: o.workers,
            strategy: clipStrategy,
          }));
        }
      : undefined,
  });
  writeModelFile(folder.model, model, {
    'cavmae.task': 'pretrain',
    'cavmae.steps': String(loop.globalStep),
    // The clip strategy retrieval was validated with: what the API and the index compare clips by.
    ...(perPair ? { 'cavmae.clip_strategy': clipStrategy ?? 'diagonal_mean' } : {}),
  });
  if (!lastEval) {
    const evals = runRecords(folder).filter((r) => r.kind === 'eval');
    if (evals.length) lastEval = numericFields(evals[evals.length - 1]);
  }
  finishRun(folder, loop, planned, log, { task: 'pretrain' }, { train: loop.recent, eval: lastEval ?? null });
  return { out: folder.dir, model: folder.model, loop, planned, lastEval, config: modelConfig };
}

/** The scalars of one pretraining forward (as the references log them, per device); Sync adds the global/local NCE terms. */
export function pretrainScalars(
  out: Pick<
    PretrainOutput,
    'loss' | 'lossMaeA' | 'lossMaeV' | 'lossC' | 'cAcc' | 'lossCGlobal' | 'lossCLocal'
  >,
): Record<string, number> {
  const s: Record<string, number> = {
    loss: out.loss.item(),
    loss_mae_a: out.lossMaeA.item(),
    loss_mae_v: out.lossMaeV.item(),
    loss_c: out.lossC.item(),
    c_acc: out.cAcc,
  };
  if (out.lossCGlobal) s.loss_c_global = out.lossCGlobal.item();
  if (out.lossCLocal) s.loss_c_local = out.lossCLocal.item();
  return s;
}

function numericFields(r: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(r))
    if (typeof v === 'number' && !['step', 'epoch', 'time'].includes(k)) out[k] = v;
  return out;
}

/**
 * Validation of a pretraining model: the masked forward's losses on the evaluation batches (masks
 * from a fixed seed; Sync: each clip's middle pair) and zero-shot retrieval in both directions on
 * the unmasked pair features (see the contract at the top).
 */
export async function evaluatePretrain(
  model: CAVMAE,
  val: Dataset,
  o: {
    batchSize: number;
    seed: number;
    bf16?: boolean;
    retrieval?: boolean;
    workers?: number;
    strategy?: ClipStrategy;
  },
): Promise<Record<string, number>> {
  const c = model.config;
  const out: Record<string, number> = {};
  const B = Math.min(o.batchSize, val.items.length);
  const labelMap = buildLabelMap(val);
  const loader = createLoader(
    val,
    strategyOf(c).loaderOptions(
      {
        batchSize: B,
        train: false,
        dropLast: true,
        imageSize: c.img_size,
        labelMap,
        workers: o.workers ?? 2,
      },
      c,
      { noise: false, augment: NO_AUGMENT },
    ),
  );
  try {
    const sums: Record<string, number> = {};
    let count = 0;
    for await (const batch of loader.batches(0, 0)) {
      const tp = new Tape({ grad: false, bf16: o.bf16 ?? false });
      const r = model.forward(
        tp,
        {
          audio: new Tensor([batch.size, c.audio_length, MEL_BINS], batch.audio),
          image: new Tensor([batch.size, 3, c.img_size, c.img_size], batch.image),
        },
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
  if (!(o.retrieval ?? true) || !d.hasAudio || !d.hasVideo) return out;
  const perPair = d.framesPerClip > 1;
  const f = await datasetFeatures(model, val, {
    clipsPerBatch: perPair ? undefined : B,
    workers: o.workers,
    bf16: o.bf16,
  });
  let labels: Int32Array | undefined;
  if (perPair) labels = singleLabels(val, f.indices);
  else {
    const first = firstLabels(val, labelMap);
    labels = first && Int32Array.from(f.indices, (i) => first[i]);
    if (labels && !labels.every((l) => l >= 0)) labels = undefined;
    // Mean pairwise cosine of each side: near 1 means the embeddings collapsed to one point.
    out.a_mean_cos = meanPairwiseCosine(f.audio!.data, f.audio!.n, f.audio!.dim);
    out.v_mean_cos = meanPairwiseCosine(f.video!.data, f.video!.n, f.video!.dim);
  }
  const reports: [string, LevelRetrievalReport][] = [
    ['', clipLevelReport(f, o.strategy ?? 'diagonal_mean', labels, SYNC_PROTOCOL)],
  ];
  if (perPair)
    reports.push([
      'seg_',
      segmentLevelReport(f, readPairLabels(val, f.indices, d.framesPerClip), SYNC_PROTOCOL, c.audio_length),
    ]);
  for (const [prefix, rep] of reports) {
    for (const [dir, m] of [
      ['a2v', rep.audioToVideo],
      ['v2a', rep.videoToAudio],
    ] as const) {
      out[`${prefix}${dir}_r1`] = m.r1;
      if (prefix === '') {
        out[`${dir}_r5`] = m.r5;
        out[`${dir}_r10`] = m.r10;
      }
      if (m.classMatchAt1 !== undefined) out[`${prefix}${dir}_class1`] = m.classMatchAt1;
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
