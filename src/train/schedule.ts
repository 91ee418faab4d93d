/**
 * Learning-rate schedules as pure functions of the training position.
 *
 * Contract:
 * - `epoch` is the 0-based index of the epoch being trained (= the number of completed
 *   epochs = PyTorch's `scheduler.last_epoch` while that epoch runs); logs print epoch + 1.
 *   `iteration` is the 0-based global iteration (optimizer steps done before this one).
 * - A schedule returns the BASE group's learning rate. Every parameter group multiplies it by
 *   its own `lrScale` (the "mlp" head group has lrScale = head_lr), so per-group ratios are
 *   kept under every schedule. (The CAV-MAE Sync research CosineWarmupScheduler wrote one value
 *   into every group and so lost head_lr, docs/reference.md#sync-recipe, #sync-research-code; we deliberately do not.)
 * - No state: resuming a run needs only (epoch, iteration), which the checkpoint stores.
 */
import { UserError } from '../util/errors.js';

export interface LrSchedule {
  readonly kind: 'multistep' | 'cosine' | 'constant';
  /** Base learning rate for the optimizer step at (epoch, iteration). */
  lr(epoch: number, iteration: number): number;
}

/** `range(start, end, step)` as in Python (the reference: milestones range(start, 1000, step)). */
export function milestonesRange(start: number, step: number, end = 1000): number[] {
  if (!Number.isInteger(start) || !Number.isInteger(step) || step <= 0) {
    throw new UserError(
      `lr schedule: milestones need integer start and a positive integer step (got start ${start}, step ${step})`,
    );
  }
  const out: number[] = [];
  for (let m = start; m < end; m += step) out.push(m);
  return out;
}

/**
 * torch.optim.lr_scheduler.MultiStepLR stepped once per epoch AFTER validation, as the
 * reference does: while epoch e (0-based) trains, `last_epoch` = e. PyTorch multiplies the
 * group's lr by gamma**count when `last_epoch` reaches a milestone listed `count` times
 * (milestone 0 fires at construction), so the lr is the base lr times gamma**count for every
 * distinct milestone m <= e, multiplied in order (PyTorch's chained form, so the floats equal
 * PyTorch's). Example (AS-2M pretraining, milestones 10,15,20,..., gamma 0.5): epochs 0-9 at
 * lr, 10-14 at lr/2, 15-19 at lr/4; the reference prints epoch e+1 and, after the epoch's
 * scheduler step, the lr of epoch e+1 (docs/reference.md#training-logs).
 */
export function multiStepLR(opts: { lr: number; milestones: readonly number[]; gamma: number }): LrSchedule {
  const { lr, gamma } = opts;
  checkLr(lr);
  if (!(gamma > 0) || !Number.isFinite(gamma))
    throw new UserError(`lr schedule: gamma must be positive (got ${gamma})`);
  const counts = new Map<number, number>();
  for (const m of opts.milestones) {
    if (!Number.isInteger(m) || m < 0)
      throw new UserError(`lr schedule: milestones must be integers >= 0 (got ${m})`);
    counts.set(m, (counts.get(m) ?? 0) + 1);
  }
  const milestones = [...counts.keys()].sort((a, b) => a - b);
  return {
    kind: 'multistep',
    lr(epoch: number): number {
      checkPosition(epoch, 'epoch');
      let value = lr;
      for (const m of milestones) {
        if (m > epoch) break;
        value *= gamma ** counts.get(m)!;
      }
      return value;
    },
  };
}

/**
 * Linear warm-up then cosine decay, per iteration: the CAV-MAE Sync research
 * CosineWarmupScheduler (docs/reference.md#sync-recipe) with warmup = warmupFraction * totalIterations (a float, as
 * there) and max = totalIterations:
 *   it <  warmup:      min(lr, lr * (it + 1) / warmup)
 *   it <= total:       lr_min + (lr - lr_min) * 0.5 * (1 + cos(pi * (it - warmup) / (total - warmup)))
 *   it >  total:       lr_min,              lr_min = minLrRatio * lr.
 * The min(lr, .) only matters for a fractional warmup, where the reference overshoots lr.
 */
export function cosineWarmup(opts: {
  lr: number;
  totalIterations: number;
  warmupFraction?: number;
  minLrRatio?: number;
}): LrSchedule {
  const { lr, totalIterations, warmupFraction = 0.1, minLrRatio = 0.1 } = opts;
  checkLr(lr);
  if (!Number.isInteger(totalIterations) || totalIterations <= 0) {
    throw new UserError(`lr schedule: cosine needs a positive number of iterations (got ${totalIterations})`);
  }
  if (!(warmupFraction >= 0 && warmupFraction < 1))
    throw new UserError(`lr schedule: warm-up fraction must be in [0, 1) (got ${warmupFraction})`);
  const warmup = warmupFraction * totalIterations;
  const minLr = minLrRatio * lr;
  return {
    kind: 'cosine',
    lr(_epoch: number, iteration: number): number {
      checkPosition(iteration, 'iteration');
      if (iteration < warmup) return Math.min(lr, (lr * (iteration + 1)) / warmup);
      if (iteration > totalIterations) return minLr;
      const decayRatio = (iteration - warmup) / (totalIterations - warmup);
      return minLr + 0.5 * (1 + Math.cos(Math.PI * decayRatio)) * (lr - minLr);
    },
  };
}

export function constantLR(lr: number): LrSchedule {
  checkLr(lr);
  return { kind: 'constant', lr: () => lr };
}

/** The schedule options as a training config stores them (JSON). */
export type ScheduleConfig =
  | { kind: 'multistep'; lr: number; start: number; step: number; gamma: number }
  | { kind: 'cosine'; lr: number; totalIterations: number; warmupFraction?: number; minLrRatio?: number }
  | { kind: 'constant'; lr: number };

export function makeSchedule(cfg: ScheduleConfig): LrSchedule {
  switch (cfg.kind) {
    case 'multistep':
      return multiStepLR({ lr: cfg.lr, milestones: milestonesRange(cfg.start, cfg.step), gamma: cfg.gamma });
    case 'cosine':
      return cosineWarmup(cfg);
    case 'constant':
      return constantLR(cfg.lr);
    default:
      throw new UserError(
        `lr schedule: unknown kind '${(cfg as { kind: string }).kind}' (multistep, cosine, constant)`,
      );
  }
}

function checkLr(lr: number): void {
  if (!(lr >= 0) || !Number.isFinite(lr))
    throw new UserError(`lr schedule: learning rate must be a finite number >= 0 (got ${lr})`);
}

function checkPosition(x: number, what: string): void {
  if (!Number.isInteger(x) || x < 0)
    throw new Error(`lr schedule: ${what} must be an integer >= 0 (got ${x})`);
}
