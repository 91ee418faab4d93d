/**
 * Fused kernels: one call doing what several `Kernels` calls do, with the same result.
 *
 * Contract:
 * - `gemmEx` = `matmul`, then `biasAdd` (if bias), then the epilogue: GELU (the pre-activation
 *   goes to `aux` when given, for the backward pass) or a residual add (`c = aux + c`). The
 *   native addon applies bias and epilogue to each output tile while it is still in cache (one
 *   pass over memory instead of three) with exactly the same fp32 operations, so fused and
 *   unfused results are bit-identical (tested).
 * - A and B may be given already rounded to bf16 (`Uint16Array`, only with bf16 = true): a
 *   weight used by several GEMMs of a step is converted once.
 * - `gemmInt8` is the int8 linear layer (weights per output channel, activations per row,
 *   symmetric, exact int32 sums); the reference emulates it exactly with float64 sums.
 * - `fused(k)` returns the addon's implementation when `k` is the native backend, otherwise the
 *   composition of the `Kernels` calls below (the reference, and the TypeScript fallback).
 */
import type { BF16, F32, Kernels } from './api.js';

export const EPILOGUE_NONE = 0;
export const EPILOGUE_GELU = 1;
export const EPILOGUE_ADD = 2;
export type Epilogue = typeof EPILOGUE_NONE | typeof EPILOGUE_GELU | typeof EPILOGUE_ADD;

/** attentionInference's precision: 0 fp32, 1 bf16, 2 int8. */
export type AttentionPrecision = 0 | 1 | 2;

export interface FusedKernels {
  /**
   * int8 weights: per output row n of w [n,k], scale[n] = max|w[n,:]| / 127,
   * wq = round-half-even(w · (127 / max|w[n,:]|)) in [-127, 127], comp[n] = 128 · Σ_k wq[n,k].
   */
  quantizeWeightsInt8(w: F32, n: number, k: number, wq: Int8Array, scale: F32, comp: Int32Array): void;
  /**
   * int8 linear layer: x [m,k] is quantised per row the same way (scale_x[m]), the products
   * summed exactly in int32, c = (float)Σ xq·wq · scale_x[m] · scale[n], then bias and the
   * epilogue as gemmEx (aux: GELU pre-activation or residual). AVX512-VNNI via oneDNN natively.
   * xq / xScale (optional): x already quantised per row (u8 = q + 128, as layerNormForwardInt8
   * or a previous gemmInt8's out8 make them); x is then not read and may be null. out8 /
   * out8Scale (optional): the final c quantised per row the same way as well (the next int8
   * GEMM's input, made while each tile of whole rows is in cache); c may then be null.
   * wPacked (optional): the same weights in packWeightsInt8's layout, for the backend's own
   * kernel where packsInt8Weights(n, k); the result is the same with or without it. wq may then
   * be null (a weight held packed only).
   */
  gemmInt8(
    x: F32 | null,
    wq: Int8Array | null,
    wScale: F32,
    wComp: Int32Array,
    c: F32 | null,
    m: number,
    n: number,
    k: number,
    bias: F32 | null,
    epilogue: Epilogue,
    aux: F32 | null,
    xq?: Uint8Array | null,
    xScale?: F32 | null,
    out8?: Uint8Array | null,
    out8Scale?: F32 | null,
    wPacked?: Uint8Array | null,
  ): void;

  /**
   * out [n·k bytes] = wq [n, k] (s8) in the layout the native VNNI GEMM reads (n a multiple of
   * 64, k of 4): panels of 64 output channels, each [k/4][64][4] bytes, byte t of dword (q, j)
   * of panel p = wq[64p + j][4q + t] (native/gemm_int8.h).
   */
  packWeightsInt8(wq: Int8Array, n: number, k: number, out: Uint8Array): void;

  /** Whether gemmInt8 of this shape reads packed weights when it is given them (worth packing). */
  packsInt8Weights(n: number, k: number): boolean;

  /**
   * layerNormForward (mean, rstd as it) with the output quantised per row to u8 (q + 128) with
   * scales instead of written in fp32: the input of an int8 linear layer.
   */
  layerNormForwardInt8(
    q: Uint8Array,
    qScale: F32,
    mean: F32,
    rstd: F32,
    inp: F32,
    weight: F32,
    bias: F32,
    rows: number,
    cols: number,
    eps: number,
  ): void;

  /**
   * layerNormForward (mean, rstd as it) with the output rounded to bf16 (`f32ToBf16` of it)
   * instead of written in fp32: the operand of a bf16 GEMM, without the fp32 pass.
   */
  layerNormForwardBf16(
    out16: BF16,
    mean: F32,
    rstd: F32,
    inp: F32,
    weight: F32,
    bias: F32,
    rows: number,
    cols: number,
    eps: number,
  ): void;

  /** geluForward with the output rounded to bf16 (`f32ToBf16` of it) instead of written in fp32. */
  geluForwardBf16(out16: BF16, inp: F32, n: number): void;

  /**
   * Inference attention (no backward follows): out [B,T,C] = attention(qkv [B,T,3C]) as
   * `attentionForward` in precision 0 (fp32) or 1 (bf16), or 2: int8 — q and k quantised per
   * row, v per head dimension, the probabilities as u8 of exp(s - max) normalised by their own
   * sum (the scheme of `int8Attention` below; native: AVX512-VNNI, falling back to bf16 where
   * the CPU lacks it or the head size is not a multiple of 16 up to 64, and to fp32 where the CPU
   * has no bf16 matmul either, info().bf16Gemm 'fp32-widened').
   */
  attentionInference(
    out: F32,
    qkv: F32,
    B: number,
    T: number,
    C: number,
    H: number,
    scale: number,
    precision: AttentionPrecision,
  ): void;

  /**
   * C [m,n] = alpha op(A) op(B) + beta C (+ bias per column), then:
   * epilogue 1 (GELU): aux = C (when aux is given), C = gelu(C); 2 (add): C = aux + C (aux [m,n]).
   * out16 [m,n] (optional): the final C rounded to bf16 as well (the operand of a following bf16
   * GEMM, made while each tile is in cache). c may be null when out16 is given (then beta must
   * be 0): only the bf16 result is produced.
   */
  gemmEx(
    a: F32 | BF16,
    b: F32 | BF16,
    c: F32 | null,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    alpha: number,
    beta: number,
    bf16: boolean,
    bias: F32 | null,
    epilogue: Epilogue,
    aux: F32 | null,
    out16?: BF16 | null,
  ): void;
}

/** Round half to even (the native conversion's rounding). */
function rne(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * One row's int8 quantisation in float32 arithmetic, as the native kernel: returns the scale.
 * The row's elements lie `stride` apart in x (a column: the row stride), `qStride` apart in q.
 */
function quantizeRow(
  x: ArrayLike<number>,
  off: number,
  cols: number,
  q: Int8Array | Float32Array,
  qOff: number,
  stride = 1,
  qStride = 1,
): number {
  let m = 0;
  for (let c = 0; c < cols; c++) m = Math.max(m, Math.abs(x[off + c * stride]));
  const inv = m > 0 ? Math.fround(127 / m) : 0;
  for (let c = 0; c < cols; c++)
    q[qOff + c * qStride] = Math.min(127, Math.max(-127, rne(Math.fround(x[off + c * stride] * inv))));
  return Math.fround(m / 127);
}

/**
 * The int8 attention of one (sample, head), in float32 arithmetic as the native kernels
 * (native/attention_int8.h): q rows u8 (+128), k rows s8 (per row), v s8 per head dimension,
 * exact integer sums, probabilities u8 rne(255 exp(scale s - max)) normalised by their sum.
 * The exp is Math.exp (the native one is a polynomial within a few ulp), so single
 * probabilities may differ by one step of 1/255.
 */
function int8Attention(
  out: F32,
  qkv: F32,
  b: number,
  h: number,
  T: number,
  C: number,
  hd: number,
  scale: number,
): void {
  const base = b * T * 3 * C + h * hd;
  const row = (j: number, part: number): number => base + j * 3 * C + part * C;
  const qq = new Float32Array(T * hd);
  const kq = new Float32Array(T * hd);
  const sq = new Float32Array(T);
  const sk = new Float32Array(T);
  for (let j = 0; j < T; j++) {
    sq[j] = quantizeRow(qkv, row(j, 0), hd, qq, j * hd);
    sk[j] = quantizeRow(qkv, row(j, 1), hd, kq, j * hd);
  }
  // v per head dimension over the keys
  const vq = new Float32Array(T * hd);
  const sv = new Float32Array(hd);
  for (let d = 0; d < hd; d++) sv[d] = quantizeRow(qkv, row(0, 2) + d, T, vq, d, 3 * C, hd);
  const s = new Float32Array(T);
  const p = new Float32Array(T);
  for (let i = 0; i < T; i++) {
    let mx = -Infinity;
    for (let j = 0; j < T; j++) {
      let acc = 0;
      for (let d = 0; d < hd; d++) acc += qq[i * hd + d] * kq[j * hd + d];
      s[j] = Math.fround(Math.fround(acc * sq[i]) * sk[j]);
      mx = Math.max(mx, s[j]);
    }
    const negmax = -Math.fround(mx * scale);
    let sum = 0;
    for (let j = 0; j < T; j++) {
      p[j] = rne(Math.fround(Math.exp(Math.fround(s[j] * scale + negmax)) * 255));
      sum += p[j];
    }
    const inv = Math.fround(1 / sum);
    for (let d = 0; d < hd; d++) {
      let acc = 0;
      for (let j = 0; j < T; j++) acc += p[j] * vq[j * hd + d];
      out[(b * T + i) * C + h * hd + d] = Math.fround(Math.fround(acc * sv[d]) * inv);
    }
  }
}

/** Rows of x [rows, cols] quantised as the int8 GEMM's activations: u8 = q + 128, per-row scales. */
function quantizeRowsU8(x: F32, rows: number, cols: number, q: Uint8Array, scale: F32): void {
  const row = new Float32Array(cols);
  for (let r = 0; r < rows; r++) {
    scale[r] = quantizeRow(x, r * cols, cols, row, 0);
    for (let c = 0; c < cols; c++) q[r * cols + c] = row[c] + 128;
  }
}

/** The row-major s8 weights [n, k] of packWeightsInt8's layout (a copy). */
export function unpackWeightsInt8(packed: Uint8Array, n: number, k: number): Int8Array {
  if (n % 64 !== 0 || k % 4 !== 0 || packed.length < n * k)
    throw new RangeError(`unpackWeightsInt8: ${packed.length} bytes are not packed weights [${n}, ${k}]`);
  const out = new Int8Array(n * k);
  const nq = k / 4;
  const words = new Uint32Array(packed.buffer, packed.byteOffset, (n * k) / 4);
  const rows = new Uint32Array(out.buffer);
  // Dword (q, j) of panel p holds W[64p + j][4q .. 4q + 3]: a transpose of dwords per panel.
  for (let p = 0; p < n / 64; p++)
    for (let q = 0; q < nq; q++)
      for (let j = 0; j < 64; j++) rows[(64 * p + j) * nq + q] = words[(p * nq + q) * 64 + j];
  return out;
}

/** The composition of plain kernels that defines gemmEx, gemmInt8 and attentionInference. */
export function composedFused(k: Kernels): FusedKernels {
  const f32Of = (x: F32 | BF16, n: number): F32 => {
    if (x instanceof Float32Array) return x;
    const out = new Float32Array(n);
    k.bf16ToF32(out, x, n);
    return out;
  };
  const epilogueOf = (
    c: F32,
    m: number,
    n: number,
    bias: F32 | null,
    epilogue: Epilogue,
    aux: F32 | null,
  ): void => {
    if (epilogue === EPILOGUE_ADD && !aux) throw new RangeError('epilogue 2 (add) needs aux');
    if (bias) k.biasAdd(c, bias, m, n);
    if (epilogue === EPILOGUE_GELU) {
      if (aux) aux.set(c.subarray(0, m * n));
      k.geluForward(c, c, m * n);
    } else if (epilogue === EPILOGUE_ADD) {
      k.add(c, aux!, c, m * n);
    }
  };
  return {
    quantizeWeightsInt8(w, n, kk, wq, scale, comp) {
      for (let r = 0; r < n; r++) {
        scale[r] = quantizeRow(w, r * kk, kk, wq, r * kk);
        let sum = 0;
        for (let c = 0; c < kk; c++) sum += wq[r * kk + c];
        comp[r] = 128 * sum;
      }
    },
    gemmInt8(
      x,
      wqIn,
      wScale,
      wComp,
      c,
      m,
      n,
      kk,
      bias,
      epilogue,
      aux,
      xq8,
      xScale,
      out8,
      out8Scale,
      wPacked,
    ) {
      let wq = wqIn;
      if (!wq) {
        if (!wPacked) throw new TypeError('gemmInt8: wq is null: then wPacked must be given');
        wq = unpackWeightsInt8(wPacked, n, kk);
      }
      const xq = new Float32Array(m * kk);
      let xs: F32;
      if (xq8) {
        if (!xScale) throw new TypeError('gemmInt8: xq needs xScale');
        for (let i = 0; i < m * kk; i++) xq[i] = xq8[i] - 128;
        xs = xScale;
      } else {
        if (!x) throw new TypeError('gemmInt8: x is null: then xq and xScale must be given');
        xs = new Float32Array(m);
        for (let r = 0; r < m; r++) xs[r] = quantizeRow(x, r * kk, kk, xq, r * kk);
      }
      if (!c && !out8) throw new TypeError('gemmInt8: c is null: then out8 and out8Scale must be given');
      const cc = c ?? new Float32Array(m * n);
      // The integer sums are exact in the reference's float64 accumulation, then rounded to fp32
      // once (as the native int32 -> fp32 conversion).
      k.matmul(xq, Float32Array.from(wq), cc, m, n, kk, false, true, 1, 0, false);
      for (let r = 0; r < m; r++)
        for (let j = 0; j < n; j++)
          cc[r * n + j] = Math.fround(Math.fround(cc[r * n + j] * xs[r]) * wScale[j]);
      epilogueOf(cc, m, n, bias, epilogue, aux);
      if (out8) {
        if (!out8Scale) throw new TypeError('gemmInt8: out8 needs out8Scale');
        quantizeRowsU8(cc, m, n, out8, out8Scale);
      }
    },
    packWeightsInt8(wq, n, kk, out) {
      if (n % 64 !== 0 || kk % 4 !== 0)
        throw new RangeError(
          `packWeightsInt8: n (${n}) must be a multiple of 64 and k (${kk}) a multiple of 4`,
        );
      const nq = kk / 4;
      for (let p = 0; p < n / 64; p++)
        for (let q = 0; q < nq; q++)
          for (let j = 0; j < 64; j++)
            for (let t = 0; t < 4; t++)
              out[((p * nq + q) * 64 + j) * 4 + t] = wq[(64 * p + j) * kk + 4 * q + t] & 0xff;
    },
    packsInt8Weights() {
      return false; // the composition reads wq as it is
    },
    layerNormForwardInt8(q, qScale, mean, rstd, inp, weight, bias, rows, cols, eps) {
      const y = new Float32Array(rows * cols);
      k.layerNormForward(y, mean, rstd, inp, weight, bias, rows, cols, eps);
      quantizeRowsU8(y, rows, cols, q, qScale);
    },
    layerNormForwardBf16(out16, mean, rstd, inp, weight, bias, rows, cols, eps) {
      const y = new Float32Array(rows * cols);
      k.layerNormForward(y, mean, rstd, inp, weight, bias, rows, cols, eps);
      k.f32ToBf16(out16, y, rows * cols);
    },
    geluForwardBf16(out16, inp, n) {
      const y = new Float32Array(n);
      k.geluForward(y, inp, n);
      k.f32ToBf16(out16, y, n);
    },
    attentionInference(out, qkv, B, T, C, H, scale, precision) {
      if (precision !== 2) {
        k.attentionForward(out, new Float32Array(B * H * T * T), qkv, B, T, C, H, scale, precision === 1);
        return;
      }
      if (C % H !== 0) throw new RangeError(`attentionInference: C (${C}) must be a multiple of H (${H})`);
      for (let b = 0; b < B; b++)
        for (let h = 0; h < H; h++) int8Attention(out, qkv, b, h, T, C, C / H, scale);
    },
    gemmEx(a, b, c, m, n, kk, transA, transB, alpha, beta, bf16, bias, epilogue, aux, out16) {
      if ((!(a instanceof Float32Array) || !(b instanceof Float32Array)) && !bf16)
        throw new TypeError('gemmEx: bf16 (Uint16Array) inputs need bf16 = true');
      if (!c && !out16) throw new TypeError('gemmEx: c is null: then out16 (a Uint16Array) must be given');
      if (!c && beta !== 0) throw new RangeError('gemmEx: c is null: beta must be 0');
      const cc = c ?? new Float32Array(m * n);
      // bf16 values are exact in fp32, and matmul's bf16 rounding leaves them unchanged.
      k.matmul(f32Of(a, m * kk), f32Of(b, kk * n), cc, m, n, kk, transA, transB, alpha, beta, bf16);
      epilogueOf(cc, m, n, bias, epilogue, aux);
      if (out16) k.f32ToBf16(out16, cc, m * n);
    },
  };
}

/** True when `fused(k)` takes bf16 (Uint16Array) operands without converting them back to fp32. */
export function takesBf16Operands(k: Kernels): boolean {
  const f = k as Partial<FusedKernels>;
  return (
    k.name === 'native' &&
    typeof f.gemmEx === 'function' &&
    typeof f.gemmInt8 === 'function' &&
    typeof f.packWeightsInt8 === 'function' &&
    typeof f.attentionInference === 'function' &&
    typeof f.layerNormForwardInt8 === 'function' &&
    typeof f.layerNormForwardBf16 === 'function' &&
    typeof f.geluForwardBf16 === 'function'
  );
}

const cache = new WeakMap<Kernels, FusedKernels>();

/** Fused kernels for a backend: the addon's own when it has them, else the composition. */
export function fused(k: Kernels): FusedKernels {
  let f = cache.get(k);
  if (!f) {
    f = takesBf16Operands(k) ? (k as unknown as FusedKernels) : composedFused(k);
    cache.set(k, f);
  }
  return f;
}
