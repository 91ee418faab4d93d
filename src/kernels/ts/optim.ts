/**
 * Reference Adam / AdamW step, reproducing torch.optim.Adam and AdamW (PyTorch 1.13-2.x,
 * single-tensor CPU path) operation by operation in fp32:
 *
 *   Adam   (decoupled = false):  g = grad + wd * p                 grad.add(param, alpha=wd)
 *   AdamW  (decoupled = true):   p = p * (1 - lr * wd)             param.mul_(1 - lr*wd)
 *   m = m * b1 + g * (1 - b1)                                       exp_avg.mul_(b1).add_(g, alpha=1-b1)
 *   v = v * b2 + (1 - b2) * g * g                                   exp_avg_sq.mul_(b2).addcmul_(g, g, value=1-b2)
 *   denom = sqrt(v) / sqrt(1 - b2^step) + eps                       (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
 *   p = p + (-lr / (1 - b1^step)) * m / denom                       param.addcdiv_(m, denom, value=-step_size)
 *
 * Scalars are computed in float64 as Python does and then used as fp32 (ATen's opmath for
 * float tensors); every tensor op result is rounded to fp32 (Math.fround) as the tensor it
 * lands in would be. Where PyTorch's scalar loops compute `a + b * c` the compiler fuses it into
 * one FMA (one rounding); the product of two fp32 numbers is exact in float64, so
 * `fround(a + b * c)` reproduces that (barring a rare double rounding). This matches the golden values bit for bit
 * (test/fixtures/adam_golden.json); PyTorch's vectorised paths on long tensors round
 * `addcmul` unfused, so there the two can differ by an ulp.
 */
import type { Kernels } from '../api.js';
import { need } from './scratch.js';

const f = Math.fround;

export const optimKernels: Pick<Kernels, 'adamUpdate'> = {
  adamUpdate(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step, decoupled) {
    need('adamUpdate', n, { param, grad, m, v });
    if (!(step >= 1) || !Number.isInteger(step))
      throw new RangeError(`adamUpdate: step must be an integer >= 1, got ${step}`);
    const b1 = f(beta1);
    const oneMinusB1 = f(1 - beta1);
    const b2 = f(beta2);
    const oneMinusB2 = f(1 - beta2);
    const wd = f(weightDecay);
    const decay = f(1 - lr * weightDecay);
    const biasCorrection2Sqrt = f(Math.sqrt(1 - beta2 ** step));
    const negStepSize = f(-(lr / (1 - beta1 ** step)));
    const eps32 = f(eps);
    const l2 = !decoupled && weightDecay !== 0;
    const shrink = decoupled && weightDecay !== 0;
    for (let i = 0; i < n; i++) {
      let p = param[i];
      let g = grad[i];
      if (l2) g = f(g + wd * p);
      if (shrink) p = f(p * decay);
      const mi = f(f(m[i] * b1) + g * oneMinusB1);
      const vi = f(f(v[i] * b2) + f(oneMinusB2 * g) * g);
      const denom = f(f(f(Math.sqrt(vi)) / biasCorrection2Sqrt) + eps32);
      param[i] = f(p + f(f(negStepSize * mi) / denom));
      m[i] = mi;
      v[i] = vi;
    }
  },
};
