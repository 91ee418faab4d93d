/**
 * Finite-difference checks of every backward kernel of the TypeScript reference.
 *
 * For each op a float64 scalar loss L(x) = Σ w · forward64(x) is written in the test
 * (float64-reference.ts, from the definitions), its gradient is taken by central differences
 * (step 1e-5, truncation and rounding error ~1e-10), and the kernel's fp32 backward, called
 * with dout = w on gradients pre-filled with random values, must equal prior + FD gradient.
 * Tolerance: |kernel - FD| <= 1e-5 · max|FD| + 1e-6; measured max errors are 4e-8..2e-7 (the
 * fp32 rounding of prior + gradient).
 */
import { test } from 'node:test';
import { tsKernels as K } from '../../src/kernels/ts/index.js';
import { assertClose, randomArray } from '../helpers.js';
import {
  attention64,
  dot64,
  gelu64,
  l2Normalize64,
  layerNorm64,
  meanPool64,
  numericGrad,
  softmax64,
} from './float64-reference.js';

const TOL = { rtol: 1e-5, atol: 1e-6 };

/** Checks kernel(prior) - prior against the finite-difference gradient of `loss` at x. */
function check(
  what: string,
  after: Float32Array,
  prior: Float32Array,
  loss: (x: Float64Array) => number,
  x: ArrayLike<number>,
): void {
  const fd = numericGrad(loss, Float64Array.from(x));
  const got = Float64Array.from(after, (v, i) => v - prior[i]);
  assertClose(got, fd, { ...TOL, what });
}

test('gradcheck layerNormBackward: dinp, dweight, dbias', () => {
  const [rows, cols, eps] = [3, 7, 1e-5];
  const x = randomArray(rows * cols, 1, 2);
  const w = randomArray(cols, 2);
  const b = randomArray(cols, 3);
  const dout = randomArray(rows * cols, 4);
  const out = new Float32Array(rows * cols);
  const mean = new Float32Array(rows);
  const rstd = new Float32Array(rows);
  K.layerNormForward(out, mean, rstd, x, w, b, rows, cols, eps);
  const dinp = randomArray(rows * cols, 5);
  const dw = randomArray(cols, 6);
  const db = randomArray(cols, 7);
  const [p0, p1, p2] = [dinp.slice(), dw.slice(), db.slice()];
  K.layerNormBackward(dinp, dw, db, dout, x, w, mean, rstd, rows, cols);
  check('LN dinp', dinp, p0, (xx) => dot64(dout, layerNorm64(xx, w, b, rows, cols, eps).out), x);
  check('LN dweight', dw, p1, (ww) => dot64(dout, layerNorm64(x, ww, b, rows, cols, eps).out), w);
  check('LN dbias', db, p2, (bb) => dot64(dout, layerNorm64(x, w, bb, rows, cols, eps).out), b);
});

test('gradcheck geluBackward', () => {
  const n = 41;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = -5 + (10 * i) / (n - 1) + 0.013; // spans both tails and 0
  const dout = randomArray(n, 11);
  const dinp = randomArray(n, 12);
  const prior = dinp.slice();
  K.geluBackward(dinp, x, dout, n);
  check('gelu dinp', dinp, prior, (xx) => dot64(dout, Array.from(xx, gelu64)), x);
});

test('gradcheck softmaxBackward with scale', () => {
  for (const scale of [0.35, 1, -2]) {
    const [rows, cols] = [3, 6];
    const x = randomArray(rows * cols, 21, 2);
    const out = new Float32Array(rows * cols);
    K.softmaxForward(out, x, rows, cols, scale);
    const dout = randomArray(rows * cols, 22);
    const dinp = randomArray(rows * cols, 23);
    const prior = dinp.slice();
    K.softmaxBackward(dinp, out, dout, rows, cols, scale);
    check(
      `softmax dinp scale ${scale}`,
      dinp,
      prior,
      (xx) => dot64(dout, softmax64(xx, rows, cols, scale)),
      x,
    );
  }
});

test('gradcheck attentionBackward: dqkv', () => {
  for (const [B, T, C, H] of [
    [2, 4, 6, 2],
    [1, 3, 8, 1],
  ] as [number, number, number, number][]) {
    const scale = (C / H) ** -0.5;
    const qkv = randomArray(B * T * 3 * C, 31 + T, 1.5);
    const out = new Float32Array(B * T * C);
    const att = new Float32Array(B * H * T * T);
    K.attentionForward(out, att, qkv, B, T, C, H, scale, false);
    const dout = randomArray(B * T * C, 32);
    const dqkv = randomArray(B * T * 3 * C, 33);
    const prior = dqkv.slice();
    K.attentionBackward(dqkv, new Float32Array(B * H * T * T), dout, qkv, att, B, T, C, H, scale, false);
    check(
      `attention dqkv B${B} T${T} C${C} H${H}`,
      dqkv,
      prior,
      (xx) => dot64(dout, attention64(xx, B, T, C, H, scale).out),
      qkv,
    );
  }
});

test('gradcheck meanPoolBackward', () => {
  const [B, T, D] = [2, 5, 3];
  const x = randomArray(B * T * D, 41);
  const dout = randomArray(B * D, 42);
  const dinp = randomArray(B * T * D, 43);
  const prior = dinp.slice();
  K.meanPoolBackward(dinp, dout, B, T, D);
  check('meanPool dinp', dinp, prior, (xx) => dot64(dout, meanPool64(xx, B, T, D)), x);
});

test('gradcheck l2NormalizeBackward (normal rows and a row under the eps clamp)', () => {
  const [rows, cols, eps] = [3, 5, 0.1];
  const x = randomArray(rows * cols, 51, 2);
  for (let c = 0; c < cols; c++) x[rows * cols - cols + c] = 0.01 * (c - 1.5); // norm 0.027 < eps
  const out = new Float32Array(rows * cols);
  const norms = new Float32Array(rows);
  K.l2Normalize(out, norms, x, rows, cols, eps);
  const dout = randomArray(rows * cols, 52);
  const dinp = randomArray(rows * cols, 53);
  const prior = dinp.slice();
  K.l2NormalizeBackward(dinp, dout, out, norms, rows, cols, eps);
  check('l2Normalize dinp', dinp, prior, (xx) => dot64(dout, l2Normalize64(xx, rows, cols, eps)), x);
});

test('gradcheck biasBackward: dbias of x + bias', () => {
  const [rows, cols] = [4, 6];
  const x = randomArray(rows * cols, 61);
  const bias = randomArray(cols, 62);
  const dout = randomArray(rows * cols, 63);
  const dbias = randomArray(cols, 64);
  const prior = dbias.slice();
  K.biasBackward(dbias, dout, rows, cols);
  const loss = (bb: Float64Array) =>
    dot64(
      dout,
      Array.from(x, (v, i) => v + bb[i % cols]),
    );
  check('bias dbias', dbias, prior, loss, bias);
});

test('gradcheck scatterAddRows is the adjoint of gatherRows (duplicate indices)', () => {
  const [rows, cols] = [5, 4];
  const index = Int32Array.from([4, 1, 1, 0, 4, 4]);
  const x = randomArray(rows * cols, 71);
  const dout = randomArray(index.length * cols, 72);
  const dx = randomArray(rows * cols, 73);
  const prior = dx.slice();
  K.scatterAddRows(dx, dout, index, index.length, cols);
  const gather64 = (xx: ArrayLike<number>) =>
    Array.from(index).flatMap((r) => Array.from({ length: cols }, (_, c) => xx[r * cols + c]));
  check('scatterAdd dx', dx, prior, (xx) => dot64(dout, gather64(xx)), x);
});
