/**
 * The CAV-MAE transformer Block: pre-norm attention and MLP with THREE LayerNorm pairs.
 * modality undefined uses (norm1, norm2), 'a' uses (norm1_a, norm2_a), 'v' uses (norm1_v,
 * norm2_v); attention and MLP weights are shared by all three. Modality-specific and decoder
 * blocks only ever use the first pair, but all six norms exist so checkpoint keys match.
 * Registration order = the official state-dict order.
 */
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
    // The residual adds are fused into the output projections (attn.proj, mlp.fc2).
    const h1 = n1.forward(tp, x);
    const x1 = this.attn.forward(tp, h1, x); // x + attn(norm1(x))
    if (!tp.gradEnabled) tp.pool.release(h1.data);
    const h2 = n2.forward(tp, x1);
    const out = this.mlp.forward(tp, h2, x1); // x1 + mlp(norm2(x1))
    if (!tp.gradEnabled) {
      // Inference: this block's intermediates are dead; the next block reuses their memory.
      tp.pool.release(h2.data);
      tp.pool.release(x1.data);
    }
    return out;
  }
}

/** Runs `blocks` in sequence. */
export function runBlocks(tp: Tape, blocks: readonly Block[], x: Tensor, modality?: Modality): Tensor {
  for (const b of blocks) x = b.forward(tp, x, modality);
  return x;
}
