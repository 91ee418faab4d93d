/**
 * Finite-difference checks of every autograd op's backward, plus forward checks against direct
 * float64 formulas for the ops whose forward is not just a kernel call.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as ops from '../../src/autograd/ops.js';
import { Tape } from '../../src/autograd/tape.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { assertClose, randomArray, rng } from '../helpers.js';
import { checkGradients, leaf } from './fd.js';

test('linear: dx, dW, db by finite differences (with and without bias)', () => {
  const x = leaf([2, 3, 5], 1);
  const w = leaf([4, 5], 2, 0.5);
  const b = leaf([4], 3);
  checkGradients('linear', [x, w, b], (tp, [x, w, b]) => ops.linear(tp, x, w, b));
  checkGradients('linear no bias', [x, w], (tp, [x, w]) => ops.linear(tp, x, w, null));
  // Conv-shaped weight [out, C, p, p] read as [out, C·p·p].
  const wc = leaf([3, 1, 2, 2], 4);
  checkGradients('linear conv weight', [leaf([2, 4], 5), wc], (tp, [x, w]) => ops.linear(tp, x, w, null));
});

test('linear forward equals x·Wᵀ + b in float64', () => {
  const x = leaf([3, 4], 11);
  const w = leaf([2, 4], 12);
  const b = leaf([2], 13);
  const y = ops.linear(new Tape({ grad: false }), x, w, b);
  const ref = new Float64Array(6);
  for (let i = 0; i < 3; i++)
    for (let o = 0; o < 2; o++) {
      let s = b.data[o];
      for (let k = 0; k < 4; k++) s += x.data[i * 4 + k] * w.data[o * 4 + k];
      ref[i * 2 + o] = s;
    }
  assertClose(y.data, ref, { rtol: 1e-6, what: 'linear forward' });
});

test('layerNorm: dx, dweight, dbias by finite differences; forward statistics', () => {
  const x = leaf([2, 3, 6], 21, 2);
  const w = leaf([6], 22);
  const b = leaf([6], 23);
  checkGradients('layerNorm', [x, w, b], (tp, [x, w, b]) => ops.layerNorm(tp, x, w, b));
  const y = ops.layerNorm(
    new Tape({ grad: false }),
    x,
    new Tensor([6], new Float32Array(6).fill(1)),
    new Tensor([6]),
  );
  for (let r = 0; r < 6; r++) {
    const row = Array.from(y.data.subarray(r * 6, r * 6 + 6));
    const mean = row.reduce((a, c) => a + c, 0) / 6;
    const varb = row.reduce((a, c) => a + (c - mean) ** 2, 0) / 6;
    assert.ok(Math.abs(mean) < 1e-6 && Math.abs(varb - 1) < 1e-3, `row ${r}: mean ${mean} var ${varb}`);
  }
});

test('gelu (exact erf) by finite differences', () => {
  checkGradients('gelu', [leaf([3, 7], 31, 3)], (tp, [x]) => ops.gelu(tp, x));
});

test('attention core by finite differences (2 heads, scale head_dim^-0.5)', () => {
  const qkv = leaf([2, 4, 3 * 6], 41, 1.5);
  checkGradients('attention', [qkv], (tp, [q]) => ops.attention(tp, q, 2));
});

test('attention forward equals softmax(q·kᵀ·s)·v per head in float64', () => {
  const B = 1,
    T = 3,
    C = 4,
    H = 2,
    hd = 2;
  const qkv = leaf([B, T, 3 * C], 42);
  const y = ops.attention(new Tape({ grad: false }), qkv, H);
  const s = hd ** -0.5;
  const at = (t: number, c: number): number => qkv.data[t * 3 * C + c];
  for (let h = 0; h < H; h++)
    for (let i = 0; i < T; i++) {
      const logits = [0, 1, 2].map((j) => {
        let d = 0;
        for (let e = 0; e < hd; e++) d += at(i, h * hd + e) * at(j, C + h * hd + e);
        return d * s;
      });
      const m = Math.max(...logits);
      const p = logits.map((l) => Math.exp(l - m));
      const z = p.reduce((a, c) => a + c, 0);
      for (let e = 0; e < hd; e++) {
        let o = 0;
        for (let j = 0; j < T; j++) o += (p[j] / z) * at(j, 2 * C + h * hd + e);
        assert.ok(Math.abs(o - y.data[i * C + h * hd + e]) < 1e-6, `head ${h} token ${i} dim ${e}`);
      }
    }
});

test('add, addBroadcast (pos table and token), broadcastTo, weightedSum, scale', () => {
  const a = leaf([2, 3, 4], 51);
  const b = leaf([2, 3, 4], 52);
  checkGradients('add', [a, b], (tp, [a, b]) => ops.add(tp, a, b));
  checkGradients('addBroadcast pos', [a, leaf([1, 3, 4], 53)], (tp, [x, p]) => ops.addBroadcast(tp, x, p));
  checkGradients('addBroadcast token', [a, leaf([1, 1, 4], 54)], (tp, [x, p]) => ops.addBroadcast(tp, x, p));
  checkGradients('broadcastTo', [leaf([1, 1, 4], 55)], (tp, [t]) => ops.broadcastTo(tp, t, [2, 5, 4]));
  checkGradients('weightedSum', [a, b], (tp, [a, b]) =>
    ops.weightedSum(tp, [
      [a, 0.5],
      [b, -2],
      [a, 3],
    ]),
  );
  checkGradients('scale', [a], (tp, [a]) => ops.scale(tp, a, -1.5));
  assert.throws(() => ops.addBroadcast(new Tape(), a, leaf([1, 4, 4], 1)), /does not broadcast/);
  assert.throws(() => ops.add(new Tape(), a, leaf([2, 4, 3], 1)), /add:/);
});

test('reshape, concat (axes 0, 1, 2), slice', () => {
  const a = leaf([2, 3, 4], 61);
  const b = leaf([2, 2, 4], 62);
  checkGradients('reshape', [a], (tp, [a]) => ops.reshape(tp, a, [6, 4]));
  checkGradients('concat tokens', [a, b], (tp, [a, b]) => ops.concat(tp, [a, b], 1));
  checkGradients('concat batch', [a, leaf([1, 3, 4], 63)], (tp, [a, c]) => ops.concat(tp, [a, c], 0));
  checkGradients('concat features', [a, leaf([2, 3, 2], 64)], (tp, [a, c]) => ops.concat(tp, [a, c], 2));
  checkGradients('slice', [a], (tp, [a]) => ops.slice(tp, a, 1, 3, 1));
  const tp = new Tape({ grad: false });
  const c = ops.concat(tp, [a, b], 1);
  const back = ops.slice(tp, c, 3, 5, 1);
  assert.deepEqual(Array.from(back.data), Array.from(b.data));
});

test('gatherTokens (masking and unshuffle), gatherRows with repeats, gatherChunks', () => {
  const x = leaf([2, 5, 3], 71);
  const ids = Int32Array.from([4, 0, 2, 1, 1, 3]); // [2,3]; sample 1 repeats token 1
  checkGradients('gatherTokens', [x], (tp, [x]) => ops.gatherTokens(tp, x, ids, 3));
  const y = ops.gatherTokens(new Tape({ grad: false }), x, ids, 3);
  assert.deepEqual(Array.from(y.data.subarray(0, 3)), Array.from(x.data.subarray(12, 15)));
  assert.deepEqual(Array.from(y.data.subarray(9, 12)), Array.from(x.data.subarray(15 + 3, 15 + 6)));
  assert.throws(() => ops.gatherTokens(new Tape(), x, Int32Array.from([5, 0, 0, 0, 0, 0]), 3), /outside/);
  const map = Int32Array.from([3, 1, 1, 0, 2, 5]);
  checkGradients('gatherChunks', [x], (tp, [x]) => ops.gatherChunks(tp, x, map, 5, [2, 15]));
});

test('meanTokens and l2Normalize', () => {
  checkGradients('meanTokens', [leaf([2, 4, 3], 81)], (tp, [x]) => ops.meanTokens(tp, x));
  checkGradients('l2Normalize', [leaf([3, 5], 82)], (tp, [x]) => ops.l2Normalize(tp, x));
  const y = ops.l2Normalize(new Tape({ grad: false }), leaf([3, 5], 82));
  for (let r = 0; r < 3; r++) {
    let s = 0;
    for (let c = 0; c < 5; c++) s += y.data[r * 5 + c] ** 2;
    assert.ok(Math.abs(s - 1) < 1e-6);
  }
});

test('maskedMse: value in float64 and gradient', () => {
  const pred = leaf([2, 3, 4], 91);
  const target = randomArray(24, 92);
  const mask = Float32Array.from([1, 0, 1, 0, 1, 1]);
  checkGradients('maskedMse', [pred], (tp, [p]) => ops.maskedMse(tp, p, target, mask));
  const l = ops.maskedMse(new Tape({ grad: false }), pred, target, mask).item();
  let s = 0;
  for (let r = 0; r < 6; r++) {
    if (!mask[r]) continue;
    let e = 0;
    for (let p = 0; p < 4; p++) e += (pred.data[r * 4 + p] - target[r * 4 + p]) ** 2;
    s += e / 4;
  }
  assert.ok(Math.abs(l - s / 4) < 1e-6 * Math.abs(s), `maskedMse ${l} vs ${s / 4}`);
});

/** Reference NCE in float64 over unnormalised logits (column softmax = dim 0). */
function nceRef(
  a: Float32Array,
  v: Float32Array,
  B: number,
  D: number,
  tau: number,
  bidir: boolean,
): { loss: number; acc: number } {
  const S: number[][] = [];
  for (let i = 0; i < B; i++) {
    S.push([]);
    for (let j = 0; j < B; j++) {
      let d = 0;
      for (let k = 0; k < D; k++) d += a[i * D + k] * v[j * D + k];
      S[i].push(d / tau);
    }
  }
  const dir = (get: (i: number, j: number) => number): { loss: number; acc: number } => {
    let loss = 0;
    let acc = 0;
    for (let j = 0; j < B; j++) {
      const col = Array.from({ length: B }, (_, i) => get(i, j));
      const m = Math.max(...col);
      const lse = m + Math.log(col.reduce((s, c) => s + Math.exp(c - m), 0));
      loss -= (get(j, j) - lse) / B;
      acc += col.indexOf(m) === j ? 1 / B : 0;
    }
    return { loss, acc };
  };
  const d1 = dir((i, j) => S[i][j]);
  if (!bidir) return d1;
  const d2 = dir((i, j) => S[j][i]);
  return { loss: (d1.loss + d2.loss) / 2, acc: (d1.acc + d2.acc) / 2 };
}

test('infoNce: single direction, bidirectional, grouped; values and gradients', () => {
  const B = 5,
    D = 3;
  const a = ops.l2Normalize(new Tape({ grad: false }), leaf([B, D], 101));
  const v = ops.l2Normalize(new Tape({ grad: false }), leaf([B, D], 102));
  a.requiresGrad = true;
  v.requiresGrad = true;
  for (const bidirectional of [false, true]) {
    const r = ops.infoNce(new Tape({ grad: false }), a, v, { bidirectional });
    const ref = nceRef(a.data, v.data, B, D, 0.05, bidirectional);
    assert.ok(Math.abs(r.loss.item() - ref.loss) < 1e-5 * ref.loss, `nce ${r.loss.item()} vs ${ref.loss}`);
    assert.equal(r.accuracy, ref.acc);
    // τ = 0.05 makes logits steep: use a larger temperature for the difference quotient.
    checkGradients(
      `infoNce bidir=${bidirectional}`,
      [a, v],
      (tp, [a, v]) => ops.infoNce(tp, a, v, { bidirectional, temperature: 0.5 }).loss,
      { h: 1e-3 },
    );
  }
  // Groups follow torch.chunk: 5 in 2 groups = 3 + 2; loss = mean of the two group losses.
  assert.deepEqual(ops.chunkSizes(5, 2), [3, 2]);
  assert.deepEqual(ops.chunkSizes(10, 4), [3, 3, 3, 1]);
  assert.deepEqual(ops.chunkSizes(2, 4), [1, 1]);
  const g = ops.infoNce(new Tape({ grad: false }), a, v, { groups: 2 });
  const r1 = nceRef(a.data.subarray(0, 9), v.data.subarray(0, 9), 3, D, 0.05, false);
  const r2 = nceRef(a.data.subarray(9), v.data.subarray(9), 2, D, 0.05, false);
  assert.ok(Math.abs(g.loss.item() - (r1.loss + r2.loss) / 2) < 1e-5);
  assert.ok(Math.abs(g.accuracy - (r1.acc + r2.acc) / 2) < 1e-12);
  checkGradients(
    'infoNce groups',
    [a, v],
    (tp, [a, v]) => ops.infoNce(tp, a, v, { groups: 2, temperature: 0.5 }).loss,
    { h: 1e-3 },
  );
});

test('bceWithLogits and crossEntropy (soft targets): values and gradients', () => {
  const logits = leaf([3, 4], 111, 3);
  const r = rng(112);
  const bin = Float32Array.from({ length: 12 }, () => (r() < 0.4 ? 1 : 0));
  const soft = new Float32Array(12);
  for (let b = 0; b < 3; b++) {
    const raw = [r(), r(), r(), r()];
    const z = raw.reduce((s, c) => s + c, 0);
    raw.forEach((c, k) => (soft[b * 4 + k] = c / z));
  }
  checkGradients('bce', [logits], (tp, [x]) => ops.bceWithLogits(tp, x, bin));
  checkGradients('ce', [logits], (tp, [x]) => ops.crossEntropy(tp, x, soft));
  let bce = 0;
  for (let i = 0; i < 12; i++) {
    const p = 1 / (1 + Math.exp(-logits.data[i]));
    bce -= (bin[i] * Math.log(p) + (1 - bin[i]) * Math.log(1 - p)) / 12;
  }
  assert.ok(Math.abs(ops.bceWithLogits(new Tape(), logits, bin).item() - bce) < 1e-6);
  let ce = 0;
  for (let b = 0; b < 3; b++) {
    const row = Array.from(logits.data.subarray(b * 4, b * 4 + 4));
    const lse = Math.log(row.reduce((s, c) => s + Math.exp(c), 0));
    for (let k = 0; k < 4; k++) ce -= (soft[b * 4 + k] * (row[k] - lse)) / 3;
  }
  assert.ok(Math.abs(ops.crossEntropy(new Tape(), logits, soft).item() - ce) < 1e-6);
});

test('a composite graph accumulates gradients through shared inputs', () => {
  // y = sum(gelu(x·Wᵀ) + x·Wᵀ): W used twice through one linear output used twice.
  const x = leaf([2, 3], 121);
  const w = leaf([3, 3], 122);
  checkGradients('composite', [x, w], (tp, [x, w]) => {
    const h = ops.linear(tp, x, w, null);
    return ops.add(
      tp,
      ops.gelu(tp, h),
      ops.layerNorm(tp, h, new Tensor([3], new Float32Array([1, 2, 3])), new Tensor([3])),
    );
  });
});

test('FrozenWeights: tapes share the bf16 weight copy until changed(); fresh tapes always see new weights', async () => {
  const { FrozenWeights } = await import('../../src/autograd/tape.js');
  const { Param, ParamArena } = await import('../../src/tensor/arena.js');
  const w = new Param('w', [3, 5], false, (out) => out.set(randomArray(15, 21)));
  const arena = new ParamArena([w], { grad: false });
  w.data.set(randomArray(15, 22));
  const bits = (v: number): number => (new Uint32Array(Float32Array.of(v).buffer)[0] >>> 16) & 0xffff;
  const rounded = (): number[] => Array.from(w.data, (v) => bits(v));
  const frozen = new FrozenWeights();
  const first = Array.from(new Tape({ grad: false, bf16: true, frozen }).bf16Param(w));
  // Round to nearest even can differ from truncation in the last bit: compare within 1 unit.
  assertClose(Float64Array.from(first), Float64Array.from(rounded()), { atol: 1, what: 'bf16 copy' });
  const old = first.slice();
  w.data.set(randomArray(15, 23)); // weights written without changed(): the promise is broken
  assert.deepEqual(Array.from(new Tape({ grad: false, bf16: true, frozen }).bf16Param(w)), old);
  const tp = new Tape({ grad: false, bf16: true, frozen });
  tp.reset(); // a reset keeps the frozen stamp
  assert.deepEqual(Array.from(tp.bf16Param(w)), old);
  // An ordinary tape refreshes the copy; and changed() makes frozen tapes refresh too.
  const fresh = Array.from(new Tape({ grad: false, bf16: true }).bf16Param(w));
  assert.notDeepEqual(fresh, old);
  w.data.set(randomArray(15, 24));
  frozen.changed();
  const after = Array.from(new Tape({ grad: false, bf16: true, frozen }).bf16Param(w));
  assertClose(Float64Array.from(after), Float64Array.from(rounded()), {
    atol: 1,
    what: 'bf16 copy after changed()',
  });
  assert.throws(() => new Tape({ grad: true, frozen }), /inference/);
  assert.equal(arena.params.length, 1);
});
