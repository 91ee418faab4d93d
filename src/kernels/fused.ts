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
 * - `fused(k)` returns the addon's implementation when `k` is the native backend, otherwise the
 *   composition of the `Kernels` calls below (the reference, and the TypeScript fallback).
 */
import type { BF16, F32, Kernels } from './api.js';

export const EPILOGUE_NONE = 0;
export const EPILOGUE_GELU = 1;
export const EPILOGUE_ADD = 2;
export type Epilogue = typeof EPILOGUE_NONE | typeof EPILOGUE_GELU | typeof EPILOGUE_ADD;

export interface FusedKernels {
  /**
   * C [m,n] = alpha op(A) op(B) + beta C (+ bias per column), then:
   * epilogue 1 (GELU): aux = C (when aux is given), C = gelu(C); 2 (add): C = aux + C (aux [m,n]).
   */
  gemmEx(
    a: F32 | BF16, b: F32 | BF16, c: F32,
    m: number, n: number, k: number,
    transA: boolean, transB: boolean,
    alpha: number, beta: number, bf16: boolean,
    bias: F32 | null, epilogue: Epilogue, aux: F32 | null,
  ): void;
}

/** The composition of plain kernels that defines gemmEx. */
export function composedFused(k: Kernels): FusedKernels {
  const f32Of = (x: F32 | BF16, n: number): F32 => {
    if (x instanceof Float32Array) return x;
    const out = new Float32Array(n);
    k.bf16ToF32(out, x, n);
    return out;
  };
  return {
    gemmEx(a, b, c, m, n, kk, transA, transB, alpha, beta, bf16, bias, epilogue, aux) {
      if ((!(a instanceof Float32Array) || !(b instanceof Float32Array)) && !bf16)
        throw new TypeError('gemmEx: bf16 (Uint16Array) inputs need bf16 = true');
      if (epilogue === EPILOGUE_ADD && !aux) throw new RangeError('gemmEx: epilogue 2 (add) needs aux');
      // bf16 values are exact in fp32, and matmul's bf16 rounding leaves them unchanged.
      k.matmul(f32Of(a, m * kk), f32Of(b, kk * n), c, m, n, kk, transA, transB, alpha, beta, bf16);
      if (bias) k.biasAdd(c, bias, m, n);
      if (epilogue === EPILOGUE_GELU) {
        if (aux) aux.set(c.subarray(0, m * n));
        k.geluForward(c, c, m * n);
      } else if (epilogue === EPILOGUE_ADD) {
        k.add(c, aux!, c, m * n);
      }
    },
  };
}

/** True when `fused(k)` takes bf16 (Uint16Array) operands without converting them back to fp32. */
export function takesBf16Operands(k: Kernels): boolean {
  return k.name === 'native' && typeof (k as Partial<FusedKernels>).gemmEx === 'function';
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
