/**
 * Reference elementwise and row kernels: exact-erf GELU, scaled softmax, bias, add, axpy.
 *
 * Contract: all arithmetic in float64, one rounding to fp32 on store; backward kernels
 * accumulate (+=). erf/erfc follow W. J. Cody's rational Chebyshev approximations
 * ("Rational Chebyshev approximations for the error function", Math. Comp. 23, 1969), accurate
 * to about 1e-16 relative in float64; GELU is evaluated through erfc so that its tiny values for
 * very negative x keep their relative accuracy instead of cancelling in 1 + erf(x).
 */
import type { Kernels } from '../api.js';
import { need, scratchF64 } from './scratch.js';

// Cody's coefficients: |x| <= 0.5 (erf), 0.5 < |x| <= 4 (erfc), |x| > 4 (erfc, asymptotic).
const ERF_A = [
  3.1611237438705655, 113.86415415105016, 377.485237685302, 3209.3775891384694, 0.18577770618460315,
];
const ERF_B = [23.601290952344122, 244.02463793444417, 1282.6165260773723, 2844.236833439171];
const ERF_C = [
  0.5641884969886701, 8.883149794388377, 66.11919063714163, 298.6351381974001, 881.952221241769,
  1712.0476126340707, 2051.0783778260716, 1230.3393547979972, 2.1531153547440383e-8,
];
const ERF_D = [
  15.744926110709835, 117.6939508913125, 537.1811018620099, 1621.3895745666903, 3290.7992357334597,
  4362.619090143247, 3439.3676741437216, 1230.3393548037495,
];
const ERF_P = [
  0.30532663496123236, 0.36034489994980445, 0.12578172611122926, 0.016083785148742275, 0.0006587491615298378,
  0.016315387137302097,
];
const ERF_Q = [
  2.568520192289822, 1.8729528499234673, 0.5279051029514285, 0.06051834131244132, 0.0023352049762686918,
];
const INV_SQRT_PI = 0.5641895835477563;
const SQRT1_2 = Math.SQRT1_2;
const INV_SQRT_2PI = 0.3989422804014327;

/** erf(x) for |x| <= 0.46875. */
function erfSmall(x: number): number {
  const ysq = x * x;
  let num = ERF_A[4] * ysq;
  let den = ysq;
  for (let i = 0; i < 3; i++) {
    num = (num + ERF_A[i]) * ysq;
    den = (den + ERF_B[i]) * ysq;
  }
  return (x * (num + ERF_A[3])) / (den + ERF_B[3]);
}

/** erfc(y) for y > 0.46875. */
function erfcLarge(y: number): number {
  if (y === Infinity) return 0;
  let r: number;
  if (y <= 4) {
    let num = ERF_C[8] * y;
    let den = y;
    for (let i = 0; i < 7; i++) {
      num = (num + ERF_C[i]) * y;
      den = (den + ERF_D[i]) * y;
    }
    r = (num + ERF_C[7]) / (den + ERF_D[7]);
  } else {
    const z = 1 / (y * y);
    let num = ERF_P[5] * z;
    let den = z;
    for (let i = 0; i < 4; i++) {
      num = (num + ERF_P[i]) * z;
      den = (den + ERF_Q[i]) * z;
    }
    r = (z * (num + ERF_P[4])) / (den + ERF_Q[4]);
    r = (INV_SQRT_PI - r) / y;
  }
  // exp(-y²) split as exp(-ys²) * exp(-(y-ys)(y+ys)) with ys = y rounded down to 1/16:
  // ys² is exact, so the large exponent carries no rounding error.
  const ys = Math.trunc(y * 16) / 16;
  const del = (y - ys) * (y + ys);
  return Math.exp(-ys * ys) * Math.exp(-del) * r;
}

/** The error function, float64, ~1e-16 relative. */
export function erf(x: number): number {
  const y = Math.abs(x);
  if (y <= 0.46875) return erfSmall(x);
  if (Number.isNaN(x)) return x;
  const e = 0.5 - erfcLarge(y) + 0.5;
  return x < 0 ? -e : e;
}

/** The complementary error function 1 - erf(x), float64, accurate in its tail. */
export function erfc(x: number): number {
  const y = Math.abs(x);
  if (y <= 0.46875) return 1 - erfSmall(x);
  if (Number.isNaN(x)) return x;
  const e = erfcLarge(y);
  return x < 0 ? 2 - e : e;
}

/** Exact GELU in float64: x * Φ(x) = 0.5 * x * erfc(-x / √2). */
export function gelu(x: number): number {
  return 0.5 * x * erfc(-x * SQRT1_2);
}

/** d/dx GELU(x) = Φ(x) + x φ(x). */
export function geluGrad(x: number): number {
  return 0.5 * erfc(-x * SQRT1_2) + x * INV_SQRT_2PI * Math.exp(-0.5 * x * x);
}

export const elementwiseKernels: Pick<
  Kernels,
  | 'geluForward'
  | 'geluBackward'
  | 'softmaxForward'
  | 'softmaxBackward'
  | 'biasAdd'
  | 'biasBackward'
  | 'add'
  | 'axpy'
> = {
  geluForward(out, inp, n) {
    need('geluForward', n, { out, inp });
    for (let i = 0; i < n; i++) out[i] = gelu(inp[i]);
  },
  geluBackward(dinp, inp, dout, n) {
    need('geluBackward', n, { dinp, inp, dout });
    for (let i = 0; i < n; i++) dinp[i] += dout[i] * geluGrad(inp[i]);
  },
  softmaxForward(out, inp, rows, cols, scale) {
    need('softmaxForward', rows * cols, { out, inp });
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      // The max of scale*x (not of x) so a negative scale is handled too.
      let max = -Infinity;
      for (let c = 0; c < cols; c++) max = Math.max(max, scale * inp[o + c]);
      // out holds the exponentials until normalised (one extra fp32 rounding, <= 1 ulp).
      let sum = 0;
      for (let c = 0; c < cols; c++) {
        const e = Math.exp(scale * inp[o + c] - max);
        out[o + c] = e;
        sum += e;
      }
      const inv = 1 / sum;
      for (let c = 0; c < cols; c++) out[o + c] *= inv;
    }
  },
  softmaxBackward(dinp, out, dout, rows, cols, scale) {
    need('softmaxBackward', rows * cols, { dinp, out, dout });
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let dot = 0;
      for (let c = 0; c < cols; c++) dot += dout[o + c] * out[o + c];
      for (let c = 0; c < cols; c++) dinp[o + c] += scale * out[o + c] * (dout[o + c] - dot);
    }
  },
  biasAdd(x, bias, rows, cols) {
    need('biasAdd', rows * cols, { x });
    need('biasAdd', cols, { bias });
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      for (let c = 0; c < cols; c++) x[o + c] += bias[c];
    }
  },
  biasBackward(dbias, dout, rows, cols) {
    need('biasBackward', cols, { dbias });
    need('biasBackward', rows * cols, { dout });
    // Stream the rows into float64 column sums.
    const sum = scratchF64(0, cols);
    sum.fill(0, 0, cols);
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      for (let c = 0; c < cols; c++) sum[c] += dout[o + c];
    }
    for (let c = 0; c < cols; c++) dbias[c] += sum[c];
  },
  add(out, a, b, n) {
    need('add', n, { out, a, b });
    for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
  },
  axpy(y, x, alpha, n) {
    need('axpy', n, { y, x });
    for (let i = 0; i < n; i++) y[i] += alpha * x[i];
  },
};
