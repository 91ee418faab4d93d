/**
 * timm 0.4.5 Attention: qkv = Linear(d, 3d) with bias (q rows 0..d-1, k d..2d-1, v 2d..3d-1,
 * heads contiguous inside each), softmax(q·kᵀ·head_dim^-0.5)·v, heads concatenated, proj.
 */
import * as ops from '../autograd/ops.js';
import type { Tape } from '../autograd/tape.js';
import type { ParamBuilder } from '../tensor/arena.js';
import type { Tensor } from '../tensor/tensor.js';
import { Linear } from './linear.js';

export class Attention {
  readonly qkv: Linear;
  readonly proj: Linear;
  readonly scale: number;

  constructor(
    pb: ParamBuilder,
    readonly dim: number,
    readonly heads: number,
  ) {
    if (dim % heads !== 0) throw new Error(`attention width ${dim} is not divisible by ${heads} heads`);
    this.qkv = new Linear(pb.scope('qkv'), dim, 3 * dim);
    this.proj = new Linear(pb.scope('proj'), dim, dim);
    this.scale = (dim / heads) ** -0.5;
  }

  /** proj(attention(qkv(x))), plus `residual` when given (the block's skip connection, fused into proj). */
  forward(tp: Tape, x: Tensor, residual?: Tensor): Tensor {
    const qkv = this.qkv.forward(tp, x); // [B, T, 3d]
    const y = ops.attention(tp, qkv, this.heads, this.scale); // [B, T, d]
    if (!tp.gradEnabled) tp.pool.release(qkv.data); // inference: dead now
    const out = residual
      ? ops.linearAdd(tp, y, this.proj.weight, this.proj.bias, residual)
      : this.proj.forward(tp, y);
    if (!tp.gradEnabled) tp.pool.release(y.data);
    return out;
  }
}
