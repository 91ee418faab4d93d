// Classification metrics against sklearn 1.2.1 / scipy golden values (test/fixtures/metrics/stats.json,
// made by scripts/golden/metrics_golden.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, assertClose, rng } from '../helpers.js';
import {
  calculateStats,
  normalPpf,
  averagePrecision,
  rocAuc,
  argmaxAccuracy,
  dPrime,
} from '../../src/eval/metrics.js';
import { UserError } from '../../src/util/errors.js';

interface StatsCase {
  name: string;
  N: number;
  K: number;
  output: number[];
  target: number[];
  expected: { AP: number[]; AUC: number[]; mAP: number; mAUC: number; dprime: number | null; acc: number };
}
const golden = JSON.parse(readFileSync(join(repoRoot(), 'test/fixtures/metrics/stats.json'), 'utf8')) as {
  cases: StatsCase[];
  ppf: { p: number; ppf: number }[];
};

// Tolerance: 1e-12 absolute on AP/AUC/mAP/mAUC (same float64 arithmetic as sklearn, only the
// summation order of np.sum / np.trapz differs); d' 1e-9 relative (inverse normal CDF).
for (const c of golden.cases) {
  test(`calculateStats matches sklearn: ${c.name}`, () => {
    const out = Float32Array.from(c.output);
    const tgt = Float32Array.from(c.target);
    const s = calculateStats(out, tgt, c.N, c.K);
    assertClose(
      s.perClass.map((p) => p.ap),
      c.expected.AP,
      { atol: 1e-12, what: 'AP' },
    );
    assertClose(
      s.perClass.map((p) => p.auc),
      c.expected.AUC,
      { atol: 1e-12, what: 'AUC' },
    );
    assertClose([s.mAP], [c.expected.mAP], { atol: 1e-12, what: 'mAP' });
    assertClose([s.mAUC], [c.expected.mAUC], { atol: 1e-12, what: 'mAUC' });
    assert.equal(s.acc, c.expected.acc, 'acc (exact)');
    if (c.expected.dprime === null) assert.ok(Number.isNaN(s.dprime), `d' should be NaN, got ${s.dprime}`);
    else assertClose([s.dprime], [c.expected.dprime], { rtol: 1e-9, atol: 1e-12, what: "d'" });
    const undefinedExpected = c.expected.AUC.map((a, k) => (a === -1 ? k : -1)).filter((k) => k >= 0);
    assert.deepEqual(s.undefinedAucClasses, undefinedExpected);
  });
}

test('normalPpf matches scipy.stats.norm.ppf to 1e-14 relative', () => {
  for (const { p, ppf } of golden.ppf) {
    const got = normalPpf(p);
    assert.ok(Math.abs(got - ppf) <= 1e-14 * Math.max(1, Math.abs(ppf)), `ppf(${p}) = ${got}, scipy ${ppf}`);
  }
  assert.equal(normalPpf(0), -Infinity);
  assert.equal(normalPpf(1), Infinity);
  assert.ok(Number.isNaN(normalPpf(-0.5)));
  assert.ok(Number.isNaN(dPrime(-1)));
});

test('AP and AUC are invariant to monotone transforms of the scores (logits vs sigmoid), exact ties kept', () => {
  const r = rng(7);
  const n = 500;
  const logits = new Float64Array(n);
  const labels = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = r() < 0.2 ? 1 : 0;
    logits[i] = Math.round((r() * 4 - 2 + labels[i]) * 4) / 4; // ties
  }
  const probs = logits.map((x) => 1 / (1 + Math.exp(-x)));
  assertClose([averagePrecision(probs, labels)], [averagePrecision(logits, labels)], {
    atol: 1e-15,
    what: 'AP',
  });
  assertClose([rocAuc(probs, labels)], [rocAuc(logits, labels)], { atol: 1e-15, what: 'AUC' });
});

test('AUC equals the Mann-Whitney statistic (ties count 1/2), brute force', () => {
  const r = rng(11);
  const n = 300;
  const s = new Float64Array(n);
  const y = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    y[i] = r() < 0.3 ? 1 : 0;
    s[i] = Math.round(r() * 20) + y[i] * 3;
  }
  let num = 0,
    P = 0,
    N = 0;
  for (let i = 0; i < n; i++)
    if (y[i]) P++;
    else N++;
  for (let i = 0; i < n; i++)
    for (let j = 0; j < n; j++) {
      if (y[i] && !y[j]) num += s[i] > s[j] ? 1 : s[i] === s[j] ? 0.5 : 0;
    }
  assertClose([rocAuc(s, y)], [num / (P * N)], { atol: 1e-12, what: 'AUC vs Mann-Whitney' });
});

test('accuracy takes the first maximum on ties (numpy argmax)', () => {
  // rows: tie between 1 and 2 -> 1; target 1 -> hit. Row 2: all equal -> 0, target 2 -> miss.
  const out = [0, 5, 5, 1, 1, 1];
  const tgt = [0, 1, 0, 0, 0, 1];
  assert.equal(argmaxAccuracy(out, tgt, 2, 3), 0.5);
});

test('bad inputs give UserError naming the problem', () => {
  assert.throws(
    () => calculateStats([0.1, Number.NaN], [0, 1], 2, 1),
    (e: unknown) => e instanceof UserError && /not finite/.test((e as Error).message),
  );
  assert.throws(
    () => calculateStats([0.1, 0.2], [0, 0.5], 2, 1),
    (e: unknown) => e instanceof UserError && /0 or 1/.test((e as Error).message),
  );
  assert.throws(() => calculateStats([0.1, 0.2], [0, 1], 3, 1), UserError);
});
