/**
 * The demo on a reduced budget: AV-digits made here (espeak-ng and flite voices, varied recording
 * conditions, MNIST), the tiny CAV-MAE pretrained with the tiny recipe, zero-shot retrieval on
 * held-out writers and voices and on held-out REAL speech (people saying the digits, Debian
 * packages installed by scripts/setup.sh). Learning must be real: class-match@1 (mean of both
 * directions) at least CLASS_MATCH_MIN = 0.2 on the synthetic split, twice the chance level 0.1
 * (10 balanced digits), and transfer must be real: at least REAL_MATCH_MIN on real speech, where
 * chance is about 0.10 too. The whole pipeline runs (classifiers with a token budget, the HTML
 * report with its pictures and the side-by-side table).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDemo, formatDemo } from '../../src/train/demo.js';

const hasTools =
  ['espeak-ng', 'sox'].every((t) => spawnSync(t, ['--version']).status === 0) &&
  spawnSync('flite', ['-lv']).status === 0;
/** Twice the chance level of class-match@1 with 10 balanced classes. */
const CLASS_MATCH_MIN = 0.2;
/** Real speech: twice its chance level (0.104: 49 recordings, not quite balanced); measured 0.327 / 0.320 at this budget. */
const REAL_MATCH_MIN = 0.2;

test(
  'demo, reduced budget: retrieval on held-out voices and on real speech is clearly above chance; the report is complete',
  { skip: !hasTools && 'needs espeak-ng, flite and sox', timeout: 900_000 },
  async (t) => {
    const out = mkdtempSync(join(tmpdir(), 'cavmae-demo-'));
    try {
      // 600 steps: the varied voices and recordings need more steps than clean speech to align (docs/demo.md)
      const r = await runDemo({
        out,
        n: 800,
        testN: 200,
        steps: 600,
        classifierSteps: 15,
        minutes: 0,
        seed: 0,
        quiet: true,
        log: () => {},
      });
      const rr = r.retrieval;
      const a2v = rr.audioToVideo.classMatchAt1!;
      const v2a = rr.videoToAudio.classMatchAt1!;
      t.diagnostic(
        `class-match@1 a2v ${a2v.toFixed(3)} v2a ${v2a.toFixed(3)} (chance ${rr.chance.classMatchAt1!.toFixed(3)}); ${r.pretrain.loop.globalStep} steps; ${r.seconds.toFixed(0)} s`,
      );
      assert.equal(rr.n, 200);
      assert.ok(Math.abs(rr.chance.classMatchAt1! - 0.1) < 1e-12, 'balanced digits: chance 0.1');
      assert.ok(
        (a2v + v2a) / 2 >= CLASS_MATCH_MIN,
        `class-match@1 ${a2v.toFixed(3)} / ${v2a.toFixed(3)}: mean below ${CLASS_MATCH_MIN}`,
      );
      assert.equal(r.learned, true);
      assert.ok(r.real, 'the real-speech set is made (its packages come with scripts/setup.sh)');
      const ra = r.real.retrieval.audioToVideo.classMatchAt1!;
      const rv = r.real.retrieval.videoToAudio.classMatchAt1!;
      t.diagnostic(
        `real speech class-match@1 a2v ${ra.toFixed(3)} v2a ${rv.toFixed(3)} (chance ${r.real.retrieval.chance.classMatchAt1!.toFixed(3)})`,
      );
      assert.equal(r.real.clips, 49);
      assert.ok(Math.abs(r.real.retrieval.chance.classMatchAt1! - 0.104) < 0.001);
      assert.ok(
        (ra + rv) / 2 >= REAL_MATCH_MIN,
        `real speech class-match@1 ${ra.toFixed(3)} / ${rv.toFixed(3)}: mean below ${REAL_MATCH_MIN}`,
      );
      assert.match(formatDemo(r), /real speech \(4 people, never trained\)/);
      assert.match(formatDemo(r), /verdict: LEARNED/);
      for (const f of [
        'index.html',
        'report.json',
        'reconstruction.png',
        'pretrain-losses.png',
        'pretrain-eval.png',
      ])
        assert.ok(existsSync(join(r.report, f)), `report/${f}`);
      const html = readFileSync(join(r.report, 'index.html'), 'utf8');
      assert.match(html, /<img src="reconstruction\.png"/);
      assert.match(html, /<td>real speech<\/td>/);
      assert.match(html, /<img src="localize-[^"]+\.png"/);
      assert.equal(r.classifiers.length, 2);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  },
);
