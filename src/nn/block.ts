/**
 * The CAV-MAE transformer Block: pre-norm attention and MLP with THREE LayerNorm pairs.
 * modality undefined uses (norm1, norm2), 'a' uses (norm1_a, norm2_a), 'v' uses (norm1_v,
 * norm2_v); attention and MLP weights are shared by all three. Modality-specific and decoder
 * blocks only ever use the first pair, but all six norms exist so checkpoint keys match.
 * Registration order = the official state-dict order.
 */
import * as ops from '../autograd/ops.js';
import type { Tape } from '../autograd/tape.js';
import type { ParamBuilder } from '../tensor/arena.js';
import type { Tensor } from '../tensor/tensor.js';
import { Attention } from './attention.js';
import { LayerNorm } from './layer-norm.js';
import { Mlp } from './mlp.js';

export type Modality = 'a' | 'v';

export class Block {
  readonly norm1: LayerNorm;
  readonly norm1_a: LayerNorm;
  readonly norm1_v: LayerNorm;
  readonly attn: Attention;
  readonly norm2: LayerNorm;
  readonly norm2_a: LayerNorm;
  readonly norm2_v: LayerNorm;
  readonly mlp: Mlp;

  constructor(pb: ParamBuilder, dim: number, heads: number, mlpRatio = 4) {
    this.norm1 = new LayerNorm(pb.scope('norm1'), dim);
    this.norm1_a = new LayerNorm(pb.scope('norm1_a'), dim);
    this.norm1_v = new LayerNorm(pb.scope('norm1_v'), dim);
    this.attn = new Attention(pb.scope('attn'), dim, heads);
    this.norm2 = new LayerNorm(pb.scope('norm2'), dim);
    this.norm2_a = new LayerNorm(pb.scope('norm2_a'), dim);
    this.norm2_v = new LayerNorm(pb.scope('norm2_v'), dim);
    this.mlp = new Mlp(pb.scope('mlp'), dim, Math.trunc(dim * mlpRatio));
  }

  forward(tp: Tape, x: Tensor, modality?: Modality): Tensor {
    const n1 = modality === 'a' ? this.norm1_a : modality === 'v' ? this.norm1_v : this.norm1;
    const n2 = modality === 'a' ? this.norm2_a : modality === 'v' ? this.norm2_v : this.norm2;
    const { attn, mlp } = this;
    // x + attn(norm1(x)): norm1 + qkv in one op (the normalised x is recomputed in backward),
    // the residual add fused into the output projection.
    const qkv = ops.layerNormLinear(tp, x, n1.weight, n1.bias, n1.eps, attn.qkv.weight, attn.qkv.bias); // [B, T, 3D]
    const y = ops.attention(tp, qkv, attn.heads, attn.scale); // [B, T, D]
    if (!tp.gradEnabled) tp.pool.release(qkv.data);
    const x1 = ops.linearAdd(tp, y, attn.proj.weight, attn.proj.bias, x);
    if (!tp.gradEnabled) tp.pool.release(y.data);
    // x1 + mlp(norm2(x1)) in one op: only fc1's pre-activation is kept for backward.
    const out = ops.layerNormMlp(
      tp,
      x1,
      n2.weight,
      n2.bias,
      n2.eps,
      mlp.fc1.weight,
      mlp.fc1.bias,
      mlp.fc2.weight,
      mlp.fc2.bias,
      x1,
    );
    if (!tp.gradEnabled) tp.pool.release(x1.data); // inference: dead now, the next block reuses it
    return out;
  }
}

/**
 * Runs `blocks` in sequence. Inference: each block's output goes back to the pool once the
 * next block has consumed it (the input `x` stays the caller's), so a forward pass reuses two
 * token buffers instead of leaving one per block to the garbage collector.
 */
export function runBlocks(tp: Tape, blocks: readonly Block[], x: Tensor, modality?: Modality): Tensor {
  for (let i = 0; i < blocks.length; i++) {
    const y = blocks[i].forward(tp, x, modality);
    if (i > 0 && !tp.gradEnabled) tp.pool.release(x.data); // block i-1's output: dead now
    x = y;
  }
  return x;
}
