/**
 * Naive float64 versions of the kernels' forward math, written straight from the definitions
 * (no shared code with src/kernels) for reference.test.ts and gradcheck.test.ts.
 * Every function takes and returns plain number arrays / Float64Arrays.
 */

/** erf by its Maclaurin series (|x| < 2.5) or the Laplace continued fraction of erfc. */
export function erf64(x: number): number {
  const ax = Math.abs(x);
  if (ax < 2.5) {
    // erf x = 2/√π Σ (-1)^n x^(2n+1) / (n! (2n+1))
    let term = ax; // x^(2n+1)/n! with sign
    let sum = ax;
    for (let n = 1; n < 200; n++) {
      term *= (-ax * ax) / n;
      const t = term / (2 * n + 1);
      sum += t;
      if (Math.abs(t) < 1e-18 * Math.abs(sum)) break;
    }
    const e = (2 / Math.sqrt(Math.PI)) * sum;
    return x < 0 ? -e : e;
  }
  const e = 1 - erfc64(ax);
  return x < 0 ? -e : e;
}

/** erfc for x >= 2.5: exp(-x²)/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))). */
export function erfc64(x: number): number {
  if (x < 2.5) return 1 - erf64(x);
  let f = x;
  for (let k = 200; k >= 1; k--) f = x + k / 2 / f;
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / f;
}

export function gelu64(x: number): number {
  if (x < -2.5 * Math.SQRT2) return 0.5 * x * erfc64(-x / Math.SQRT2);
  return 0.5 * x * (1 + erf64(x / Math.SQRT2));
}

/** bf16 round-to-nearest-even by arithmetic: keep 8 significant bits (exponent range of fp32). */
export function bf16Round64(x: number): number {
  if (!Number.isFinite(x) || x === 0) return x;
  const ax = Math.abs(x);
  let e = Math.floor(Math.log2(ax));
  if (2 ** e > ax) e -= 1;
  if (2 ** (e + 1) <= ax) e += 1;
  const ulp = 2 ** Math.max(e - 7, -133); // fp32 subnormals share bf16's 2^-133 spacing
  const q = ax / ulp;
  let r = Math.floor(q);
  const frac = q - r;
  if (frac > 0.5 || (frac === 0.5 && r % 2 === 1)) r += 1;
  const y = r * ulp;
  const BF16_MAX = (2 - 2 ** -7) * 2 ** 127;
  const out = y > BF16_MAX ? Infinity : y;
  return x < 0 ? -out : out;
}

/** C = alpha op(A) op(B) + beta C0 with the api.ts layouts (C0 ignored when beta = 0). */
export function matmul64(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  c0: ArrayLike<number>,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  alpha: number,
  beta: number,
): Float64Array {
  const c = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) {
        const aip = transA ? a[p * m + i] : a[i * k + p];
        const bpj = transB ? b[j * k + p] : b[p * n + j];
        s += aip * bpj;
      }
      c[i * n + j] = alpha * s + (beta === 0 ? 0 : beta * c0[i * n + j]);
    }
  }
  return c;
}

export function layerNorm64(
  x: ArrayLike<number>,
  w: ArrayLike<number>,
  b: ArrayLike<number>,
  rows: number,
  cols: number,
  eps: number,
): { out: Float64Array; mean: Float64Array; rstd: Float64Array } {
  const out = new Float64Array(rows * cols);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let mu = 0;
    for (let c = 0; c < cols; c++) mu += x[r * cols + c];
    mu /= cols;
    let variance = 0;
    for (let c = 0; c < cols; c++) variance += (x[r * cols + c] - mu) ** 2;
    variance /= cols; // biased, as torch.nn.LayerNorm
    const rs = 1 / Math.sqrt(variance + eps);
    for (let c = 0; c < cols; c++) out[r * cols + c] = (x[r * cols + c] - mu) * rs * w[c] + b[c];
    mean[r] = mu;
    rstd[r] = rs;
  }
  return { out, mean, rstd };
}

export function softmax64(x: ArrayLike<number>, rows: number, cols: number, scale: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let c = 0; c < cols; c++) max = Math.max(max, scale * x[r * cols + c]);
    let sum = 0;
    for (let c = 0; c < cols; c++) sum += Math.exp(scale * x[r * cols + c] - max);
    for (let c = 0; c < cols; c++) out[r * cols + c] = Math.exp(scale * x[r * cols + c] - max) / sum;
  }
  return out;
}

/**
 * timm Attention core from its definition: q, k, v slices of qkv [B,T,3C], heads contiguous.
 * Without `round` everything is float64 (smooth, for finite differences). With `round` (bf16
 * rounding) it is applied to the operands of the two products, and the probabilities are first
 * rounded to fp32, as the kernel stores them before its bf16 att·v product.
 */
export function attention64(
  qkv: ArrayLike<number>,
  B: number,
  T: number,
  C: number,
  H: number,
  scale: number,
  round?: (x: number) => number,
): { out: Float64Array; att: Float64Array } {
  const r = round ?? ((x: number) => x);
  const roundProb = round ? (x: number) => round(Math.fround(x)) : r;
  const hd = C / H;
  const out = new Float64Array(B * T * C);
  const att = new Float64Array(B * H * T * T);
  const q = (b: number, t: number, h: number, d: number) => qkv[(b * T + t) * 3 * C + h * hd + d];
  const k = (b: number, t: number, h: number, d: number) => qkv[(b * T + t) * 3 * C + C + h * hd + d];
  const v = (b: number, t: number, h: number, d: number) => qkv[(b * T + t) * 3 * C + 2 * C + h * hd + d];
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let t = 0; t < T; t++) {
        const scores = new Float64Array(T);
        for (let s = 0; s < T; s++) {
          let dot = 0;
          for (let d = 0; d < hd; d++) dot += r(q(b, t, h, d)) * r(k(b, s, h, d));
          scores[s] = scale * dot;
        }
        const p = softmax64(scores, 1, T, 1);
        for (let s = 0; s < T; s++) att[((b * H + h) * T + t) * T + s] = p[s];
        for (let d = 0; d < hd; d++) {
          let acc = 0;
          for (let s = 0; s < T; s++) acc += roundProb(p[s]) * r(v(b, s, h, d));
          out[(b * T + t) * C + h * hd + d] = acc;
        }
      }
    }
  }
  return { out, att };
}

export function l2Normalize64(x: ArrayLike<number>, rows: number, cols: number, eps: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += x[r * cols + c] ** 2;
    const denom = Math.max(Math.sqrt(ss), eps);
    for (let c = 0; c < cols; c++) out[r * cols + c] = x[r * cols + c] / denom;
  }
  return out;
}

export function meanPool64(x: ArrayLike<number>, B: number, T: number, D: number): Float64Array {
  const out = new Float64Array(B * D);
  for (let b = 0; b < B; b++) {
    for (let d = 0; d < D; d++) {
      let s = 0;
      for (let t = 0; t < T; t++) s += x[(b * T + t) * D + d];
      out[b * D + d] = s / T;
    }
  }
  return out;
}

/** Σ w·y in float64. */
export function dot64(w: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += w[i] * y[i];
  return s;
}

/** Central finite differences of a scalar function at x (x is restored afterwards). */
export function numericGrad(f: (x: Float64Array) => number, x: Float64Array, h = 1e-5): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const x0 = x[i];
    x[i] = x0 + h;
    const fp = f(x);
    x[i] = x0 - h;
    const fm = f(x);
    x[i] = x0;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}
