/**
 * The tape: reverse-mode autograd as a list of backward closures recorded in forward order.
 *
 * Design contract:
 * - Every op (./ops.ts) computes its output with kernels(), and when gradients are enabled and
 *   some input requires grad, records ONE closure that reads `out.grad` and ACCUMULATES into the
 *   gradients of its inputs (kernels +=). Saved buffers are captured by the closure.
 * - `backward(loss)` seeds d(loss) = 1 and runs the closures in reverse, once per tape. A closure
 *   whose output received no gradient is skipped. The gradient of an activation is recycled into
 *   the pool as soon as its producer's closure has consumed it (after backward, only parameters,
 *   the loss and leaf inputs carry a `grad`); ops may likewise release what they saved.
 * - Gradient buffers of activations come from the pool, zeroed, on first use (`gradOf`);
 *   parameters already carry their view into the ParamArena's flat gradient buffer.
 * - The forward context carries the precision switch: `bf16` makes every GEMM (linear,
 *   attention) round its inputs to bf16 with fp32 accumulation; everything else stays fp32.
 * - `reset()` drops the recorded closures and recycles the pool: call it once per step.
 */
import { kernels } from '../kernels/index.js';
import { fused } from '../kernels/fused.js';
import { Param, int8WeightsFor, type Int8Weights } from '../tensor/arena.js';
import { ActivationPool } from '../tensor/pool.js';
import { Tensor, ShapeError, type Shape } from '../tensor/tensor.js';

export interface TapeOptions {
  /** Record backward closures (default true). */
  grad?: boolean;
  /** bf16 GEMM inputs, fp32 accumulation (default false). */
  bf16?: boolean;
  /**
   * Inference only (needs grad: false): linear layers in int8 (weights per output channel,
   * activations per row, exact int32 sums), attention GEMMs in bf16 (default false).
   */
  int8?: boolean;
  /** Reuse an existing pool (a training loop keeps one across steps). */
  pool?: ActivationPool;
  /**
   * Inference over weights that do not change (needs grad: false): tapes given the same
   * FrozenWeights share the bf16 / int8 copies of the parameters instead of refreshing them per
   * tape, which costs a pass over every weight per forward (~3% of a base embedding call).
   */
  frozen?: FrozenWeights;
}

/** bf16 copies of parameters, refreshed once per tape step (see Tape.bf16Param). */
const bf16Copies = new WeakMap<Float32Array, { buf: Uint16Array; stamp: number }>();
/** int8 quantisations of parameters, refreshed once per tape step (see Tape.int8Param). */
export type Int8Param = Int8Weights;
const int8Copies = new WeakMap<Float32Array, Int8Param>();
let stampCounter = 0;

const inferencePool = new ActivationPool(false);

/**
 * A promise that the parameters stay as they are while tapes use it (a loaded model served for
 * inference). Call `changed()` after any write to the weights; until then the tapes keep using
 * the bf16 / int8 copies made from the old values.
 */
export class FrozenWeights {
  stamp = ++stampCounter;
  changed(): void {
    this.stamp = ++stampCounter;
  }
}

interface Node {
  out: Tensor;
  backward: () => void;
  op: string;
}

export class Tape {
  readonly pool: ActivationPool;
  readonly gradEnabled: boolean;
  bf16: boolean;
  readonly int8: boolean;
  /**
   * Parameters that received a gradient in backward (PyTorch: `p.grad is not None`). Adam in
   * PyTorch skips the others entirely (no weight decay, no moment update): an optimiser over
   * the flat arena mimics that with `arena.trainableRanges((p) => tape.paramsWithGrad.has(p))`.
   */
  readonly paramsWithGrad = new Set<Param>();
  private nodes: Node[] = [];
  private backwardRun = false;
  /** Identifies this step: parameters cannot change between its forward and its backward. */
  private stamp = ++stampCounter;
  private readonly frozen?: FrozenWeights;

  constructor(opts: TapeOptions = {}) {
    this.gradEnabled = opts.grad ?? true;
    this.bf16 = opts.bf16 ?? false;
    this.int8 = opts.int8 ?? false;
    if (this.int8 && this.gradEnabled)
      throw new Error('int8 is for inference: create the tape with grad: false');
    if (opts.frozen) {
      if (this.gradEnabled)
        throw new Error('frozen weights are for inference: create the tape with grad: false');
      this.frozen = opts.frozen;
      this.stamp = opts.frozen.stamp;
    }
    // Inference tapes share one non-tracking pool: what their ops release (dead intermediates)
    // is reused by the next forward pass, so repeated inference reaches a steady state without
    // allocating; buffers they hand out (outputs) stay the caller's.
    this.pool = opts.pool ?? (this.gradEnabled ? new ActivationPool(true) : inferencePool);
  }

  /** An activation tensor backed by a pool buffer (contents undefined). */
  empty(shape: Shape): Tensor {
    let n = 1;
    for (const d of shape) n *= d;
    return new Tensor(shape, this.pool.alloc(n));
  }

  /** An activation tensor of zeros. */
  zeros(shape: Shape): Tensor {
    const t = this.empty(shape);
    t.data.fill(0);
    return t;
  }

  /** A constant input (no grad) over a copy of `values` in a pool buffer. */
  constant(shape: Shape, values: ArrayLike<number>): Tensor {
    const t = this.empty(shape);
    if (values.length !== t.size)
      throw new ShapeError(`constant: ${values.length} values for shape [${shape.join(',')}]`);
    t.data.set(values);
    return t;
  }

  /**
   * The bf16 rounding of a parameter's values (for bf16 GEMMs), converted on first use in this
   * step and shared by every GEMM that reads the parameter until reset(): a weight is rounded
   * once per step, not once per forward and backward GEMM. The buffer is kept across steps
   * (refreshed, never reallocated) for as long as the parameter lives.
   */
  bf16Param(p: Param): Uint16Array {
    let e = bf16Copies.get(p.data);
    if (!e) {
      e = { buf: new Uint16Array(p.size), stamp: 0 };
      bf16Copies.set(p.data, e);
    }
    if (e.stamp !== this.stamp) {
      kernels().f32ToBf16(e.buf, p.data, p.size);
      e.stamp = this.stamp;
    }
    return e.buf;
  }

  /**
   * The int8 quantisation of a weight [out, in] (per output channel: s8 values, scales and the
   * activation-offset compensation): a weight of an int8 inference model is held that way
   * (ParamArena: no fp32 values exist); otherwise computed from the fp32 values on first use in
   * this step, refreshed (never reallocated) in later steps.
   */
  int8Param(p: Param): Int8Param {
    const n = p.shape[0];
    const k = p.size / n;
    const f = fused(kernels());
    let e = p.int8;
    if (!e) {
      e = int8Copies.get(p.data) ?? null;
      if (!e) {
        e = int8WeightsFor(p.shape);
        int8Copies.set(p.data, e);
      }
      if (e.stamp !== this.stamp) {
        f.quantizeWeightsInt8(p.data, n, k, (e.q ??= new Int8Array(p.size)), e.scale, e.comp);
        e.stamp = this.stamp;
      }
    }
    // The native GEMM's own layout, packed once per quantisation (a pass over the int8 weights).
    // An int8-only weight comes packed from its quantisation already (q null).
    if (e.q && e.packedStamp !== e.stamp && f.packsInt8Weights(n, k)) {
      e.packed ??= new Uint8Array(n * k);
      f.packWeightsInt8(e.q, n, k, e.packed);
      e.packedStamp = e.stamp;
    }
    return e;
  }

  /**
   * A gradient buffer for `t` that a kernel is about to write: when `t` has none yet, a fresh
   * buffer with undefined contents and beta 0 (the kernel overwrites it, no zero-fill pass);
   * otherwise the existing one and beta 1 (accumulate). Only for kernels that write every element.
   */
  gradForWrite(t: Tensor): { grad: Float32Array; beta: 0 | 1 } {
    if (t instanceof Param || t.grad) return { grad: this.gradOf(t), beta: 1 };
    t.grad = this.pool.alloc(t.size);
    return { grad: t.grad, beta: 0 };
  }

  /** True when an op over these inputs must record a backward closure. */
  needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
    if (!this.gradEnabled) return false;
    for (const t of inputs) if (t && t.requiresGrad) return true;
    return false;
  }

  /** Registers the backward closure of `out` (and marks it as requiring grad). */
  record(op: string, out: Tensor, backward: () => void): void {
    out.requiresGrad = true;
    this.nodes.push({ out, backward, op });
  }

  /** The gradient buffer of `t`, zero-filled from the pool on first use. */
  gradOf(t: Tensor): Float32Array {
    // Parameters accumulate into their arena's flat gradient buffer, never into the pool.
    if (t instanceof Param) {
      this.paramsWithGrad.add(t);
      return t.gradView();
    }
    if (t.grad) return t.grad;
    t.grad = this.pool.zeros(t.size);
    return t.grad;
  }

  /** Number of recorded closures (tests, debugging). */
  get length(): number {
    return this.nodes.length;
  }

  /** Runs backward from a scalar (or from `seed`, a gradient of loss's shape). */
  backward(loss: Tensor, seed?: Float32Array): void {
    if (!this.gradEnabled) throw new Error('backward() on a tape recorded without gradients');
    if (!loss.requiresGrad)
      throw new Error('backward(): the loss does not depend on any parameter that requires grad');
    const g = this.gradOf(loss);
    if (seed) {
      if (seed.length !== loss.size)
        throw new ShapeError(`backward(): seed of ${seed.length} values for ${loss}`);
      for (let i = 0; i < g.length; i++) g[i] += seed[i];
    } else {
      if (loss.size !== 1) throw new ShapeError(`backward(): ${loss} is not a scalar; pass a seed gradient`);
      g[0] += 1;
    }
    if (this.backwardRun)
      throw new Error('backward() already ran on this tape: call reset() before the next step');
    this.backwardRun = true;
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const node = this.nodes[i];
      const out = node.out;
      if (!out.grad) continue;
      node.backward();
      // Every consumer of `out` was recorded after its producer, so its closure has already
      // added into out.grad: nothing reads that buffer again. Recycling it here keeps the live
      // gradient buffers to about one layer's worth instead of one per activation of the step
      // (peak memory ~ activations, not activations + their gradients). Parameters keep theirs.
      if (out !== loss && !(out instanceof Param)) {
        this.pool.release(out.grad);
        out.grad = null;
      }
    }
  }

  /** Forgets the graph and recycles every pooled buffer (tensors made so far become invalid). */
  reset(): void {
    this.nodes = [];
    this.backwardRun = false;
    this.stamp = this.frozen ? this.frozen.stamp : ++stampCounter;
    this.paramsWithGrad.clear();
    this.pool.reset();
  }
}
