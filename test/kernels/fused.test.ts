/**
 * Fused kernels (src/kernels/fused.ts) and the fused linear ops: the native gemmEx must give
 * exactly (bit for bit) what matmul + biasAdd + geluForward / add give, tile epilogue or not,
 * with 1 and 2 threads, fp32 and bf16, with the weight passed as fp32 or already rounded to bf16.
 * The fused ops (linearGelu, linearAdd) are checked by finite differences and against the
 * unfused op sequence (values and every gradient identical).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadNativeKernels, type NativeKernels } from '../../src/kernels/native.js';
import { tsKernels } from '../../src/kernels/ts/index.js';
import {
  composedFused,
  fused,
  EPILOGUE_ADD,
  EPILOGUE_GELU,
  EPILOGUE_NONE,
  type Epilogue,
  type FusedKernels,
  unpackWeightsInt8,
} from '../../src/kernels/fused.js';
import { kernels, useKernels, type Kernels } from '../../src/kernels/index.js';
import * as ops from '../../src/autograd/ops.js';
import { FrozenWeights, Tape } from '../../src/autograd/tape.js';
import { arenaFor } from '../../src/models/cavmae.js';
import { Param, ParamArena, ParamBuilder } from '../../src/tensor/arena.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { randomArray, runModuleScript, siblingModule } from '../helpers.js';
import { checkGradients, leaf } from '../autograd/fd.js';
import {
  checkPackedInt8,
  exactInt8Reference,
  int8AttentionOutputs,
  type PackedInt8Kernel,
} from './int8-packed-cases.js';
import { checkPackedF32 } from './f32-packed-cases.js';

const load = loadNativeKernels();
const skip = load.ok ? false : `native addon not available (${load.error})`;

test(
  'native gemmEx is bit-identical to matmul + biasAdd + GELU / add (tiles, threads, bf16)',
  { skip },
  () => {
    const N = load.ok ? load.kernels : (undefined as never);
    const ref = composedFused(N);
    const F = fused(N);
    assert.notEqual(F, ref, 'the addon provides its own gemmEx');
    const saved = N.getThreads();
    try {
      // [m, n, k]: below the GEMM threading threshold, and two that are cut into tiles (m > 256, n > 1024).
      for (const [m, n, k] of [
        [5, 7, 3],
        [300, 1100, 40],
        [513, 200, 64],
      ]) {
        const x = randomArray(m * k, 1, 2);
        const w = randomArray(n * k, 2, 0.5);
        const bias = randomArray(n, 3);
        const res = randomArray(m * n, 4);
        for (const threads of [1, 2]) {
          N.setThreads(threads);
          for (const bf16 of [false, true]) {
            const w16 = new Uint16Array(n * k);
            N.f32ToBf16(w16, w, n * k);
            for (const epi of [EPILOGUE_NONE, EPILOGUE_GELU, EPILOGUE_ADD] as Epilogue[]) {
              for (const withBias of [false, true]) {
                const b = withBias ? bias : null;
                // The linear layer's GEMM (x · wᵀ) with this case's bias and epilogue.
                const linear = (
                  f: FusedKernels,
                  wOp: Float32Array | Uint16Array,
                  c: Float32Array | null,
                  aux: Float32Array,
                  out16: Uint16Array | null = null,
                ): void =>
                  f.gemmEx(
                    x,
                    wOp,
                    c,
                    m,
                    n,
                    k,
                    false,
                    true,
                    1,
                    0,
                    bf16,
                    b,
                    epi,
                    epi === EPILOGUE_NONE ? null : aux,
                    out16,
                  );
                const want = new Float32Array(m * n);
                const wantAux = epi === EPILOGUE_ADD ? res : new Float32Array(m * n);
                linear(ref, w, want, wantAux);
                for (const wOperand of bf16 ? [w, w16] : [w]) {
                  const got = new Float32Array(m * n).fill(NaN);
                  const gotAux = epi === EPILOGUE_ADD ? res : new Float32Array(m * n);
                  linear(F, wOperand, got, gotAux);
                  const what = `${m}x${n}x${k} threads ${threads} ${bf16 ? 'bf16' : 'fp32'}${wOperand === w16 ? ' (bf16 weight)' : ''} epilogue ${epi} bias ${withBias}`;
                  assert.deepEqual(got, want, what);
                  if (epi === EPILOGUE_GELU) assert.deepEqual(gotAux, wantAux, `${what}: pre-activation`);
                }
                // out16: the same values rounded to bf16, with the fp32 output kept or not (c null:
                // the tiles live in scratch), the pre-activation still written.
                const want16 = new Uint16Array(m * n);
                N.f32ToBf16(want16, want, m * n);
                for (const keepC of [true, false]) {
                  const got = keepC ? new Float32Array(m * n).fill(NaN) : null;
                  const got16 = new Uint16Array(m * n).fill(0xffff);
                  const gotAux = epi === EPILOGUE_ADD ? res : new Float32Array(m * n);
                  linear(F, w, got, gotAux, got16);
                  const what = `${m}x${n}x${k} threads ${threads} ${bf16 ? 'bf16' : 'fp32'} epilogue ${epi} bias ${withBias} out16 (c ${keepC ? 'kept' : 'null'})`;
                  assert.deepEqual(got16, want16, what);
                  if (got) assert.deepEqual(got, want, `${what}: fp32`);
                  if (epi === EPILOGUE_GELU) assert.deepEqual(gotAux, wantAux, `${what}: pre-activation`);
                  // The composed reference does the same.
                  const ref16 = new Uint16Array(m * n);
                  linear(ref, w, null, Float32Array.from(wantAux), ref16);
                  assert.deepEqual(ref16, want16, `${what}: composed reference`);
                }
              }
            }
          }
          // beta = 1 accumulates (the backward's input gradient), NN layout.
          const c0 = randomArray(m * n, 5);
          const got = Float32Array.from(c0);
          const want = Float32Array.from(c0);
          const wt = randomArray(k * n, 6);
          F.gemmEx(x, wt, got, m, n, k, false, false, 1, 1, false, null, EPILOGUE_NONE, null);
          N.matmul(x, wt, want, m, n, k, false, false, 1, 1, false);
          assert.deepEqual(got, want, `${m}x${n}x${k} beta 1`);
        }
      }
    } finally {
      N.setThreads(saved);
    }
  },
);

test('gemmEx validates its arguments', { skip }, () => {
  const N = load.ok ? load.kernels : (undefined as never);
  const F = fused(N);
  const a = new Float32Array(6);
  const c = new Float32Array(4);
  assert.throws(
    () => F.gemmEx(new Uint16Array(6), a, c, 2, 2, 3, false, true, 1, 0, false, null, 0, null),
    /bf16 is false/,
  );
  assert.throws(
    () => F.gemmEx(a, a, c, 2, 2, 3, false, true, 1, 0, false, null, EPILOGUE_ADD, null),
    /needs aux/,
  );
  assert.throws(
    () => F.gemmEx(a, a, c, 2, 2, 3, false, true, 1, 0, false, new Float32Array(1), 0, null),
    /bias has 1 elements/,
  );
  assert.throws(
    () => F.gemmEx(a, a, c, 2, 2, 3, false, true, 1, 0, false, null, 3 as Epilogue, null),
    /epilogue must be/,
  );
  assert.throws(() => F.gemmEx(a, a, null, 2, 2, 3, false, true, 1, 0, false, null, 0, null), /out16/);
  assert.throws(
    () => F.gemmEx(a, a, null, 2, 2, 3, false, true, 1, 1, false, null, 0, null, new Uint16Array(4)),
    /beta must be 0/,
  );
  assert.throws(
    () => F.gemmEx(a, a, c, 2, 2, 3, false, true, 1, 0, false, null, 0, null, new Uint16Array(3)),
    /out16 has 3 elements/,
  );
});

/** Runs fn with the given kernels as the dispatch, restoring the previous ones. */
function withKernels<T>(k: Kernels, fn: () => T): T {
  const before = kernels();
  useKernels(k);
  try {
    return fn();
  } finally {
    useKernels(before);
  }
}

test('linearGelu and linearAdd: gradients by finite differences (TypeScript kernels)', () => {
  withKernels(tsKernels, () => {
    const x = leaf([2, 3, 4], 11);
    const w = leaf([5, 4], 12, 0.5);
    const b = leaf([5], 13);
    const r = leaf([2, 3, 5], 14);
    checkGradients('linearGelu', [x, w, b], (tp, [x, w, b]) => ops.linearGelu(tp, x, w, b));
    checkGradients('linearGelu no bias', [x, w], (tp, [x, w]) => ops.linearGelu(tp, x, w, null));
    checkGradients('linearAdd', [x, w, b, r], (tp, [x, w, b, r]) => ops.linearAdd(tp, x, w, b, r));
  });
});

test('fused ops give exactly the unfused values and gradients, fp32 and bf16 (bf16 weights cached per step)', () => {
  const pb = ParamBuilder.root();
  const w1 = pb.param('w1', [300, 96], () => undefined);
  const b1 = pb.param('b1', [300], () => undefined);
  const w2 = pb.param('w2', [96, 300], () => undefined);
  const b2 = pb.param('b2', [96], () => undefined);
  const arena = new ParamArena(pb.params);
  arena.data.set(randomArray(arena.size, 21, 0.3));
  const x0 = randomArray(40 * 96, 22);
  const run = (fusedOps: boolean, bf16: boolean): Float32Array[] => {
    arena.zeroGrad();
    const tp = new Tape({ bf16 });
    const x = new Tensor([40, 96], Float32Array.from(x0), true);
    let y: Tensor;
    if (fusedOps) {
      const h = ops.linearGelu(tp, x, w1, b1);
      y = ops.linearAdd(tp, h, w2, b2, x);
    } else {
      const h = ops.gelu(tp, ops.linear(tp, x, w1, b1));
      y = ops.add(tp, x, ops.linear(tp, h, w2, b2));
    }
    const out = Float32Array.from(y.data);
    tp.backward(y, randomArray(y.size, 23));
    return [
      out,
      Float32Array.from(x.grad!),
      ...[w1, b1, w2, b2].map((p: Param) => Float32Array.from(p.grad!)),
    ];
  };
  for (const bf16 of [false, true]) {
    const a = run(false, bf16);
    const f = run(true, bf16);
    const names = ['y', 'dx', 'dw1', 'db1', 'dw2', 'db2'];
    a.forEach((v, i) => assert.deepEqual(f[i], v, `${bf16 ? 'bf16' : 'fp32'} ${names[i]}`));
  }
  // A parameter changed between steps is re-rounded in the next step (bf16 copies refresh per tape).
  const tp = new Tape({ bf16: true });
  const before = Uint16Array.from(tp.bf16Param(w1));
  w1.data[0] += 1;
  assert.deepEqual(tp.bf16Param(w1), before, 'same step: the copy is reused');
  tp.reset();
  assert.notEqual(tp.bf16Param(w1)[0], before[0], 'next step: refreshed');
});

test(
  'native attention without kept probabilities: same output, backward recomputes them bit-identically',
  { skip },
  () => {
    const N = load.ok ? load.kernels : (undefined as never);
    const saved = N.getThreads();
    try {
      // T = 300 > 256: the forward works in two row blocks, which the recomputation must repeat.
      for (const [B, T, C, H] of [
        [2, 300, 48, 3],
        [1, 17, 8, 2],
      ]) {
        const qkv = randomArray(B * T * 3 * C, 31, 1.5);
        const dout = randomArray(B * T * C, 32);
        for (const threads of [1, 2]) {
          N.setThreads(threads);
          for (const bf16 of [false, true]) {
            const what = `B${B} T${T} C${C} H${H} ${threads} threads ${bf16 ? 'bf16' : 'fp32'}`;
            const att = new Float32Array(B * H * T * T);
            const out1 = new Float32Array(B * T * C);
            const out2 = new Float32Array(B * T * C);
            N.attentionForward(out1, att, qkv, B, T, C, H, 0.3, bf16);
            N.attentionForward(out2, new Float32Array(0), qkv, B, T, C, H, 0.3, bf16);
            assert.deepEqual(out2, out1, `${what}: forward`);
            const d1 = new Float32Array(B * T * 3 * C);
            const d2 = new Float32Array(B * T * 3 * C);
            N.attentionBackward(d1, new Float32Array(B * H * T * T), dout, qkv, att, B, T, C, H, 0.3, bf16);
            N.attentionBackward(
              d2,
              new Float32Array(0),
              dout,
              qkv,
              new Float32Array(0),
              B,
              T,
              C,
              H,
              0.3,
              bf16,
            );
            assert.deepEqual(d2, d1, `${what}: backward`);
          }
        }
      }
    } finally {
      N.setThreads(saved);
    }
  },
);

test(
  'bf16 producers: native layerNormForwardBf16 and geluForwardBf16 equal layerNormForward / geluForward then f32ToBf16, bit for bit (tails, threads)',
  { skip },
  () => {
    const N = load.ok ? load.kernels : (undefined as never);
    const F = fused(N);
    const ref = composedFused(N); // the addon's own LayerNorm / GELU, then its rounding
    assert.notEqual(F, ref, 'the addon provides its own bf16 producers');
    const saved = N.getThreads();
    try {
      // cols: below one vector, vector tails, the model widths; rows: one, a few, enough to thread.
      for (const [rows, cols] of [
        [1, 1],
        [3, 15],
        [7, 17],
        [300, 96],
        [513, 768],
        [64, 2048],
      ]) {
        const x = randomArray(rows * cols, rows + cols, 3);
        const w = randomArray(cols, 2);
        const b = randomArray(cols, 3);
        for (const threads of [1, 2]) {
          N.setThreads(threads);
          const want16 = new Uint16Array(rows * cols);
          const [wm, wr] = [new Float32Array(rows), new Float32Array(rows)];
          ref.layerNormForwardBf16(want16, wm, wr, x, w, b, rows, cols, 1e-6);
          const got16 = new Uint16Array(rows * cols);
          const [gm, gr] = [new Float32Array(rows), new Float32Array(rows)];
          F.layerNormForwardBf16(got16, gm, gr, x, w, b, rows, cols, 1e-6);
          const what = `${rows}x${cols}, ${threads} threads`;
          assert.deepEqual(got16, want16, `layerNormForwardBf16 ${what}`);
          assert.deepEqual([gm, gr], [wm, wr], `layerNormForwardBf16 statistics ${what}`);
          const n = rows * cols;
          const gelu16 = new Uint16Array(n);
          const geluWant = new Uint16Array(n);
          F.geluForwardBf16(gelu16, x, n);
          ref.geluForwardBf16(geluWant, x, n);
          assert.deepEqual(gelu16, geluWant, `geluForwardBf16 ${what}`);
        }
      }
      assert.throws(
        () =>
          F.layerNormForwardBf16(
            new Uint16Array(5),
            new Float32Array(2),
            new Float32Array(2),
            new Float32Array(6),
            new Float32Array(3),
            new Float32Array(3),
            2,
            3,
            1e-6,
          ),
        /out16/,
        'an output too short for rows x cols is refused, naming it',
      );
    } finally {
      N.setThreads(saved);
    }
  },
);

test('layerNormLinear and layerNormMlp (recomputing LayerNorm and GELU in backward): finite differences and exactly the op sequence', () => {
  withKernels(tsKernels, () => {
    const x = leaf([2, 3, 4], 41);
    const g = leaf([4], 42);
    const be = leaf([4], 43);
    const w = leaf([5, 4], 44, 0.5);
    const b = leaf([5], 45);
    checkGradients('layerNormLinear', [x, g, be, w, b], (tp, [x, g, be, w, b]) =>
      ops.layerNormLinear(tp, x, g, be, 1e-5, w, b),
    );
    const w1 = leaf([6, 4], 46, 0.5);
    const b1 = leaf([6], 47);
    const w2 = leaf([4, 6], 48, 0.5);
    const b2 = leaf([4], 49);
    checkGradients('layerNormMlp', [x, g, be, w1, b1, w2, b2], (tp, [x, g, be, w1, b1, w2, b2]) =>
      ops.layerNormMlp(tp, x, g, be, 1e-5, w1, b1, w2, b2, x),
    );
  });
  const pb = ParamBuilder.root();
  const shapes: Record<string, number[]> = {
    g1: [96],
    e1: [96],
    wq: [288, 96],
    bq: [288],
    g2: [96],
    e2: [96],
    w1: [384, 96],
    b1: [384],
    w2: [96, 384],
    b2: [96],
  };
  const P: Record<string, Param> = {};
  for (const [name, shape] of Object.entries(shapes)) P[name] = pb.param(name, shape, () => undefined);
  const arena = new ParamArena(pb.params);
  arena.data.set(randomArray(arena.size, 51, 0.3));
  const x0 = randomArray(2 * 70 * 96, 52);
  const run = (recompute: boolean, bf16: boolean): Float32Array[] => {
    arena.zeroGrad();
    const tp = new Tape({ bf16 });
    const x = new Tensor([2, 70, 96], Float32Array.from(x0), true);
    let q: Tensor;
    let y: Tensor;
    if (recompute) {
      q = ops.layerNormLinear(tp, x, P.g1, P.e1, 1e-5, P.wq, P.bq);
      y = ops.layerNormMlp(tp, x, P.g2, P.e2, 1e-5, P.w1, P.b1, P.w2, P.b2, x);
    } else {
      q = ops.linear(tp, ops.layerNorm(tp, x, P.g1, P.e1), P.wq, P.bq);
      y = ops.add(
        tp,
        x,
        ops.linear(
          tp,
          ops.gelu(tp, ops.linear(tp, ops.layerNorm(tp, x, P.g2, P.e2), P.w1, P.b1)),
          P.w2,
          P.b2,
        ),
      );
    }
    const loss = ops.weightedSum(tp, [[ops.meanTokens(tp, q), 1]]);
    const tot = ops.concat(
      tp,
      [ops.reshape(tp, loss, [2, 1, 288]), ops.reshape(tp, ops.meanTokens(tp, y), [2, 1, 96])],
      2,
    );
    const outs = [Float32Array.from(q.data), Float32Array.from(y.data)];
    tp.backward(tot, randomArray(tot.size, 53));
    return [...outs, Float32Array.from(x.grad!), ...Object.values(P).map((p) => Float32Array.from(p.grad!))];
  };
  for (const bf16 of [false, true]) {
    const a = run(false, bf16);
    const f = run(true, bf16);
    const names = ['q', 'y', 'dx', ...Object.keys(P).map((k) => `d${k}`)];
    a.forEach((v, i) => assert.deepEqual(f[i], v, `${bf16 ? 'bf16' : 'fp32'} ${names[i]}`));
  }
});

/** Runs `body` with the addon's kernels, their fused set and the exact int8 reference; restores the thread count. */
function withNativeInt8(body: (N: NativeKernels, F: FusedKernels, R: FusedKernels) => void): void {
  const N = load.ok ? load.kernels : (undefined as never);
  const saved = N.getThreads();
  try {
    body(N, fused(N), exactInt8Reference(N));
  } finally {
    N.setThreads(saved);
  }
}

test(
  'native int8 GEMM and weight quantisation equal the exact reference bit for bit (tiles, threads, epilogues)',
  { skip },
  () =>
    withNativeInt8((N, F, R) => {
      for (const [m, n, k] of [
        [3, 5, 7],
        [300, 1100, 96],
        [70, 300, 200],
        // K over 512: several chunks where the GEMM runs through fp32 (no VNNI)
        [9, 70, 1100],
      ]) {
        const w = randomArray(n * k, 61, 0.2);
        w.fill(0, 0, k); // a zero row: scale 0, all-zero output column
        const x = randomArray(m * k, 62, 3);
        x[5] = 40; // an outlier in row 0
        const wq = new Int8Array(n * k);
        const ws = new Float32Array(n);
        const wc = new Int32Array(n);
        F.quantizeWeightsInt8(w, n, k, wq, ws, wc);
        const rq = new Int8Array(n * k);
        const rs = new Float32Array(n);
        const rc = new Int32Array(n);
        R.quantizeWeightsInt8(w, n, k, rq, rs, rc);
        assert.deepEqual(wq, rq, `${n}x${k} quantised weights`);
        assert.deepEqual(ws, rs, `${n}x${k} weight scales`);
        assert.deepEqual(wc, rc, `${n}x${k} compensation`);
        const bias = randomArray(n, 63);
        const res = randomArray(m * n, 64);
        for (const threads of [1, 2]) {
          N.setThreads(threads);
          for (const epi of [EPILOGUE_NONE, EPILOGUE_GELU, EPILOGUE_ADD] as Epilogue[]) {
            const want = new Float32Array(m * n);
            const wantAux = epi === EPILOGUE_ADD ? res : new Float32Array(m * n);
            R.gemmInt8(x, rq, rs, rc, want, m, n, k, bias, epi, epi === EPILOGUE_NONE ? null : wantAux);
            const got = new Float32Array(m * n).fill(NaN);
            const gotAux = epi === EPILOGUE_ADD ? res : new Float32Array(m * n);
            F.gemmInt8(x, wq, ws, wc, got, m, n, k, bias, epi, epi === EPILOGUE_NONE ? null : gotAux);
            assert.deepEqual(got, want, `${m}x${n}x${k} ${threads} threads epilogue ${epi}`);
            if (epi === EPILOGUE_GELU) assert.deepEqual(gotAux, wantAux, 'pre-activation');
          }
        }
        // Against the fp32 product: per-row and per-channel scales bound the error by
        // (|x|max/254)·Σ|w| + (|w|max/254)·Σ|x| per element (half a quantisation step on each side).
        const fp = new Float32Array(m * n);
        tsKernels.matmul(x, w, fp, m, n, k, false, true, 1, 0, false);
        const q8 = new Float32Array(m * n);
        F.gemmInt8(x, wq, ws, wc, q8, m, n, k, null, EPILOGUE_NONE, null);
        for (let r = 0; r < m; r++) {
          let xm = 0;
          let xs = 0;
          for (let c = 0; c < k; c++) {
            xm = Math.max(xm, Math.abs(x[r * k + c]));
            xs += Math.abs(x[r * k + c]);
          }
          for (let j = 0; j < n; j++) {
            let wm = 0;
            let wsum = 0;
            for (let c = 0; c < k; c++) {
              wm = Math.max(wm, Math.abs(w[j * k + c]));
              wsum += Math.abs(w[j * k + c]);
            }
            const bound = (xm / 254) * wsum + (wm / 254) * xs + 1e-6;
            assert.ok(
              Math.abs(q8[r * n + j] - fp[r * n + j]) <= bound,
              `${m}x${n}x${k} [${r},${j}] int8 error within the quantisation bound`,
            );
          }
        }
      }
    }),
);

test(
  'native int8 attention (VNNI) against its TypeScript reference and fp32; fp32/bf16 inference equal attentionForward',
  { skip },
  () => {
    const N = load.ok ? load.kernels : (undefined as never);
    const F = fused(N);
    const R = composedFused(N);
    const saved = N.getThreads();
    try {
      // [B, T, C, H]: head sizes 64 and 16 (the int8 kernels), T off the 4/16/128 grids, one
      // head size the kernels do not take (24: the bf16 path instead).
      for (const [B, T, C, H] of [
        [2, 37, 128, 2],
        [1, 200, 64, 4],
        [1, 5, 48, 2],
      ]) {
        const qkv = randomArray(B * T * 3 * C, 71 + T, 1.5);
        const scale = (C / H) ** -0.5;
        const fp = new Float32Array(B * T * C);
        N.attentionForward(fp, new Float32Array(0), qkv, B, T, C, H, scale, false);
        const bf = new Float32Array(B * T * C);
        N.attentionForward(bf, new Float32Array(0), qkv, B, T, C, H, scale, true);
        const ref = new Float32Array(B * T * C);
        R.attentionInference(ref, qkv, B, T, C, H, scale, 2);
        const vmax = Math.max(...qkv.map(Math.abs));
        for (const threads of [1, 2]) {
          N.setThreads(threads);
          const what = `B${B} T${T} C${C} H${H}, ${threads} threads`;
          for (const [precision, want] of [
            [0, fp],
            [1, bf],
          ] as const) {
            const got = new Float32Array(B * T * C).fill(NaN);
            F.attentionInference(got, qkv, B, T, C, H, scale, precision);
            assert.deepEqual(got, want, `${what}: precision ${precision} is attentionForward`);
          }
          const got = new Float32Array(B * T * C).fill(NaN);
          F.attentionInference(got, qkv, B, T, C, H, scale, 2);
          if ((C / H) % 16 !== 0 || !N.info().int8Attention) {
            // Head sizes the int8 kernels do not take, and CPUs without VNNI, run bf16 attention
            // where the CPU multiplies bf16 natively, else fp32 (bf16 would be widened there).
            const why = N.info().int8Attention ? `head size ${C / H}` : 'no VNNI';
            const bf16Native = N.info().bf16Gemm !== 'fp32-widened';
            assert.deepEqual(got, bf16Native ? bf : fp, `${what}: ${why} falls back to ${bf16Native ? 'bf16' : 'fp32'}`);
            continue;
          }
          // Against the reference: the exp differs in the last bits, so a probability may round
          // to the neighbouring step of 1/255: outputs within 2e-3 of max|v|.
          let errRef = 0;
          let errFp = 0;
          for (let i = 0; i < got.length; i++) {
            errRef = Math.max(errRef, Math.abs(got[i] - ref[i]));
            errFp = Math.max(errFp, Math.abs(got[i] - fp[i]));
          }
          assert.ok(errRef <= 2e-3 * vmax, `${what}: int8 vs its reference ${errRef} > ${2e-3 * vmax}`);
          // Against fp32: q, k, v at 1/254 of their row (column) maxima and probabilities at
          // 1/510 of the row's largest: within 3e-2 of max|v| on these inputs.
          assert.ok(errFp <= 3e-2 * vmax, `${what}: int8 vs fp32 ${errFp} > ${3e-2 * vmax}`);
        }
      }
      assert.throws(
        () => F.attentionInference(new Float32Array(12), new Float32Array(36), 1, 2, 6, 4, 1, 2),
        /multiple of H/,
      );
      assert.throws(
        () => F.attentionInference(new Float32Array(12), new Float32Array(36), 1, 2, 6, 2, 1, 3 as 2),
        /precision must be/,
      );
    } finally {
      N.setThreads(saved);
    }
  },
);

test('int8 attention reference: uniform keys give the mean of the values; int8 tapes use it', () => {
  const R = composedFused(tsKernels);
  // All keys equal: every probability is 255/255, the output is the mean of the quantised values.
  const B = 1;
  const T = 4;
  const C = 4;
  const H = 1;
  const qkv = new Float32Array(B * T * 3 * C);
  for (let t = 0; t < T; t++) {
    for (let d = 0; d < C; d++) {
      qkv[t * 3 * C + d] = 0.5 + d; // q
      qkv[t * 3 * C + C + d] = 1; // k: identical keys
      qkv[t * 3 * C + 2 * C + d] = (t + 1) * (d % 2 === 0 ? 1 : -1); // v
    }
  }
  const out = new Float32Array(B * T * C);
  R.attentionInference(out, qkv, B, T, C, H, 0.5, 2);
  for (let t = 0; t < T; t++)
    for (let d = 0; d < C; d++) {
      const want = (d % 2 === 0 ? 1 : -1) * 2.5; // mean of 1..4 (exact on the 127-step grid of max 4)
      assert.ok(Math.abs(out[t * C + d] - want) < 4 / 127, `[${t},${d}] ${out[t * C + d]} vs ${want}`);
    }
  // ops.attention on an int8 tape goes through attentionInference with precision 2.
  const saved = kernels();
  const calls: number[] = [];
  const spy: Kernels = Object.assign(Object.create(null), tsKernels, { name: 'ts' });
  useKernels(spy);
  try {
    const orig = R.attentionInference;
    const f = fused(spy);
    f.attentionInference = (...a: Parameters<FusedKernels['attentionInference']>) => {
      calls.push(a[7]);
      orig(...a);
    };
    const tp = new Tape({ grad: false, int8: true });
    const y = ops.attention(tp, new Tensor([B, T, 3 * C], qkv), H);
    assert.equal(calls[0], 2);
    for (let i = 0; i < out.length; i++) assert.equal(y.data[i], out[i]);
  } finally {
    useKernels(saved);
  }
});

test(
  'int8 operands: layerNormForwardInt8 and gemmInt8 with pre-quantised input / quantised output equal the unfused sequence bit for bit',
  { skip },
  () =>
    withNativeInt8((N, F, R) => {
      for (const [rows, C, hid] of [
        [5, 48, 96],
        [300, 96, 400],
      ]) {
        const x = randomArray(rows * C, 81, 2);
        const lnW = randomArray(C, 82);
        const lnB = randomArray(C, 83);
        const w1 = randomArray(hid * C, 84, 0.2);
        const b1 = randomArray(hid, 85);
        const w2 = randomArray(C * hid, 86, 0.2);
        const b2 = randomArray(C, 87);
        const res = randomArray(rows * C, 88);
        const quant = (w: Float32Array, n: number, k: number) => {
          const q = { q: new Int8Array(n * k), s: new Float32Array(n), c: new Int32Array(n) };
          F.quantizeWeightsInt8(w, n, k, q.q, q.s, q.c);
          return q;
        };
        const q1 = quant(w1, hid, C);
        const q2 = quant(w2, C, hid);
        // The unfused sequence: fp32 LayerNorm, each GEMM quantising its own fp32 input.
        const n = new Float32Array(rows * C);
        const mean = new Float32Array(rows);
        const rstd = new Float32Array(rows);
        N.layerNormForward(n, mean, rstd, x, lnW, lnB, rows, C, 1e-6);
        const h = new Float32Array(rows * hid);
        F.gemmInt8(n, q1.q, q1.s, q1.c, h, rows, hid, C, b1, EPILOGUE_GELU, null);
        const want = new Float32Array(rows * C);
        F.gemmInt8(h, q2.q, q2.s, q2.c, want, rows, C, hid, b2, EPILOGUE_ADD, res);
        for (const threads of [1, 2]) {
          N.setThreads(threads);
          const what = `rows ${rows} C ${C} hidden ${hid}, ${threads} threads`;
          for (const [name, K] of [
            ['native', F],
            ['reference', R],
          ] as const) {
            const a8 = new Uint8Array(rows * C);
            const as = new Float32Array(rows);
            const m2 = new Float32Array(rows);
            const r2 = new Float32Array(rows);
            K.layerNormForwardInt8(a8, as, m2, r2, x, lnW, lnB, rows, C, 1e-6);
            assert.deepEqual(m2, mean, `${what} ${name}: mean`);
            assert.deepEqual(r2, rstd, `${what} ${name}: rstd`);
            const h8 = new Uint8Array(rows * hid);
            const hs = new Float32Array(rows);
            K.gemmInt8(null, q1.q, q1.s, q1.c, null, rows, hid, C, b1, EPILOGUE_GELU, null, a8, as, h8, hs);
            const got = new Float32Array(rows * C).fill(NaN);
            K.gemmInt8(null, q2.q, q2.s, q2.c, got, rows, C, hid, b2, EPILOGUE_ADD, res, h8, hs);
            assert.deepEqual(got, want, `${what} ${name}: LayerNorm -> fc1 -> fc2 through int8 operands`);
          }
        }
      }
      const f = new Float32Array(8);
      assert.throws(
        () => F.gemmInt8(null, new Int8Array(4), f, new Int32Array(2), f, 2, 2, 2, null, EPILOGUE_NONE, null),
        /x must be a Float32Array/,
      );
      assert.throws(
        () => F.gemmInt8(f, new Int8Array(4), f, new Int32Array(2), null, 2, 2, 2, null, EPILOGUE_NONE, null),
        /c must be a Float32Array/,
      );
    }),
);

test(
  'packed int8 weights: the native packed GEMM (AMX, VNNI or AVX2) equals the exact reference and the unpacked GEMM bit for bit (tails, threads, epilogues, int8 operands)',
  { skip },
  () =>
    withNativeInt8((N, F, R) => {
      // Row counts with every 6-row tail, a single panel, a k-quad only, and the base model's
      // widest shapes (the row groups of the kernel change with k: 336 rows at 768, 84 at 3072).
      for (const [m, n, k] of [
        [1, 64, 4],
        [11, 128, 36],
        [300, 192, 768],
        [100, 256, 3072],
      ]) {
        const what = `${m}x${n}x${k}`;
        const w = randomArray(n * k, 91, 0.2);
        const wq = new Int8Array(n * k);
        const ws = new Float32Array(n);
        const wc = new Int32Array(n);
        F.quantizeWeightsInt8(w, n, k, wq, ws, wc);
        const packed = new Uint8Array(n * k);
        F.packWeightsInt8(wq, n, k, packed);
        const want8 = new Uint8Array(n * k);
        R.packWeightsInt8(wq, n, k, want8);
        assert.deepEqual(packed, want8, `${what}: native packing equals the reference's`);
        // The layout itself (gemm_int8.h): byte t of dword (q, j) of panel p is W[64p + j][4q + t].
        const [p, q, j, t] = [n / 64 - 1, k / 4 - 1, 63, 3];
        assert.equal(packed[((p * (k / 4) + q) * 64 + j) * 4 + t], wq[(64 * p + j) * k + 4 * q + t] & 0xff);
        assert.equal(
          F.packsInt8Weights(n, k),
          ['amx-packed', 'vnni-packed', 'avx2-packed'].includes(N.info?.().int8Gemm ?? ''),
          `${what}: packsInt8Weights`,
        );
        const x = randomArray(m * k, 92, 3);
        const bias = randomArray(n, 93);
        const res = randomArray(m * n, 94);
        for (const threads of [1, 2]) {
          N.setThreads(threads);
          for (const epi of [EPILOGUE_NONE, EPILOGUE_GELU, EPILOGUE_ADD] as Epilogue[]) {
            const aux = () =>
              epi === EPILOGUE_ADD ? res : epi === EPILOGUE_GELU ? new Float32Array(m * n) : null;
            const want = new Float32Array(m * n);
            R.gemmInt8(x, wq, ws, wc, want, m, n, k, bias, epi, aux());
            const plain = new Float32Array(m * n).fill(NaN);
            F.gemmInt8(x, wq, ws, wc, plain, m, n, k, bias, epi, aux());
            const got = new Float32Array(m * n).fill(NaN);
            const gotAux = aux();
            F.gemmInt8(x, wq, ws, wc, got, m, n, k, bias, epi, gotAux, null, null, null, null, packed);
            const how = `${what} ${threads} threads epilogue ${epi}`;
            assert.deepEqual(got, want, `${how}: packed equals the reference`);
            assert.deepEqual(got, plain, `${how}: packed equals unpacked`);
            if (epi === EPILOGUE_GELU) {
              const wantAux = new Float32Array(m * n);
              R.gemmInt8(x, wq, ws, wc, new Float32Array(m * n), m, n, k, bias, epi, wantAux);
              assert.deepEqual(gotAux, wantAux, `${how}: pre-activation`);
            }
          }
          // int8 operands in and out (LayerNorm's rows in, fc1's quantised rows out; c null).
          const xq = new Uint8Array(m * k);
          const xs = new Float32Array(m);
          R.layerNormForwardInt8(
            xq,
            xs,
            new Float32Array(m),
            new Float32Array(m),
            x,
            randomArray(k, 95),
            randomArray(k, 96),
            m,
            k,
            1e-6,
          );
          const rowsOut = (K: FusedKernels, wPacked: Uint8Array | null) => {
            const rows = new Uint8Array(m * n);
            const scales = new Float32Array(m);
            K.gemmInt8(
              null,
              wq,
              ws,
              wc,
              null,
              m,
              n,
              k,
              bias,
              EPILOGUE_GELU,
              null,
              xq,
              xs,
              rows,
              scales,
              wPacked,
            );
            return { rows, scales };
          };
          const { rows: want8Rows, scales: want8Scale } = rowsOut(R, null);
          const { rows: got8Rows, scales: got8Scale } = rowsOut(F, packed);
          assert.deepEqual(got8Rows, want8Rows, `${what} ${threads} threads: quantised rows out`);
          assert.deepEqual(got8Scale, want8Scale, `${what} ${threads} threads: their scales`);
        }
      }
      const f = new Float32Array(64 * 4);
      assert.throws(
        () => F.packWeightsInt8(new Int8Array(100 * 4), 100, 4, new Uint8Array(400)),
        /packWeightsInt8: n \(100\) must be a multiple of 64/,
        'n not a multiple of 64',
      );
      assert.equal(F.packsInt8Weights(100, 4), false);
      assert.throws(
        () =>
          F.gemmInt8(
            f,
            new Int8Array(256),
            f,
            new Int32Array(64),
            f,
            1,
            64,
            4,
            null,
            EPILOGUE_NONE,
            null,
            null,
            null,
            null,
            null,
            new Uint8Array(10),
          ),
        /wPacked/,
        'a packed buffer too short',
      );
    }),
);

/**
 * One packed int8 kernel's edge cases (int8-packed-cases.ts): in this process where it is this
 * CPU's kernel, else in a child with CAVMAE_INT8_GEMM=`force` (the choice falls back to a lower
 * kernel, never up, so `force` reaches it only where the CPU has a higher one).
 */
function checkPackedKernel(kernel: PackedInt8Kernel, force: string): void {
  const N = load.ok ? load.kernels : (undefined as never);
  if (N.info().int8Gemm === kernel) return checkPackedInt8(N, kernel);
  const cases = siblingModule(import.meta.url, './int8-packed-cases');
  const r = runModuleScript(`(await import(${JSON.stringify(cases)})).main(${JSON.stringify(kernel)});`, {
    env: { CAVMAE_INT8_GEMM: force },
    timeoutMs: 300_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'ok');
}

const int8Gemm = load.ok ? load.kernels.info().int8Gemm : '';

test(
  'packed fp32 GEMM (AVX-512 8 x 48 tiles over per-call panels): within the fp32 dot-product bound of a float64 sum, row tails, last panels of 16/32/48, k 1..3072, B either way round, 1 and 2 threads and any cut bit for bit, tile epilogues as the composed ops (in a child with CAVMAE_F32_GEMM=packed where this CPU keeps oneDNN)',
  { skip: skip || (load.ok && load.kernels.info().isa === 'avx512' ? false : 'no AVX-512 kernel table on this CPU') },
  () => {
    const N = load.ok ? load.kernels : (undefined as never);
    if (N.info().f32Gemm === 'packed') return checkPackedF32(N);
    const cases = siblingModule(import.meta.url, './f32-packed-cases');
    const r = runModuleScript(`(await import(${JSON.stringify(cases)})).main();`, {
      env: { CAVMAE_F32_GEMM: 'packed' },
      timeoutMs: 300_000,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'ok');
  },
);

test(
  'packed int8 weights, AVX2 kernel (vpmaddwd): exact at 255 x -128 up to k = 3076, every row tail, K chunk tails, panels, threads, epilogues (in a child with CAVMAE_INT8_GEMM=avx2 where this CPU runs another)',
  { skip },
  () => checkPackedKernel('avx2-packed', 'avx2'),
);

test(
  'packed int8 weights, AVX512-VNNI kernel (vpdpbusd): the same cases (in a child with CAVMAE_INT8_GEMM=vnni on an AMX CPU)',
  { skip: skip || (['vnni-packed', 'amx-packed'].includes(int8Gemm ?? '') ? false : 'no AVX512-VNNI on this CPU') },
  () => checkPackedKernel('vnni-packed', 'vnni'),
);

test(
  'packed int8 weights, AMX kernel (tdpbusd): the same cases (16- and 32-row tiles, padded row tails, 64-k depth, other k on VNNI, row groups)',
  { skip: skip || (int8Gemm === 'amx-packed' ? false : 'no AMX-INT8 on this CPU (or Linux did not grant the tile state)') },
  () => checkPackedKernel('amx-packed', 'amx'),
);

test(
  'native int8 attention on AMX (head size 64) equals the VNNI kernels bit for bit (row and key tails, padded keys, threads; VNNI in a child with CAVMAE_ATTENTION=vnni)',
  { skip: skip || (int8Gemm === 'amx-packed' ? false : 'no AMX-INT8 on this CPU (or Linux did not grant the tile state)') },
  () => {
    const N = load.ok ? load.kernels : (undefined as never);
    const got = int8AttentionOutputs(N);
    const dir = mkdtempSync(join(tmpdir(), 'cavmae-attn8-'));
    try {
      const file = join(dir, 'vnni.f32');
      const cases = siblingModule(import.meta.url, './int8-packed-cases');
      const r = runModuleScript(
        `(await import(${JSON.stringify(cases)})).writeInt8AttentionOutputs(${JSON.stringify(file)});`,
        { env: { CAVMAE_ATTENTION: 'vnni' }, timeoutMs: 120_000 },
      );
      assert.equal(r.status, 0, r.stderr);
      const bytes = readFileSync(file);
      const want = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
      assert.equal(want.length, got.length);
      assert.ok(got.every(Number.isFinite), 'every output written');
      assert.deepEqual(got, want);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'int8 weights are packed where the GEMM reads them so: int8-only weights hold that layout alone, tapes pack their copies once per quantisation',
  { skip },
  () => {
    const N = load.ok ? load.kernels : (undefined as never);
    const before = kernels();
    useKernels(N);
    try {
      const F = fused(N);
      const [n, k] = [128, 64];
      const quantized = (w: Float32Array) => {
        const q = new Int8Array(n * k);
        F.quantizeWeightsInt8(w, n, k, q, new Float32Array(n), new Int32Array(n));
        return q;
      };
      const packOf = (q: Int8Array) => {
        const out = new Uint8Array(n * k);
        F.packWeightsInt8(q, n, k, out);
        return out;
      };
      const packs = F.packsInt8Weights(n, k);
      // An int8-only weight (what CavMae.load int8 makes): quantised as it is loaded.
      const p = new Param('w', [n, k], false, () => {}, true);
      const arena = arenaFor([p], { int8: true, init: false });
      for (const seed of [97, 98]) {
        const values = randomArray(n * k, seed);
        arena.load(new Map([['w', { shape: [n, k], data: values }]]));
        const e = new Tape({ grad: false, int8: true }).int8Param(p);
        if (packs) {
          assert.equal(e.q, null, 'no row-major copy next to the packed one');
          assert.deepEqual(
            e.packed,
            packOf(quantized(values)),
            `seed ${seed}: packed from the loaded values`,
          );
          assert.deepEqual(
            unpackWeightsInt8(e.packed!, n, k),
            quantized(values),
            'unpacking gives the values back',
          );
        } else {
          assert.deepEqual(e.q, quantized(values), `seed ${seed}: row-major where the GEMM does not pack`);
          assert.ok(!e.packed);
        }
      }
      // An int8 tape over fp32 weights: its copy is packed once per quantisation and reused.
      const fp = new Param('v', [n, k], false, () => {}, true);
      new ParamArena([fp], { grad: false });
      fp.data.set(randomArray(n * k, 99));
      const frozen = new FrozenWeights();
      const first = new Tape({ grad: false, int8: true, frozen }).int8Param(fp);
      const stamp = first.packedStamp;
      const second = new Tape({ grad: false, int8: true, frozen }).int8Param(fp);
      assert.equal(second, first);
      if (packs) {
        assert.deepEqual(first.packed, packOf(first.q!));
        assert.equal(second.packedStamp, stamp, 'not packed again for the same weights');
        fp.data[0] += 1;
        frozen.changed();
        const third = new Tape({ grad: false, int8: true, frozen }).int8Param(fp);
        assert.deepEqual(third.packed, packOf(quantized(fp.data)), 'repacked after the weights changed');
      } else assert.ok(!first.packed);
    } finally {
      useKernels(before);
    }
  },
);
