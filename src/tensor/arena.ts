/**
 * Flat parameter and gradient arenas (llm.c style).
 *
 * Design contract:
 * - Modules declare their parameters while they are constructed (ParamBuilder: a name scope and
 *   a list). A ParamArena is then made once: ONE Float32Array for all values and ONE for all
 *   gradients, with a named Param view per tensor. `arena.params` is in state-dict order (the
 *   order in which modules registered, which is PyTorch's order when modules register the way
 *   the official __init__ does).
 * - Storage layout: parameters with requiresGrad come first (in state-dict order), then the
 *   frozen ones (fixed position tables). An optimiser therefore updates `trainableRanges()`
 *   (normally a single range) with one kernel call per range, and never touches frozen values.
 *   Flags may change later (freeze_base, linear probing); the ranges follow the flags.
 * - Gradients accumulate (kernels +=); call zeroGrad() between steps.
 */
import { Tensor, numel, sameShape, shapeStr, type Shape } from './tensor.js';
import type { Rng } from './rng.js';
import { UserError } from '../util/errors.js';

/** Fills a parameter's freshly allocated view. */
export type InitFn = (out: Float32Array, rng: Rng) => void;

export class Param extends Tensor {
  declare name: string;
  /** Offset of this parameter in the arena's flat buffers (-1 until bound). */
  offset = -1;
  /** The arena holding this parameter (set when bound). */
  owner: ParamArena | null = null;
  constructor(
    name: string,
    shape: Shape,
    requiresGrad: boolean,
    readonly init: InitFn,
  ) {
    super(shape, null, requiresGrad);
    this.name = name;
  }

  /** This parameter's view of the arena's gradient buffer (allocating the buffer if needed). */
  gradView(): Float32Array {
    if (!this.grad) {
      if (!this.owner) throw new Error(`parameter ${this.name} is not in an arena`);
      this.owner.ensureGrad();
    }
    return this.grad!;
  }
}

/** Collects parameter declarations under a dotted name scope ('blocks_a.0.attn'). */
export class ParamBuilder {
  private constructor(
    private readonly list: Param[],
    private readonly prefix: string,
  ) {}

  static root(): ParamBuilder {
    return new ParamBuilder([], '');
  }

  /** A builder whose parameter names start with `<prefix>.<name>.`. */
  scope(name: string | number): ParamBuilder {
    return new ParamBuilder(this.list, `${this.prefix}${name}.`);
  }

  param(name: string, shape: Shape, init: InitFn, opts: { requiresGrad?: boolean } = {}): Param {
    const full = this.prefix + name;
    if (this.list.some((p) => p.name === full)) throw new Error(`parameter ${full} declared twice`);
    const p = new Param(full, shape, opts.requiresGrad ?? true, init);
    this.list.push(p);
    return p;
  }

  /** Every parameter declared through this builder tree, in declaration order. */
  get params(): readonly Param[] {
    return this.list;
  }
}

export interface Range {
  offset: number;
  size: number;
}

export interface LoadReport {
  missing: string[];
  unexpected: string[];
}

export class ParamArena {
  /** Parameters in state-dict order. */
  readonly params: readonly Param[];
  readonly data: Float32Array;
  readonly size: number;
  /** False for a layout-only arena. */
  readonly allocated: boolean;
  private readonly byName = new Map<string, Param>();
  private gradBuf: Float32Array | null = null;

  /**
   * @param opts.grad allocate the gradient buffer now (default true). Inference models pass
   *   false; the buffer is then allocated on first use (`grad`, `ensureGrad`, a backward pass).
   * @param opts.allocate false computes the layout only (names, shapes, counts of a model too
   *   big to hold, e.g. listing the base model's keys); such an arena cannot run anything.
   */
  constructor(params: readonly Param[], opts: { grad?: boolean; allocate?: boolean } = {}) {
    this.params = params;
    let total = 0;
    for (const p of params) {
      if (this.byName.has(p.name)) throw new Error(`duplicate parameter ${p.name}`);
      this.byName.set(p.name, p);
      total += p.size;
    }
    this.size = total;
    this.allocated = opts.allocate ?? true;
    this.data = new Float32Array(this.allocated ? total : 0);
    let off = 0;
    for (const pass of [true, false]) {
      for (const p of params) {
        if (p.requiresGrad !== pass) continue;
        p.offset = off;
        p.owner = this;
        if (this.allocated) p.data = this.data.subarray(off, off + p.size);
        off += p.size;
      }
    }
    if (this.allocated && (opts.grad ?? true)) this.ensureGrad();
  }

  /** The flat gradient buffer, same layout as `data` (allocated on first use). */
  get grad(): Float32Array {
    return this.ensureGrad();
  }

  get hasGrad(): boolean {
    return this.gradBuf !== null;
  }

  ensureGrad(): Float32Array {
    if (!this.allocated) throw new Error('a layout-only parameter arena has no gradients');
    if (!this.gradBuf) {
      this.gradBuf = new Float32Array(this.size);
      for (const p of this.params) p.grad = this.gradBuf.subarray(p.offset, p.offset + p.size);
    }
    return this.gradBuf;
  }

  /** Runs every parameter's initialiser in state-dict order. */
  initialize(rng: Rng): void {
    if (!this.allocated) throw new Error('a layout-only parameter arena cannot be initialised');
    for (const p of this.params) p.init(p.data, rng);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  get(name: string): Param {
    const p = this.byName.get(name);
    if (!p) throw new Error(`no parameter named ${name}`);
    return p;
  }

  names(): string[] {
    return this.params.map((p) => p.name);
  }

  zeroGrad(): void {
    this.gradBuf?.fill(0);
  }

  get numTrainable(): number {
    let n = 0;
    for (const p of this.params) if (p.requiresGrad) n += p.size;
    return n;
  }

  setRequiresGrad(select: (p: Param) => boolean, flag: boolean): void {
    for (const p of this.params) if (select(p)) p.requiresGrad = flag;
  }

  /**
   * Contiguous storage ranges covering exactly the parameters that require grad and satisfy
   * `select` (e.g. the head group with its own learning rate).
   */
  trainableRanges(select: (p: Param) => boolean = () => true): Range[] {
    const chosen = this.params.filter((p) => p.requiresGrad && select(p)).sort((a, b) => a.offset - b.offset);
    const out: Range[] = [];
    for (const p of chosen) {
      const last = out[out.length - 1];
      if (last && last.offset + last.size === p.offset) last.size += p.size;
      else out.push({ offset: p.offset, size: p.size });
    }
    return out;
  }

  /** Named views in state-dict order (zero-copy). */
  stateDict(): Map<string, { shape: number[]; data: Float32Array }> {
    const m = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const p of this.params) m.set(p.name, { shape: [...p.shape], data: p.data });
    return m;
  }

  /**
   * Copies tensors into the arena by name, as PyTorch's load_state_dict: returns the missing
   * and unexpected keys. A shape mismatch throws a UserError (`where` names the source file):
   * shapes must be identical, as in PyTorch.
   */
  load(
    tensors: ReadonlyMap<string, { shape: readonly number[]; data: Float32Array }>,
    where = 'state dict',
  ): LoadReport {
    const missing: string[] = [];
    const unexpected: string[] = [];
    for (const p of this.params) {
      const t = tensors.get(p.name);
      if (!t) {
        missing.push(p.name);
        continue;
      }
      if (!sameShape(t.shape, p.shape) || t.data.length !== numel(p.shape)) {
        throw new UserError(
          `${where}: size mismatch for ${p.name}: checkpoint has ${shapeStr(t.shape)}, model expects ${shapeStr(p.shape)}`,
        );
      }
      p.data.set(t.data);
    }
    for (const k of tensors.keys()) if (!this.byName.has(k)) unexpected.push(k);
    return { missing, unexpected };
  }
}
