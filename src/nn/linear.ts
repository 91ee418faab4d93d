/** nn.Linear: weight [out, in] (xavier_uniform), bias [out] (zeros). */
import * as ops from '../autograd/ops.js';
import type { Tape } from '../autograd/tape.js';
import type { Param, ParamBuilder } from '../tensor/arena.js';
import type { Tensor } from '../tensor/tensor.js';
import { xavierUniform, zeros } from './init.js';

export class Linear {
  readonly weight: Param;
  readonly bias: Param | null;

  constructor(
    pb: ParamBuilder,
    readonly inFeatures: number,
    readonly outFeatures: number,
    opts: { bias?: boolean } = {},
  ) {
    this.weight = pb.param('weight', [outFeatures, inFeatures], xavierUniform(inFeatures, outFeatures), {
      gemm: true,
    });
    this.bias = (opts.bias ?? true) ? pb.param('bias', [outFeatures], zeros()) : null;
  }

  forward(tp: Tape, x: Tensor): Tensor {
    return ops.linear(tp, x, this.weight, this.bias);
  }
}
