/** nn.LayerNorm with PyTorch's default eps 1e-5 (not MAE's 1e-6), weight 1, bias 0. */
import * as ops from '../autograd/ops.js';
import type { Tape } from '../autograd/tape.js';
import type { Param, ParamBuilder } from '../tensor/arena.js';
import type { Tensor } from '../tensor/tensor.js';
import { ones, zeros } from './init.js';

export class LayerNorm {
  readonly weight: Param;
  readonly bias: Param;

  constructor(
    pb: ParamBuilder,
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    this.weight = pb.param('weight', [dim], ones());
    this.bias = pb.param('bias', [dim], zeros());
  }

  forward(tp: Tape, x: Tensor): Tensor {
    return ops.layerNorm(tp, x, this.weight, this.bias, this.eps);
  }
}
