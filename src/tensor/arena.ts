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
 * - int8 inference arenas (`int8` option): every GEMM weight (declared with `gemm: true`: the
 *   linear layers and the patch embeddings) is held ONLY as its int8 quantisation (Int8Weights),
 *   made while the arena is initialised or loaded, one weight at a time from a scratch buffer
 *   or the checkpoint's tensor: its fp32 values are never stored. Everything else (LayerNorms,
 *   biases, position tables, tokens) keeps fp32 in `data`. Such an arena has no gradients,
 *   and reading a quantised weight's fp32 `data` throws (training, an fp32 / bf16 forward,
 *   saving): the model can only run on int8 tapes.
 */
import { Tensor, numel, sameShape, shapeStr, type Shape } from './tensor.js';
import type { Rng } from './rng.js';
import { UserError } from '../util/errors.js';

/** Fills a parameter's freshly allocated view. */
export type InitFn = (out: Float32Array, rng: Rng) => void;

/**
 * The int8 quantisation of a GEMM weight [out, in] (per output channel: s8 values, scales and
 * the activation-offset compensation; kernels/fused.ts quantizeWeightsInt8). `stamp` is the
 * step it was made for (Tape.int8Param's refresh of copies made from fp32 values); an int8-only
 * weight counts its quantisations instead (the QuantizeFn fills `q` or `packed`).
 */
export interface Int8Weights {
  /**
   * The values, row-major s8 [n, k]; null for an int8-only weight held in the packed layout
   * alone (the backend's GEMM reads only that; `rowMajorInt8` unpacks a copy).
   */
  q: Int8Array | null;
  scale: Float32Array;
  comp: Int32Array;
  stamp: number;
  /** The values in the native GEMM's packed layout (packWeightsInt8), where it reads them so. */
  packed?: Uint8Array | null;
  /** The stamp q had when `packed` was made. */
  packedStamp?: number;
}

/**
 * Quantises fp32 weights [n, k] (row-major) into `out` (quantizeWeightsInt8): into `out.q`
 * (allocated when null), or into `out.packed` alone with `out.q` set to null.
 */
export type QuantizeFn = (w: Float32Array, n: number, k: number, out: Int8Weights) => void;

/** Empty int8 weights for a GEMM weight of this shape (dimension 0 = output channels). */
export function int8WeightsFor(shape: Shape): Int8Weights {
  const n = shape[0];
  return { q: new Int8Array(numel(shape)), scale: new Float32Array(n), comp: new Int32Array(n), stamp: 0 };
}

export class Param extends Tensor {
  declare name: string;
  /** Offset of this parameter in the arena's flat buffers (-1 until bound). */
  offset = -1;
  /** The arena holding this parameter (set when bound). */
  owner: ParamArena | null = null;
  /**
   * Set in an int8 inference arena for a GEMM weight: its only storage (its fp32 `data` then
   * throws).
   */
  int8: Int8Weights | null = null;
  constructor(
    name: string,
    shape: Shape,
    requiresGrad: boolean,
    readonly init: InitFn,
    /** A GEMM weight [out, in...] (linear layer, patch embedding): int8 in int8 inference arenas. */
    readonly gemm = false,
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

  /** `gemm`: a weight [out, in...] that linear layers multiply with (int8 in int8 arenas). */
  param(
    name: string,
    shape: Shape,
    init: InitFn,
    opts: { requiresGrad?: boolean; gemm?: boolean } = {},
  ): Param {
    const full = this.prefix + name;
    if (this.list.some((p) => p.name === full)) throw new Error(`parameter ${full} declared twice`);
    const p = new Param(full, shape, opts.requiresGrad ?? true, init, opts.gemm ?? false);
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

/** Why a quantised weight's fp32 values cannot be read. */
function int8OnlyError(p: Param): Error {
  return new UserError(
    `parameter ${p.name} is held in int8 only (the model was loaded for int8 inference): ` +
      'its fp32 values do not exist here, so it cannot train, run in fp32 / bf16 or be saved; load the model without int8 for that',
  );
}

export class ParamArena {
  /** Parameters in state-dict order. */
  readonly params: readonly Param[];
  /** fp32 values of every parameter (in an int8 arena: of every parameter but the GEMM weights). */
  readonly data: Float32Array;
  /** Number of parameter values (int8 ones included). */
  readonly size: number;
  /** False for a layout-only arena. */
  readonly allocated: boolean;
  /** An int8 inference arena: GEMM weights held as int8 only (see the contract above). */
  readonly int8: boolean;
  private readonly quantize?: QuantizeFn;
  private readonly byName = new Map<string, Param>();
  private gradBuf: Float32Array | null = null;

  /**
   * @param opts.grad allocate the gradient buffer now (default true). Inference models pass
   *   false; the buffer is then allocated on first use (`grad`, `ensureGrad`, a backward pass).
   * @param opts.allocate false computes the layout only (names, shapes, counts of a model too
   *   big to hold, e.g. listing the base model's keys); such an arena cannot run anything.
   * @param opts.int8 an int8 inference arena: GEMM weights are quantised with this function
   *   when initialised or loaded and keep no fp32 storage (implies no gradients).
   */
  constructor(
    params: readonly Param[],
    opts: { grad?: boolean; allocate?: boolean; int8?: QuantizeFn } = {},
  ) {
    this.params = params;
    this.int8 = opts.int8 !== undefined;
    this.quantize = opts.int8;
    if (this.int8 && opts.grad) throw new Error('an int8 inference arena has no gradients');
    let total = 0;
    let stored = 0;
    for (const p of params) {
      if (this.byName.has(p.name)) throw new Error(`duplicate parameter ${p.name}`);
      this.byName.set(p.name, p);
      total += p.size;
      if (!this.isInt8(p)) stored += p.size;
    }
    this.size = total;
    this.allocated = opts.allocate ?? true;
    this.data = new Float32Array(this.allocated ? stored : 0);
    let off = 0;
    for (const pass of [true, false]) {
      for (const p of params) {
        if (p.requiresGrad !== pass) continue;
        p.owner = this;
        if (this.isInt8(p)) {
          // No fp32 storage: the int8 copy is the weight; reading `data` is a clear error.
          p.offset = -1;
          if (this.allocated) {
            p.int8 = int8WeightsFor(p.shape);
            Object.defineProperty(p, 'data', {
              get: () => {
                throw int8OnlyError(p);
              },
              set: () => {
                throw int8OnlyError(p);
              },
            });
          }
          continue;
        }
        p.offset = off;
        if (this.allocated) p.data = this.data.subarray(off, off + p.size);
        off += p.size;
      }
    }
    if (this.allocated && !this.int8 && (opts.grad ?? true)) this.ensureGrad();
  }

  /** True for a parameter this arena holds in int8 only. */
  isInt8(p: Param): boolean {
    return this.int8 && p.gemm;
  }

  /** Quantises fp32 values of the int8-only weight `p` into its int8 storage. */
  private quantizeInto(p: Param, values: Float32Array): void {
    const n = p.shape[0];
    this.quantize!(values, n, p.size / n, p.int8!);
    p.int8!.stamp++;
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
    if (this.int8)
      throw new UserError(
        'the model was loaded for int8 inference (weights held in int8 only): it has no gradients and cannot train; load it without int8',
      );
    if (!this.gradBuf) {
      this.gradBuf = new Float32Array(this.size);
      for (const p of this.params) p.grad = this.gradBuf.subarray(p.offset, p.offset + p.size);
    }
    return this.gradBuf;
  }

  /**
   * Runs every parameter's initialiser in state-dict order (int8-only weights: into a scratch
   * buffer, then quantised, so the random stream and the values are those of an fp32 arena).
   */
  initialize(rng: Rng): void {
    if (!this.allocated) throw new Error('a layout-only parameter arena cannot be initialised');
    let scratch = new Float32Array(0);
    for (const p of this.params) {
      if (!this.isInt8(p)) {
        p.init(p.data, rng);
        continue;
      }
      if (scratch.length < p.size) scratch = new Float32Array(p.size);
      const values = scratch.subarray(0, p.size);
      p.init(values, rng);
      this.quantizeInto(p, values);
    }
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
    const chosen = this.params
      .filter((p) => p.requiresGrad && !this.isInt8(p) && select(p))
      .sort((a, b) => a.offset - b.offset);
    const out: Range[] = [];
    for (const p of chosen) {
      const last = out[out.length - 1];
      if (last && last.offset + last.size === p.offset) last.size += p.size;
      else out.push({ offset: p.offset, size: p.size });
    }
    return out;
  }

  /** Named views in state-dict order (zero-copy; an int8 arena has none: it throws). */
  stateDict(): Map<string, { shape: number[]; data: Float32Array }> {
    const m = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const p of this.params) m.set(p.name, { shape: [...p.shape], data: p.data });
    return m;
  }

  /**
   * Copies tensors into the arena by name, as PyTorch's load_state_dict: returns the missing
   * and unexpected keys. A shape mismatch throws a UserError (`where` names the source file):
   * shapes must be identical, as in PyTorch. Each tensor's `data` is read once (a lazy source
   * may read it from its file then); int8-only weights are quantised from it.
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
      if (!sameShape(t.shape, p.shape)) {
        throw new UserError(
          `${where}: size mismatch for ${p.name}: checkpoint has ${shapeStr(t.shape)}, model expects ${shapeStr(p.shape)}`,
        );
      }
      const values = t.data;
      if (values.length !== p.size)
        throw new UserError(
          `${where}: size mismatch for ${p.name}: checkpoint has ${values.length} values, model expects ${shapeStr(p.shape)}`,
        );
      if (this.isInt8(p)) this.quantizeInto(p, values);
      else p.data.set(values);
    }
    for (const k of tensors.keys()) if (!this.byName.has(k)) unexpected.push(k);
    return { missing, unexpected };
  }
}
