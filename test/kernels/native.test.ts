/**
 * The native addon against the TypeScript reference kernels (src/kernels/ts), kernel by kernel,
 * on random and awkward shapes (1 row, 1 column, odd sizes, sizes that are not multiples of the
 * 8/16-lane vectors, sizes large enough that the 2-thread path really splits the work), with 1
 * and 2 threads. The reference accumulates in float64 and rounds once, so each tolerance below
 * is the fp32 error the native kernel may make, stated where it is used. Also: argument
 * validation (TypeError/RangeError, never an out-of-bounds read), the AVX2 copy of the kernels
 * (a child process with CAVMAE_NATIVE_ISA=avx2), and the fallback when the addon cannot load.
 *
 * Skips (with the reason) when the addon is not built.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNativeKernels, type NativeKernels } from '../../src/kernels/native.js';
import { tsKernels as R } from '../../src/kernels/ts/index.js';
import { assertClose, maxAbs, randomArray, rng, runModuleScript, siblingModule } from '../helpers.js';

const load = loadNativeKernels();
const N: NativeKernels | undefined = load.ok ? load.kernels : undefined;
const skip = load.ok
  ? false
  : `native addon not available (${load.error}); build it with 'npm run build:native'`;

/** fp32 unit roundoff. */
const U = 2 ** -24;
const THREADS = [1, 2];

/** Runs fn once per thread count, restoring the addon's setting afterwards. */
function withThreads(fn: (threads: number) => void): void {
  const saved = N!.getThreads();
  try {
    for (const t of THREADS) {
      N!.setThreads(t);
      fn(t);
    }
  } finally {
    N!.setThreads(saved);
  }
}

/** Asserts |actual_i - ref_i| <= bound_i for every element (a per-element error bound). */
function assertWithin(
  actual: ArrayLike<number>,
  ref: ArrayLike<number>,
  bound: ArrayLike<number>,
  what: string,
): void {
  assert.equal(actual.length, ref.length, `${what}: length`);
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(actual[i] - ref[i]);
    if (!(d <= bound[i]))
      assert.fail(
        `${what}[${i}]: ${actual[i]} vs ${ref[i]}, |diff| ${d.toExponential(3)} > bound ${bound[i].toExponential(3)}`,
      );
  }
}

const absOf = (x: Float32Array) => x.map(Math.abs);

// Row shapes [rows, cols]: single element, one row, widths off the 8/16-lane grid, ViT width,
// and two that are large enough (> 256 KiB touched) to run on 2 threads.
const ROW_SHAPES: [number, number][] = [
  [1, 1],
  [1, 17],
  [5, 3],
  [3, 768],
  [7, 100],
  [333, 257],
  [1025, 96],
];

// ---------------------------------------------------------------- GEMM

// [m, n, k]: degenerate, odd, vector-multiple, and one above the 2-thread threshold (4.5 MFLOP).
const GEMM_SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 17, 9],
  [33, 1, 20],
  [7, 13, 5],
  [31, 47, 65],
  [64, 48, 96],
  [150, 130, 121],
];
const TRANS: [boolean, boolean][] = [
  [false, false],
  [false, true],
  [true, false],
  [true, true],
];

/**
 * The tolerance for C = alpha op(A) op(B) + beta C against the float64 reference: the standard
 * worst-case bound for a k-term fp32 dot product in any summation order, gamma_k |A||B| with
 * gamma_k = k u / (1 - k u), plus one rounding each for alpha and the beta term. The same bound
 * holds for bf16, because both sides round the inputs to bf16 identically and products of bf16
 * values are exact in fp32: only the fp32 accumulation differs.
 */
function gemmBound(
  absA: Float32Array,
  absB: Float32Array,
  c0: Float32Array,
  m: number,
  n: number,
  k: number,
  ta: boolean,
  tb: boolean,
  alpha: number,
  beta: number,
  bf16: boolean,
): Float64Array {
  const mag = new Float32Array(m * n);
  R.matmul(absA, absB, mag, m, n, k, ta, tb, 1, 0, bf16);
  const g = ((k + 3) * U) / (1 - (k + 3) * U);
  const out = new Float64Array(m * n);
  for (let i = 0; i < m * n; i++)
    out[i] = g * (Math.abs(alpha) * mag[i] * (1 + 1e-6) + Math.abs(beta * c0[i])) + 1e-30;
  return out;
}

test(
  'matmul: every transpose, fp32 and bf16, alpha/beta, 1 and 2 threads vs reference (gamma_k |A||B| bound)',
  { skip },
  () => {
    withThreads(() => {
      let seed = 1;
      for (const [m, n, k] of GEMM_SHAPES) {
        for (const [ta, tb] of TRANS) {
          for (const bf16 of [false, true]) {
            for (const [alpha, beta] of [
              [1, 0],
              [0.5, 1],
              [2, -0.75],
            ]) {
              const a = randomArray(m * k, seed++);
              const b = randomArray(k * n, seed++);
              const c0 = beta === 0 ? new Float32Array(m * n).fill(NaN) : randomArray(m * n, seed++);
              const ref = Float32Array.from(c0);
              R.matmul(a, b, ref, m, n, k, ta, tb, alpha, beta, bf16);
              const c = Float32Array.from(c0);
              N!.matmul(a, b, c, m, n, k, ta, tb, alpha, beta, bf16);
              const bound = gemmBound(
                absOf(a),
                absOf(b),
                beta === 0 ? new Float32Array(m * n) : c0,
                m,
                n,
                k,
                ta,
                tb,
                alpha,
                beta,
                bf16,
              );
              assertWithin(
                c,
                ref,
                bound,
                `matmul ${m}x${n}x${k} ${ta ? 'T' : 'N'}${tb ? 'T' : 'N'} ${bf16 ? 'bf16' : 'fp32'} a=${alpha} b=${beta}`,
              );
            }
          }
        }
      }
    });
  },
);

test(
  'matmul: bf16 result stays within bf16 input rounding of the fp32 product (2^-8 |A||B|)',
  { skip },
  () => {
    // Each bf16 input carries <= 2^-9 relative rounding, so a product <= 2^-8 (+ 2^-18).
    const [m, n, k] = [40, 36, 200];
    const a = randomArray(m * k, 11);
    const b = randomArray(k * n, 12);
    const ref = new Float32Array(m * n);
    R.matmul(a, b, ref, m, n, k, false, false, 1, 0, false);
    const c = new Float32Array(m * n);
    N!.matmul(a, b, c, m, n, k, false, false, 1, 0, true);
    const mag = new Float32Array(m * n);
    R.matmul(absOf(a), absOf(b), mag, m, n, k, false, false, 1, 0, false);
    assertWithin(
      c,
      ref,
      mag.map((x) => x * (2 ** -8 + 2 ** -17 + k * U)),
      'bf16 vs fp32',
    );
  },
);

// oneDNN's AVX2 fp32 GEMM adds the last 1-3 rows of a call, and of each row block it cuts M into,
// in another order; gemm.cc pads and cuts so that a row's values never depend on how many rows
// came with it (what makes embeddings batch-invariant). The AVX-512 kernels need no such rule:
// there the API's batch-invariance tests (api/cavmae, models/sync) cover it.
const sgemmRowRule = N !== undefined && /^avx2/.test(N.info().dnnlIsa);
test(
  'matmul with a row-major A: each row is bit-identical whatever the number of rows (fp32 and bf16, 1 and 2 threads)',
  { skip: skip || (!sgemmRowRule && 'oneDNN here is not its AVX2 GEMM (the API batch-invariance tests cover it)') },
  () => {
    const M = 600;
    withThreads((threads) => {
      for (const [n, k, transB] of [
        [768, 768, true],
        [12, 12, true],
        [197, 33, false],
        [200, 1100, false],
        // 96-row calls were still cut inside oneDNN at this shape with a row-major B (Zen 3)
        [3072, 768, false],
        [768, 3072, true],
      ] as const) {
        const a = randomArray(M * k, 91 + n);
        const b = randomArray(k * n, 92 + k);
        for (const bf16 of [false, true]) {
          const all = new Float32Array(M * n);
          N!.matmul(a, b, all, M, n, k, false, transB, 1, 0, bf16);
          for (const m of [1, 2, 3, 4, 5, 7, 9, 13, 33, 41, 64, 100, 197, 256, 257, 300, 591]) {
            const c = new Float32Array(m * n);
            N!.matmul(a.subarray(0, m * k), b, c, m, n, k, false, transB, 1, 0, bf16);
            assert.deepEqual(c, all.subarray(0, m * n), `${m}x${n}x${k} transB ${transB} bf16 ${bf16}, ${threads} threads`);
          }
        }
      }
    });
  },
);

test('matmul: k = 0 gives beta * C, and m = 0 / n = 0 touch nothing', { skip }, () => {
  const c = Float32Array.from([1, 2, 3, 4, 5, 6]);
  N!.matmul(new Float32Array(0), new Float32Array(0), c, 2, 3, 0, false, false, 1, 0.5, false);
  assert.deepEqual(Array.from(c), [0.5, 1, 1.5, 2, 2.5, 3]);
  N!.matmul(new Float32Array(0), new Float32Array(0), c, 2, 3, 0, false, false, 1, 0, false);
  assert.deepEqual(Array.from(c), [0, 0, 0, 0, 0, 0]);
  const untouched = Float32Array.from([7]);
  N!.matmul(new Float32Array(4), new Float32Array(0), untouched, 0, 0, 4, false, false, 1, 0, false);
  assert.deepEqual(Array.from(untouched), [7]);
});

test(
  'matmulBatched: gaps between matrices, broadcast (stride 0), transposes, bf16 (gamma_k bound)',
  { skip },
  () => {
    withThreads(() => {
      let seed = 100;
      const cases: [number, number, number, number, number, number, number][] = [
        // batch, m, n, k, extra gap A, extra gap B, extra gap C
        [3, 5, 7, 9, 0, 0, 0],
        [4, 17, 33, 16, 3, 5, 1],
        [2, 64, 64, 64, 0, 7, 0],
        [12, 40, 40, 64, 0, 0, 0],
      ];
      for (const [batch, m, n, k, ga, gb, gc] of cases) {
        for (const [ta, tb] of TRANS) {
          for (const bf16 of [false, true]) {
            for (const broadcastB of [false, true]) {
              const sa = m * k + ga;
              const sb = broadcastB ? 0 : k * n + gb;
              const sc = m * n + gc;
              const a = randomArray(sa * batch, seed++);
              const b = randomArray(broadcastB ? k * n : sb * batch, seed++);
              const c0 = randomArray(sc * batch, seed++);
              const ref = Float32Array.from(c0);
              R.matmulBatched(a, b, ref, batch, m, n, k, ta, tb, sa, sb, sc, 1.5, 1, bf16);
              const c = Float32Array.from(c0);
              N!.matmulBatched(a, b, c, batch, m, n, k, ta, tb, sa, sb, sc, 1.5, 1, bf16);
              const bound = new Float64Array(c.length);
              for (let i = 0; i < batch; i++) {
                const ai = a.subarray(i * sa, i * sa + m * k);
                const bi = b.subarray(i * sb, i * sb + k * n);
                const ci = c0.subarray(i * sc, i * sc + m * n);
                bound.set(gemmBound(absOf(ai), absOf(bi), ci, m, n, k, ta, tb, 1.5, 1, bf16), i * sc);
                // The gaps must be left exactly as they were.
                for (let j = i * sc + m * n; j < (i + 1) * sc; j++) bound[j] = 0;
              }
              assertWithin(
                c,
                ref,
                bound,
                `matmulBatched b=${batch} ${m}x${n}x${k} ${ta ? 'T' : 'N'}${tb ? 'T' : 'N'} ${bf16 ? 'bf16' : 'fp32'} bcastB=${broadcastB}`,
              );
            }
          }
        }
      }
    });
  },
);

// ---------------------------------------------------------------- attention

// [B, T, C, H]: power-of-4 head size (scale exact), odd T, hd = 5 (scale not a power of two), T = 1.
// The bf16 kernels of attention_bf16.cc take hd = 16, 32, 48, 64 (others go through oneDNN): odd
// T (a zero-padded last key pair), T not a multiple of 16 (a partial key vector) and row counts
// that leave every remainder of their 6-row tiles.
const ATT_SHAPES: [number, number, number, number][] = [
  [2, 37, 48, 3],
  [1, 50, 40, 8],
  [3, 1, 8, 2],
  [1, 130, 128, 2],
  [2, 33, 64, 2],
  [1, 197, 192, 4],
  [1, 16, 64, 1],
];

test('attentionForward/Backward vs reference, fp32 and bf16, 1 and 2 threads', { skip }, () => {
  withThreads(() => {
    let seed = 300;
    for (const [B, T, C, H] of ATT_SHAPES) {
      const hd = C / H;
      const scale = hd ** -0.5;
      for (const bf16 of [false, true]) {
        // Logits of size ~ +-4: a realistic, far-from-uniform softmax.
        const qkv = randomArray(B * T * 3 * C, seed++, 1.5);
        const outR = new Float32Array(B * T * C);
        const attR = new Float32Array(B * H * T * T);
        R.attentionForward(outR, attR, qkv, B, T, C, H, scale, bf16);
        const out = new Float32Array(B * T * C).fill(NaN);
        const att = new Float32Array(B * H * T * T).fill(NaN);
        N!.attentionForward(out, att, qkv, B, T, C, H, scale, bf16);
        const what = `attention B${B} T${T} C${C} H${H} ${bf16 ? 'bf16' : 'fp32'}`;
        // Probabilities: the logits' fp32 dot products carry <= hd u |q||k| scale (< 1e-5 here),
        // which softmax turns into about that relative error; 2e-6 absolute on values <= 1 is
        // 20x what we measure (<= 9e-8, also at ViT-B size T=197, C=768, H=12).
        assertClose(att, attR, { atol: 2e-6, what: `${what} att` });
        // out: sum of T probabilities times v (|v| <= 1.5); bf16 additionally rounds att, and a
        // 1-ulp difference in an fp32 probability can flip its bf16 rounding (2^-8 relative of
        // one term; measured <= 1e-3 relative at ViT-B size), hence the looser bf16 tolerance.
        assertClose(out, outR, { rtol: bf16 ? 4e-3 : 1e-5, atol: 1e-6, what: `${what} out` });

        const dout = randomArray(B * T * C, seed++);
        const d0 = randomArray(B * T * 3 * C, seed++);
        const dR = Float32Array.from(d0);
        R.attentionBackward(dR, new Float32Array(B * H * T * T), dout, qkv, attR, B, T, C, H, scale, bf16);
        const d = Float32Array.from(d0);
        N!.attentionBackward(d, new Float32Array(B * H * T * T), dout, qkv, attR, B, T, C, H, scale, bf16);
        // Gradients are sums of T*hd products of magnitude <= 1.5; the bf16 path rounds the
        // softmax gradient to bf16 on both sides, where a 1-ulp fp32 difference can flip a
        // rounding (2^-8 of one term).
        assertClose(d, dR, { rtol: bf16 ? 4e-3 : 2e-5, atol: 1e-6, what: `${what} dqkv` });
      }
    }
  });
});

// ---------------------------------------------------------------- LayerNorm

test('layerNormForward/Backward vs reference on awkward shapes, 1 and 2 threads', { skip }, () => {
  withThreads(() => {
    let seed = 500;
    for (const [rows, cols] of ROW_SHAPES) {
      // An offset mean (3) and unit-ish spread: the two-pass variance matters.
      const inp = randomArray(rows * cols, seed++).map((x) => 3 + 2 * x);
      const w = randomArray(cols, seed++);
      const b = randomArray(cols, seed++);
      const outR = new Float32Array(rows * cols);
      const meanR = new Float32Array(rows);
      const rstdR = new Float32Array(rows);
      R.layerNormForward(outR, meanR, rstdR, inp, w, b, rows, cols, 1e-6);
      const out = new Float32Array(rows * cols);
      const mean = new Float32Array(rows);
      const rstd = new Float32Array(rows);
      N!.layerNormForward(out, mean, rstd, inp, w, b, rows, cols, 1e-6);
      const what = `layerNorm ${rows}x${cols}`;
      // fp32 sums of `cols` terms: relative error <= cols u on mean and variance; measured
      // <= 5 u on every output (<= 10 u on dweight), far inside 4 cols u. Outputs are O(1-3).
      assertClose(mean, meanR, { rtol: 4 * cols * U + 1e-6, what: `${what} mean` });
      assertClose(rstd, rstdR, { rtol: 4 * cols * U + 1e-6, what: `${what} rstd` });
      assertClose(out, outR, { rtol: 4 * cols * U + 1e-6, atol: 1e-6, what: `${what} out` });

      const dout = randomArray(rows * cols, seed++);
      const dinp0 = randomArray(rows * cols, seed++);
      const dw0 = randomArray(cols, seed++);
      const db0 = randomArray(cols, seed++);
      const [dinpR, dwR, dbR] = [Float32Array.from(dinp0), Float32Array.from(dw0), Float32Array.from(db0)];
      R.layerNormBackward(dinpR, dwR, dbR, dout, inp, w, meanR, rstdR, rows, cols);
      const [dinp, dw, db] = [Float32Array.from(dinp0), Float32Array.from(dw0), Float32Array.from(db0)];
      N!.layerNormBackward(dinp, dw, db, dout, inp, w, meanR, rstdR, rows, cols);
      assertClose(dinp, dinpR, { rtol: 4 * cols * U + 1e-6, atol: 1e-6, what: `${what} dinp` });
      // dweight/dbias are sums over rows of O(1) terms: fp32 error <= rows u * sum|terms|.
      assertClose(dw, dwR, { rtol: 2 * rows * U + 1e-6, atol: rows * 4 * U, what: `${what} dweight` });
      assertClose(db, dbR, { rtol: 2 * rows * U + 1e-6, atol: rows * 4 * U, what: `${what} dbias` });
    }
  });
});

// ---------------------------------------------------------------- GELU

test('geluForward/Backward vs reference (exact erf) over [-10, 10], in place too', { skip }, () => {
  withThreads(() => {
    for (const n of [1, 7, 16, 1000, 100_003]) {
      const x = randomArray(n, n, 10);
      if (n > 10) x.set([0, -0, 1e-30, -1e-30, 3.9999, 4.0001, -5.5, 1e-8, -0.7, 0.99999], 0);
      // The AVX-512 tables cut |x| at multiples of 0.4 up to 6.4 (the AVX2 erf table at multiples
      // of 0.5 sqrt2): both sides of every cut, and the saturated tail.
      if (n > 1000) {
        const cuts: number[] = [];
        for (let k = 1; k <= 16; k++) {
          const c = Math.fround(0.4 * k);
          for (const v of [c, Math.fround(c * (1 - 2 * U)), Math.fround(c * (1 + 2 * U))]) cuts.push(v, -v);
        }
        for (let k = 1; k <= 8; k++)
          cuts.push(Math.fround(k * 0.5 * Math.SQRT2), -Math.fround(k * 0.5 * Math.SQRT2));
        cuts.push(6.5, -6.5, 7.999, -7.999, 9.99, -9.99);
        x.set(cuts, 10);
      }
      const ref = new Float32Array(n);
      R.geluForward(ref, x, n);
      const out = new Float32Array(n);
      N!.geluForward(out, x, n);
      // Tables of fitted polynomials: AVX-512 evaluates gelu = x/2 + |x| P(|x|) with |P - erf(|x|/sqrt2)/2|
      // <= 3.1e-8, AVX2 0.5 x (1 + erf) with |erf error| <= 8e-8. Both lose relative accuracy for x << 0,
      // where the reference uses erfc: the absolute error there is <= |x| * 6e-8.
      const bound = ref.map((r, i) => 4 * U * Math.abs(r) + 1e-7 * Math.abs(x[i]) + 1e-37);
      assertWithin(out, ref, bound, `gelu n=${n}`);
      const inPlace = Float32Array.from(x);
      N!.geluForward(inPlace, inPlace, n);
      assert.deepEqual(inPlace, out, 'in-place gelu equals out-of-place');

      const dout = randomArray(n, n + 1);
      const d0 = randomArray(n, n + 2);
      const dR = Float32Array.from(d0);
      R.geluBackward(dR, x, dout, n);
      const d = Float32Array.from(d0);
      N!.geluBackward(d, x, dout, n);
      // gelu'(x) in [-0.17, 1.13] (AVX-512: 1/2 + sign(x) Q(|x|), |Q error| <= 8.5e-8): a few ulp
      // of it, times |dout| <= 1, plus the += rounding.
      assertClose(d, dR, { atol: 4e-7, what: `gelu backward n=${n}` });
    }
  });
});

test('geluForward: NaN and +-Infinity', { skip }, () => {
  const x = Float32Array.from([NaN, Infinity, -Infinity]);
  const out = new Float32Array(3);
  N!.geluForward(out, x, 3);
  assert.ok(Number.isNaN(out[0]));
  assert.equal(out[1], Infinity);
  // The reference's -inf * 0: NaN in both.
  const ref = new Float32Array(3);
  R.geluForward(ref, x, 3);
  assert.equal(Number.isNaN(out[2]), Number.isNaN(ref[2]));
});

// ---------------------------------------------------------------- softmax

test('softmaxForward/Backward vs reference, negative and large scales, in place', { skip }, () => {
  withThreads(() => {
    let seed = 700;
    for (const [rows, cols] of ROW_SHAPES) {
      for (const scale of [1, 0.125, -2, 30]) {
        const x = randomArray(rows * cols, seed++, 3);
        const ref = new Float32Array(rows * cols);
        R.softmaxForward(ref, x, rows, cols, scale);
        const out = new Float32Array(rows * cols);
        N!.softmaxForward(out, x, rows, cols, scale);
        // exp to ~1 ulp, a fp32 sum of `cols` terms, one multiply: relative error per element
        // <= (cols + 4) u, on probabilities <= 1.
        const bound = ref.map((r) => (cols + 4) * U * Math.max(Math.abs(r), 1 / cols) + 1e-38);
        assertWithin(out, ref, bound, `softmax ${rows}x${cols} scale ${scale}`);
        const inPlace = Float32Array.from(x);
        N!.softmaxForward(inPlace, inPlace, rows, cols, scale);
        assert.deepEqual(inPlace, out, 'in-place softmax equals out-of-place');

        const dout = randomArray(rows * cols, seed++);
        const d0 = randomArray(rows * cols, seed++);
        const dR = Float32Array.from(d0);
        R.softmaxBackward(dR, ref, dout, rows, cols, scale);
        const d = Float32Array.from(d0);
        N!.softmaxBackward(d, ref, dout, rows, cols, scale);
        // |scale * p * (dout - p.dout)| <= 2|scale| p; the dot carries cols u.
        assertClose(d, dR, {
          atol: (cols + 4) * U * Math.abs(scale) * 2 + 2 * U,
          what: `softmax backward ${rows}x${cols}`,
        });
      }
    }
  });
});

test('softmaxForward: -Infinity entries get probability 0', { skip }, () => {
  const x = Float32Array.from([0, -Infinity, 1, -Infinity]);
  const out = new Float32Array(4);
  N!.softmaxForward(out, x, 1, 4, 1);
  assert.equal(out[1], 0);
  assert.equal(out[3], 0);
  assertClose(out, [1 / (1 + Math.E), 0, Math.E / (1 + Math.E), 0], {
    atol: 2 * U,
    what: 'softmax with -inf',
  });
});

// ---------------------------------------------------------------- bias, add, axpy

test('biasAdd, biasBackward, add (aliased too), axpy vs reference', { skip }, () => {
  withThreads(() => {
    let seed = 900;
    for (const [rows, cols] of ROW_SHAPES) {
      const n = rows * cols;
      const x = randomArray(n, seed++);
      const bias = randomArray(cols, seed++);
      const xr = Float32Array.from(x);
      R.biasAdd(xr, bias, rows, cols);
      const xn = Float32Array.from(x);
      N!.biasAdd(xn, bias, rows, cols);
      assert.deepEqual(xn, xr, `biasAdd ${rows}x${cols} (one fp32 add: exact)`);

      const db0 = randomArray(cols, seed++);
      const dbR = Float32Array.from(db0);
      R.biasBackward(dbR, x, rows, cols);
      const db = Float32Array.from(db0);
      N!.biasBackward(db, x, rows, cols);
      // fp32 column sums of `rows` terms <= 1: error <= rows u * rows (worst case) -> rows^2 u.
      assertClose(db, dbR, { atol: (rows + 2) * rows * U + 2 * U, what: `biasBackward ${rows}x${cols}` });

      const y = randomArray(n, seed++);
      const sumR = new Float32Array(n);
      R.add(sumR, x, y, n);
      const sum = new Float32Array(n);
      N!.add(sum, x, y, n);
      assert.deepEqual(sum, sumR, 'add (exact)');
      const alias = Float32Array.from(x);
      N!.add(alias, alias, y, n);
      assert.deepEqual(alias, sumR, 'add aliased out = a');

      const yr = Float32Array.from(y);
      R.axpy(yr, x, -0.37, n);
      const yn = Float32Array.from(y);
      N!.axpy(yn, x, -0.37, n);
      // The reference rounds alpha*x + y once (float64), the native FMA with fp32 alpha: 1 ulp + alpha rounding.
      assertClose(yn, yr, { atol: 2 * 2 * U, what: `axpy n=${n}` });
    }
  });
});

// ---------------------------------------------------------------- gather / scatter / pooling

test(
  'gatherRows and scatterAddRows (repeated indices) are exact; mean pooling vs reference',
  { skip },
  () => {
    withThreads(() => {
      let seed = 1100;
      for (const [rows, cols] of ROW_SHAPES) {
        const inp = randomArray(rows * cols, seed++);
        const r = rng(seed++);
        const nIndex = Math.max(1, Math.floor(rows * 1.5));
        const index = Int32Array.from({ length: nIndex }, () => Math.floor(r() * rows));
        const gR = new Float32Array(nIndex * cols);
        R.gatherRows(gR, inp, index, nIndex, cols);
        const g = new Float32Array(nIndex * cols);
        N!.gatherRows(g, inp, index, nIndex, cols);
        assert.deepEqual(g, gR, `gatherRows ${rows}x${cols}`);

        const out0 = randomArray(rows * cols, seed++);
        const sR = Float32Array.from(out0);
        R.scatterAddRows(sR, g, index, nIndex, cols);
        const s = Float32Array.from(out0);
        N!.scatterAddRows(s, g, index, nIndex, cols);
        // Same fp32 additions in the same order (index order) on both sides.
        assert.deepEqual(s, sR, `scatterAddRows ${rows}x${cols}`);

        // Unique indices (a shuffled subset of the rows): the native side takes its row-slice path.
        const perm = Int32Array.from({ length: rows }, (_, i) => i);
        for (let i = rows - 1; i > 0; i--) {
          const j = Math.floor(r() * (i + 1));
          [perm[i], perm[j]] = [perm[j], perm[i]];
        }
        const uniq = perm.subarray(0, Math.max(1, rows - (rows >> 2)));
        const uR = Float32Array.from(out0);
        R.scatterAddRows(uR, inp, uniq, uniq.length, cols);
        const u = Float32Array.from(out0);
        N!.scatterAddRows(u, inp, uniq, uniq.length, cols);
        assert.deepEqual(u, uR, `scatterAddRows unique ${uniq.length} of ${rows}x${cols}`);
      }
      for (const [B, T, D] of [
        [1, 1, 1],
        [2, 3, 17],
        [3, 196, 768],
        [5, 101, 130],
        [2, 5, 33],
        [1, 18, 16],
        [1, 1024, 768],
      ]) {
        const inp = randomArray(B * T * D, seed++);
        const pR = new Float32Array(B * D);
        R.meanPool(pR, inp, B, T, D);
        const p = new Float32Array(B * D);
        N!.meanPool(p, inp, B, T, D);
        // fp32 sum of T terms <= 1, then * (1/T): <= (T + 2) u on a mean of magnitude <= 1.
        assertClose(p, pR, { atol: (T + 2) * U, what: `meanPool ${B}x${T}x${D}` });
        const dout = randomArray(B * D, seed++);
        const d0 = randomArray(B * T * D, seed++);
        const dR = Float32Array.from(d0);
        R.meanPoolBackward(dR, dout, B, T, D);
        const d = Float32Array.from(d0);
        N!.meanPoolBackward(d, dout, B, T, D);
        assertClose(d, dR, { atol: 3 * U, what: `meanPoolBackward ${B}x${T}x${D}` });
      }
    });
  },
);

// ---------------------------------------------------------------- L2 normalisation

test('l2Normalize/Backward vs reference, including rows below eps', { skip }, () => {
  withThreads(() => {
    let seed = 1300;
    for (const [rows, cols] of ROW_SHAPES) {
      const inp = randomArray(rows * cols, seed++);
      // A zero row and a tiny row exercise the eps clamp.
      if (rows > 2) {
        inp.fill(0, 0, cols);
        for (let c = 0; c < cols; c++) inp[cols + c] = 1e-14;
      }
      const eps = 1e-12;
      const outR = new Float32Array(rows * cols);
      const nR = new Float32Array(rows);
      R.l2Normalize(outR, nR, inp, rows, cols, eps);
      const out = new Float32Array(rows * cols);
      const norms = new Float32Array(rows);
      N!.l2Normalize(out, norms, inp, rows, cols, eps);
      // Norm: fp32 sum of squares, (cols + 2) u relative; outputs <= 1 carry that plus a division.
      assertClose(norms, nR, { rtol: (cols + 2) * U, what: `l2 norms ${rows}x${cols}` });
      assertClose(out, outR, { atol: (cols + 4) * U, what: `l2Normalize ${rows}x${cols}` });

      const dout = randomArray(rows * cols, seed++);
      const d0 = randomArray(rows * cols, seed++);
      const dR = Float32Array.from(d0);
      R.l2NormalizeBackward(dR, dout, outR, nR, rows, cols, eps);
      const d = Float32Array.from(d0);
      N!.l2NormalizeBackward(d, dout, outR, nR, rows, cols, eps);
      // Rows under eps have gradients ~1/eps: compare relative to the largest magnitude.
      assertClose(d, dR, { rtol: (cols + 4) * U, atol: 4 * U, what: `l2NormalizeBackward ${rows}x${cols}` });
    }
  });
});

// ---------------------------------------------------------------- Adam

test(
  'adamUpdate: Adam and AdamW match the reference (same fp32 operation order) over steps',
  { skip },
  () => {
    withThreads(() => {
      for (const n of [1, 13, 100_001]) {
        for (const decoupled of [false, true]) {
          for (const wd of [0, 0.05]) {
            const p0 = randomArray(n, n + 1);
            const [pR, mR, vR] = [Float32Array.from(p0), new Float32Array(n), new Float32Array(n)];
            const [p, m, v] = [Float32Array.from(p0), new Float32Array(n), new Float32Array(n)];
            for (let step = 1; step <= 3; step++) {
              const g = randomArray(n, 10 * step + n, 0.1);
              R.adamUpdate(pR, g, mR, vR, n, 1e-3, 0.9, 0.999, 1e-8, wd, step, decoupled);
              N!.adamUpdate(p, g, m, v, n, 1e-3, 0.9, 0.999, 1e-8, wd, step, decoupled);
            }
            // Every operation is the same fp32 operation as the reference's; the reference
            // emulates FMA by rounding a float64 a + b*c once, which can double-round in rare
            // cases: allow 1 ulp.
            const what = `adam n=${n} decoupled=${decoupled} wd=${wd}`;
            assertClose(m, mR, { rtol: 2 * U, what: `${what} m` });
            assertClose(v, vR, { rtol: 2 * U, what: `${what} v` });
            assertClose(p, pR, { rtol: 2 * U, what: `${what} param` });
          }
        }
      }
    });
  },
);

// ---------------------------------------------------------------- bf16

test('f32ToBf16 / bf16ToF32 are bit-exact: ties to even, NaN, Inf, overflow, denormals', { skip }, () => {
  withThreads(() => {
    const special = [
      0,
      -0,
      1,
      -1,
      1.00390625,
      1.01171875,
      1.0078125,
      3.3895313892515355e38,
      3.4e38,
      Infinity,
      -Infinity,
      NaN,
      -NaN,
      1e-40,
      -1e-45,
      1.1754943508222875e-38,
      0.1,
      65504,
    ];
    const n = 70_017;
    const x = randomArray(n, 1500, 1000);
    x.set(special);
    // Random bit patterns cover every exponent, including NaN payloads.
    const bits = new Uint32Array(x.buffer);
    const r = rng(1501);
    for (let i = special.length; i < 20_000; i++) bits[i] = Math.floor(r() * 2 ** 32);
    const ref = new Uint16Array(n);
    R.f32ToBf16(ref, x, n);
    const out = new Uint16Array(n);
    N!.f32ToBf16(out, x, n);
    assert.deepEqual(out, ref, 'f32ToBf16');
    const backR = new Float32Array(n);
    R.bf16ToF32(backR, ref, n);
    const back = new Float32Array(n);
    N!.bf16ToF32(back, ref, n);
    assert.deepEqual(new Uint32Array(back.buffer), new Uint32Array(backR.buffer), 'bf16ToF32');
  });
});

// ---------------------------------------------------------------- threading

test(
  'hand-written kernels give bit-identical results with 1 and 2 threads (chunking is size-based)',
  { skip },
  () => {
    const rows = 700;
    const cols = 300; // 210k elements: above the 256 KiB threshold, so 2 threads really split
    const n = rows * cols;
    const x = randomArray(n, 2001, 3);
    const y = randomArray(n, 2002);
    const w = randomArray(cols, 2003);
    const b = randomArray(cols, 2004);
    const index = Int32Array.from({ length: rows }, (_, i) => (i * 37) % rows);
    const run = (): Float32Array[] => {
      const r: Float32Array[] = [];
      const push = (len: number, f: (o: Float32Array) => void) => {
        const o = Float32Array.from(randomArray(len, 2005));
        f(o);
        r.push(o);
      };
      const mean = new Float32Array(rows);
      const rstd = new Float32Array(rows);
      push(n, (o) => N!.layerNormForward(o, mean, rstd, x, w, b, rows, cols, 1e-6));
      const dw = new Float32Array(cols);
      const db = new Float32Array(cols);
      push(n, (o) => N!.layerNormBackward(o, dw, db, y, x, w, mean, rstd, rows, cols));
      r.push(dw, db);
      push(n, (o) => N!.geluForward(o, x, n));
      push(n, (o) => N!.geluBackward(o, x, y, n));
      push(n, (o) => N!.softmaxForward(o, x, rows, cols, 0.3));
      push(n, (o) => N!.softmaxBackward(o, y, x, rows, cols, 0.3));
      push(cols, (o) => N!.biasBackward(o, x, rows, cols));
      push(n, (o) => N!.scatterAddRows(o, y, index, rows, cols));
      push(cols, (o) => N!.meanPool(o, x, 1, rows, cols));
      const norms = new Float32Array(rows);
      push(n, (o) => N!.l2Normalize(o, norms, x, rows, cols, 1e-12));
      push(n, (o) =>
        N!.adamUpdate(o, y, Float32Array.from(x), x.map(Math.abs), n, 1e-3, 0.9, 0.999, 1e-8, 0.1, 3, true),
      );
      return r;
    };
    const results: Float32Array[][] = [];
    withThreads(() => results.push(run()));
    for (let i = 0; i < results[0].length; i++)
      assert.deepEqual(results[1][i], results[0][i], `output ${i}: 2 threads vs 1`);
  },
);

test(
  'kernels called from several worker threads at once give the same results (pool shared safely)',
  { skip },
  async () => {
    const { Worker } = await import('node:worker_threads');
    // Each thread (this one and three workers) runs the same kernel sequence many times; the pool
    // serves one caller at a time and the others run serially, so all results must agree.
    const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const K = require(workerData.path);
    const n = 300000, rows = 600, cols = 500;
    const x = new Float32Array(n), y = new Float32Array(n);
    for (let i = 0; i < n; i++) { x[i] = Math.sin(i) * 3; y[i] = Math.cos(i * 0.7); }
    const g = new Float32Array(n), s = new Float32Array(n), c = new Float32Array(rows * rows);
    for (let it = 0; it < 30; it++) {
      K.geluForward(g, x, n);
      K.softmaxForward(s, x, rows, cols, 0.5);
      K.matmul(x, y, c, rows, rows, cols, false, true, 1, 0, false);
    }
    let h = 0;
    for (const a of [g, s, c]) for (let i = 0; i < a.length; i += 7) h = (h * 31 + Math.round(a[i] * 1e4)) % 1000000007;
    parentPort.postMessage(h);`;
    const path = (await import('../../src/kernels/native.js')).addonPath();
    const results = await Promise.all(
      [0, 1, 2, 3].map(
        () =>
          new Promise<number>((resolve, reject) => {
            const wk = new Worker(code, { eval: true, workerData: { path } });
            wk.once('message', resolve);
            wk.once('error', reject);
          }),
      ),
    );
    assert.equal(new Set(results).size, 1, `all threads agree: ${results.join(', ')}`);
  },
);

// ---------------------------------------------------------------- validation

test('bad arguments throw TypeError/RangeError naming the kernel, never read out of bounds', { skip }, () => {
  const f = new Float32Array(4);
  assert.throws(
    () => N!.add(f, f, f, 5),
    (e: Error) => e instanceof RangeError && /add: out has 4 elements/.test(e.message),
  );
  assert.throws(() => N!.add(f, f, new Float64Array(4) as unknown as Float32Array, 4), TypeError);
  assert.throws(() => N!.add(f, f, f, -1), RangeError);
  assert.throws(() => N!.add(f, f, f, 1.5), RangeError);
  assert.throws(() => N!.add(f, f, f, NaN), RangeError);
  assert.throws(() => (N!.add as unknown as (...a: unknown[]) => void)(f, f), TypeError);
  assert.throws(
    () => N!.matmul(f, f, f, 2, 2, 3, false, false, 1, 0, false),
    /matmul: a has 4 elements, the sizes need 6/,
  );
  assert.throws(
    () => N!.matmulBatched(f, f, f, 2, 2, 2, 1, false, false, 2, 2, 4, 1, 0, false),
    /matmulBatched: c/,
  );
  assert.throws(() => N!.attentionForward(f, f, f, 1, 1, 3, 2, 1, false), /multiple of H/);
  assert.throws(
    () => N!.gatherRows(f, f, Int32Array.from([0, 2]), 2, 2),
    (e: Error) => e instanceof RangeError && /index\[1\] = 2/.test(e.message),
  );
  assert.throws(() => N!.scatterAddRows(f, f, Int32Array.from([-1]), 1, 2), RangeError);
  assert.throws(() => N!.f32ToBf16(new Int16Array(4) as unknown as Uint16Array, f, 4), TypeError);
  assert.throws(() => N!.adamUpdate(f, f, f, f, 4, 1e-3, 0.9, 0.999, 1e-8, 0, 0, false), /step/);
  assert.throws(() => N!.setThreads(0), RangeError);
  // Buffers longer than the sizes need are fine (views into arenas).
  N!.add(new Float32Array(8), f, f, 4);
});

test('setThreads/getThreads round-trip', { skip }, () => {
  const saved = N!.getThreads();
  N!.setThreads(1);
  assert.equal(N!.getThreads(), 1);
  N!.setThreads(2);
  assert.equal(N!.getThreads(), 2);
  N!.setThreads(saved);
  const info = N!.info();
  assert.match(info.dnnlVersion, /^\d+\.\d+\.\d+$/);
  assert.ok(info.isa === 'avx512' || info.isa === 'avx2');
});

// ---------------------------------------------------------------- benchmark report

test(
  'the kernel benchmark report has the contract shape (env, gemm entries, kernels, overhead)',
  { skip },
  async () => {
    // Tiny timing budget: this checks the report, not speed (speed lives in `cavmae bench`).
    const { runKernelBench } = await import('../../src/bench/kernels.js');
    const r = await runKernelBench({
      quick: true,
      kernels: N!,
      threads: [1, 2],
      batchSeconds: 0.002,
      batches: 1,
      warmupSeconds: 0,
      probeMs: 5,
    });
    assert.equal(r.env.backend, 'native');
    const hw = r.peak.hardware!;
    assert.ok(hw.fp32 > 0 && hw.bf16 >= 0 && hw.ghzEstimate > 0.1, JSON.stringify(hw));
    assert.deepEqual(
      hw.byThreads.map((h) => h.threads),
      [1, 2],
    );
    // Where our int8 GEMM runs AMX its peak is tdpbusd's (the register-only chain: 8x a 512-bit
    // vpdpbusd's products per cycle in theory; more than 2x even in a 5 ms probe), and the VNNI
    // figure is kept beside it; elsewhere there is no AMX figure.
    if (N!.info().int8Gemm === 'amx-packed')
      assert.ok(hw.int8Vnni! > 0 && hw.int8 > 2 * hw.int8Vnni!, `AMX int8 peak: ${JSON.stringify(hw)}`);
    else assert.equal(hw.int8Vnni, undefined);
    assert.throws(() => N!.peakProbe!(6, 1, 1), /kind must be/);
    assert.ok(r.gemm.every((g) => g.hardwareUtilisation! > 0));
    assert.ok(r.env.cpuFlags.length > 0 && typeof r.env.cpuModel === 'string');
    assert.match(r.env.native!.dnnlVersion, /^\d+\.\d+\.\d+$/);
    assert.ok(Object.values(r.env.native!.gemmImpl).every((s) => s.length > 0));
    assert.equal(r.gemm.length, 3 * 2 * 2); // NN/NT/TN x fp32/bf16 x 1,2 threads at 1024x768x3072
    for (const g of r.gemm) {
      assert.deepEqual(Object.keys(g).slice(0, 7), ['m', 'k', 'n', 'trans', 'dtype', 'threads', 'gflops']);
      assert.ok(['NN', 'NT', 'TN'].includes(g.trans) && ['fp32', 'bf16'].includes(g.dtype));
      assert.ok(g.gflops > 0 && g.utilisation > 0 && g.utilisation <= 1);
    }
    assert.ok(r.peak.fp32 > 0 && r.peak.bf16 > 0);
    const names = new Set(r.kernels.map((k) => k.kernel));
    for (const k of [
      'layerNormForward',
      'geluBackward',
      'softmaxForward',
      'adamUpdate',
      'attentionBackward',
      'f32ToBf16',
    ])
      assert.ok(names.has(k), k);
    assert.ok(r.kernels.every((k) => k.us > 0 && (k.ratio === undefined || k.ratio > 0)));
    assert.ok(r.overhead.length > 0 && r.bandwidth.length === 2);
    assert.ok(JSON.parse(JSON.stringify(r)));

    // --only: just the named parts.
    const o = await runKernelBench({
      only: ['add', 'meanPool'],
      kernels: N!,
      threads: [1],
      batchSeconds: 0.002,
      batches: 1,
      warmupSeconds: 0,
    });
    assert.equal(o.gemm.length, 0);
    assert.equal(o.peak.hardware, undefined);
    assert.deepEqual(o.kernels.map((k) => k.kernel).sort(), ['add', 'meanPool']);
    assert.ok(o.kernels.every((k) => k.ratio! > 0) && o.overhead.length === 0);
  },
);

// ---------------------------------------------------------------- child processes

const kernelsIndex = siblingModule(import.meta.url, '../../src/kernels/index');

function runChild(
  script: string,
  env: Record<string, string>,
): { status: number | null; stdout: string; stderr: string } {
  return runModuleScript(script, { env: { CAVMAE_KERNELS: '', CAVMAE_QUIET_FALLBACK: '', ...env } });
}

test('a bogus CAVMAE_NATIVE_PATH falls back to the TypeScript kernels with one clear line, no throw', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cavmae-native-'));
  try {
    const notAnAddon = join(dir, 'broken.node');
    writeFileSync(notAnAddon, 'this is not a shared object');
    const script =
      `const m = await import(${JSON.stringify(kernelsIndex)});` +
      `const k = m.kernels(); const o = new Float32Array(2);` +
      `k.add(o, Float32Array.from([1, 2]), Float32Array.from([3, 4]), 2);` +
      `console.log(JSON.stringify({ name: k.name, out: Array.from(o) }));`;
    for (const [path, reason] of [
      [join(dir, 'missing.node'), /addon not built/],
      [notAnAddon, /addon failed to load/],
    ] as const) {
      const r = runChild(script, { CAVMAE_NATIVE_PATH: path });
      assert.equal(r.status, 0, `child failed: ${r.stderr}`);
      assert.deepEqual(JSON.parse(r.stdout.trim()), { name: 'ts', out: [4, 6] });
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
      assert.equal(lines.length, 1, `exactly one stderr line, got: ${r.stderr}`);
      assert.match(lines[0], /native kernels unavailable/);
      assert.match(lines[0], reason);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'the AVX2 copy of the kernels matches the AVX-512 copy (child with CAVMAE_NATIVE_ISA=avx2)',
  { skip: skip || (N?.info().isa !== 'avx512' ? 'this CPU already runs the AVX2 kernels' : false) },
  () => {
    // The child computes every hand-written kernel on awkward sizes with the AVX2 copy and prints
    // the results; the parent compares with its own (AVX-512) results. Same algorithms, but
    // different vector widths change the order of row sums (a few ulp) and erf uses a different
    // table per ISA.
    const script = `
    const { loadNativeKernels } = await import(${JSON.stringify(siblingModule(import.meta.url, '../../src/kernels/native'))});
    const { randomArray } = await import(${JSON.stringify(siblingModule(import.meta.url, '../helpers'))});
    const K = loadNativeKernels().kernels;
    const res = { isa: K.info().isa };
    const rows = 37, cols = 103, n = rows * cols;
    const x = randomArray(n, 1, 4), y = randomArray(n, 2), w = randomArray(cols, 3), b = randomArray(cols, 4);
    const o = new Float32Array(n); K.geluForward(o, x, n); res.gelu = Array.from(o);
    const d = new Float32Array(n); K.geluBackward(d, x, y, n); res.geluB = Array.from(d);
    const s = new Float32Array(n); K.softmaxForward(s, x, rows, cols, 0.7); res.softmax = Array.from(s);
    const ln = new Float32Array(n), mu = new Float32Array(rows), rs = new Float32Array(rows);
    K.layerNormForward(ln, mu, rs, x, w, b, rows, cols, 1e-6); res.ln = Array.from(ln);
    const dx = new Float32Array(n), dw = new Float32Array(cols), db = new Float32Array(cols);
    K.layerNormBackward(dx, dw, db, y, x, w, mu, rs, rows, cols); res.lnB = [...dx, ...dw, ...db];
    const l2 = new Float32Array(n), nr = new Float32Array(rows); K.l2Normalize(l2, nr, x, rows, cols, 1e-12); res.l2 = Array.from(l2);
    const p = Float32Array.from(x), m = new Float32Array(n), v = new Float32Array(n);
    K.adamUpdate(p, y, m, v, n, 1e-3, 0.9, 0.999, 1e-8, 0.05, 1, true); res.adam = Array.from(p);
    const h = new Uint16Array(n); K.f32ToBf16(h, x, n); res.bf16 = Array.from(h);
    const pool = new Float32Array(cols); K.meanPool(pool, x, 1, rows, cols); res.pool = Array.from(pool);
    console.log(JSON.stringify(res));`;
    const child = runChild(script, { CAVMAE_NATIVE_ISA: 'avx2' });
    assert.equal(child.status, 0, child.stderr);
    const theirs = JSON.parse(child.stdout.trim()) as Record<string, number[] | string>;
    assert.equal(theirs.isa, 'avx2');
    // The same computation here, with the AVX-512 kernels.
    const mine = runChild(script, {});
    const ours = JSON.parse(mine.stdout.trim()) as Record<string, number[] | string>;
    assert.equal(ours.isa, 'avx512');
    for (const key of Object.keys(ours)) {
      if (key === 'isa') continue;
      const a = theirs[key] as number[];
      const r = ours[key] as number[];
      if (key === 'bf16' || key === 'adam') {
        assert.deepEqual(a, r, `${key}: same fp32 operations on both ISAs, identical results`);
      } else if (key === 'gelu' || key === 'geluB') {
        // Different erf tables (16 x degree 5 vs 8 x degree 7), each within 8e-8 of erf.
        assertClose(a, r, { atol: 4e-7, what: `${key} avx2 vs avx512` });
      } else {
        // Row sums in a different lane order: 103-term fp32 sums, <= 110 u relative of O(1-4) values.
        assertClose(a, r, { rtol: 110 * U, atol: 110 * U * maxAbs(r), what: `${key} avx2 vs avx512` });
      }
    }
  },
);
