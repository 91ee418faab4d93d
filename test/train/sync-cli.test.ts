/**
 * CAV-MAE Sync through the CLI, end to end on a small synthetic set (mechanics; the learning
 * claim is docs/sync-training.md's experiment): `cavmae pretrain` on a Sync config with the Sync
 * recipe, stopped and resumed to bit-identical weights; `cavmae retrieval` on the Sync model at
 * clip level (strategies) and segment level, equal to the library on the same features, and on
 * a clip-level CAV-MAE; `cavmae finetune` of the Sync classifier from the pretrained model;
 * one-line errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, readSafetensorsF32 } from '../../src/io/safetensors.js';
import { buildModel, kindTraits, resolveConfig, CAVMAE } from '../../src/models/index.js';
import { loadDataset } from '../../src/data/datafile.js';
import { evaluateRetrieval } from '../../src/eval/retrieval.js';
import { loadInferenceModel } from '../../src/eval/embed.js';
import { readJsonl } from '../../src/train/logger.js';
import { cosineWarmup } from '../../src/train/schedule.js';
import { writeModelFile } from '../../src/train/run.js';
import { cavmaeSegmentFeatures, readPairLabels } from '../../src/eval/segments.js';
import { datasetFeatures } from '../../src/eval/features.js';
import { assertClose } from '../helpers.js';
import { cli } from './pretrain-fixture.js';
import { makeSyncSet, TINY_CLIP_CONFIG } from './sync-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'cavmae-sync-cli-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

interface Metrics {
  r1: number;
  r5: number;
  r10: number;
  medianRank: number;
  classMatchAt1?: number;
}
interface Report {
  level: string;
  strategy: string;
  n: number;
  clips: number;
  pairs: number;
  dim: number;
  segmentLength?: number;
  protocol: string;
  audioToVideo: Metrics;
  videoToAudio: Metrics;
}

const ok = (r: { status: number | null; stdout: string; stderr: string }, what: string): string => {
  assert.equal(r.status, 0, `${what}: ${r.stderr}`);
  return r.stdout;
};
const oneLineError = (r: { status: number | null; stderr: string }, re: RegExp): void => {
  assert.equal(r.status, 1);
  assert.match(r.stderr, re);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
};

test('Sync pretrain -> resume -> retrieval (clip and segment level) -> Sync fine-tuning, through the CLI', async () => {
  const set = await makeSyncSet(join(tmp, 'data'), 8, 4);
  const common = ['pretrain', '--data', set.train, '--val', set.val, '--config', set.syncConfig, '--batch-size', '4', '--epochs', '2', '--lr', '1e-3', '--seed', '3', '--quiet', '--workers', '1'];
  // Stopped after 3 of 4 steps (mid-epoch), resumed to the end; and the same run in one go.
  const split = join(tmp, 'split');
  ok(cli([...common, '--out', split, '--max-steps', '3', '--checkpoint-every', '1']), 'pretrain part 1');
  const out = ok(cli([...common, '--out', split, '--resume']), 'pretrain --resume');
  assert.match(out, /^pretrain: 4\/4 steps, model /);
  const whole = join(tmp, 'whole');
  ok(cli([...common, '--out', whole]), 'pretrain uninterrupted');
  const a = readSafetensorsF32(join(split, 'model.safetensors'));
  const b = readSafetensorsF32(join(whole, 'model.safetensors'));
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [k, t] of a) assert.deepEqual(t.data, b.get(k)!.data, `${k}: resumed run is bit-identical`);
  const meta = readSafetensors(join(whole, 'model.safetensors')).metadata;
  const config = JSON.parse(meta['cavmae.config']) as Record<string, unknown>;
  assert.deepEqual([config.model, config.audio_length, config.contrast_loss_weight], ['cavmae-sync', 32, 0.1]);
  const run = JSON.parse(readFileSync(join(whole, 'run.json'), 'utf8')) as { recipe: string; schedule: { kind: string }; noise: boolean; weightDecay: number };
  assert.deepEqual([run.recipe, run.schedule.kind, run.noise, run.weightDecay], ['sync', 'cosine', false, 5e-7]);
  // The Sync recipe's per-step cosine with 10% warm-up to 0.1·lr, as logged.
  const log = readJsonl(join(whole, 'log.jsonl'));
  const sched = cosineWarmup({ lr: 1e-3, totalIterations: 4, warmupFraction: 0.1, minLrRatio: 0.1 });
  const train = log.filter((r) => r.kind === 'train');
  assertClose(train.map((r) => r.lr as number), [0, 1, 2, 3].map((i) => sched.lr(0, i)), { rtol: 1e-12, what: 'logged lr' });
  const evals = log.filter((r) => r.kind === 'eval');
  assert.equal(evals.length, 2);
  for (const k of ['loss', 'c_acc', 'a2v_r1', 'a2v_r10', 'v2a_r5', 'seg_a2v_r1', 'seg_v2a_r1', 'seg_a2v_class1', 'seg_v2a_class1']) assert.equal(typeof evals[1][k], 'number', `eval ${k}`);

  // cavmae retrieval on the Sync model = the library on the same pair features.
  const modelPath = join(whole, 'model.safetensors');
  const m = loadInferenceModel(modelPath);
  assert.ok(m.model instanceof CAVMAE && kindTraits(m.model.config).sync);
  const val = loadDataset(set.val);
  const f = await datasetFeatures(m.model, val);
  for (const strategy of ['diagonal_mean', 'max'] as const) {
    const args = ['retrieval', '--model', modelPath, '--data', set.val, '--json', ...(strategy === 'max' ? ['--strategy', 'max'] : [])];
    const got = JSON.parse(ok(cli(args), `retrieval ${strategy}`)) as Report;
    const want = evaluateRetrieval(f.audio!, f.video!, { strategy });
    assert.deepEqual([got.level, got.strategy, got.n, got.pairs, got.dim], ['clip', strategy, 4, 16, 32]);
    for (const dir of ['audioToVideo', 'videoToAudio'] as const) {
      const w = want[dir];
      assertClose([got[dir].r1, got[dir].r5, got[dir].r10, got[dir].medianRank], [w.r1, w.r5, w.r10, w.medianRank], { atol: 1e-12, what: `${strategy} ${dir}` });
    }
  }
  const seg = JSON.parse(ok(cli(['retrieval', '--model', modelPath, '--data', set.val, '--segments', '--json']), 'retrieval --segments')) as Report;
  const labels = readPairLabels(val, f.indices, 16);
  const wantSeg = evaluateRetrieval({ data: f.audio!.data, n: 64, dim: 32 }, { data: f.video!.data, n: 64, dim: 32 }, { labels });
  assert.deepEqual([seg.level, seg.n, seg.clips, seg.segmentLength], ['segment', 64, 4, 32]);
  assertClose([seg.audioToVideo.r10, seg.audioToVideo.classMatchAt1!, seg.videoToAudio.r1, seg.videoToAudio.classMatchAt1!], [wantSeg.audioToVideo.r10, wantSeg.audioToVideo.classMatchAt1!, wantSeg.videoToAudio.r1, wantSeg.videoToAudio.classMatchAt1!], { atol: 1e-12, what: 'segment level' });
  const text = ok(cli(['retrieval', '--model', modelPath, '--data', set.val, '--segments']), 'retrieval text');
  assert.match(text, /^segment-level retrieval over 64 segments \(4 clips x 16 pairs, 32-row segments\)/);
  assert.match(text, /\nchance +0\.016 +0\.078 +0\.156 +32\.5 +\d\.\d{3}\n/);

  // A clip-level CAV-MAE: segment level through its masked path.
  const clipPath = join(tmp, 'clip.safetensors');
  const clip = buildModel(resolveConfig(TINY_CLIP_CONFIG), { seed: 5 }) as CAVMAE;
  writeModelFile(clipPath, clip);
  const cseg = JSON.parse(ok(cli(['retrieval', '--model', clipPath, '--data', set.val, '--segments', '--segment-length', '32', '--json']), 'clip model --segments')) as Report;
  const cf = await cavmaeSegmentFeatures(clip, val, { segmentLength: 32 });
  const wantC = evaluateRetrieval({ data: cf.audio.data, n: 64, dim: 32 }, { data: cf.video.data, n: 64, dim: 32 }, { labels });
  assertClose([cseg.audioToVideo.r5, cseg.videoToAudio.classMatchAt1!], [wantC.audioToVideo.r5, wantC.videoToAudio.classMatchAt1!], { atol: 1e-12, what: 'clip-level CAV-MAE segments' });
  assert.match(cseg.protocol, /kept visible at their place in the clip/);

  // Sync fine-tuning from the pretrained model (kind picked from the checkpoint).
  const ft = join(tmp, 'ft');
  const fto = ok(cli(['finetune', '--data', set.train, '--val', set.val, '--init', modelPath, '--out', ft, '--batch-size', '4', '--epochs', '1', '--no-wa', '--lr', '1e-3', '--quiet', '--workers', '1']), 'finetune');
  assert.match(fto, /^finetune: 2\/2 steps, model .*\n {2}weights: the best epoch \(1, mAP \d\.\d{4}\)\n {2}final \(16-frame aggregation\): mAP \d\.\d{4}/);
  const ftMeta = readSafetensors(join(ft, 'model.safetensors')).metadata;
  assert.equal(ftMeta.class, 'CAVMAESyncFT');
  assert.equal((JSON.parse(ftMeta['cavmae.config']) as Record<string, unknown>).label_dim, 4);
  const result = JSON.parse(readFileSync(join(ft, 'result.json'), 'utf8')) as { kind: string; final: { clips: number; pairsPerClip: number } };
  assert.deepEqual([result.kind, result.final.clips, result.final.pairsPerClip], ['cavmae-sync-ft', 4, 16]);
  // Fine-tuned classifiers are not retrieval models.
  oneLineError(cli(['retrieval', '--model', join(ft, 'model.safetensors'), '--data', set.val]), /^cavmae: .*is a CAV-MAE Sync fine-tuning \(classification\) model; retrieval needs the pretraining model/);
  oneLineError(cli(['retrieval', '--model', modelPath, '--data', set.val, '--strategy', 'pooled']), /^cavmae: --strategy pooled: a CAV-MAE Sync model gives 16 pair vectors per clip/);
  oneLineError(cli(['retrieval', '--model', modelPath, '--data', set.val, '--segments', '--strategy', 'max']), /^cavmae: --strategy max: segment-level retrieval compares single pairs/);
  oneLineError(cli(['retrieval', '--model', modelPath, '--data', set.val, '--segments', '--segment-length', '48']), /^cavmae: --segment-length 48: this Sync model was built for 32-row segments/);
  oneLineError(cli(['pretrain', '--data', set.train, '--config', set.syncConfig, '--out', join(tmp, 'e1'), '--strategy', 'best']), /^cavmae: --strategy must be one of diagonal_mean, diagonal_max, mean, max, got "best"/);
  oneLineError(cli(['pretrain', '--data', set.train, '--config', set.syncConfig, '--out', join(tmp, 'e2'), '--variant', 'av-mae']), /^cavmae: --variant av-mae: .*sync\.json is a CAV-MAE Sync model/);
  oneLineError(cli(['make-demo-data', '--sync', '--out', join(tmp, 'e3'), '--duration', '2']), /^cavmae: --duration does not apply to --sync/);
});
