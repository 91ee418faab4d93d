/**
 * Adam / AdamW over one flat parameter arena with per-group learning rates.
 *
 * Contract:
 * - `params` and `grads` are the model's flat arenas (same length). A parameter group is a list
 *   of [offset, length] ranges into them with its own lr multiplier (`lrScale`), weight decay
 *   and `requiresGrad`. Ranges never overlap; parameters in no group are never touched.
 *   Frozen groups (requiresGrad false) are skipped entirely: no update and no moment change,
 *   as PyTorch skips parameters whose .grad is None.
 * - `m` and `v` cover the whole arena (offsets are shared with `params`), so optimiser state,
 *   checkpoints and native calls are plain loops over one buffer. `stepCount` is global: every
 *   trainable parameter is stepped together, which equals PyTorch's per-parameter `step` here.
 * - The update itself is `kernels().adamUpdate`, one call per range, with PyTorch's formula
 *   (torch.optim.Adam: weight decay as L2 added to the gradient; AdamW: decoupled decay).
 * - Defaults are the reference's: betas (0.95, 0.999), eps 1e-8, weight decay 5e-7 as L2
 *   applied to every parameter (LayerNorm, biases and tokens included), docs/reference.md#training-machinery.
 */
import { kernels } from '../kernels/index.js';
import { UserError } from '../util/errors.js';

/** [offset, length] into the flat arena. */
export type ParamRange = readonly [number, number];

export interface ParamGroup {
  name: string;
  ranges: readonly ParamRange[];
  /** Multiplier on the scheduled base lr (the reference "mlp" head group: head_lr). */
  lrScale: number;
  requiresGrad: boolean;
  /** Overrides the optimiser's weight decay for this group. */
  weightDecay?: number;
}

export interface AdamOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** true = AdamW (decoupled decay p *= 1 - lr*wd); false = Adam with L2 (the reference). */
  decoupled?: boolean;
}

/** Serialisable optimiser state (checkpoints): moments over the whole arena plus the step. */
export interface AdamState {
  m: Float32Array;
  v: Float32Array;
  stepCount: number;
}

export class Adam {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  readonly decoupled: boolean;
  readonly groups: readonly ParamGroup[];
  m: Float32Array;
  v: Float32Array;
  /** Number of steps taken (PyTorch's state['step'] after the last step). */
  stepCount = 0;

  constructor(
    readonly params: Float32Array,
    readonly grads: Float32Array,
    groups: readonly ParamGroup[],
    opts: AdamOptions = {},
  ) {
    this.beta1 = opts.beta1 ?? 0.95;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 5e-7;
    this.decoupled = opts.decoupled ?? false;
    if (!(this.beta1 >= 0 && this.beta1 < 1 && this.beta2 >= 0 && this.beta2 < 1)) {
      throw new UserError(`optimizer: betas must be in [0, 1) (got ${this.beta1}, ${this.beta2})`);
    }
    if (!(this.eps > 0)) throw new UserError(`optimizer: eps must be positive (got ${this.eps})`);
    if (params.length !== grads.length)
      throw new Error(`optimizer: params (${params.length}) and grads (${grads.length}) differ in length`);
    checkGroups(groups, params.length);
    this.groups = groups.map((g) => ({ ...g, ranges: g.ranges.map((r) => [r[0], r[1]] as const) }));
    this.m = new Float32Array(params.length);
    this.v = new Float32Array(params.length);
  }

  /** The effective lr of each group for a base lr (what a log should print). */
  groupLrs(baseLr: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const g of this.groups) out[g.name] = baseLr * g.lrScale;
    return out;
  }

  /** One update of every trainable group with lr = baseLr * group.lrScale. */
  step(baseLr: number): void {
    if (!Number.isFinite(baseLr) || baseLr < 0) throw new Error(`optimizer: invalid learning rate ${baseLr}`);
    const k = kernels();
    const t = this.stepCount + 1;
    for (const g of this.groups) {
      if (!g.requiresGrad) continue;
      const lr = baseLr * g.lrScale;
      const wd = g.weightDecay ?? this.weightDecay;
      for (const [off, len] of g.ranges) {
        if (len === 0) continue;
        const end = off + len;
        k.adamUpdate(
          this.params.subarray(off, end),
          this.grads.subarray(off, end),
          this.m.subarray(off, end),
          this.v.subarray(off, end),
          len,
          lr,
          this.beta1,
          this.beta2,
          this.eps,
          wd,
          t,
          this.decoupled,
        );
      }
    }
    this.stepCount = t;
  }

  /** Zeroes the gradients of the trainable groups (backward kernels accumulate). */
  zeroGrad(): void {
    for (const g of this.groups) {
      if (!g.requiresGrad) continue;
      for (const [off, len] of g.ranges) this.grads.fill(0, off, off + len);
    }
  }

  /** The state by reference (a checkpoint writer copies it out to disk). */
  state(): AdamState {
    return { m: this.m, v: this.v, stepCount: this.stepCount };
  }

  loadState(s: AdamState): void {
    if (s.m.length !== this.params.length || s.v.length !== this.params.length) {
      throw new UserError(
        `optimizer state: moment buffers hold ${s.m.length}/${s.v.length} values but the model has ${this.params.length} parameters`,
      );
    }
    if (!Number.isInteger(s.stepCount) || s.stepCount < 0)
      throw new UserError(`optimizer state: invalid step count ${s.stepCount}`);
    this.m.set(s.m);
    this.v.set(s.v);
    this.stepCount = s.stepCount;
  }
}

/** Validates ranges: integers, inside the arena, no overlaps (within or across groups). */
export function checkGroups(groups: readonly ParamGroup[], size: number): void {
  const names = new Set<string>();
  const all: [number, number, string][] = [];
  for (const g of groups) {
    if (names.has(g.name)) throw new Error(`optimizer: duplicate parameter group '${g.name}'`);
    names.add(g.name);
    if (!(g.lrScale >= 0) || !Number.isFinite(g.lrScale))
      throw new UserError(`optimizer: group '${g.name}' has invalid lr scale ${g.lrScale}`);
    for (const [off, len] of g.ranges) {
      if (!Number.isInteger(off) || !Number.isInteger(len) || off < 0 || len < 0 || off + len > size) {
        throw new Error(
          `optimizer: group '${g.name}' range [${off}, ${len}] is outside the arena of ${size}`,
        );
      }
      all.push([off, len, g.name]);
    }
  }
  all.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < all.length; i++) {
    const [po, pl, pn] = all[i - 1];
    if (all[i][1] > 0 && pl > 0 && all[i][0] < po + pl) {
      throw new Error(
        `optimizer: range at ${all[i][0]} (group '${all[i][2]}') overlaps range [${po}, ${pl}] (group '${pn}')`,
      );
    }
  }
}

/**
 * The reference's two groups (docs/reference.md#parameter-groups): the classification head ("mlp", lr = base * headLr)
 * and everything else ("base"); `freezeBase` sets requiresGrad false on "base" (linear probing).
 * The reference picks the head by a fixed name list of which only `mlp_head.*` exists in
 * CAVMAEFT, so the default predicate is "name starts with mlp_head." (a leading `module.` is
 * ignored). `layout` lists each named parameter's [offset, length] in the arena.
 */
export function headAndBaseGroups(
  layout: readonly { name: string; offset: number; length: number }[],
  opts: { headLr: number; freezeBase?: boolean; isHead?: (name: string) => boolean },
): ParamGroup[] {
  const isHead = opts.isHead ?? ((n: string) => n.replace(/^module\./, '').startsWith('mlp_head.'));
  const head: ParamRange[] = [];
  const base: ParamRange[] = [];
  for (const p of layout) (isHead(p.name) ? head : base).push([p.offset, p.length]);
  return [
    { name: 'base', ranges: mergeRanges(base), lrScale: 1, requiresGrad: !opts.freezeBase },
    { name: 'mlp', ranges: mergeRanges(head), lrScale: opts.headLr, requiresGrad: true },
  ];
}

/** Sorts and joins adjacent ranges (fewer kernel calls; the update is elementwise). */
export function mergeRanges(ranges: readonly ParamRange[]): ParamRange[] {
  const sorted = ranges
    .filter((r) => r[1] > 0)
    .map((r) => [r[0], r[1]] as [number, number])
    .sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && last[0] + last[1] === r[0]) last[1] += r[1];
    else out.push([r[0], r[1]]);
  }
  return out;
}
