/**
 * bfloat16 conversions: bf16 is the top 16 bits of an IEEE fp32.
 *
 * fp32 -> bf16 rounds to nearest, ties to even, on the bit pattern (as torch, oneDNN and the
 * AVX-512 `vcvtneps2bf16` instruction do): add 0x7fff plus the lowest kept bit, then truncate.
 * Overflow past the largest bf16 becomes Inf, as it must. NaN is handled first so the carry
 * cannot turn it into Inf; it keeps its sign and top payload bits and gets the quiet bit set.
 */
import type { F32, Kernels } from '../api.js';
import { need } from './scratch.js';

const f32View = new Float32Array(1);
const u32View = new Uint32Array(f32View.buffer);

/** The bf16 bit pattern of `x` (first rounded to fp32). */
export function bf16Bits(x: number): number {
  f32View[0] = x;
  const bits = u32View[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x0040) & 0xffff; // NaN -> quiet NaN
  return (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16; // < 2^32 for every non-NaN pattern
}

/** The fp32 value of a bf16 bit pattern. */
export function bf16Value(bits: number): number {
  u32View[0] = (bits & 0xffff) << 16;
  return f32View[0];
}

/** `x` rounded to the nearest bf16 value (returned as a number, exactly representable in fp32). */
export function roundBf16(x: number): number {
  f32View[0] = x;
  const bits = u32View[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return x;
  u32View[0] = ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) << 16;
  return f32View[0];
}

/** dst[i] = roundBf16(src[i]) for i < n (dst may alias src). */
export function roundBf16Array(dst: F32, src: F32, n: number): void {
  for (let i = 0; i < n; i++) dst[i] = roundBf16(src[i]);
}

export const bf16Kernels: Pick<Kernels, 'f32ToBf16' | 'bf16ToF32'> = {
  f32ToBf16(out, inp, n) {
    need('f32ToBf16', n, { out, inp });
    for (let i = 0; i < n; i++) out[i] = bf16Bits(inp[i]);
  },
  bf16ToF32(out, inp, n) {
    need('bf16ToF32', n, { out, inp });
    for (let i = 0; i < n; i++) out[i] = bf16Value(inp[i]);
  },
};
