// `cavmae eval` end to end (child process through the real CLI entry) and the prediction-file
// readers, on the sklearn golden cases (test/fixtures/metrics, scripts/golden/metrics_golden.py).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSafetensors } from '../../src/io/safetensors.js';
import { loadMatrix, parseNpy, evaluatePredictionFiles } from '../../src/eval/predictions.js';
import { UserError } from '../../src/util/errors.js';
import { assertClose, repoRoot, runCli, type CliResult } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cavmae-eval-'));
const fx = (name: string) => join(repoRoot(), 'test', 'fixtures', 'metrics', name);
interface Case {
  name: string;
  N: number;
  K: number;
  output: number[];
  target: number[];
  expected: { AP: number[]; AUC: number[]; mAP: number; mAUC: number; dprime: number | null; acc: number };
}
const cases = (JSON.parse(readFileSync(fx('stats.json'), 'utf8')) as { cases: Case[] }).cases;
const byName = (n: string) => cases.find((c) => c.name === n)!;

const cli = (args: string[]): CliResult => runCli(args, { timeoutMs: 60_000 });

test('cavmae eval --json on a safetensors file holding pred and target = sklearn (1e-12)', () => {
  const c = byName('multilabel_ties');
  const path = join(tmp, 'preds.safetensors');
  writeSafetensors(path, {
    pred: { shape: [c.N, c.K], data: Float32Array.from(c.output) },
    target: { shape: [c.N, c.K], data: Float32Array.from(c.target) },
  });
  const r = cli(['eval', '--pred', path, '--json']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as {
    N: number;
    K: number;
    mAP: number;
    mAUC: number;
    dprime: number;
    acc: number;
    undefinedAucClasses: number[];
    perClass: { ap: number; auc: number }[];
  };
  assert.deepEqual([j.N, j.K], [c.N, c.K]);
  assertClose([j.mAP, j.mAUC, j.acc], [c.expected.mAP, c.expected.mAUC, c.expected.acc], {
    atol: 1e-12,
    what: 'summary',
  });
  assertClose([j.dprime], [c.expected.dprime!], { rtol: 1e-9, what: "d'" });
  assertClose(
    j.perClass.map((p) => p.ap),
    c.expected.AP,
    { atol: 1e-12, what: 'AP' },
  );
  assertClose(
    j.perClass.map((p) => p.auc),
    c.expected.AUC,
    { atol: 1e-12, what: 'AUC' },
  );
  assert.deepEqual(j.undefinedAucClasses, [3, 6]);
  // Text report: summary plus a per-class table (class names from a label CSV).
  const csv = join(tmp, 'labels.csv');
  writeFileSync(
    csv,
    'index,mid,display_name\n' +
      Array.from({ length: c.K }, (_, k) => `${k},/m/${k},"Sound ${k}"`).join('\n') +
      '\n',
  );
  const t = cli(['eval', '--pred', path, '--label-csv', csv]);
  assert.equal(t.status, 0, t.stderr);
  assert.match(
    t.stdout,
    /^samples 240, classes 10\nmAP {3}0\.5085\nmAUC {2}0\.4570 {2}\(reference convention: 2 class\(es\)/,
  );
  assert.match(t.stdout, /\n {4}3 {2}Sound 3 +0 +0\.0000 +-1\n/);
});

test('cavmae eval reads np.save .npy predictions and np.savetxt .csv targets (the reference formats)', () => {
  const c = byName('singlelabel_softmax');
  const r = cli([
    'eval',
    '--pred',
    fx('singlelabel_pred_f4.npy'),
    '--target',
    fx('singlelabel_target.csv'),
    '--json',
  ]);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { mAP: number; mAUC: number; acc: number; perClass: { ap: number }[] };
  assertClose([j.mAP, j.mAUC], [c.expected.mAP, c.expected.mAUC], { atol: 1e-12, what: 'mAP/mAUC' });
  assert.equal(j.acc, c.expected.acc);
  const m = loadMatrix(fx('multilabel_target_f8.npy'), 'target');
  assert.deepEqual([m.rows, m.cols], [240, 10]);
  assert.ok(m.data instanceof Float64Array);
  assert.deepEqual(Array.from(m.data), byName('multilabel_ties').target);
});

test('cavmae eval errors are one line naming the file and the problem', () => {
  const c = byName('singlelabel_softmax');
  const onlyPred = join(tmp, 'only-pred.safetensors');
  writeSafetensors(onlyPred, { pred: { shape: [c.N, c.K], data: Float32Array.from(c.output) } });
  let r = cli(['eval', '--pred', onlyPred]);
  assert.notEqual(r.status, 0);
  assert.match(
    r.stderr,
    /^cavmae: .*only-pred\.safetensors: no 'target' tensor in the file; pass --target\n$/,
  );
  r = cli(['eval', '--pred', onlyPred, '--target', fx('multilabel_target_f8.npy')]);
  assert.match(r.stderr, /^cavmae: prediction \[150, 7\] and target \[240, 10\] shapes differ/);
  r = cli(['eval', '--pred', join(tmp, 'missing.npy'), '--target', fx('singlelabel_target.csv')]);
  assert.match(r.stderr, /^cavmae: .*missing\.npy: file not found\n$/);
  assert.equal(r.stderr.split('\n').length, 2, 'one line, no stack trace');
});

test('prediction readers reject malformed input with UserErrors', () => {
  assert.throws(
    () => parseNpy(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]), 'x.npy'),
    (e: unknown) => e instanceof UserError && /bad magic/.test((e as Error).message),
  );
  const bad = join(tmp, 'ragged.csv');
  writeFileSync(bad, '1,2,3\n4,5\n');
  assert.throws(
    () => loadMatrix(bad, 'pred'),
    (e: unknown) => e instanceof UserError && /line 2 has 2 values/.test((e as Error).message),
  );
  const soft = join(tmp, 'soft.csv');
  writeFileSync(soft, '0.5,0.5\n0,1\n');
  const pred = join(tmp, 'p.csv');
  writeFileSync(pred, '0.1,0.9\n0.3,0.7\n');
  assert.throws(() => evaluatePredictionFiles(pred, soft), /targets must be 0 or 1/);
});
