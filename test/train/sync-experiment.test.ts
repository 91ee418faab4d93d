/**
 * The issue-7 experiment runner (src/train/sync-experiment.ts) on the tiny synthetic Sync set:
 * both arms train with the same recipe, the curves are segmentRetrieval of the kept checkpoints
 * (checked against a direct call on the final models), a second call resumes to a no-op, and
 * the plots redraw from segment-curves.json alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CAVMAE, kindTraits } from '../../src/models/index.js';
import { loadDataset } from '../../src/data/datafile.js';
import { loadInferenceModel } from '../../src/eval/embed.js';
import { segmentRetrieval } from '../../src/eval/retrieval-report.js';
import {
  evaluateExperiment,
  formatExperiment,
  runSyncExperiment,
  writePlots,
  ARM_NAMES,
  SYNC_EXPERIMENT,
  type ExperimentResult,
} from '../../src/train/sync-experiment.js';
import { assertClose } from '../helpers.js';
import { makeSyncSet, TINY_CLIP_CONFIG, TINY_SYNC_CONFIG } from './sync-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'cavmae-sync-exp-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const PNG = [0x89, 0x50, 0x4e, 0x47];

test('runSyncExperiment: same recipe for both arms, checkpoint curves = segmentRetrieval, resumable, plots redraw from JSON', async () => {
  const set = await makeSyncSet(join(tmp, 'data'), 8, 4);
  const out = join(tmp, 'exp');
  const logs: string[] = [];
  const o = {
    out,
    data: { train: set.train, test: set.val },
    configs: { sync: TINY_SYNC_CONFIG, clip: TINY_CLIP_CONFIG },
    steps: 3,
    batchSize: 4,
    checkpointEvery: 2,
    pointEvery: 2,
    workers: 1,
    quiet: true,
    log: (m: string) => logs.push(m),
  };
  const r = await runSyncExperiment(o);

  // Both arms: the experiment's recipe, whatever the configs said (TINY_SYNC_CONFIG has λc 0.1).
  type RunJson = {
    lr: number;
    batchSize: number;
    bf16: boolean;
    noise: boolean;
    schedule: { kind: string };
    model: Record<string, unknown>;
  };
  const runJson = (arm: string): RunJson =>
    JSON.parse(readFileSync(join(out, arm, 'run.json'), 'utf8')) as RunJson;
  const rs = runJson('sync');
  const rc = runJson('clip');
  const P = SYNC_EXPERIMENT.pretrain;
  for (const run of [rs, rc]) {
    assert.equal(run.lr, P.lr);
    assert.equal(run.batchSize, 4);
    assert.equal(run.bf16, P.bf16);
    assert.equal(run.noise, false);
    assert.equal(run.schedule.kind, 'cosine');
    assert.equal(run.model.contrast_loss_weight, P.contrastWeight);
    assert.equal(run.model.mask_ratio_a, P.maskRatio);
    assert.equal(run.model.mask_ratio_v, P.maskRatio);
  }
  assert.equal(rs.model.model, 'cavmae-sync');
  assert.equal(rc.model.model, 'cavmae');
  assert.equal(rc.model.audio_length, 1024);

  // Points: the checkpoint at step 2 (a multiple of pointEvery) and the final model at step 3.
  assert.deepEqual(
    r.runs.map((x) => x.name),
    [ARM_NAMES.sync, ARM_NAMES.clip],
  );
  assert.equal(r.segmentLength, TINY_SYNC_CONFIG.audio_length);
  assert.equal(r.imageSize, TINY_SYNC_CONFIG.img_size);
  const ds = loadDataset(set.val);
  for (const [i, arm] of (['sync', 'clip'] as const).entries()) {
    const run = r.runs[i];
    assert.deepEqual(
      run.points.map((p) => p.step),
      [2, 3],
    );
    assert.deepEqual(
      run.points.map((p) => p.samples),
      [8, 12],
    );
    const last = run.points[1].report;
    assert.equal(last.level, 'segment');
    assert.equal(last.n, 4 * 16);
    assert.ok(last.chance.classMatchAt1 !== undefined, 'per-pair labels give a class-match chance');
    // The curve point is exactly what segmentRetrieval gives on the final model.
    const m = loadInferenceModel(join(out, arm, 'model.safetensors'));
    assert.ok(m.model instanceof CAVMAE && kindTraits(m.model.config).sync === (arm === 'sync'));
    const direct = await segmentRetrieval(m.model, ds, {
      audioNorm: m.audioNorm,
      segmentLength: r.segmentLength,
    });
    for (const dir of ['audioToVideo', 'videoToAudio'] as const) {
      const a = last[dir];
      const b = direct[dir];
      assertClose(
        [a.r1, a.r5, a.r10, a.medianRank, a.classMatchAt1!],
        [b.r1, b.r5, b.r10, b.medianRank, b.classMatchAt1!],
        { atol: 0, what: `${arm} ${dir}` },
      );
    }
  }

  // Files: curves JSON and every PNG.
  const evalDir = join(out, 'eval');
  for (const f of [
    'seg-class1-a2v',
    'seg-class1-v2a',
    'seg-r10-a2v',
    'seg-r10-v2a',
    'train-c_acc',
    'train-nce',
  ]) {
    const b = readFileSync(join(evalDir, `${f}.png`));
    assert.deepEqual([...b.subarray(0, 4)], PNG, `${f}.png is a PNG`);
  }
  const saved = JSON.parse(readFileSync(join(evalDir, 'segment-curves.json'), 'utf8')) as ExperimentResult;
  assert.deepEqual(
    saved.runs.map((x) => x.points.map((p) => p.step)),
    [
      [2, 3],
      [2, 3],
    ],
  );

  // The table: both runs and chance, in text and markdown.
  const md = formatExperiment(r, { markdown: true }).split('\n');
  assert.equal(md.filter((l) => l.startsWith('| ')).length, 1 + 3, 'header + 2 runs + chance');
  assert.ok(formatExperiment(r).includes('chance'));

  // Resume: a second call trains nothing (the runs' final models stay untouched).
  const mtime = (arm: string): number => statSync(join(out, arm, 'model.safetensors')).mtimeMs;
  const before = [mtime('sync'), mtime('clip')];
  const again = await runSyncExperiment(o);
  assert.deepEqual([mtime('sync'), mtime('clip')], before);
  assertClose(
    again.runs.flatMap((x) => x.points.map((p) => p.report.audioToVideo.classMatchAt1!)),
    r.runs.flatMap((x) => x.points.map((p) => p.report.audioToVideo.classMatchAt1!)),
    { atol: 0, what: 'class-match@1 after resume' },
  );

  // Plots from the JSON alone (no run folders: the training curves are skipped).
  const redraw = join(tmp, 'redraw');
  const files = writePlots(
    { ...saved, runs: saved.runs.map((x) => ({ ...x, dir: join(tmp, 'gone') })) },
    redraw,
  );
  assert.equal(files.length, 4);
  assert.ok(files.every((f) => existsSync(f)));

  // One decoded test set serves every run: mismatched frame sizes are refused.
  await assert.rejects(
    evaluateExperiment({
      runs: [
        { name: 'a', dir: join(out, 'sync') },
        { name: 'b', dir: join(tmp, 'data') },
      ],
      data: set.val,
      out: join(tmp, 'bad'),
    }),
    /not a pretraining run folder/,
  );
});
