/**
 * The exact int8 reference, and the edge cases of the packed int8 GEMM's kernels: AVX2
 * (native/gemm_int8_avx2.cc: 6-row tiles, K in chunks of 192, 64-column panels, row groups that
 * depend on k), AVX512-VNNI (gemm_int8.cc: 6-row tiles) and AMX (gemm_int8_amx.cc: 32-row blocks
 * of 16-row tiles, a zero-padded copy for a tail that is not a multiple of 16, 64-k tile depth
 * with other k on the VNNI kernel, row groups of 160 at k = 3072). fused.test.ts runs them in its
 * own process for this CPU's kernel, and in a child with CAVMAE_INT8_GEMM=avx2 or =vnni for the
 * others this CPU can run, which runs this module's `main`.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { loadNativeKernels, type NativeKernels } from '../../src/kernels/native.js';
import { tsKernels } from '../../src/kernels/ts/index.js';
import { concat } from '../../src/api/model.js';
import {
  composedFused,
  fused,
  EPILOGUE_ADD,
  EPILOGUE_GELU,
  EPILOGUE_NONE,
  type Epilogue,
  type FusedKernels,
} from '../../src/kernels/fused.js';
import type { Kernels } from '../../src/kernels/index.js';
import { randomArray } from '../helpers.js';

/**
 * The int8 reference with exact sums: the TypeScript float64 GEMM gives the int32 sums exactly;
 * bias/GELU/add are the addon's own kernels (the TypeScript GELU's erf differs in the last bits,
 * tested elsewhere).
 */
export function exactInt8Reference(N: Kernels): FusedKernels {
  return composedFused(
    Object.assign(Object.create(null), N, { matmul: tsKernels.matmul, name: 'ts' }) as Kernels,
  );
}

/** u8 rows: every third all 255, every third all 0, the rest random bytes. */
function extremeRows(m: number, k: number, seed: number): Uint8Array {
  const r = randomArray(m * k, seed);
  const xq = new Uint8Array(m * k);
  for (let i = 0; i < m; i++)
    for (let t = 0; t < k; t++)
      xq[i * k + t] = i % 3 === 0 ? 255 : i % 3 === 1 ? 0 : Math.floor((r[i * k + t] + 1) * 127.99);
  return xq;
}

/** s8 weights [n, k]: every third channel all -128, every third all 127, the rest random. */
function extremeWeights(n: number, k: number, seed: number): Int8Array {
  const r = randomArray(n * k, seed);
  const wq = new Int8Array(n * k);
  for (let j = 0; j < n; j++)
    for (let t = 0; t < k; t++)
      wq[j * k + t] = j % 3 === 0 ? -128 : j % 3 === 1 ? 127 : Math.round(r[j * k + t] * 127.5 - 0.5);
  return wq;
}

/** The compensation gemmInt8 takes: 128 Σ_k w (the u8 rows are x + 128). */
function compensation(wq: Int8Array, n: number, k: number): Int32Array {
  const c = new Int32Array(n);
  for (let j = 0; j < n; j++) {
    let s = 0;
    for (let t = 0; t < k; t++) s += wq[j * k + t];
    c[j] = 128 * s;
  }
  return c;
}

export type PackedInt8Kernel = 'avx2-packed' | 'vnni-packed' | 'amx-packed';

/**
 * One packed kernel (N.info().int8Gemm must name it) against the exact reference, bit for bit,
 * and against sums computed here, on shapes chosen for the edge cases of all three and on
 * operands at the extremes of u8 x s8 (255 x -128 and 255 x 127 in every position of a row /
 * channel, up to k = 3076): any saturation or lost carry would show.
 */
export function checkPackedInt8(N: NativeKernels, kernel: PackedInt8Kernel): void {
  assert.equal(N.info().int8Gemm, kernel, `the ${kernel} kernel runs`);
  const F = fused(N);
  const R = exactInt8Reference(N);
  const saved = N.getThreads();
  try {
    // [m, n, k]: rows with every tail of the 6-row tiles (1, 7, 13, 35 = 5 x 6 + 5, 100 in row
    // groups of 30 at k = 3072 with a 4-row tail), k not a multiple of the 192-k chunk (4, 196,
    // 388, 772, 3076) and a multiple of it (3072), one to five 64-column panels; the small ones
    // run as one call, the large ones in pieces on the threads. For AMX: 16-row tiles alone
    // (16, 1 + 15 padded), a padded tail after full 32-row blocks (47 = 32 + 15, 33), exact 32s
    // (64), the 64-k depth once and many times (64, 128, 768, 3072), and 200 rows at k = 3072
    // across two row groups (160 + 40 = 32 + 8).
    for (const [m, n, k] of [
      [1, 64, 4],
      [7, 64, 196],
      [13, 192, 388],
      [35, 128, 772],
      [100, 320, 3072],
      [41, 64, 3076],
      [1, 64, 64],
      [16, 128, 64],
      [15, 64, 128],
      [33, 64, 768],
      [47, 192, 256],
      [64, 128, 768],
      [200, 128, 3072],
    ]) {
      const what = `${m}x${n}x${k}`;
      const xq = extremeRows(m, k, 201);
      const wq = extremeWeights(n, k, 202);
      const wc = compensation(wq, n, k);
      const packed = new Uint8Array(n * k);
      F.packWeightsInt8(wq, n, k, packed);
      assert.ok(F.packsInt8Weights(n, k), `${what}: the AVX2 kernel reads packed weights`);
      // The sums themselves: scales 1, no bias, so c = fp32(Σ (x - 128) w), exact in float64.
      const ones = new Float32Array(Math.max(m, n)).fill(1);
      const sums = new Float32Array(m * n);
      for (let i = 0; i < m; i++)
        for (let j = 0; j < n; j++) {
          let s = 0;
          for (let t = 0; t < k; t++) s += (xq[i * k + t] - 128) * wq[j * k + t];
          sums[i * n + j] = Math.fround(s);
        }
      const xs = randomArray(m, 203).map((v) => 0.01 + Math.abs(v) * 0.02);
      const ws = randomArray(n, 204).map((v) => 0.001 + Math.abs(v) * 0.002);
      const bias = randomArray(n, 205);
      const res = randomArray(m * n, 206);
      const cases: [Epilogue, Float32Array | null][] = [];
      for (const epi of [EPILOGUE_NONE, EPILOGUE_GELU, EPILOGUE_ADD] as Epilogue[])
        for (const b of [null, bias]) cases.push([epi, b]);
      const aux = (epi: Epilogue) =>
        epi === EPILOGUE_ADD ? res : epi === EPILOGUE_GELU ? new Float32Array(m * n) : null;
      const wants = cases.map(([epi, b]) => {
        const want = new Float32Array(m * n);
        const wantAux = aux(epi);
        R.gemmInt8(null, wq, ws, wc, want, m, n, k, b, epi, wantAux, xq, xs);
        return { want, wantAux };
      });
      for (const threads of [1, 2]) {
        N.setThreads(threads);
        const raw = new Float32Array(m * n).fill(NaN);
        F.gemmInt8(null, null, ones, wc, raw, m, n, k, null, EPILOGUE_NONE, null, xq, ones, null, null, packed);
        assert.deepEqual(raw, sums, `${what} ${threads} threads: the exact sums`);
        cases.forEach(([epi, b], i) => {
          const got = new Float32Array(m * n).fill(NaN);
          const gotAux = aux(epi);
          F.gemmInt8(null, null, ws, wc, got, m, n, k, b, epi, gotAux, xq, xs, null, null, packed);
          const how = `${what} ${threads} threads epilogue ${epi}${b ? ' + bias' : ''}`;
          assert.deepEqual(got, wants[i].want, `${how}: equals the reference`);
          if (epi === EPILOGUE_GELU) assert.deepEqual(gotAux, wants[i].wantAux, `${how}: pre-activation`);
        });
      }
    }
    // 255 x -128 everywhere at k = 3072: every product and pair is at its most negative
    // (-32640, -65280); the int32 sum -100270080 less the compensation gives 127 x -128 x 3072.
    const [m, n, k] = [13, 128, 3072];
    const xq = new Uint8Array(m * k).fill(255);
    const wq = new Int8Array(n * k).fill(-128);
    const packed = new Uint8Array(n * k);
    F.packWeightsInt8(wq, n, k, packed);
    const ones = new Float32Array(n).fill(1);
    for (const threads of [1, 2]) {
      N.setThreads(threads);
      const got = new Float32Array(m * n).fill(NaN);
      F.gemmInt8(null, null, ones, compensation(wq, n, k), got, m, n, k, null, EPILOGUE_NONE, null, xq, ones, null, null, packed);
      assert.deepEqual(got, new Float32Array(m * n).fill(127 * -128 * k), `255 x -128, ${threads} threads`);
    }
  } finally {
    N.setThreads(saved);
  }
}

/** The child's entry point (fused.test.ts): the checks with this process's addon, then 'ok'. */
export function main(kernel: PackedInt8Kernel = 'avx2-packed'): void {
  const load = loadNativeKernels();
  if (!load.ok) throw new Error(`native addon not available (${load.error})`);
  checkPackedInt8(load.kernels, kernel);
  console.log('ok');
}

/**
 * int8 attention outputs (precision 2) on shapes for the AMX kernels' edges, head size 64: a
 * single row, 37 rows (one 32-row block and a 5-row tail, a 5-key tail of 16), 200 rows (row
 * blocks of 112 and 88, keys padded to 256), 512 (blocks of 128, keys a multiple of 64) and the
 * visual encoder's 196 with 12 heads; each at 1 and 2 threads, all concatenated.
 */
export function int8AttentionOutputs(N: NativeKernels): Float32Array {
  const F = fused(N);
  const saved = N.getThreads();
  const parts: Float32Array[] = [];
  try {
    for (const [B, T, C, H] of [
      [1, 1, 64, 1],
      [2, 37, 128, 2],
      [1, 200, 256, 4],
      [1, 512, 128, 2],
      [1, 196, 768, 12],
    ])
      for (const threads of [1, 2]) {
        N.setThreads(threads);
        const qkv = randomArray(B * T * 3 * C, 301 + T, 1.5);
        const out = new Float32Array(B * T * C).fill(NaN);
        F.attentionInference(out, qkv, B, T, C, H, (C / H) ** -0.5, 2);
        parts.push(out);
      }
  } finally {
    N.setThreads(saved);
  }
  return concat(parts);
}

/** The child's entry point for int8AttentionOutputs: writes them to `file`. */
export function writeInt8AttentionOutputs(file: string): void {
  const load = loadNativeKernels();
  if (!load.ok) throw new Error(`native addon not available (${load.error})`);
  const out = int8AttentionOutputs(load.kernels);
  writeFileSync(file, Buffer.from(out.buffer, out.byteOffset, out.byteLength));
  console.log('ok');
}
