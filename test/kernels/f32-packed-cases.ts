/**
 * The edge cases of the packed fp32 GEMM (native/gemm_f32.cc: B packed per call into panels of
 * 48 columns, the last one 16 or 32 wide; 8-row tiles with 1..7-row tails; row groups that depend
 * on k; B read either way round). fused.test.ts runs them in its own process where the packed
 * GEMM is this CPU's fp32 path, else in a child with CAVMAE_F32_GEMM=packed (any AVX-512 CPU),
 * which runs this module's `main`.
 */
import assert from 'node:assert/strict';
import { loadNativeKernels, type NativeKernels } from '../../src/kernels/native.js';
import { composedFused, fused, EPILOGUE_ADD, EPILOGUE_GELU, type Epilogue } from '../../src/kernels/fused.js';
import { randomArray } from '../helpers.js';

/**
 * [m, n, k]: one below the size under which a GEMM runs on one thread (info().gemmMinFlops, 4.5
 * MFLOP) and the rest above it; every row tail (m mod 8 from 0 to 7), last panels of 16, 32 and 48
 * columns, k from 1 to 3072, odd k.
 */
const SHAPES: [number, number, number][] = [
  [3, 32, 5],
  [64, 1200, 37],
  [1025, 2208, 1],
  [258, 1040, 9],
  [131, 80, 768],
  [260, 2304, 96],
  [101, 208, 3072],
  [70, 784, 64],
  [519, 1104, 40],
];

/**
 * |c - c64| <= γ_k Σ_q |a_q b_q| with γ_k = k u / (1 - k u), u = 2^-24: the bound of any fp32
 * dot product of length k (one rounding per FMA), against the float64 sum.
 */
function checkAgainstFloat64(
  got: Float32Array,
  a: Float32Array,
  b: Float32Array,
  m: number,
  n: number,
  k: number,
  bTransposed: boolean,
  what: string,
): void {
  const u = 2 ** -24;
  const gamma = (k * u) / (1 - k * u);
  for (let r = 0; r < m; r++)
    for (let j = 0; j < n; j++) {
      let sum = 0;
      let abs = 0;
      for (let q = 0; q < k; q++) {
        const p = a[r * k + q] * (bTransposed ? b[j * k + q] : b[q * n + j]);
        sum += p;
        abs += Math.abs(p);
      }
      const err = Math.abs(got[r * n + j] - sum);
      if (err > gamma * abs) assert.fail(`${what}: [${r}, ${j}] = ${got[r * n + j]}, float64 ${sum}, |error| ${err} > γ_k Σ|ab| = ${gamma * abs}`);
    }
}

export function checkPackedF32(N: NativeKernels): void {
  assert.equal(N.info().f32Gemm, 'packed', 'the packed fp32 GEMM runs in this process');
  assert.doesNotMatch(N.gemmInfo(100, 100, 64, false, true, false), /^cavmae/, 'n not a multiple of 16: oneDNN');
  const F = fused(N);
  const ref = composedFused(N);
  const saved = N.getThreads();
  try {
    for (const [m, n, k] of SHAPES) {
      for (const transposed of [true, false])
        assert.match(N.gemmInfo(m, n, k, false, transposed, false), /^cavmae:f32-packed/, `${m}x${n}x${k} takes the packed GEMM`);
      const a = randomArray(m * k, 11 + m, 2);
      const w = randomArray(n * k, 12 + n, 0.5); // [n, k]: x · wᵀ
      const bt = randomArray(k * n, 13 + k, 0.5); // [k, n]
      const results: Record<string, Float32Array> = {};
      for (const threads of [1, 2]) {
        N.setThreads(threads);
        for (const transposed of [true, false]) {
          const c = new Float32Array(m * n).fill(NaN);
          N.matmul(a, transposed ? w : bt, c, m, n, k, false, transposed, 1, 0, false);
          const what = `${m}x${n}x${k} ${transposed ? 'x·wᵀ' : 'x·b'} threads ${threads}`;
          const key = String(transposed);
          if (results[key]) assert.deepEqual(c, results[key], `${what}: equals 1 thread bit for bit`);
          else {
            checkAgainstFloat64(c, a, transposed ? w : bt, m, n, k, transposed, what);
            results[key] = c;
          }
        }
      }
      // The first rows alone (a smaller call, other pieces, one piece below the threading size):
      // the same values bit for bit (each sum runs over k in order whatever the cut).
      for (const rows of [1, 7, 64].filter((r) => r < m)) {
        const head = new Float32Array(rows * n);
        N.matmul(a.subarray(0, rows * k), w, head, rows, n, k, false, true, 1, 0, false);
        assert.deepEqual(head, results.true.subarray(0, rows * n), `${m}x${n}x${k}: first ${rows} rows alone`);
      }
      // Epilogues in the tiles (bias, residual add) and after them (GELU): the composed ops' values.
      const bias = randomArray(n, 14);
      const res = randomArray(m * n, 15);
      for (const epi of [EPILOGUE_GELU, EPILOGUE_ADD] as Epilogue[]) {
        const want = new Float32Array(m * n);
        const wantAux = epi === EPILOGUE_ADD ? res : new Float32Array(m * n);
        ref.gemmEx(a, w, want, m, n, k, false, true, 1, 0, false, bias, epi, wantAux);
        const got = new Float32Array(m * n).fill(NaN);
        const gotAux = epi === EPILOGUE_ADD ? res : new Float32Array(m * n);
        F.gemmEx(a, w, got, m, n, k, false, true, 1, 0, false, bias, epi, gotAux);
        assert.deepEqual(got, want, `${m}x${n}x${k} epilogue ${epi}`);
        if (epi === EPILOGUE_GELU) assert.deepEqual(gotAux, wantAux, `${m}x${n}x${k}: pre-activation`);
      }
    }
  } finally {
    N.setThreads(saved);
  }
}

export function main(): void {
  const load = loadNativeKernels();
  if (!load.ok) throw new Error(`native addon not available (${load.error})`);
  checkPackedF32(load.kernels);
  console.log('ok');
}
