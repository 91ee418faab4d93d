/**
 * The training loop shared by `pretrain` and `finetune`, the run-folder plumbing around it, and
 * `runTraining`: the part of a run both drivers share (resume, run.json, log.jsonl, the loop).
 *
 * Design contract:
 * - A run is a folder: model.safetensors (final weights; config + preprocessing constants in the
 *   metadata), checkpoints/ (checkpointer.ts), log.jsonl (logger.ts), plots/ (plots.ts),
 *   run.json (the resolved options) and result.json (the final report).
 * - Every random draw of a step is a pure function of (seed, position): the loader derives each
 *   sample from (seed, epoch, position in the epoch) and the masking noise of micro-batch m of
 *   optimizer step s comes from `stepRng(seed, s, m)`. A checkpoint therefore only has to hold
 *   the parameters, Adam's moments and step count, and (epoch, batchInEpoch, globalStep): a
 *   resumed run replays the same batches and masks and ends with bit-identical weights.
 * - Checkpoints are written only at optimizer-step boundaries (never between the micro-batches
 *   of an accumulated step), at the end of every epoch (after its evaluation) and every N steps,
 *   and when the run stops early (--max-steps, --max-minutes, SIGINT/SIGTERM).
 * - The epoch in progress is `epoch`; batches per epoch = the loader's numBatches (drop_last);
 *   optimizer steps per epoch = ceil(batches / accum), the last group of an epoch may be smaller
 *   and is averaged over its own size.
 */
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Tape } from '../autograd/tape.js';
import { writeFileAtomic } from '../io/atomic.js';
import { configToJson, preprocessForConfig, saveModel, type AnyModel } from '../models/index.js';
import { hashWords } from '../data/rng.js';
import type { Batch, DataLoader } from '../data/loader.js';
import { AUDIO_NORM } from '../audio/index.js';
import { Rng } from '../tensor/rng.js';
import { OptionError, UserError } from '../util/errors.js';
import { Checkpointer, type LoadedCheckpoint, type TrainState } from './checkpointer.js';
import { JsonlLogger, readJsonl, type LogRecord } from './logger.js';
import { Adam, type ParamGroup } from './optim.js';
import { trainingPlots } from './plots.js';
import { Progress, formatDuration } from '../util/progress.js';
import { makeSchedule, type LrSchedule, type ScheduleConfig } from './schedule.js';

export const MODEL_FILE = 'model.safetensors';
export const LOG_FILE = 'log.jsonl';
export const PLOTS_DIR = 'plots';
export const RUN_FILE = 'run.json';
export const RESULT_FILE = 'result.json';

/** Paths of a run folder. */
export interface RunFolder {
  dir: string;
  model: string;
  log: string;
  plots: string;
  runJson: string;
  result: string;
}

export function runFolder(dir: string): RunFolder {
  const d = resolve(dir);
  return {
    dir: d,
    model: join(d, MODEL_FILE),
    log: join(d, LOG_FILE),
    plots: join(d, PLOTS_DIR),
    runJson: join(d, RUN_FILE),
    result: join(d, RESULT_FILE),
  };
}

/**
 * Opens a run folder for a new run or a resumed one. Without `resume`, a folder that already
 * holds checkpoints is refused (so a typo never overwrites a run); with `resume` and no
 * checkpoint, the run starts from scratch (and says so).
 */
export function openRun(
  dir: string,
  resume: boolean,
  log: (m: string) => void,
  policy: { checkpointEvery?: number; keepCheckpoints?: number } = {},
): { folder: RunFolder; checkpointer: Checkpointer; resumed?: LoadedCheckpoint } {
  const every = policy.checkpointEvery ?? 0;
  const keep = policy.keepCheckpoints ?? 3;
  if (!(Number.isInteger(every) && every >= 0))
    throw new OptionError((n) => `${n('checkpointEvery')} must be an integer >= 0, got ${every}`);
  if (!(Number.isInteger(keep) && keep >= 1))
    throw new OptionError((n) => `${n('keepCheckpoints')} must be an integer >= 1, got ${keep}`);
  const folder = runFolder(dir);
  mkdirSync(folder.dir, { recursive: true });
  const checkpointer = new Checkpointer(folder.dir, {
    log,
    everySteps: every,
    keepLast: keep,
    everyEpoch: true,
  });
  const hasCheckpoints =
    existsSync(checkpointer.dir) && readdirSync(checkpointer.dir).some((f) => f.endsWith('.safetensors'));
  if (!resume) {
    if (hasCheckpoints)
      throw new OptionError(
        (n) =>
          `${folder.dir}: already holds a run (checkpoints/); pass ${n('resume')} to continue it, or choose another ${n('out')}`,
      );
    return { folder, checkpointer };
  }
  const resumed = checkpointer.loadLatest();
  if (!resumed) log(`${folder.dir}: no checkpoint to resume from; starting a new run`);
  return { folder, checkpointer, resumed };
}

/**
 * Options that define the computation of a run. On --resume they must equal the stored ones
 * (a resumed run must be the same run); budget and I/O options may change.
 */
export function checkSameRun(run: { resumed?: LoadedCheckpoint }, rc: object): void {
  if (!run.resumed) return;
  const stored = run.resumed.state.config as Record<string, unknown>;
  const given = rc as Record<string, unknown>;
  const what = run.resumed.path;
  const diffs: string[] = [];
  const keys = new Set([...Object.keys(stored), ...Object.keys(given)]);
  for (const k of keys) {
    const a = JSON.stringify(stored[k] ?? null);
    const b = JSON.stringify(given[k] ?? null);
    if (a !== b) diffs.push(`${k}: checkpoint ${a}, now ${b}`);
  }
  if (diffs.length) {
    throw new OptionError(
      (n) =>
        `${what}: ${n('resume')} with different training options (${diffs.slice(0, 4).join('; ')}${diffs.length > 4 ? '; ...' : ''}); resume with the original options or start a new ${n('out')}`,
    );
  }
}

/** Keeps only log records up to the resumed step (the abandoned tail is replayed). */
export function truncateLogAfter(path: string, step: number): void {
  if (!existsSync(path)) return;
  const kept = readJsonl(path).filter((r) => typeof r.step !== 'number' || r.step <= step);
  writeFileAtomic(path, kept.map((r) => JSON.stringify(r) + '\n').join(''));
}

/** The masking generator of micro-batch `micro` of optimizer step `step` (pure function). */
export function stepRng(seed: number, step: number, micro: number, tag = 0x6d61736b): Rng {
  return new Rng(hashWords(seed, step, micro, tag));
}

/** Writes a model's weights with its config and the preprocessing (with this run's audio norm) it was trained on (atomic). */
export function writeModelFile(
  path: string,
  model: AnyModel,
  extra: Record<string, string> = {},
  audioNorm = AUDIO_NORM,
): void {
  saveModel(path, model, { extra, preprocess: preprocessForConfig(model.config, audioNorm) });
}

/** One Adam group per list of (offset, length) ranges: everything trainable in one group. */
export function allTrainableGroup(model: AnyModel): ParamGroup[] {
  return [
    {
      name: 'base',
      ranges: model.arena.trainableRanges().map((r) => [r.offset, r.size] as const),
      lrScale: 1,
      requiresGrad: true,
    },
  ];
}

export interface OptimHyper {
  beta1: number;
  beta2: number;
  weightDecay: number;
  decoupled?: boolean;
}

export function makeAdam(model: AnyModel, groups: ParamGroup[], h: OptimHyper): Adam {
  return new Adam(model.arena.data, model.arena.grad, groups, {
    beta1: h.beta1,
    beta2: h.beta2,
    weightDecay: h.weightDecay,
    decoupled: h.decoupled ?? false,
  });
}

/** Restores parameters and optimizer state from a training checkpoint. */
export function restoreCheckpoint(ck: LoadedCheckpoint, model: AnyModel, optimizer: Adam): void {
  model.arena.load(ck.params, ck.path);
  if (!ck.optimizer) throw new UserError(`${ck.path}: holds no optimizer state; cannot resume exactly`);
  optimizer.loadState(ck.optimizer);
}

/** SIGINT / SIGTERM ask the loop to stop after the current step; a second signal exits now. */
export class StopFlag {
  requested: string | undefined;
  private readonly handler = (sig: NodeJS.Signals): void => {
    if (this.requested) process.exit(130);
    this.requested = sig;
    process.stderr.write(
      `\ncavmae: ${sig}: stopping after this step and saving a checkpoint (again to abort)\n`,
    );
  };

  install(): this {
    process.on('SIGINT', this.handler);
    process.on('SIGTERM', this.handler);
    return this;
  }

  remove(): void {
    process.off('SIGINT', this.handler);
    process.off('SIGTERM', this.handler);
  }
}

export type StopReason = 'epochs' | 'max-steps' | 'max-minutes' | 'signal';

export interface MicroContext {
  /** Optimizer steps done before this one (= the step being computed, 0-based). */
  step: number;
  /** Index of this micro-batch within the step, and the number of micro-batches in the step. */
  micro: number;
  groupSize: number;
  epoch: number;
  tape: Tape;
}

/** What the loop needs of a loader (DataLoader, or the CAV-MAE Sync clip loader). */
export type BatchSource = Pick<DataLoader, 'dataset' | 'size' | 'batchSize' | 'numBatches' | 'batches'>;

export interface LoopSpec {
  folder: RunFolder;
  checkpointer: Checkpointer;
  logger: JsonlLogger;
  model: AnyModel;
  optimizer: Adam;
  schedule: LrSchedule;
  loader: BatchSource;
  epochs: number;
  accum: number;
  /** Stop when this many optimizer steps are done in total (resumed runs count earlier steps). */
  maxSteps?: number;
  /** Wall-clock budget of THIS process. */
  maxMinutes?: number;
  /** Where training stands (a resumed checkpoint, or zeros). */
  start: { epoch: number; batchInEpoch: number; globalStep: number };
  bf16: boolean;
  /**
   * Forward + backward of one micro-batch; the gradient must be scaled by 1/groupSize so that
   * an accumulated step averages its micro-batches. Returns the scalars to log.
   */
  microStep(batch: Batch, ctx: MicroContext): Record<string, number>;
  /** Evaluation at the end of an epoch (after its last step, before its checkpoint). */
  endOfEpoch?(epoch: number, globalStep: number): Promise<Record<string, number> | undefined>;
  /** JSON stored in every checkpoint next to the position (run options, history, ...). */
  extraState(): Record<string, unknown>;
  label: string;
  samplesPerStep: number;
  quiet?: boolean;
  /** Seconds between plot refreshes (default 60; plots are also redrawn at each epoch end). */
  plotEverySec?: number;
  plotTitle?: string;
}

export interface LoopResult {
  reason: StopReason;
  epoch: number;
  batchInEpoch: number;
  globalStep: number;
  stepsThisRun: number;
  seconds: number;
  /** Mean of each logged scalar over the last (up to) 20 steps. */
  recent: Record<string, number>;
}

export function stepsPerEpoch(loader: Pick<DataLoader, 'numBatches'>, accum: number): number {
  return Math.ceil(loader.numBatches / accum);
}

/** The training loop: epochs of accumulated optimizer steps with checkpoints, logs, progress and plots. */
export async function trainLoop(spec: LoopSpec): Promise<LoopResult> {
  const { loader, optimizer, model, checkpointer, logger, accum } = spec;
  const nb = loader.numBatches;
  if (nb === 0)
    throw new OptionError(
      (n) =>
        `${loader.dataset.path}: ${loader.size} samples make no full batch of ${loader.batchSize}; lower ${n('batchSize')}`,
    );
  if (!(Number.isInteger(accum) && accum >= 1))
    throw new OptionError((n) => `${n('accum')} must be a positive integer, got ${accum}`);
  const spe = stepsPerEpoch(loader, accum);
  const planned = Math.min(spec.epochs * spe, spec.maxSteps ?? Infinity);
  let { epoch, batchInEpoch, globalStep } = spec.start;
  const t0 = performance.now();
  const deadline = spec.maxMinutes !== undefined ? t0 + spec.maxMinutes * 60_000 : Infinity;
  const stop = new StopFlag().install();
  const progress = spec.quiet
    ? undefined
    : new Progress({
        total: planned,
        start: globalStep,
        label: spec.label,
        samplesPerStep: spec.samplesPerStep * accum,
      });
  const tape = new Tape({ bf16: spec.bf16 });
  const recentWindow: Record<string, number>[] = [];
  let lastPlot = performance.now();
  const plotEvery = (spec.plotEverySec ?? 60) * 1000;
  let stepsThisRun = 0;
  let reason: StopReason = 'epochs';
  // A resumed run starts exactly at its checkpoint: no need to write it again.
  let savedAt = spec.start.globalStep > 0 ? spec.start.globalStep : -1;

  const save = (): void => {
    checkpointer.save({
      params: model.arena.stateDict(),
      optimizer: {
        ...optimizer.state(),
        hyper: {
          beta1: optimizer.beta1,
          beta2: optimizer.beta2,
          eps: optimizer.eps,
          weightDecay: optimizer.weightDecay,
        },
      },
      state: {
        epoch,
        batchInEpoch,
        globalStep,
        rng: { scheme: 'derived from (seed, epoch, position) and (seed, step, micro-batch)' },
        ...spec.extraState(),
      } as TrainState,
      modelConfig: configToJson(model.config),
    });
    savedAt = globalStep;
  };
  const refreshPlots = (): void => {
    try {
      trainingPlots(readJsonl(spec.folder.log), spec.folder.plots, spec.plotTitle ?? spec.label);
    } catch (e) {
      process.stderr.write(`cavmae: warning: plots not updated: ${(e as Error).message}\n`);
    }
    lastPlot = performance.now();
  };
  const outOfBudget = (): StopReason | undefined => {
    if (stop.requested) return 'signal';
    if (spec.maxSteps !== undefined && globalStep >= spec.maxSteps) return 'max-steps';
    if (performance.now() >= deadline) return 'max-minutes';
    return undefined;
  };

  try {
    reason = outOfBudget() ?? 'epochs';
    while (reason === 'epochs' && epoch < spec.epochs) {
      let stopped: StopReason | undefined;
      if (batchInEpoch < nb) {
        let sums: Record<string, number> = {};
        let micro = 0;
        let groupSize = Math.min(accum, nb - batchInEpoch);
        optimizer.zeroGrad();
        for await (const batch of loader.batches(epoch, batchInEpoch)) {
          const scalars = spec.microStep(batch, { step: globalStep, micro, groupSize, epoch, tape });
          tape.reset();
          for (const [k, v] of Object.entries(scalars)) sums[k] = (sums[k] ?? 0) + v / groupSize;
          micro++;
          if (micro < groupSize) continue;
          // One optimizer step over the accumulated gradient.
          if (!Object.values(sums).every(Number.isFinite)) {
            throw new OptionError(
              (n) =>
                `training diverged at step ${globalStep + 1} (non-finite loss: ${JSON.stringify(sums)}); lower ${n('lr')} (the last checkpoint is intact)`,
            );
          }
          const lr = spec.schedule.lr(epoch, globalStep);
          optimizer.step(lr);
          optimizer.zeroGrad();
          globalStep++;
          stepsThisRun++;
          batchInEpoch += groupSize;
          logger.log({ kind: 'train', step: globalStep, epoch, lr, ...sums });
          recentWindow.push(sums);
          if (recentWindow.length > 20) recentWindow.shift();
          progress?.update(globalStep, pickDisplay(sums));
          sums = {};
          micro = 0;
          groupSize = Math.min(accum, nb - batchInEpoch);
          if (batchInEpoch >= nb) break; // end of epoch: evaluated and saved below
          if (checkpointer.due(globalStep, false)) save();
          if (performance.now() - lastPlot > plotEvery) refreshPlots();
          stopped = outOfBudget();
          if (stopped) break;
        }
      }
      if (stopped) {
        reason = stopped;
        break;
      }
      // The epoch is complete: evaluate, then checkpoint the start of the next one.
      await runEndOfEpoch(spec, logger, epoch, globalStep);
      epoch++;
      batchInEpoch = 0;
      refreshPlots();
      if (checkpointer.due(globalStep, true)) save();
      reason = outOfBudget() ?? 'epochs';
    }
    if (savedAt !== globalStep) save();
  } finally {
    stop.remove();
    progress?.stop();
  }
  refreshPlots();
  const recent: Record<string, number> = {};
  for (const r of recentWindow)
    for (const [k, v] of Object.entries(r)) recent[k] = (recent[k] ?? 0) + v / recentWindow.length;
  return {
    reason,
    epoch,
    batchInEpoch,
    globalStep,
    stepsThisRun,
    seconds: (performance.now() - t0) / 1000,
    recent,
  };
}

async function runEndOfEpoch(
  spec: LoopSpec,
  logger: JsonlLogger,
  epoch: number,
  step: number,
): Promise<void> {
  if (!spec.endOfEpoch) return;
  const metrics = await spec.endOfEpoch(epoch, step);
  if (metrics && Object.keys(metrics).length) logger.log({ kind: 'eval', step, epoch, ...metrics });
}

/** The few scalars shown on the progress line. */
function pickDisplay(s: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of ['loss', 'loss_mae_a', 'loss_mae_v', 'loss_c', 'c_acc', 'acc']) if (k in s) out[k] = s[k];
  return out;
}

export function stopMessage(r: LoopResult, planned: number): string {
  const why: Record<StopReason, string> = {
    epochs: 'all epochs done',
    'max-steps': 'reached --max-steps',
    'max-minutes': 'reached --max-minutes',
    signal: 'interrupted',
  };
  return `${why[r.reason]} at step ${r.globalStep}/${planned} (${r.stepsThisRun} steps in ${formatDuration(r.seconds)} this run)`;
}

/** Log records of a run (for reports). */
export function runRecords(folder: RunFolder): LogRecord[] {
  return existsSync(folder.log) ? readJsonl(folder.log) : [];
}

export type ScheduleKind = 'multistep' | 'cosine' | 'constant';

/** Options both training drivers take (the optimisation, the budget, the run folder). */
export interface TrainOptions {
  data: string;
  out: string;
  /** Initial weights (pretrain: e.g. an ImageNet MAE adapted with `cavmae adapt-mae`; finetune: a pretrained or fine-tuned model). */
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
  accum?: number;
  bf16?: boolean;
  seed?: number;
  /** Noise + time-roll augmentation of the fbank. */
  noise?: boolean;
  maxSteps?: number;
  maxMinutes?: number;
  /** Checkpoint every N optimizer steps (0: only at epoch ends). */
  checkpointEvery?: number;
  keepCheckpoints?: number;
  resume?: boolean;
  workers?: number;
  quiet?: boolean;
  /** Messages (default: stderr). */
  log?: (msg: string) => void;
}

/** The defaults of the shared run options (a recipe's). */
export interface RunDefaults {
  lr: number;
  batchSize: number;
  epochs: number;
  schedule: ScheduleKind;
  /** MultiStepLR start / step / decay. */
  multistep: [number, number, number];
  minLrRatio: number;
  beta1: number;
  beta2: number;
  weightDecay: number;
  /** Cosine warm-up steps when --warmup-steps is not given (undefined: 10% of all steps). */
  warmupSteps?: number;
}

/** The run options every task stores (seed, batching, Adam, the lr schedule). */
export type CommonRunConfig = ReturnType<typeof commonRunConfig>;

/** The shared run options, resolved against the defaults and checked. */
export function commonRunConfig(o: TrainOptions, d: RunDefaults) {
  const num = (v: number | undefined, dv: number): number => (v === undefined ? dv : v);
  const kind = o.schedule ?? d.schedule;
  if (!['multistep', 'cosine', 'constant'].includes(kind))
    throw new OptionError((n) => `${n('schedule')} must be multistep, cosine or constant, got "${kind}"`);
  const warmup = o.warmupSteps ?? d.warmupSteps;
  if (warmup !== undefined && !(Number.isInteger(warmup) && warmup >= 0))
    throw new OptionError((n) => `${n('warmupSteps')} must be an integer >= 0, got ${warmup}`);
  return {
    seed: num(o.seed, 0),
    batchSize: positive(num(o.batchSize, d.batchSize), 'batchSize', true),
    epochs: positive(num(o.epochs, d.epochs), 'epochs', true),
    accum: positive(num(o.accum, 1), 'accum', true),
    lr: positive(num(o.lr, d.lr), 'lr'),
    schedule: {
      kind,
      start: num(o.lrStart, d.multistep[0]),
      step: num(o.lrStep, d.multistep[1]),
      decay: num(o.lrDecay, d.multistep[2]),
      warmupSteps: warmup ?? null,
      minLrRatio: num(o.minLrRatio, d.minLrRatio),
    } as RunSchedule,
    beta1: num(o.beta1, d.beta1),
    beta2: num(o.beta2, d.beta2),
    weightDecay: num(o.weightDecay, d.weightDecay),
  };
}

/** The schedule options a run stores (run.json) and resumes with. */
export interface RunSchedule {
  kind: ScheduleKind;
  start: number;
  step: number;
  decay: number;
  warmupSteps: number | null;
  minLrRatio: number;
}

/** The lr schedule of a run, given its steps per epoch. */
export function scheduleConfig(
  rc: { lr: number; epochs: number; schedule: RunSchedule },
  spe: number,
): ScheduleConfig {
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

/** Throws an OptionError naming `option` unless `v` is a positive (integer) number; returns it. */
export function positive(v: number, option: string, int = false): number {
  if (!(v > 0) || !Number.isFinite(v) || (int && !Number.isInteger(v)))
    throw new OptionError((n) => `${n(option)} must be a positive ${int ? 'integer' : 'number'}, got ${v}`);
  return v;
}

/** What `runTraining` needs: the opened run, the run options, the model, its optimizer and batches, and the task's hooks. */
export interface TrainingSpec {
  run: ReturnType<typeof openRun>;
  /** The options that define the run (stored in run.json and in every checkpoint). */
  rc: { epochs: number; accum: number; bf16: boolean; batchSize: number; lr: number; schedule: RunSchedule };
  /** Extra run.json fields (e.g. the recipe). */
  runJson?: Record<string, unknown>;
  budget: { maxSteps?: number; maxMinutes?: number; quiet?: boolean };
  model: AnyModel;
  optimizer: Adam;
  loader: BatchSource & { close(): Promise<void> };
  label: 'pretrain' | 'finetune';
  /** The first log record's message and fields (a new run only). */
  info: Record<string, unknown>;
  log: (m: string) => void;
  microStep: LoopSpec['microStep'];
  endOfEpoch?: LoopSpec['endOfEpoch'];
  /** JSON stored in checkpoints next to the run options. */
  extraState?: () => Record<string, unknown>;
  /** Restores the task's own state (history, best epoch) from a resumed checkpoint. */
  onResume?: (state: TrainState) => void;
}

/**
 * A run's shared part: the lr schedule, restoring a resumed checkpoint (weights, Adam, position,
 * the task's state; the log is cut back to the checkpoint's step), run.json, log.jsonl and the
 * loop. The loader is closed afterwards.
 */
export async function runTraining(t: TrainingSpec): Promise<{ loop: LoopResult; planned: number }> {
  const { folder, checkpointer, resumed } = t.run;
  const { rc, model, optimizer, loader } = t;
  const spe = stepsPerEpoch(loader, rc.accum);
  const schedule = makeSchedule(scheduleConfig(rc, spe));
  const start = { epoch: 0, batchInEpoch: 0, globalStep: 0 };
  if (resumed) {
    restoreCheckpoint(resumed, model, optimizer);
    Object.assign(start, {
      epoch: resumed.state.epoch,
      batchInEpoch: resumed.state.batchInEpoch,
      globalStep: resumed.state.globalStep,
    });
    t.onResume?.(resumed.state);
    truncateLogAfter(folder.log, start.globalStep);
    t.log(
      `resuming ${folder.dir} at step ${start.globalStep} (epoch ${start.epoch + 1}, batch ${start.batchInEpoch})`,
    );
  }
  writeFileAtomic(
    folder.runJson,
    JSON.stringify(
      {
        ...rc,
        ...t.runJson,
        budget: { maxSteps: t.budget.maxSteps ?? null, maxMinutes: t.budget.maxMinutes ?? null },
      },
      null,
      1,
    ) + '\n',
  );
  const logger = new JsonlLogger(folder.log);
  if (!resumed)
    logger.log({ kind: 'info', step: 0, ...t.info, params: model.arena.numTrainable, stepsPerEpoch: spe });
  const planned = Math.min(rc.epochs * spe, t.budget.maxSteps ?? Infinity);
  try {
    const loop = await trainLoop({
      folder,
      checkpointer,
      logger,
      model,
      optimizer,
      schedule,
      loader,
      epochs: rc.epochs,
      accum: rc.accum,
      maxSteps: t.budget.maxSteps,
      maxMinutes: t.budget.maxMinutes,
      start,
      bf16: rc.bf16,
      label: t.label,
      samplesPerStep: rc.batchSize,
      quiet: t.budget.quiet,
      extraState: () => ({ config: rc, ...t.extraState?.() }),
      microStep: t.microStep,
      endOfEpoch: t.endOfEpoch,
    });
    return { loop, planned };
  } finally {
    logger.close();
    await loader.close();
  }
}

/** Writes result.json (`head`, where the run stands, `tail`) and logs the stop line. */
export function finishRun(
  folder: RunFolder,
  loop: LoopResult,
  planned: number,
  log: (m: string) => void,
  head: Record<string, unknown>,
  tail: Record<string, unknown>,
): void {
  const result = {
    ...head,
    out: folder.dir,
    model: folder.model,
    stop: loop.reason,
    steps: loop.globalStep,
    planned,
    epochsDone: loop.epoch,
    secondsThisRun: loop.seconds,
    ...tail,
  };
  writeFileAtomic(folder.result, JSON.stringify(result, null, 1) + '\n');
  log(stopMessage(loop, planned));
}
