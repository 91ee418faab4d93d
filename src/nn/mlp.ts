/** timm Mlp: fc1 (d → hidden), exact erf GELU, fc2 (hidden → d); no dropout. */
import * as ops from '../autograd/ops.js';
import type { Tape } from '../autograd/tape.js';
import type { ParamBuilder } from '../tensor/arena.js';
import type { Tensor } from '../tensor/tensor.js';
import { Linear } from './linear.js';

export class Mlp {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(pb: ParamBuilder, dim: number, hidden: number) {
    this.fc1 = new Linear(pb.scope('fc1'), dim, hidden);
    this.fc2 = new Linear(pb.scope('fc2'), hidden, dim);
  }

  /** fc2(gelu(fc1(x))), plus `residual` when given (the block's skip connection, fused into fc2). */
  forward(tp: Tape, x: Tensor, residual?: Tensor): Tensor {
    const h = ops.linearGelu(tp, x, this.fc1.weight, this.fc1.bias); // [..., hidden]
    const out = residual
      ? ops.linearAdd(tp, h, this.fc2.weight, this.fc2.bias, residual)
      : this.fc2.forward(tp, h);
    if (!tp.gradEnabled) tp.pool.release(h.data); // inference: dead now
    return out;
  }
}
