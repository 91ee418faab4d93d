/**
 * The demo on a reduced budget: AV-digits made here (espeak-ng + MNIST), the tiny CAV-MAE
 * pretrained with the demo recipe, zero-shot retrieval on held-out writers and voices. Learning
 * must be real: class-match@1 (mean of both directions) at least CLASS_MATCH_MIN = 0.2, twice the
 * chance level 0.1 (10 balanced digits). The whole pipeline runs (classifiers with a token
 * budget, the HTML report with its pictures).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDemo, formatDemo } from '../../src/train/demo.js';

const hasTools = ['espeak-ng', 'sox'].every((t) => spawnSync(t, ['--version']).status === 0);
/** Twice the chance level of class-match@1 with 10 balanced classes. */
const CLASS_MATCH_MIN = 0.2;

test('demo, reduced budget: retrieval on held-out voices is clearly above chance; the report is complete', { skip: !hasTools && 'needs espeak-ng and sox', timeout: 900_000 }, async (t) => {
  const out = mkdtempSync(join(tmpdir(), 'cavmae-demo-'));
  try {
    const r = await runDemo({ out, n: 800, testN: 200, steps: 350, classifierSteps: 15, minutes: 0, seed: 0, quiet: true, log: () => {} });
    const rr = r.retrieval;
    const a2v = rr.audioToVideo.classMatchAt1!;
    const v2a = rr.videoToAudio.classMatchAt1!;
    t.diagnostic(`class-match@1 a2v ${a2v.toFixed(3)} v2a ${v2a.toFixed(3)} (chance ${rr.chance.classMatchAt1!.toFixed(3)}); ${r.pretrain.loop.globalStep} steps; ${r.seconds.toFixed(0)} s`);
    assert.equal(rr.n, 200);
    assert.ok(Math.abs(rr.chance.classMatchAt1! - 0.1) < 1e-12, 'balanced digits: chance 0.1');
    assert.ok((a2v + v2a) / 2 >= CLASS_MATCH_MIN, `class-match@1 ${a2v.toFixed(3)} / ${v2a.toFixed(3)}: mean below ${CLASS_MATCH_MIN}`);
    assert.equal(r.learned, true);
    assert.match(formatDemo(r), /verdict: LEARNED/);
    for (const f of ['index.html', 'report.json', 'reconstruction.png', 'pretrain-losses.png', 'pretrain-eval.png']) assert.ok(existsSync(join(r.report, f)), `report/${f}`);
    const html = readFileSync(join(r.report, 'index.html'), 'utf8');
    assert.match(html, /<img src="reconstruction\.png"/);
    assert.match(html, /<img src="localize-[^"]+\.png"/);
    assert.equal(r.classifiers.length, 2);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
