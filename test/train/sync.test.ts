/**
 * CAV-MAE Sync in the training and evaluation code (library level): the recipes as defaults,
 * the clip-level CAV-MAE segment protocol (checked against an independently built segment-sized
 * CAV-MAE and against invariance to everything outside the segment), segment- and clip-level
 * reports (= evaluateRetrieval on the features), per-pair labels, the clip loader of Sync
 * fine-tuning, and Sync fine-tuning's initialisation and head group.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tape } from '../../src/autograd/tape.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/tensor/rng.js';
import { buildModel, resolveConfig, CAVMAE, CAVMAEFT, isSyncFtHead } from '../../src/models/index.js';
import { SYNC_RECIPE } from '../../src/train/recipes.js';
import { loadDataset, buildLabelMap } from '../../src/data/datafile.js';
import { evaluateRetrieval, l2NormalizeRows } from '../../src/eval/retrieval.js';
import { loadStateDict } from '../../src/io/checkpoint.js';
import { datasetFeatures, poolNormalize } from '../../src/eval/features.js';
import { pretrainModelConfig, pretrainRunConfig, type PretrainOptions } from '../../src/train/pretrain.js';
import { bf16IsFast } from '../../src/kernels/index.js';
import { writeModelFile } from '../../src/train/run.js';
import { checkpointKind, finetune, finetuneKind } from '../../src/train/finetune.js';
import { ClipLoader } from '../../src/train/clip-loader.js';
import { cavmaeSegmentFeatures, readPairLabels, segmentGeometry } from '../../src/eval/segments.js';
import { clipLevelReport, segmentLevelReport, SYNC_PROTOCOL } from '../../src/eval/retrieval-report.js';
import { assertClose } from '../helpers.js';
import { makeSyncSet, TINY_CLIP_CONFIG, TINY_SYNC_CONFIG, type SyncSet } from './sync-fixture.js';

const tmp = mkdtempSync(join(tmpdir(), 'cavmae-sync-train-'));
let setPromise: Promise<SyncSet> | undefined;
const dataset = (): Promise<SyncSet> => (setPromise ??= makeSyncSet(join(tmp, 'data'), 8, 4));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const opts = (config: PretrainOptions['config'], extra: Partial<PretrainOptions> = {}): PretrainOptions => ({
  data: 'x.json',
  config,
  out: 'r',
  ...extra,
});

test('recipes: a Sync model defaults to SYNC_RECIPE, explicit options win, --recipe switches either model', () => {
  const official = {
    model: 'cavmae-sync',
    img_size: 32,
    audio_length: 32,
    embed_dim: 32,
    num_heads: 2,
    modality_specific_depth: 1,
    shared_depth: 1,
    decoder_embed_dim: 16,
    decoder_depth: 1,
    decoder_num_heads: 2,
  };
  const mc = pretrainModelConfig(opts(official));
  assert.equal(mc.model, 'cavmae-sync');
  assert.equal(
    mc.contrast_loss_weight,
    SYNC_RECIPE.contrast_loss_weight,
    'the recipe λc replaces the official forward default 0.01',
  );
  assert.equal(mc.norm_pix_loss, true);
  const rc = pretrainRunConfig(opts(official), mc);
  assert.deepEqual(
    [
      rc.lr,
      rc.batchSize,
      rc.epochs,
      rc.schedule.kind,
      rc.schedule.warmupSteps,
      rc.schedule.minLrRatio,
      rc.beta1,
      rc.beta2,
      rc.weightDecay,
      rc.noise,
    ],
    [2e-4, 512, 25, 'cosine', null, 0.1, 0.95, 0.999, 5e-7, false],
  );
  // Explicit values win over the recipe.
  const mine = opts(
    { ...official, contrast_loss_weight: 0.05 },
    { lr: 1e-3, batchSize: 8, schedule: 'constant', normPixLoss: false },
  );
  const mc2 = pretrainModelConfig(mine);
  assert.equal(mc2.contrast_loss_weight, 0.05);
  assert.equal(mc2.norm_pix_loss, false);
  assert.equal(pretrainModelConfig(opts(official, { contrastWeight: 0.3 })).contrast_loss_weight, 0.3);
  const rc2 = pretrainRunConfig(mine, mc2);
  assert.deepEqual([rc2.lr, rc2.batchSize, rc2.schedule.kind], [1e-3, 8, 'constant']);
  // The tiny preset brings its own recipe (the demo's); --recipe cavmae gives it the reference one,
  // --recipe sync the Sync defaults.
  const tiny = pretrainModelConfig(opts('tiny'));
  assert.deepEqual([tiny.contrast_loss_weight, tiny.mask_ratio_a, tiny.mask_ratio_v], [1, 0.5, 0.5]);
  const rcTiny = pretrainRunConfig(opts('tiny'), tiny);
  // The recipe's bf16 only where the CPU computes bf16 natively (elsewhere it would be slower).
  assert.deepEqual(
    [rcTiny.lr, rcTiny.batchSize, rcTiny.schedule.kind, rcTiny.noise, rcTiny.bf16],
    [1e-3, 64, 'cosine', false, bf16IsFast()],
  );
  assert.equal(pretrainRunConfig(opts('tiny', { bf16: true }), tiny).bf16, true);
  assert.equal(pretrainRunConfig(opts('tiny', { bf16: false }), tiny).bf16, false);
  const tinyRef = pretrainModelConfig(opts('tiny', { recipe: 'cavmae' }));
  assert.deepEqual([tinyRef.contrast_loss_weight, tinyRef.mask_ratio_a], [0.01, 0.75]);
  const rcTinyRef = pretrainRunConfig(opts('tiny', { recipe: 'cavmae' }), tinyRef);
  assert.deepEqual(
    [rcTinyRef.lr, rcTinyRef.batchSize, rcTinyRef.schedule.kind, rcTinyRef.noise],
    [5e-5, 48, 'multistep', true],
  );
  const tinySync = pretrainModelConfig(opts('tiny', { recipe: 'sync' }));
  assert.equal(tinySync.contrast_loss_weight, 0.1);
  assert.deepEqual([pretrainRunConfig(opts('tiny', { recipe: 'sync' }), tinySync).schedule.kind], ['cosine']);
  const syncCavmae = pretrainRunConfig(
    opts('sync-tiny', { recipe: 'cavmae' }),
    pretrainModelConfig(opts('sync-tiny', { recipe: 'cavmae' })),
  );
  assert.deepEqual(
    [syncCavmae.lr, syncCavmae.schedule.kind, syncCavmae.noise],
    [5e-5, 'multistep', false],
    'Sync pairs never get noise',
  );
  // Errors.
  assert.throws(
    () => pretrainRunConfig(opts('sync-tiny', { noise: true }), pretrainModelConfig(opts('sync-tiny'))),
    /the CAV-MAE Sync loader has no audio augmentation/,
  );
  assert.throws(
    () => pretrainModelConfig(opts('sync-tiny', { variant: 'av-mae' })),
    /^OptionError: variant av-mae: sync-tiny is a CAV-MAE Sync model/,
  );
  assert.throws(
    () => pretrainModelConfig(opts('sync-tiny', { recipe: 'fast' })),
    /^OptionError: recipe must be one of cavmae, sync, tiny, got "fast"/,
  );
  assert.throws(
    () => pretrainModelConfig(opts('sync-tiny-ft')),
    /is a fine-tuning config; pretraining needs a CAVMAE or CAVMAESync config/,
  );
});

test('segment protocol of a clip-level CAV-MAE: = a segment-sized CAV-MAE at the clip start; blind to everything outside the segment', () => {
  const clip = buildModel(resolveConfig(TINY_CLIP_CONFIG), { seed: 4, grad: false }) as CAVMAE;
  const L = 32;
  const g = segmentGeometry(clip, L);
  assert.deepEqual([g.cols, g.keep, g.firstCol.slice(0, 4), g.firstCol[15]], [64, 16, [0, 3, 7, 11], 59]); // starts 64k - 16
  assert.equal(Math.trunc(512 * (1 - g.maskRatio)), 16);
  // Reference for pair 0 (rows 0..31): a CAV-MAE built for 32-row input with the same weights
  // (its sin-cos audio table is the first 2 columns of the 64-column one), forward_feat, mean.
  const short = buildModel(resolveConfig({ ...TINY_CLIP_CONFIG, audio_length: L }), {
    seed: 4,
    grad: false,
  }) as CAVMAE;
  const state = clip.arena.stateDict();
  for (const p of short.arena.params)
    if (!p.name.includes('pos_embed_a')) p.data.set(state.get(p.name)!.data);
  const B = 3;
  const seg = Float32Array.from({ length: B * L * 128 }, (_, i) => Math.sin(i * 0.37) * 1.3);
  const img = Float32Array.from({ length: B * 3 * 32 * 32 }, (_, i) => Math.cos(i * 0.11));
  const tp = new Tape({ grad: false });
  const ref = short.forwardFeat(tp, {
    audio: new Tensor([B, L, 128], seg),
    image: new Tensor([B, 3, 32, 32], img),
  });
  const refA = poolNormalize(ref.audioTokens!);
  const refV = poolNormalize(ref.videoTokens!);
  // Ours through the masked path of the 1024-row model, with noise outside the segment.
  const run = (pair: number, outside: (i: number) => number): { a: Float32Array; v: Float32Array } => {
    const T = 1024;
    const a = Float32Array.from({ length: B * T * 128 }, (_, i) => outside(i));
    const start = g.firstCol[pair] * 16;
    for (let b = 0; b < B; b++) a.set(seg.subarray(b * L * 128, (b + 1) * L * 128), (b * T + start) * 128);
    const noise = new Float32Array(B * 512).fill(1);
    for (let b = 0; b < B; b++)
      for (let f = 0; f < 8; f++)
        for (let t = g.firstCol[pair]; t < g.firstCol[pair] + 2; t++) noise[b * 512 + f * 64 + t] = 0;
    const t2 = new Tape({ grad: false });
    const out = clip.forward(
      t2,
      { audio: new Tensor([B, T, 128], a), image: new Tensor([B, 3, 32, 32], img) },
      {
        maskRatioA: g.maskRatio,
        maskRatioV: 0,
        noiseA: noise,
        rng: new Rng(0),
        maeLossWeight: 0,
        contrastLossWeight: 1,
      },
    );
    return { a: l2NormalizeRows(out.audioRep!.data, B, 32), v: l2NormalizeRows(out.videoRep!.data, B, 32) };
  };
  const p0 = run(0, () => 0);
  assertClose(p0.a, refA, { atol: 2e-6, what: 'pair-0 audio vector vs the 32-row model' });
  assertClose(p0.v, refV, { atol: 2e-6, what: 'frame vector vs forward_feat (unmasked)' });
  const a5 = run(5, () => 0);
  const b5 = run(5, (i) => 3 * Math.sin(i * 1.7));
  assertClose(b5.a, a5.a, { atol: 0, what: 'pair-5 vector with different audio outside the segment' });
  // Errors: segments off the patch grid or outside a shorter clip model.
  assert.throws(
    () => segmentGeometry(clip, 40),
    /segment length must be a positive multiple of the patch size 16, got 40/,
  );
  assert.throws(() => segmentGeometry(clip, 48), /segment 1 starts at row 40, not on a 16-row patch column/);
  assert.throws(
    () => segmentGeometry(short, 32),
    /segment 1 \(rows 48\.\.80\) lies outside the model's 32-row input; a clip-level CAV-MAE needs audio_length 1024/,
  );
});

test('segment- and clip-level reports = evaluateRetrieval on the pair features; labels from pair_labels', async () => {
  const set = await dataset();
  const val = loadDataset(set.val);
  const sync = buildModel(resolveConfig(TINY_SYNC_CONFIG), { seed: 2, grad: false }) as CAVMAE;
  const f = await datasetFeatures(sync, val, { clipsPerBatch: 3 });
  assert.deepEqual([f.audio!.n, f.audio!.frames, f.audio!.dim, f.indices], [4, 16, 32, [0, 1, 2, 3]]);
  const labels = readPairLabels(val, f.indices, 16)!;
  const raw = (
    JSON.parse(await import('node:fs').then((fs) => fs.readFileSync(set.val, 'utf8'))) as {
      items: { pair_labels: number[] }[];
    }
  ).items;
  // Classes are numbered in order of first appearance; equality is what matters.
  for (let i = 0; i < 64; i++)
    for (let j = 0; j < 64; j++)
      assert.equal(
        labels[i] === labels[j],
        raw[i >> 4].pair_labels[i & 15] === raw[j >> 4].pair_labels[j & 15],
      );
  const seg = segmentLevelReport(f, labels, SYNC_PROTOCOL, 32);
  const want = evaluateRetrieval(
    { data: f.audio!.data, n: 64, dim: 32 },
    { data: f.video!.data, n: 64, dim: 32 },
    { labels },
  );
  assert.deepEqual([seg.n, seg.clips, seg.pairs, seg.level, seg.strategy], [64, 4, 16, 'segment', 'pooled']);
  assert.deepEqual(seg.audioToVideo, want.audioToVideo);
  assert.deepEqual(seg.videoToAudio, want.videoToAudio);
  assertClose([seg.chance.r1, seg.chance.r10], [1 / 64, 10 / 64], { atol: 1e-15, what: 'chance' });
  for (const strategy of ['diagonal_mean', 'max'] as const) {
    const clip = clipLevelReport(f, strategy, undefined, SYNC_PROTOCOL);
    const w = evaluateRetrieval(f.audio!, f.video!, { strategy });
    assert.deepEqual(
      [clip.audioToVideo, clip.videoToAudio, clip.n, clip.strategy],
      [w.audioToVideo, w.videoToAudio, 4, strategy],
    );
  }
  // The features are the model's pair features, L2-normalised (row 16·1 + 3 = clip 1, pair 3).
  const tp = new Tape({ grad: false });
  const { buildSyncClip } = await import('../../src/data/sync.js');
  const c = await buildSyncClip(val.items[1], { segmentLength: 32, imageSize: 32 });
  const out = sync.forwardFeat(tp, {
    audio: new Tensor([1, 32, 128], c.audio.subarray(3 * 32 * 128, 4 * 32 * 128)),
    image: new Tensor([1, 3, 32, 32], c.image.subarray(3 * 3072, 4 * 3072)),
  });
  assertClose(f.audio!.data.subarray(19 * 32, 20 * 32), l2NormalizeRows(out.clsA!.data, 1, 32), {
    atol: 1e-6,
    what: 'global audio token of clip 1 pair 3',
  });
  // pair labels: absent -> undefined; wrong length -> a clear error.
  const bad = join(tmp, 'bad.json');
  writeFileSync(
    bad,
    JSON.stringify({ items: [{ id: 'a', audio: 'a.wav', image: 'a.png', pair_labels: [1, 2] }] }),
  );
  assert.throws(
    () => readPairLabels(loadDataset(bad), [0], 16),
    /bad\.json: items entry 0: "pair_labels"\/"pair_digits" must list 16 labels/,
  );
  writeFileSync(bad, JSON.stringify({ items: [{ id: 'a', audio: 'a.wav', image: 'a.png' }] }));
  assert.equal(readPairLabels(loadDataset(bad), [0], 16), undefined);
  // The CAV-MAE protocol runs on the same clips (shape check; its numbers are checked above).
  const clipModel = buildModel(resolveConfig(TINY_CLIP_CONFIG), { seed: 2, grad: false }) as CAVMAE;
  const cf = await cavmaeSegmentFeatures(clipModel, val, { segmentLength: 32, batchPairs: 24 });
  assert.deepEqual([cf.audio.n, cf.audio.frames, cf.video.dim], [4, 16, 32]);
});

test('Sync fine-tuning clip loader: per-epoch permutation from (seed, epoch), resumable, clip-shaped batches', async () => {
  const set = await dataset();
  const train = loadDataset(set.train);
  const labelMap = buildLabelMap(train);
  const mk = (seed: number): ClipLoader =>
    new ClipLoader(train, {
      batchSize: 3,
      seed,
      segmentLength: 32,
      pairs: 16,
      imageSize: 32,
      labelMap,
      labelSmooth: 0.1,
    });
  const l = mk(5);
  assert.equal(l.numBatches, 2, '8 clips / 3 per batch, the last partial batch dropped');
  const e0 = [...l.epochOrder(0)];
  assert.deepEqual(
    [...e0].sort((a, b) => a - b),
    [0, 1, 2, 3, 4, 5, 6, 7],
  );
  assert.deepEqual([...mk(5).epochOrder(0)], e0, 'a pure function of (seed, epoch)');
  assert.notDeepEqual([...l.epochOrder(1)], e0);
  assert.notDeepEqual([...mk(6).epochOrder(0)], e0);
  const all = [];
  for await (const b of l.batches(1, 0)) all.push(b);
  const resumed = [];
  for await (const b of l.batches(1, 1)) resumed.push(b);
  assert.equal(all.length, 2);
  assert.deepEqual(
    resumed.map((b) => b.indices),
    [all[1].indices],
  );
  assert.deepEqual(resumed[0].audio, all[1].audio);
  const b = all[0];
  assert.deepEqual(b.indices, [...l.epochOrder(1)].slice(0, 3));
  assert.equal(b.audio.length, 3 * 16 * 32 * 128);
  assert.equal(b.image.length, 3 * 16 * 3 * 32 * 32);
  const K = labelMap.numLabels;
  for (let r = 0; r < 3; r++) {
    const want = new Float32Array(K).fill(0.1 / K);
    for (const name of train.items[b.indices[r]].labels) want[labelMap.mids.indexOf(name)] = 0.9;
    assert.deepEqual(b.labels.subarray(r * K, (r + 1) * K), want);
  }
});

test('Sync fine-tuning: picked by config, kind or checkpoint; encoder from a Sync checkpoint, fresh head; --freeze-base trains the head group only', async () => {
  const set = await dataset();
  const pre = buildModel(resolveConfig(TINY_SYNC_CONFIG), { seed: 11 }) as CAVMAE;
  const prePath = join(tmp, 'sync-pre.safetensors');
  writeModelFile(prePath, pre);
  const cavPath = join(tmp, 'cavmae.safetensors');
  writeModelFile(cavPath, buildModel(resolveConfig({ ...TINY_CLIP_CONFIG }), { seed: 12 }));
  assert.equal(checkpointKind(prePath), 'cavmae-sync');
  assert.equal(finetuneKind({ init: prePath }), 'cavmae-sync-ft');
  assert.equal(finetuneKind({ init: cavPath }), 'cavmae-ft');
  assert.equal(finetuneKind({ config: set.ftConfig }), 'cavmae-sync-ft');
  assert.equal(finetuneKind({ config: 'tiny-ft' }), 'cavmae-ft');
  assert.equal(finetuneKind({ init: cavPath, kind: 'cavmae-sync-ft' }), 'cavmae-sync-ft');
  assert.throws(
    () => finetuneKind({ kind: 'x' as 'cavmae-ft' }),
    /^OptionError: kind must be cavmae-ft or cavmae-sync-ft/,
  );
  const quiet = { quiet: true, workers: 1, log: () => {} };
  const r = await finetune({
    data: set.train,
    val: set.val,
    init: prePath,
    out: join(tmp, 'probe'),
    freezeBase: true,
    batchSize: 4,
    epochs: 1,
    lr: 1e-2,
    headLr: 1,
    wa: false,
    seed: 1,
    ...quiet,
  });
  const { tensors } = loadStateDict(r.model);
  const preState = pre.arena.stateDict();
  let head = 0;
  let changedHead = 0;
  for (const [name, t] of tensors) {
    if (isSyncFtHead(name)) {
      head++;
      continue;
    }
    assert.ok(preState.has(name), `${name} comes from the pretrained model`);
    assert.deepEqual(t.data, preState.get(name)!.data, `${name}: frozen encoder stays bit-identical`);
  }
  const fresh = buildModel(
    resolveConfig({
      ...JSON.parse((await import('node:fs')).readFileSync(set.ftConfig, 'utf8')),
      label_dim: 4,
    }),
    { seed: 1 },
  ) as CAVMAEFT;
  for (const p of fresh.arena.params)
    if (isSyncFtHead(p.name) && !tensors.get(p.name)!.data.every((v, i) => v === p.data[i])) changedHead++;
  assert.ok(
    head >= 20 && changedHead >= 10,
    `head parameters trained (${changedHead} of ${head} tensors changed)`,
  );
  assert.equal(r.final.N, 4);
  assert.deepEqual(
    r.final.frames,
    Array.from({ length: 16 }, (_, k) => k),
  );
  // From CAV-MAE weights the Sync layout comes from --config; the audio tables are the segment grid's.
  await assert.rejects(
    finetune({
      data: set.train,
      val: set.val,
      init: cavPath,
      kind: 'cavmae-sync-ft',
      out: join(tmp, 'x1'),
      ...quiet,
    }),
    /is a CAV-MAE \(not Sync\) checkpoint; pass config with the Sync layout/,
  );
  const r2 = await finetune({
    data: set.train,
    val: set.val,
    init: cavPath,
    config: set.ftConfig,
    out: join(tmp, 'from-cavmae'),
    batchSize: 4,
    epochs: 1,
    maxSteps: 1,
    wa: false,
    ...quiet,
  });
  const t2 = loadStateDict(r2.model).tensors;
  assert.deepEqual(t2.get('pos_embed_a')!.shape, [1, 16, 32], '8 x 2 segment grid');
  await assert.rejects(
    finetune({
      data: set.train,
      val: set.val,
      config: set.ftConfig,
      out: join(tmp, 'x2'),
      mixup: 0.5,
      ...quiet,
    }),
    /^OptionError: mixup: the CAV-MAE Sync loader has no audio augmentation/,
  );
});
