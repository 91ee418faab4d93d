/**
 * The TypeScript reference kernels against naive float64 implementations written from the
 * definitions (test/kernels/float64-reference.ts), high-precision erf values, and PyTorch golden
 * numbers for Adam/AdamW (test/fixtures/adam_golden.json, scripts/golden/adam_golden.py).
 * Tolerances are stated at every assertion; fp32 results carry ~6e-8 relative rounding.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { tsKernels as K, erf, erfc, gelu } from '../../src/kernels/ts/index.js';
import { assertClose, randomArray, repoRoot, rng } from '../helpers.js';
import {
  attention64,
  bf16Round64,
  erf64,
  erfc64,
  gelu64,
  l2Normalize64,
  layerNorm64,
  matmul64,
  meanPool64,
  softmax64,
} from './float64-reference.js';

/** Asserts |a_i - r_i| <= rtol |r_i| + atol for every element (per-element relative check). */
function assertEachClose(
  actual: ArrayLike<number>,
  ref: ArrayLike<number>,
  rtol: number,
  atol: number,
  what: string,
): void {
  assert.equal(actual.length, ref.length, `${what}: length`);
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(actual[i] - ref[i]);
    assert.ok(
      d <= rtol * Math.abs(ref[i]) + atol,
      `${what}[${i}]: ${actual[i]} vs ${ref[i]} (rtol ${rtol}, atol ${atol})`,
    );
  }
}

const f32 = (xs: ArrayLike<number>) => Float32Array.from(xs);

// ---------------------------------------------------------------- matmul

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [7, 13, 5],
  [1, 17, 9],
  [33, 1, 20],
  [16, 16, 16],
  [31, 47, 65],
  [5, 3, 1],
];
const COMBOS: [boolean, boolean][] = [
  [false, false],
  [true, false],
  [false, true],
  [true, true],
];

test('matmul: all transpose combos, alpha/beta, awkward shapes vs float64', () => {
  let seed = 1;
  for (const [m, n, k] of SHAPES) {
    for (const [tA, tB] of COMBOS) {
      for (const [alpha, beta] of [
        [1, 0],
        [0.5, -2],
        [-1.5, 1],
      ]) {
        const a = randomArray(m * k, seed++);
        const b = randomArray(k * n, seed++);
        const c0 = randomArray(m * n, seed++);
        const c = beta === 0 ? new Float32Array(m * n).fill(NaN) : c0.slice(); // beta = 0 must not read C
        K.matmul(a, b, c, m, n, k, tA, tB, alpha, beta, false);
        const ref = matmul64(a, b, c0, m, n, k, tA, tB, alpha, beta);
        // float64 accumulation, one fp32 rounding: within an fp32 ulp of each element.
        assertEachClose(
          c,
          ref,
          1.2e-7,
          1e-12,
          `matmul ${m}x${n}x${k} tA=${tA} tB=${tB} a=${alpha} b=${beta}`,
        );
      }
    }
  }
});

test('matmul: k = 0 gives beta * C; zero-sized m or n is a no-op', () => {
  const c = f32([1, 2, 3, 4]);
  K.matmul(new Float32Array(0), new Float32Array(0), c, 2, 2, 0, false, false, 1, 0.5, false);
  assertClose(c, [0.5, 1, 1.5, 2], { atol: 0, what: 'k=0' });
  K.matmul(
    new Float32Array(0),
    new Float32Array(12),
    new Float32Array(0),
    0,
    3,
    4,
    false,
    false,
    1,
    0,
    false,
  );
});

test('matmul: buffers shorter than the sizes are rejected', () => {
  assert.throws(
    () =>
      K.matmul(
        new Float32Array(5),
        new Float32Array(6),
        new Float32Array(4),
        2,
        2,
        3,
        false,
        false,
        1,
        0,
        false,
      ),
    /A has 5 elements, needs 6/,
  );
});

test('matmulBatched: strides with gaps and a broadcast B (stride 0), all combos', () => {
  const batch = 3;
  let seed = 100;
  for (const [m, n, k] of [
    [7, 13, 5],
    [1, 1, 1],
    [4, 9, 16],
  ] as [number, number, number][]) {
    for (const [tA, tB] of COMBOS) {
      const strideA = m * k + 3;
      const strideB = 0;
      const strideC = m * n + 5;
      const a = randomArray((batch - 1) * strideA + m * k, seed++);
      const b = randomArray(k * n, seed++);
      const c = randomArray((batch - 1) * strideC + m * n, seed++);
      const before = c.slice();
      K.matmulBatched(a, b, c, batch, m, n, k, tA, tB, strideA, strideB, strideC, 2, 0.25, false);
      for (let i = 0; i < batch; i++) {
        const ref = matmul64(
          a.subarray(i * strideA),
          b,
          before.subarray(i * strideC),
          m,
          n,
          k,
          tA,
          tB,
          2,
          0.25,
        );
        assertEachClose(
          c.subarray(i * strideC, i * strideC + m * n),
          ref,
          1.2e-7,
          1e-12,
          `batched[${i}] ${m}x${n}x${k} ${tA}${tB}`,
        );
        // The gap after each C matrix is left alone.
        const gapEnd = Math.min((i + 1) * strideC, c.length);
        assertClose(c.subarray(i * strideC + m * n, gapEnd), before.subarray(i * strideC + m * n, gapEnd), {
          atol: 0,
          what: 'C gap',
        });
      }
    }
  }
});

test('matmul bf16: inputs rounded to bf16 (nearest-even), float accumulation', () => {
  let seed = 200;
  for (const [m, n, k] of [
    [7, 13, 5],
    [17, 3, 33],
    [1, 1, 1],
  ] as [number, number, number][]) {
    for (const [tA, tB] of COMBOS) {
      const a = randomArray(m * k, seed++, 3);
      const b = randomArray(k * n, seed++, 3);
      const c = new Float32Array(m * n).fill(NaN);
      K.matmul(a, b, c, m, n, k, tA, tB, 1, 0, true);
      const ref = matmul64(Array.from(a, bf16Round64), Array.from(b, bf16Round64), [], m, n, k, tA, tB, 1, 0);
      assertEachClose(c, ref, 1.2e-7, 1e-12, `bf16 matmul ${m}x${n}x${k} ${tA}${tB}`);
      if (m * n * k > 1) {
        // And the rounding really happened: fp32 inputs give a visibly different product.
        const exact = matmul64(a, b, [], m, n, k, tA, tB, 1, 0);
        let maxDiff = 0;
        for (let i = 0; i < exact.length; i++) maxDiff = Math.max(maxDiff, Math.abs(exact[i] - c[i]));
        assert.ok(maxDiff > 1e-4, `bf16 result should differ from fp32 (max diff ${maxDiff})`);
      }
    }
  }
  // Inputs are left unrounded.
  const a = f32([1 + 2 ** -10]);
  K.matmul(a, f32([1]), new Float32Array(1), 1, 1, 1, false, false, 1, 0, true);
  assert.equal(a[0], Math.fround(1 + 2 ** -10));
});

// ---------------------------------------------------------------- bf16 conversions

test('f32ToBf16: ties to even, NaN, Inf, signed zero, max finite, subnormals', () => {
  const bitsToF32 = (u: number) => new Float32Array(new Uint32Array([u]).buffer)[0];
  const cases: [number, number, string][] = [
    [0x3f800000, 0x3f80, '1.0'],
    [0x3f808000, 0x3f80, 'tie, even below'],
    [0x3f818000, 0x3f82, 'tie, even above'],
    [0x3f808001, 0x3f81, 'just above a tie'],
    [0x3f807fff, 0x3f80, 'just below a tie'],
    [0xbf818000, 0xbf82, 'negative tie'],
    [0x00000000, 0x0000, '+0'],
    [0x80000000, 0x8000, '-0'],
    [0x7f800000, 0x7f80, '+Inf'],
    [0xff800000, 0xff80, '-Inf'],
    [0x7f7fffff, 0x7f80, 'max finite fp32 rounds to Inf'],
    [0x7f7f7fff, 0x7f7f, 'largest value that stays finite'],
    [0x7f7f8000, 0x7f80, 'tie at the top rounds to even (Inf)'],
    [0xff7fffff, 0xff80, '-max finite'],
    [0x00000001, 0x0000, 'smallest subnormal'],
    [0x00008000, 0x0000, 'subnormal tie to even 0'],
    [0x00018000, 0x0002, 'subnormal tie to even 2'],
    [0x7fc00000, 0x7fc0, 'quiet NaN'],
    [0xffc00000, 0xffc0, 'negative quiet NaN'],
  ];
  const inp = new Float32Array(cases.length);
  new Uint32Array(inp.buffer).set(cases.map((c) => c[0]));
  const out = new Uint16Array(cases.length);
  K.f32ToBf16(out, inp, cases.length);
  cases.forEach(([, want, what], i) => assert.equal(out[i], want, `${what}: got 0x${out[i].toString(16)}`));
  // Signalling NaNs and NaNs whose payload sits only in the dropped bits must stay NaN.
  const nans = new Float32Array(3);
  new Uint32Array(nans.buffer).set([0x7f800001, 0x7f80ffff, 0xff800001]);
  const nb = new Uint16Array(3);
  K.f32ToBf16(nb, nans, 3);
  const back = new Float32Array(3);
  K.bf16ToF32(back, nb, 3);
  for (let i = 0; i < 3; i++)
    assert.ok(Number.isNaN(back[i]) && (nb[i] & 0x0040) !== 0, `NaN ${i} -> 0x${nb[i].toString(16)}`);
  // Agreement with an arithmetic (non bit-trick) rounding on random finite values of all magnitudes.
  const r = rng(7);
  const xs = new Float32Array(20000);
  for (let i = 0; i < xs.length; i++) xs[i] = (r() - 0.5) * 2 ** Math.floor(r() * 260 - 140);
  xs[0] = bitsToF32(0x00400000);
  const xb = new Uint16Array(xs.length);
  K.f32ToBf16(xb, xs, xs.length);
  const xf = new Float32Array(xs.length);
  K.bf16ToF32(xf, xb, xs.length);
  for (let i = 0; i < xs.length; i++) assert.equal(xf[i], bf16Round64(xs[i]), `random ${xs[i]}`);
});

test('bf16ToF32: every bit pattern round-trips', () => {
  const all = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) all[i] = i;
  const f = new Float32Array(65536);
  K.bf16ToF32(f, all, 65536);
  const u = new Uint32Array(f.buffer);
  const again = new Uint16Array(65536);
  K.f32ToBf16(again, f, 65536);
  for (let i = 0; i < 65536; i++) {
    assert.equal(u[i], (i << 16) >>> 0, `bf16ToF32(0x${i.toString(16)})`);
    const isNaN = (i & 0x7f80) === 0x7f80 && (i & 0x7f) !== 0;
    assert.equal(again[i], isNaN ? i | 0x40 : i, `round trip 0x${i.toString(16)}`);
  }
});

// ---------------------------------------------------------------- GELU / erf

test('erf/erfc: Python math.erf values and an independent series / continued fraction', () => {
  // True values to 17 digits (mpmath, 40 decimal digits, via /usr/bin/python3).
  const golden: [number, number, number][] = [
    [1e-8, 1.1283791670955125e-8, 0.9999999887162083],
    [0.1, 0.11246291601828488, 0.8875370839817152],
    [0.46875, 0.49261347321793797, 0.507386526782062],
    [0.5, 0.5204998778130465, 0.4795001221869535],
    [1.0, 0.8427007929497149, 0.15729920705028513],
    [2.0, 0.9953222650189527, 0.004677734981047266],
    [3.5, 0.9999992569016276, 7.430983723414128e-7],
    [5.0, 0.9999999999984626, 1.537459794428035e-12],
    [-0.7, -0.6778011938374184, 1.6778011938374184],
    [-4.2, -0.9999999971445058, 1.9999999971445057],
  ];
  for (const [x, e, c] of golden) {
    assertEachClose([erf(x)], [e], 5e-16, 0, `erf(${x})`);
    assertEachClose([erfc(x)], [c], 5e-15, 0, `erfc(${x})`);
  }
  // Dense grid across every branch of the rational approximation, relative error < 1e-13.
  // (erfc only in the continued-fraction range, where the test's erfc64 is itself accurate.)
  for (let x = -7; x <= 7; x += 0.0137) {
    assertEachClose([erf(x)], [erf64(x)], 1e-13, 1e-300, `erf(${x})`);
    if (x >= 2.5) assertEachClose([erfc(x)], [erfc64(x)], 1e-13, 0, `erfc(${x})`);
  }
  assert.equal(erf(0), 0);
  assert.equal(erf(Infinity), 1);
  assert.equal(erf(-Infinity), -1);
  assert.equal(erfc(Infinity), 0);
  assert.ok(Number.isNaN(erf(NaN)));
});

test('gelu: exact erf values', () => {
  // True 0.5 x erfc(-x/√2) (mpmath, 40 digits).
  const golden: [number, number][] = [
    [1, 0.8413447460685429],
    [-1, -0.15865525393145705],
    [0.5, 0.34573123063700656],
    [-3, -0.0040496940948902835],
    [3, 2.99595030590511],
    [-8, -4.976768459417427e-15],
  ];
  // float64: in the tail the rounding of x/√2 is amplified by ~x² (5e-15 at x = -8).
  for (const [x, y] of golden) assertEachClose([gelu(x)], [y], 1e-14, 0, `gelu(${x}) float64`);
  const xs = f32(golden.map((g) => g[0]));
  const out = new Float32Array(xs.length);
  K.geluForward(out, xs, xs.length);
  // Kernel output is fp32: half an ulp (6e-8 relative), even for the tiny negative tail.
  assertEachClose(
    out,
    golden.map((g) => g[1]),
    6e-8,
    0,
    'geluForward',
  );
});

test('geluForward/geluBackward vs float64 on a grid; in-place forward; backward accumulates', () => {
  const n = 2001;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = -10 + (20 * i) / (n - 1);
  const out = new Float32Array(n);
  K.geluForward(out, x, n);
  assertEachClose(out, Array.from(x, gelu64), 6e-8, 1e-40, 'gelu grid');
  const inplace = x.slice();
  K.geluForward(inplace, inplace, n);
  assertClose(inplace, out, { atol: 0, what: 'gelu in place' });

  const dout = randomArray(n, 3);
  const dinp = randomArray(n, 4);
  const prior = dinp.slice();
  K.geluBackward(dinp, x, dout, n);
  const ref = Array.from(x, (xi, i) => {
    const cdf = 0.5 * (1 + erf64(xi / Math.SQRT2));
    const pdf = Math.exp(-0.5 * xi * xi) / Math.sqrt(2 * Math.PI);
    return prior[i] + dout[i] * (cdf + xi * pdf);
  });
  assertEachClose(dinp, ref, 1e-7, 1e-7, 'geluBackward (+= prior)');
});

// ---------------------------------------------------------------- softmax

test('softmax: vs float64 with scale, rows sum to 1, large inputs, aliasing', () => {
  for (const [rows, cols, scale] of [
    [5, 7, 0.125],
    [1, 1, 3],
    [3, 64, 1],
    [2, 5, -0.5],
  ] as [number, number, number][]) {
    const x = randomArray(rows * cols, rows * 31 + cols, 10);
    x[0] = 1000; // exp overflow without max subtraction
    const out = new Float32Array(rows * cols);
    K.softmaxForward(out, x, rows, cols, scale);
    assertEachClose(
      out,
      softmax64(x, rows, cols, scale),
      3e-7,
      1e-30,
      `softmax ${rows}x${cols} scale ${scale}`,
    );
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += out[r * cols + c];
      assertClose([s], [1], { atol: 1e-6, what: `row ${r} sum` });
    }
    const inplace = x.slice();
    K.softmaxForward(inplace, inplace, rows, cols, scale);
    assertClose(inplace, out, { atol: 0, what: 'softmax in place' });

    // Backward vs the explicit Jacobian: d(softmax(s x))_i/dx_j = s y_i (δij - y_j).
    const dout = randomArray(rows * cols, 9);
    const dinp = randomArray(rows * cols, 10);
    const ref = Float64Array.from(dinp);
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < cols; j++) {
        let g = 0;
        for (let i = 0; i < cols; i++) {
          const yi = out[r * cols + i];
          g += dout[r * cols + i] * scale * yi * ((i === j ? 1 : 0) - out[r * cols + j]);
        }
        ref[r * cols + j] += g;
      }
    }
    K.softmaxBackward(dinp, out, dout, rows, cols, scale);
    assertClose(dinp, ref, { rtol: 1e-6, atol: 1e-7, what: 'softmaxBackward (+= prior)' });
  }
});

// ---------------------------------------------------------------- bias, add, axpy

test('biasAdd, biasBackward (accumulates), add (aliasing), axpy', () => {
  const rows = 9;
  const cols = 13;
  const x = randomArray(rows * cols, 1);
  const bias = randomArray(cols, 2);
  const y = x.slice();
  K.biasAdd(y, bias, rows, cols);
  assertClose(
    y,
    Array.from(x, (v, i) => Math.fround(v + bias[i % cols])),
    { atol: 0, what: 'biasAdd' },
  );

  const dbias = randomArray(cols, 3);
  const ref = Float64Array.from(dbias);
  for (let i = 0; i < rows * cols; i++) ref[i % cols] += x[i];
  K.biasBackward(dbias, x, rows, cols);
  assertClose(dbias, ref, { rtol: 1e-7, atol: 1e-7, what: 'biasBackward' });

  const a = randomArray(50, 4);
  const b = randomArray(50, 5);
  const sum = Array.from(a, (v, i) => Math.fround(v + b[i]));
  const out = new Float32Array(50);
  K.add(out, a, b, 50);
  assertClose(out, sum, { atol: 0, what: 'add' });
  const a2 = a.slice();
  K.add(a2, a2, b, 50);
  assertClose(a2, sum, { atol: 0, what: 'add aliasing a' });
  const b2 = b.slice();
  K.add(b2, a, b2, 50);
  assertClose(b2, sum, { atol: 0, what: 'add aliasing b' });

  const yy = a.slice();
  K.axpy(yy, b, -0.75, 50);
  assertClose(
    yy,
    Array.from(a, (v, i) => v - 0.75 * b[i]),
    { rtol: 1e-7, atol: 1e-7, what: 'axpy' },
  );
});

// ---------------------------------------------------------------- layer norm

test('layerNormForward: torch.nn.LayerNorm semantics (biased variance, eps), large offsets', () => {
  const rows = 6;
  const cols = 37;
  const x = randomArray(rows * cols, 11, 2);
  for (let c = 0; c < cols; c++) x[cols + c] += 300; // row 1: large mean (two-pass variance)
  for (let c = 0; c < cols; c++) x[2 * cols + c] = 0.5; // row 2: constant, variance 0
  const w = randomArray(cols, 12);
  const b = randomArray(cols, 13);
  const out = new Float32Array(rows * cols);
  const mean = new Float32Array(rows);
  const rstd = new Float32Array(rows);
  for (const eps of [1e-5, 1e-6]) {
    K.layerNormForward(out, mean, rstd, x, w, b, rows, cols, eps);
    const ref = layerNorm64(x, w, b, rows, cols, eps);
    assertClose(out, ref.out, { rtol: 1e-6, atol: 1e-6, what: `layerNorm out eps ${eps}` });
    assertEachClose(mean, ref.mean, 1e-7, 1e-7, 'layerNorm mean');
    assertEachClose(rstd, ref.rstd, 1e-7, 0, 'layerNorm rstd');
  }
});

test('layerNormBackward vs the explicit Jacobian; accumulates into dinp, dweight, dbias', () => {
  const rows = 4;
  const cols = 11;
  const x = randomArray(rows * cols, 21, 3);
  const w = randomArray(cols, 22);
  const b = randomArray(cols, 23);
  const out = new Float32Array(rows * cols);
  const mean = new Float32Array(rows);
  const rstd = new Float32Array(rows);
  K.layerNormForward(out, mean, rstd, x, w, b, rows, cols, 1e-5);
  const dout = randomArray(rows * cols, 24);
  const dinp = randomArray(rows * cols, 25);
  const dw = randomArray(cols, 26);
  const db = randomArray(cols, 27);
  const refDinp = Float64Array.from(dinp);
  const refDw = Float64Array.from(dw);
  const refDb = Float64Array.from(db);
  const ref = layerNorm64(x, w, b, rows, cols, 1e-5);
  for (let r = 0; r < rows; r++) {
    const rs = ref.rstd[r];
    const xhat = (c: number) => (x[r * cols + c] - ref.mean[r]) * rs;
    for (let i = 0; i < cols; i++) {
      // ∂xhat_j/∂x_i = rs (δij - 1/N - xhat_i xhat_j / N)
      let g = 0;
      for (let j = 0; j < cols; j++) {
        g += dout[r * cols + j] * w[j] * rs * ((i === j ? 1 : 0) - 1 / cols - (xhat(i) * xhat(j)) / cols);
      }
      refDinp[r * cols + i] += g;
      refDw[i] += dout[r * cols + i] * xhat(i);
      refDb[i] += dout[r * cols + i];
    }
  }
  K.layerNormBackward(dinp, dw, db, dout, x, w, mean, rstd, rows, cols);
  assertClose(dinp, refDinp, { rtol: 1e-6, atol: 1e-6, what: 'dinp' });
  assertClose(dw, refDw, { rtol: 1e-6, atol: 1e-6, what: 'dweight' });
  assertClose(db, refDb, { rtol: 1e-7, atol: 1e-7, what: 'dbias' });
});

// ---------------------------------------------------------------- attention

/** Naive attention backward from the chain rule, optionally with bf16 rounding at the products. */
function attentionBackward64(
  dout: ArrayLike<number>,
  qkv: ArrayLike<number>,
  att: ArrayLike<number>,
  B: number,
  T: number,
  C: number,
  H: number,
  scale: number,
  round: (x: number) => number,
): Float64Array {
  const hd = C / H;
  const dqkv = new Float64Array(B * T * 3 * C);
  const idx = (b: number, t: number, part: number, h: number, d: number) =>
    (b * T + t) * 3 * C + part * C + h * hd + d;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const P = (t: number, s: number) => att[((b * H + h) * T + t) * T + s];
      const dO = (t: number, d: number) => round(dout[(b * T + t) * C + h * hd + d]);
      for (let t = 0; t < T; t++) {
        const dP = new Float64Array(T);
        for (let s = 0; s < T; s++) {
          for (let d = 0; d < hd; d++) dP[s] += dO(t, d) * round(qkv[idx(b, s, 2, h, d)]);
          for (let d = 0; d < hd; d++) dqkv[idx(b, s, 2, h, d)] += round(P(t, s)) * dO(t, d);
        }
        let rowDot = 0;
        for (let s = 0; s < T; s++) rowDot += P(t, s) * dP[s];
        for (let s = 0; s < T; s++) {
          const dS = scale * round(P(t, s) * (dP[s] - rowDot));
          for (let d = 0; d < hd; d++) {
            dqkv[idx(b, t, 0, h, d)] += dS * round(qkv[idx(b, s, 1, h, d)]);
            dqkv[idx(b, s, 1, h, d)] += dS * round(qkv[idx(b, t, 0, h, d)]);
          }
        }
      }
    }
  }
  return dqkv;
}

test('attention forward/backward vs the timm definition (fp32 and bf16 paths)', () => {
  const configs: [number, number, number, number][] = [
    [2, 5, 12, 3],
    [1, 1, 4, 2],
    [1, 9, 16, 1],
    [3, 4, 8, 4],
  ];
  let seed = 300;
  for (const [B, T, C, H] of configs) {
    const scale = (C / H) ** -0.5;
    const qkv = randomArray(B * T * 3 * C, seed++, 2);
    for (const bf16 of [false, true]) {
      const round = bf16 ? bf16Round64 : undefined;
      const out = new Float32Array(B * T * C).fill(NaN);
      const att = new Float32Array(B * H * T * T).fill(NaN);
      K.attentionForward(out, att, qkv, B, T, C, H, scale, bf16);
      const ref = attention64(qkv, B, T, C, H, scale, round);
      const what = `B${B} T${T} C${C} H${H} bf16=${bf16}`;
      assertEachClose(att, ref.att, 1e-6, 1e-9, `att ${what}`);
      assertClose(out, ref.out, { rtol: 1e-6, atol: 1e-7, what: `out ${what}` });
      for (let r = 0; r < B * H * T; r++) {
        let s = 0;
        for (let c = 0; c < T; c++) s += att[r * T + c];
        assertClose([s], [1], { atol: 1e-6, what: 'att row sum' });
      }
      const dout = randomArray(B * T * C, seed++);
      const dqkv = randomArray(B * T * 3 * C, seed++);
      const refD = attentionBackward64(dout, qkv, att, B, T, C, H, scale, round ?? ((x: number) => x));
      for (let i = 0; i < refD.length; i++) refD[i] += dqkv[i];
      const scratch = new Float32Array(B * H * T * T);
      K.attentionBackward(dqkv, scratch, dout, qkv, att, B, T, C, H, scale, bf16);
      assertClose(dqkv, refD, { rtol: 1e-6, atol: 1e-6, what: `dqkv (+= prior) ${what}` });
    }
  }
  assert.throws(
    () =>
      K.attentionForward(
        new Float32Array(30),
        new Float32Array(50),
        new Float32Array(90),
        1,
        5,
        6,
        4,
        1,
        false,
      ),
    /not divisible/,
  );
});

// ---------------------------------------------------------------- gather / scatter / pooling

test('gatherRows / scatterAddRows: exact, duplicates accumulate, bad indices throw', () => {
  const rows = 6;
  const cols = 5;
  const inp = randomArray(rows * cols, 41);
  const index = Int32Array.from([5, 0, 3, 3, 1]);
  const out = new Float32Array(index.length * cols).fill(NaN);
  K.gatherRows(out, inp, index, index.length, cols);
  const want = Array.from(index).flatMap((r) => Array.from(inp.subarray(r * cols, (r + 1) * cols)));
  assertClose(out, want, { atol: 0, what: 'gatherRows' });

  const grad = randomArray(index.length * cols, 42);
  const acc = randomArray(rows * cols, 43);
  const ref = Float64Array.from(acc);
  index.forEach((r, i) => {
    for (let c = 0; c < cols; c++) ref[r * cols + c] += grad[i * cols + c];
  });
  K.scatterAddRows(acc, grad, index, index.length, cols);
  assertClose(acc, ref, { rtol: 1e-7, atol: 1e-7, what: 'scatterAddRows (duplicates, += prior)' });

  assert.throws(
    () => K.gatherRows(out, inp, Int32Array.from([6]), 1, cols),
    /index\[0\] = 6 is outside \[0, 6\)/,
  );
  assert.throws(() => K.scatterAddRows(acc, grad, Int32Array.from([-1]), 1, cols), /outside/);
});

test('meanPool / meanPoolBackward', () => {
  const [B, T, D] = [3, 7, 10];
  const x = randomArray(B * T * D, 51);
  const out = new Float32Array(B * D);
  K.meanPool(out, x, B, T, D);
  assertEachClose(out, meanPool64(x, B, T, D), 1e-6, 1e-8, 'meanPool');
  const dout = randomArray(B * D, 52);
  const dinp = randomArray(B * T * D, 53);
  const ref = Array.from(dinp, (v, i) => v + dout[Math.floor(i / (T * D)) * D + (i % D)] / T);
  K.meanPoolBackward(dinp, dout, B, T, D);
  assertClose(dinp, ref, { rtol: 1e-7, atol: 1e-7, what: 'meanPoolBackward (+= prior)' });
});

// ---------------------------------------------------------------- l2 normalize

test('l2Normalize forward/backward: normal rows, zero row and a row clamped by eps', () => {
  const rows = 4;
  const cols = 6;
  const eps = 1e-3;
  const x = randomArray(rows * cols, 61, 2);
  for (let c = 0; c < cols; c++) x[cols + c] = 0; // zero row: norm 0, output 0
  for (let c = 0; c < cols; c++) x[2 * cols + c] = 1e-4 * (c - 2); // norm < eps: x / eps
  const out = new Float32Array(rows * cols);
  const norms = new Float32Array(rows);
  K.l2Normalize(out, norms, x, rows, cols, eps);
  assertEachClose(out, l2Normalize64(x, rows, cols, eps), 1.2e-7, 1e-12, 'l2Normalize');
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += x[r * cols + c] ** 2;
    assertEachClose([norms[r]], [Math.sqrt(ss)], 1e-7, 0, `norm ${r}`);
  }
  // Backward vs the explicit Jacobian of x / max(||x||, eps).
  const dout = randomArray(rows * cols, 62);
  const dinp = randomArray(rows * cols, 63);
  const ref = Float64Array.from(dinp);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += x[r * cols + c] ** 2;
    const n = Math.sqrt(ss);
    for (let i = 0; i < cols; i++) {
      let g = 0;
      for (let j = 0; j < cols; j++) {
        const xi = x[r * cols + i];
        const xj = x[r * cols + j];
        const jac = n >= eps ? ((i === j ? 1 : 0) - (xi * xj) / (n * n)) / n : (i === j ? 1 : 0) / eps; // ∂y_j/∂x_i
        g += dout[r * cols + j] * jac;
      }
      ref[r * cols + i] += g;
    }
  }
  K.l2NormalizeBackward(dinp, dout, out, norms, rows, cols, eps);
  assertClose(dinp, ref, { rtol: 1e-6, atol: 1e-6, what: 'l2NormalizeBackward (+= prior)' });
});

// ---------------------------------------------------------------- Adam

interface AdamCase {
  optimizer: string;
  decoupled: boolean;
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weight_decay: number;
  initial: number[];
  steps: { grad: number[]; param: number[]; m: number[]; v: number[] }[];
}

/** Distance in units in the last place between two fp32 values. */
function ulps(a: number, b: number): number {
  const buf = new Float32Array([a, b]);
  const [ia, ib] = new Int32Array(buf.buffer);
  const key = (i: number) => (i < 0 ? -(i & 0x7fffffff) : i); // monotone ordering of fp32 bit patterns
  return Math.abs(key(ia) - key(ib));
}

test('adamUpdate: 3 steps vs the hand-derived float64 formula (Adam L2 and AdamW)', () => {
  const n = 9;
  for (const [decoupled, wd] of [
    [false, 5e-7],
    [true, 0.05],
    [false, 0],
    [true, 0],
  ] as [boolean, number][]) {
    const [lr, b1, b2, eps] = [1e-3, 0.95, 0.999, 1e-8];
    const param = randomArray(n, 71, 2);
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    const p64 = Float64Array.from(param);
    const m64 = new Float64Array(n);
    const v64 = new Float64Array(n);
    for (let step = 1; step <= 3; step++) {
      const grad = randomArray(n, 80 + step);
      grad[0] = 0;
      K.adamUpdate(param, grad, m, v, n, lr, b1, b2, eps, wd, step, decoupled);
      for (let i = 0; i < n; i++) {
        let g = grad[i];
        if (decoupled) p64[i] *= 1 - lr * wd;
        else g += wd * p64[i];
        m64[i] = b1 * m64[i] + (1 - b1) * g;
        v64[i] = b2 * v64[i] + (1 - b2) * g * g;
        p64[i] -= (lr * (m64[i] / (1 - b1 ** step))) / (Math.sqrt(v64[i] / (1 - b2 ** step)) + eps);
      }
      const what = `${decoupled ? 'AdamW' : 'Adam'} wd ${wd} step ${step}`;
      // fp32 op-by-op arithmetic vs float64: a few fp32 ulps of each element.
      assertEachClose(param, p64, 1e-6, 1e-9, `param ${what}`);
      assertEachClose(m, m64, 1e-6, 1e-12, `m ${what}`);
      assertEachClose(v, v64, 1e-6, 1e-15, `v ${what}`);
    }
  }
  assert.throws(
    () =>
      K.adamUpdate(
        new Float32Array(1),
        new Float32Array(1),
        new Float32Array(1),
        new Float32Array(1),
        1,
        1e-3,
        0.9,
        0.999,
        1e-8,
        0,
        0,
        false,
      ),
    /step/,
  );
});

test('adamUpdate: PyTorch golden values (torch.optim.Adam wd 5e-7, AdamW wd 0.05; 5 steps)', () => {
  const golden = JSON.parse(
    readFileSync(join(repoRoot(), 'test', 'fixtures', 'adam_golden.json'), 'utf8'),
  ) as { cases: AdamCase[] };
  assert.equal(golden.cases.length, 2);
  for (const c of golden.cases) {
    const n = c.initial.length;
    const param = f32(c.initial);
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    c.steps.forEach((s, i) => {
      K.adamUpdate(
        param,
        f32(s.grad),
        m,
        v,
        n,
        c.lr,
        c.beta1,
        c.beta2,
        c.eps,
        c.weight_decay,
        i + 1,
        c.decoupled,
      );
      for (let j = 0; j < n; j++) {
        // Operation-by-operation fp32 emulation: at most 1 ulp from PyTorch (bit-exact when written).
        for (const [name, got, want] of [
          ['param', param[j], s.param[j]],
          ['m', m[j], s.m[j]],
          ['v', v[j], s.v[j]],
        ] as const) {
          assert.ok(
            ulps(got, want) <= 1,
            `${c.optimizer} step ${i + 1} ${name}[${j}]: ${got} vs torch ${want}`,
          );
        }
      }
    });
  }
});

test('setThreads/getThreads store the value; name is ts', () => {
  assert.equal(K.name, 'ts');
  const before = K.getThreads();
  K.setThreads(2);
  assert.equal(K.getThreads(), 2);
  K.setThreads(before);
  assert.throws(() => K.setThreads(0), /setThreads/);
});
