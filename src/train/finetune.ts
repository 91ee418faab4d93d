/**
 * `cavmae finetune`: supervised fine-tuning of either classifier of the family (CAVMAEFT with the
 * mean-pooled mlp head, or with the CAV-MAE Sync aggregator over the F pair features of a clip),
 * linear probing and training from scratch.
 *
 * Design contract:
 * - Defaults are the AS-20K recipe: lr 5e-5 with the head at 100x ("mlp" group), batch 36,
 *   15 epochs, MultiStepLR start 5 / step 1 / decay 0.5, Adam (0.95, 0.999), wd 5e-7, label
 *   smoothing 0.1, weight averaging of epochs 3..15. The loss is BCE (multi-label) or CE with soft
 *   targets (single-label); `auto` picks CE when every training item has exactly one label.
 * - The kind: --kind, else the family of --config (a Sync config or preset: the Sync classifier),
 *   else of --init. The per-head strategy (FINETUNE_STRATEGY):
 *   mlp: whole clips from the loader with mixup 0.5, SpecAugment freqm 48 / timem 192 (timem
 *     scaled by audio_length/1024 for shorter inputs), noise + roll, optional balanced sampling;
 *     validation on the middle frame, the final evaluation with 10-frame probability aggregation.
 *   aggregator: batches of whole clips of F (segment, frame) pairs (src/train/clip-loader.ts); the
 *     Sync loader has no audio augmentation, so mixup, SpecAugment, noise and balanced sampling
 *     are refused; every evaluation reads all pairs of every clip.
 * - Initialisation: --init loads a pretrained model (decoder keys ignored, fresh head) or a
 *   fine-tuned one (its head kept when the class count matches); a Sync classifier also takes
 *   CAV-MAE / IN-initial weights with --config (the audio position tables recomputed for the
 *   segment grid, as `loadSyncInit`). Without --init the model is built from --config with fresh
 *   weights. --freeze-base trains the head only (linear probe): the base gets no gradient at all.
 *   Two Adam groups: the head (`isHeadParam`) at lr·head_lr, the rest at lr.
 * - Every epoch: validation (loss, mAP, mAUC, d', acc), the epoch's weights kept when it lies in
 *   wa_start..wa_end (1-based, as the reference's audio_model.<e>.pth) and best.safetensors when
 *   the main metric (mAP for BCE, acc for CE) improves.
 * - At the end: the element-wise mean of the kept epoch weights (or the best epoch's weights
 *   without --wa), then the final evaluation; the weights go to model.safetensors with the label
 *   names, loss and mode in the metadata, the probabilities and targets to
 *   predictions.safetensors (readable by `cavmae eval --pred`).
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as ops from '../autograd/ops.js';
import { loadStateDict } from '../io/checkpoint.js';
import { readSafetensorsHeader } from '../io/safetensors.js';
import { withFile } from '../io/bytes.js';
import {
  CAVMAEFT,
  FT_MODES,
  KIND_TRAITS,
  MEL_BINS,
  adaptToSyncGrid,
  buildModel,
  configFromMetadata,
  headOutputName,
  inferConfigFromShapes,
  isHeadParam,
  isSyncOnlyParam,
  kindTraits,
  loadInto,
  modeInputs,
  readConfigArg,
  resolveModelConfig,
  type AnyModel,
  type CavmaeConfig,
  type FtMode,
  type ModelKind,
} from '../models/index.js';
import {
  buildLabelMap,
  computeSampleWeights,
  loadDataset,
  loadLabelCsv,
  readWeights,
  resolveLabels,
  type Dataset,
  type LabelMap,
} from '../data/datafile.js';
import { createLoader } from '../data/loader.js';
import { Tensor } from '../tensor/tensor.js';
import { OptionError, fileError } from '../util/errors.js';
import { FT_META } from '../eval/embed.js';
import {
  evaluateClassifier,
  writePredictions,
  type ClassifierEval,
  type ClassifierLoss,
} from '../eval/evaluate.js';
import { argmaxAccuracy } from '../eval/metrics.js';
import { ClipLoader } from './clip-loader.js';
import { REFERENCE_ADAM } from './recipes.js';
import { headAndBaseGroups } from './optim.js';
import {
  checkSameRun,
  commonRunConfig,
  finishRun,
  makeAdam,
  openRun,
  positive,
  runTraining,
  writeModelFile,
  type CommonRunConfig,
  type LoopResult,
  type TrainOptions,
} from './run.js';

export interface FinetuneOptions extends TrainOptions {
  val: string;
  /** Model config for a from-scratch run (preset or JSON), or to override the checkpoint's. */
  config?: string | Record<string, unknown>;
  /** The classifier kind: cavmae-ft (mlp head) or cavmae-sync-ft (the Sync aggregator); default: the family of --config, else of --init. */
  kind?: 'cavmae-ft' | 'cavmae-sync-ft';
  labelCsv?: string;
  mode?: string;
  headLr?: number;
  loss?: 'bce' | 'ce' | 'auto';
  freezeBase?: boolean;
  mixup?: number;
  labelSmooth?: number;
  freqm?: number;
  timem?: number;
  /** Balanced sampling: weights from the data (true) or from a weight file. */
  balanced?: boolean;
  weights?: string;
  wa?: boolean;
  waStart?: number;
  waEnd?: number;
  frameAgg?: boolean;
}

export interface FinetuneRunConfig extends CommonRunConfig {
  task: 'finetune';
  /** Set for the Sync classifier only (runs of the CAV-MAE classifier keep the earlier run.json). */
  kind?: 'cavmae-sync-ft';
  data: string;
  val: string;
  init: string | null;
  model: Record<string, unknown>;
  labels: { mids: string[]; names: string[] };
  mode: FtMode;
  headLr: number;
  loss: ClassifierLoss;
  freezeBase: boolean;
  labelSmooth: number;
  wa: boolean;
  waStart: number;
  waEnd: number;
  bf16: boolean;
  /** mlp head only: the loader's augmentation and sampling, and frame aggregation. */
  mixup?: number;
  freqm?: number;
  timem?: number;
  noise?: boolean;
  balanced?: boolean;
  weights?: string | null;
  frameAgg?: boolean;
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
  if (map.numLabels === 0)
    throw new OptionError(
      (n) => `${train.path}: no item has a label; fine-tuning needs labelled data (and ${n('labelCsv')})`,
    );
  return map;
}

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
    return inferConfigFromShapes(
      new Map(header.entries.map((e) => [e.name.replace(/^module\./, ''), { shape: e.shape }])),
    )?.model;
  }
  const { tensors, metadata } = loadStateDict(path);
  const cfg = configFromMetadata(metadata, path);
  return cfg ? String(cfg.model ?? 'cavmae') : inferConfigFromShapes(tensors)?.model;
}

/** The classifier kind of a run (see the contract). */
export function finetuneKind(
  o: Pick<FinetuneOptions, 'kind' | 'config' | 'init'>,
): 'cavmae-ft' | 'cavmae-sync-ft' {
  if (o.kind !== undefined) {
    if (o.kind !== 'cavmae-ft' && o.kind !== 'cavmae-sync-ft')
      throw new OptionError(
        (n) => `${n('kind')} must be cavmae-ft or cavmae-sync-ft, got "${o.kind as string}"`,
      );
    return o.kind;
  }
  const family =
    o.config !== undefined
      ? readConfigArg(o.config).model
      : o.init !== undefined
        ? checkpointKind(o.init)
        : undefined;
  return KIND_TRAITS[(family as ModelKind | undefined) ?? 'cavmae']?.sync ? 'cavmae-sync-ft' : 'cavmae-ft';
}

/** The run options of each head that the other lacks, and its batches and evaluation. */
const FINETUNE_STRATEGY = {
  mlp: {
    runConfig(o: FinetuneOptions, mode: FtMode, T: number): Partial<FinetuneRunConfig> {
      return {
        mixup: num(o.mixup, 0.5),
        freqm: num(o.freqm, 48),
        timem: num(o.timem, Math.round((192 * T) / 1024)),
        noise: o.noise ?? true,
        balanced: o.balanced ?? false,
        weights: o.weights ? resolve(o.weights) : null,
        frameAgg: o.frameAgg ?? mode !== 'audioonly',
      };
    },
    loader(
      train: Dataset,
      rc: FinetuneRunConfig,
      c: CavmaeConfig,
      labelMap: LabelMap,
      trainLabels: Int32Array[],
      workers?: number,
    ) {
      let weights: Float64Array | undefined;
      if (rc.weights) weights = readWeights(rc.weights, train.items.length);
      else if (rc.balanced) weights = computeSampleWeights(trainLabels, labelMap.numLabels);
      return createLoader(train, {
        batchSize: rc.batchSize,
        train: true,
        seed: rc.seed,
        targetLength: c.audio_length,
        imageSize: c.img_size,
        labelMap,
        mixup: rc.mixup,
        labelSmooth: rc.labelSmooth,
        freqm: rc.freqm,
        timem: rc.timem,
        noise: rc.noise,
        weights,
        workers: workers ?? 2,
      });
    },
    predictionsMeta: (final: ClassifierEval): Record<string, string> => ({
      frames: JSON.stringify(final.frames),
    }),
    finalSummary: (final: ClassifierEval) => ({
      frames: final.frames,
      perFrame: final.perFrame.map((s, i) => ({ frame: final.frames[i], mAP: s.mAP, acc: s.acc })),
    }),
  },
  aggregator: {
    runConfig(o: FinetuneOptions): Partial<FinetuneRunConfig> {
      for (const [option, given] of [
        ['mixup', o.mixup !== undefined && o.mixup !== 0],
        ['freqm', o.freqm !== undefined && o.freqm !== 0],
        ['timem', o.timem !== undefined && o.timem !== 0],
        ['noise', o.noise === true],
        ['balanced', o.balanced === true],
        ['weights', o.weights !== undefined],
      ] as const) {
        if (given)
          throw new OptionError(
            (n) =>
              `${option === 'noise' ? 'noise augmentation' : n(option)}: the CAV-MAE Sync loader has no audio augmentation or balanced sampling (src/data/sync.ts); leave it out`,
          );
      }
      return { kind: 'cavmae-sync-ft' };
    },
    loader(train: Dataset, rc: FinetuneRunConfig, c: CavmaeConfig, labelMap: LabelMap) {
      return new ClipLoader(train, {
        batchSize: rc.batchSize,
        seed: rc.seed,
        segmentLength: c.audio_length,
        pairs: c.total_frame!,
        imageSize: c.img_size,
        labelMap,
        labelSmooth: rc.labelSmooth,
      });
    },
    predictionsMeta: (final: ClassifierEval): Record<string, string> => ({
      ids: JSON.stringify(final.ids),
      pairs: String(final.frames.length),
    }),
    finalSummary: (final: ClassifierEval) => ({ clips: final.N, pairsPerClip: final.frames.length }),
  },
};

/** The fine-tuning model config: from --config, else the checkpoint's; label_dim = the label count. */
function finetuneModelConfig(
  o: FinetuneOptions,
  kind: 'cavmae-ft' | 'cavmae-sync-ft',
  K: number,
  init: ReturnType<typeof loadStateDict> | undefined,
): CavmaeConfig {
  if (!init && o.config === undefined)
    throw new OptionError(
      (n) =>
        `finetune: pass ${n('init')} <pretrained model> (or ${n('config')} <preset> to train from scratch)`,
    );
  const overrides: Record<string, unknown> = { label_dim: K };
  if (KIND_TRAITS[kind].sync) {
    if (o.mode !== undefined) overrides.mode = o.mode;
    // A CAV-MAE checkpoint's config is not a Sync one: then --config gives the Sync layout.
    if (
      o.init &&
      o.config === undefined &&
      !KIND_TRAITS[(checkpointKind(o.init) as ModelKind | undefined) ?? 'cavmae']?.sync
    )
      throw new OptionError(
        (n) =>
          `${o.init}: is a CAV-MAE (not Sync) checkpoint; pass ${n('config')} with the Sync layout (e.g. sync-tiny-ft) to fine-tune the Sync classifier from it`,
      );
  }
  return resolveModelConfig(o.init ?? 'config', init?.tensors ?? new Map(), init?.metadata ?? {}, {
    config: o.config,
    kind,
    overrides,
  });
}

/**
 * --init: the checkpoint's weights into a fresh classifier. A head of another class count starts
 * fresh; CAV-MAE weights into a Sync classifier leave its own position tables and Sync tokens.
 */
function loadFinetuneInit(
  model: CAVMAEFT,
  init: ReturnType<typeof loadStateDict>,
  path: string,
  log: (m: string) => void,
): void {
  const K = model.config.label_dim!;
  const tensors = new Map(init.tensors);
  const head = tensors.get(headOutputName(model.head));
  if (head && head.shape[0] !== K) {
    log(`${path}: its head has ${head.shape[0]} classes, the labels ${K}: the head starts fresh`);
    for (const k of [...tensors.keys()]) if (isHeadParam(k)) tensors.delete(k);
  }
  let allow = isHeadParam;
  if (
    kindTraits(model.config).sync &&
    !KIND_TRAITS[(checkpointKind(path) as ModelKind | undefined) ?? 'cavmae']?.sync
  ) {
    const adapted = adaptToSyncGrid(tensors, new Map(model.arena.params.map((p) => [p.name, p.shape])));
    tensors.clear();
    for (const [k, v] of adapted.tensors) tensors.set(k, v);
    const dropped = new Set(adapted.dropped);
    allow = (name) => isHeadParam(name) || isSyncOnlyParam(name) || dropped.has(name);
  }
  const report = loadInto(model, tensors, path, { allowMissing: allow });
  log(
    `initialised from ${path}: ${report.missing.length} missing key(s) (fresh: ${report.missing.slice(0, 4).join(', ') || 'none'}${report.missing.length > 4 ? ', ...' : ''}), ${report.unexpected.length} unused`,
  );
}

export async function finetune(o: FinetuneOptions): Promise<FinetuneResult> {
  const log = o.log ?? ((m: string) => process.stderr.write(`cavmae: ${m}\n`));
  const kind = finetuneKind(o);
  const head = KIND_TRAITS[kind].head!;
  const strategy = FINETUNE_STRATEGY[head];
  if (head === 'aggregator') strategy.runConfig(o, 'multimodal', 0); // refuse the flags before touching the run folder
  const run = openRun(o.out, o.resume ?? false, log, o);
  const { folder, resumed } = run;
  const train = loadDataset(o.data);
  const val = loadDataset(o.val);
  const labelMap = labelIndex(o, train, val);
  const K = labelMap.numLabels;
  const trainLabels = resolveLabels(train, labelMap);
  resolveLabels(val, labelMap); // unknown labels in --val are an error now, not after training
  // On resume the weights come from the checkpoint; the config must still be derivable.
  const init = o.init ? loadStateDict(o.init) : undefined;
  const modelConfig = finetuneModelConfig(o, kind, K, init);
  let mode: FtMode;
  if (head === 'aggregator') mode = (modelConfig.mode ?? 'multimodal') as FtMode;
  else {
    mode = (o.mode ?? 'multimodal') as FtMode;
    if (!['multimodal', 'audioonly', 'videoonly'].includes(mode))
      throw new OptionError(
        (n) =>
          `${n('mode')} must be multimodal, audioonly or videoonly (got "${o.mode}"); the missing* modes are inference-only (${FT_MODES.join(', ')})`,
      );
  }
  const lossKind: ClassifierLoss =
    o.loss === undefined || o.loss === 'auto'
      ? trainLabels.every((l) => l.length === 1)
        ? 'ce'
        : 'bce'
      : o.loss;
  if (lossKind !== 'bce' && lossKind !== 'ce')
    throw new OptionError((n) => `${n('loss')} must be bce, ce or auto, got "${o.loss as string}"`);
  const rc: FinetuneRunConfig = {
    task: 'finetune',
    data: resolve(o.data),
    val: resolve(o.val),
    init: o.init ? resolve(o.init) : null,
    model: { ...modelConfig },
    labels: { mids: labelMap.mids, names: labelMap.names },
    mode,
    ...commonRunConfig(o, {
      lr: 5e-5,
      batchSize: 36,
      epochs: 15,
      schedule: 'multistep',
      multistep: [5, 1, 0.5],
      ...REFERENCE_ADAM,
    }),
    headLr: positive(num(o.headLr, 100), 'headLr'),
    loss: lossKind,
    freezeBase: o.freezeBase ?? false,
    labelSmooth: num(o.labelSmooth, 0.1),
    wa: o.wa ?? true,
    waStart: num(o.waStart, 3),
    waEnd: num(o.waEnd, 15),
    bf16: o.bf16 ?? false,
    ...strategy.runConfig(o, mode, modelConfig.audio_length),
  };
  validateRunConfig(rc);
  checkSameRun(run, rc);

  const model = buildModel(modelConfig, { seed: rc.seed }) as CAVMAEFT;
  if (init && !resumed) loadFinetuneInit(model, init, o.init!, log);
  if (rc.freezeBase) model.arena.setRequiresGrad((p) => !isHeadParam(p.name), false);
  const layout = model.arena.params
    .filter((p) => p.requiresGrad)
    .map((p) => ({ name: p.name, offset: p.offset, length: p.size }));
  const optimizer = makeAdam(
    model,
    headAndBaseGroups(layout, { headLr: rc.headLr, freezeBase: rc.freezeBase, isHead: isHeadParam }),
    rc,
  );
  const loader = strategy.loader(train, rc, modelConfig, labelMap, trainLabels, o.workers);

  // Mutated by the epoch-end hook (a holder object keeps TypeScript's narrowing honest).
  const track: { history: EpochRecord[]; best: { epoch: number; value: number } | null } = {
    history: [],
    best: null,
  };
  const epochsDir = join(folder.dir, 'epochs');
  const bestPath = join(folder.dir, 'best.safetensors');
  const mainMetric = rc.loss === 'ce' ? 'acc' : 'mAP';
  const meta = {
    [FT_META.labels]: JSON.stringify(rc.labels),
    [FT_META.loss]: rc.loss,
    [FT_META.mode]: rc.mode,
    'cavmae.task': 'finetune',
  };
  const need = modeInputs(mode);
  const F = model.dims.framesPerClip;
  const [T, S] = [modelConfig.audio_length, modelConfig.img_size];
  const evalOpts = {
    mode,
    labelMap,
    loss: rc.loss,
    batchSize: rc.batchSize,
    workers: o.workers,
    bf16: rc.bf16,
  };
  const { loop, planned } = await runTraining({
    run,
    rc,
    budget: o,
    model,
    optimizer,
    loader,
    label: 'finetune',
    info: {
      message: head === 'aggregator' ? 'finetune (CAV-MAE Sync classifier)' : 'finetune',
      classes: K,
      loss: rc.loss,
      ...(head === 'aggregator' ? { pairsPerClip: F } : {}),
    },
    log,
    extraState: () => ({ history: track.history, best: track.best }),
    onResume: (state) => {
      track.history = (state.history as EpochRecord[] | undefined) ?? [];
      track.best = (state.best as typeof track.best | undefined) ?? null;
    },
    microStep: (batch, ctx) => {
      const P = batch.size * F; // clips x pairs per clip
      const logits = model.forward(
        ctx.tape,
        {
          audio: need.audio ? new Tensor([P, T, MEL_BINS], batch.audio) : undefined,
          image: need.video ? new Tensor([P, 3, S, S], batch.image) : undefined,
        },
        mode,
      ); // [B, K]
      const loss =
        rc.loss === 'ce'
          ? ops.crossEntropy(ctx.tape, logits, batch.labels)
          : ops.bceWithLogits(ctx.tape, logits, batch.labels);
      ctx.tape.backward(loss, Float32Array.of(1 / ctx.groupSize));
      return { loss: loss.item(), acc: argmaxAccuracy(logits.data, batch.labels, batch.size, K) };
    },
    endOfEpoch: async (epoch, step) => {
      const r = await evaluateClassifier(model, val, { ...evalOpts, frameAgg: false });
      const metrics = {
        loss: r.loss,
        mAP: r.stats.mAP,
        mAUC: r.stats.mAUC,
        dprime: r.stats.dprime,
        acc: r.stats.acc,
      };
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
    } else
      log(
        `no epoch in ${rc.waStart}..${rc.waEnd} finished; using the current weights instead of weight averaging`,
      );
  } else if (track.best && existsSync(bestPath)) {
    model.arena.load(loadStateDict(bestPath).tensors, bestPath);
    chosen = `the best epoch (${track.best.epoch + 1}, ${mainMetric} ${track.best.value.toFixed(4)})`;
  }
  const final = await evaluateClassifier(model, val, { ...evalOpts, frameAgg: rc.frameAgg });
  writeModelFile(folder.model, model, meta);
  writePredictions(join(folder.dir, 'predictions.safetensors'), final, {
    data: rc.val,
    mode,
    loss: rc.loss,
    ...strategy.predictionsMeta(final),
  });
  const { mAP, mAUC, dprime, acc } = final.stats;
  finishRun(
    folder,
    loop,
    planned,
    log,
    { task: 'finetune', ...(rc.kind ? { kind: rc.kind } : {}) },
    {
      weights: chosen,
      loss: rc.loss,
      mode,
      final: { mAP, mAUC, dprime, acc, ...strategy.finalSummary(final) },
      history: track.history,
    },
  );
  return {
    out: folder.dir,
    model: folder.model,
    loop,
    planned,
    final,
    weights: chosen,
    history: track.history,
  };
}

function validateRunConfig(rc: FinetuneRunConfig): void {
  if (rc.mixup !== undefined && !(rc.mixup >= 0 && rc.mixup <= 1))
    throw new OptionError((n) => `${n('mixup')} must be a probability in [0, 1], got ${rc.mixup}`);
  if (!(rc.labelSmooth >= 0 && rc.labelSmooth < 1))
    throw new OptionError((n) => `${n('labelSmooth')} must be in [0, 1), got ${rc.labelSmooth}`);
  if (rc.freqm !== undefined && !(rc.freqm >= 0 && rc.timem! >= 0))
    throw new OptionError((n) => `${n('freqm')} and ${n('timem')} must be >= 0`);
  if (!(
    Number.isInteger(rc.waStart) &&
    Number.isInteger(rc.waEnd) &&
    rc.waStart >= 1 &&
    rc.waEnd >= rc.waStart
  )) {
    throw new OptionError(
      (n) => `${n('waStart')}/${n('waEnd')} must be epochs 1 <= start <= end, got ${rc.waStart}..${rc.waEnd}`,
    );
  }
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
      if (!t || t.data.length !== p.size)
        throw fileError(f, `parameter ${p.name} missing or of the wrong size`);
      const o = p.offset;
      for (let i = 0; i < p.size; i++) sum[o + i] = Math.fround(sum[o + i] + t.data[i]);
    }
  }
  const n = files.length;
  const data = model.arena.data;
  for (let i = 0; i < sum.length; i++) data[i] = Math.fround(sum[i] / n);
}
