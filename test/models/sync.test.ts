/**
 * The Sync pretraining model beyond the golden cases: the released-size layout (test/fixtures/sync/
 * sync_base_keys.json, layout only), presets, config resolution and errors, initialisation,
 * checkpoint round trip, the options the fixtures do not cover (kept registers, multi-ratio
 * masking, chained shared layers, zero loss weights) with whole-model finite differences,
 * CAV-MAE → Sync weight adaptation, and the retrieval features.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ops from '../../src/autograd/ops.js';
import { Tape } from '../../src/autograd/tape.js';
import { compareKeys } from '../../src/io/checkpoint.js';
import { readSafetensors, readSafetensorsF32 } from '../../src/io/safetensors.js';
import { Rng } from '../../src/tensor/rng.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { CAVMAE } from '../../src/models/cavmae.js';
import {
  SYNC_PRESETS,
  kindTraits,
  presetConfig,
  presetNames,
  resolveConfig,
  type CavmaeConfig,
} from '../../src/models/config.js';
import { sincosTable2d } from '../../src/models/pos-embed.js';
import {
  buildModel,
  inferConfigFromShapes,
  loadModel,
  parameterShapes,
  saveModel,
} from '../../src/models/registry.js';
import { SYNC_RECIPE } from '../../src/train/recipes.js';
import { clipFeatures, pairVectors } from '../../src/eval/features.js';
import { adaptToSyncGrid, loadSyncInit } from '../../src/models/registry.js';
import { evaluateRetrieval, l2NormalizeRows } from '../../src/eval/retrieval.js';
import { assertClose, repoRoot } from '../helpers.js';

const dir = join(repoRoot(), 'test', 'fixtures', 'sync');
const tmp = mkdtempSync(join(tmpdir(), 'cavmae-sync-'));

/** Small enough for the TypeScript kernels: 2x2 image patches, 8x2 audio patches. */
const MICRO = {
  model: 'cavmae-sync',
  img_size: 32,
  audio_length: 32,
  embed_dim: 16,
  num_heads: 2,
  modality_specific_depth: 1,
  shared_depth: 1,
  decoder_embed_dim: 8,
  decoder_depth: 1,
  decoder_num_heads: 2,
  norm_pix_loss: true,
  num_register_tokens: 2,
  cls_token: true,
};

function batchFor(cfg: CavmaeConfig, B: number, seed: number): { audio: Tensor; image: Tensor } {
  const rng = new Rng(seed);
  return {
    audio: new Tensor(
      [B, cfg.audio_length, 128],
      rng.fillNormal(new Float32Array(B * cfg.audio_length * 128)),
    ),
    image: new Tensor(
      [B, 3, cfg.img_size, cfg.img_size],
      rng.fillNormal(new Float32Array(B * 3 * cfg.img_size * cfg.img_size)),
    ),
  };
}

test('released size: keys, order, shapes and counts of both released key sets (layout only)', () => {
  const ref = JSON.parse(readFileSync(join(dir, 'sync_base_keys.json'), 'utf8'));
  for (const [preset, key] of [
    ['sync-base', 'CAVMAESync_released_retrieval'],
    ['sync-base-heads', 'CAVMAESync_pretrain_default'],
  ] as const) {
    const r = ref[key];
    const cfg = presetConfig(preset);
    for (const [k, v] of Object.entries(r.constructor_kwargs))
      assert.equal(cfg[k as keyof CavmaeConfig], v, `${preset}.${k}`);
    const model = buildModel(cfg, { allocate: false });
    assert.ok(model instanceof CAVMAE && kindTraits(model.config).sync);
    assert.deepEqual(
      model.arena.params.map((p) => [p.name, [...p.shape]]),
      r.state_dict,
      `${preset}: state-dict keys, order and shapes`,
    );
    assert.equal(model.arena.size, r.total_params);
    assert.equal(model.arena.numTrainable, r.total_trainable);
    // A checkpoint with these keys loads with nothing missing or unexpected ...
    const ckpt = new Map<string, { shape: number[] }>(
      r.state_dict.map(([k, s]: [string, number[]]) => [k, { shape: s }]),
    );
    const report = compareKeys(parameterShapes(cfg), ckpt);
    assert.deepEqual([report.missing, report.unexpected, report.shapeMismatch], [[], [], []]);
    // ... and the shapes alone identify the preset.
    assert.equal(inferConfigFromShapes(ckpt)?.contrastive_heads, cfg.contrastive_heads);
  }
  // A checkpoint trained with heads, read by the retrieval model (heads off, as retrieval.py):
  // only the head keys are unexpected (strict=False).
  const withHeads = new Map<string, { shape: number[] }>(
    ref.CAVMAESync_pretrain_default.state_dict.map(([k, s]: [string, number[]]) => [k, { shape: s }]),
  );
  const r = compareKeys(parameterShapes(presetConfig('sync-base')), withHeads);
  assert.deepEqual(r.missing, []);
  assert.equal(r.unexpected.length, 80);
  assert.ok(r.unexpected.every((k) => k.startsWith('constrative_head_')));
  const shapes = parameterShapes(presetConfig('sync-base'));
  assert.deepEqual(shapes.get('register_tokens'), [16, 768]);
  assert.deepEqual(shapes.get('pos_embed_a'), [1, 208, 768]);
  assert.deepEqual(shapes.get('decoder_pos_embed_a'), [1, 208, 512]);
  assert.deepEqual(shapes.get('cls_token_v'), [1, 1, 768]);
});

test('Sync presets build; sync-tiny trains one step; the recipe values', () => {
  for (const name of Object.keys(SYNC_PRESETS)) {
    assert.ok(presetNames().includes(name));
    const m = buildModel(presetConfig(name), { allocate: false });
    assert.ok(m.arena.size > 0, name);
  }
  const cfg = presetConfig('sync-tiny');
  const model = CAVMAE.create(cfg, { seed: 1 });
  const tp = new Tape();
  const out = model.forward(tp, batchFor(cfg, 3, 2), { rng: new Rng(3) });
  tp.backward(out.loss);
  assert.ok(Number.isFinite(out.loss.item()) && out.lossC.item() > 0 && out.lossMaeA.item() > 0);
  assert.ok(model.arena.grad.every(Number.isFinite));
  assert.equal(out.maskA!.L, 8 * 6, '96-row segments: 8 x 6 audio patches');
  assert.equal(SYNC_RECIPE.contrast_loss_weight, 0.1);
  assert.equal(SYNC_RECIPE.min_lr_ratio, 0.1);
  assert.equal(SYNC_RECIPE.warmup_fraction, 0.1);
  assert.equal(SYNC_RECIPE.loss_reduction, 'mean');
});

test('config: official Sync defaults, our keys, and clear errors', () => {
  const c = resolveConfig({ model: 'cavmae-sync' });
  assert.deepEqual(
    [c.num_register_tokens, c.cls_token, c.global_local_losses, c.total_frame, c.contrastive_heads],
    [4, false, false, 16, true],
  );
  assert.deepEqual(
    [c.multi_ratio_masking, c.keep_register_tokens, c.tr_pos, c.contrast_loss_weight],
    [false, false, false, 0.01],
  );
  // The fixture's summary JSON (official names + extras) resolves as written.
  const fx = JSON.parse(readFileSync(join(dir, 'sync_cls_heads.json'), 'utf8'));
  const f = resolveConfig({ model: 'cavmae-sync', ...fx.config, ...fx.extras });
  assert.equal(f.shared_depth, 1);
  assert.equal(f.num_register_tokens, 2);
  // CAV-MAE configs carry no Sync keys (their JSON is unchanged).
  assert.ok(!('num_register_tokens' in resolveConfig({})));
  assert.throws(
    () => resolveConfig({ num_register_tokens: 2 }),
    /CAV-MAE Sync key: set "model" to "cavmae-sync"/,
  );
  assert.throws(
    () => resolveConfig({ model: 'cavmae-sync', aggregate: 'self_attention_cls' }),
    /does not apply/,
  );
  assert.throws(
    () => resolveConfig({ model: 'cavmae-sync', num_register_tokens: -1 }),
    /num_register_tokens/,
  );
  assert.throws(() => resolveConfig({ model: 'cavmae-sync', audio_length: 100 }), /multiple of 16/);
  assert.throws(() => resolveConfig({ model: 'cavmae-sync', variant: 'cav' }), /"variant" must be "cavmae"/);
  assert.throws(() => resolveConfig({ model: 'sync' }), /"model" must be one of/);
});

test('initialisation: registers N(0,1), global tokens N(0,0.02), sin-cos tables on the segment grid', () => {
  const cfg = presetConfig('sync-tiny', { num_register_tokens: 64 });
  const m = CAVMAE.create(cfg, { seed: 4 });
  const std = (x: Float32Array): number => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
  const reg = m.arena.get('register_tokens').data; // 128 x 128 values
  assert.ok(Math.abs(std(reg) - 1) < 0.03, `register std ${std(reg)}`);
  for (const k of ['cls_token_a', 'cls_token_v']) {
    const s = std(m.arena.get(k).data);
    assert.ok(s > 0.014 && s < 0.026, `${k} std ${s}`);
  }
  assert.deepEqual(m.arena.get('pos_embed_a').data, sincosTable2d(128, 8, 6));
  assert.deepEqual(m.arena.get('decoder_pos_embed_a').data, sincosTable2d(64, 8, 6));
  assert.equal(m.arena.get('pos_embed_a').requiresGrad, false);
});

test('save then load: class CAVMAE, same config and outputs', () => {
  // (With the heads this file's header is 18,560 bytes, whose low byte 0x80 makes
  // src/io/checkpoint.ts detectFormat take it for a legacy pickle: reported to the io owner.)
  const cfg = resolveConfig({
    ...MICRO,
    global_local_losses: true,
    contrast_loss_weight: 0.25,
    contrastive_heads: false,
  });
  const model = CAVMAE.create(cfg, { seed: 5 });
  const path = join(tmp, 'sync.safetensors');
  saveModel(path, model);
  assert.equal(readSafetensors(path).metadata.class, 'CAVMAESync');
  const { model: back, config, report } = loadModel(path);
  assert.deepEqual(config, cfg);
  assert.deepEqual([report.missing, report.unexpected], [[], []]);
  assert.ok(back instanceof CAVMAE && kindTraits(back.config).sync);
  const batch = batchFor(cfg, 2, 6);
  const run = (m: CAVMAE): number =>
    m.forward(new Tape({ grad: false }), batch, { rng: new Rng(7) }).loss.item();
  assert.equal(run(back), run(model));
});

test('options: kept registers, multi-ratio masking, zero weights, chained shared layers', () => {
  const base = resolveConfig(MICRO);
  const model = CAVMAE.create(base, { seed: 8 });
  const batch = batchFor(base, 3, 9);
  const noise = {
    noiseA: new Rng(10).fillUniform(new Float32Array(3 * 16)),
    noiseV: new Rng(11).fillUniform(new Float32Array(3 * 4)),
  };
  const twin = (over: Record<string, unknown>): CAVMAE => {
    const m = CAVMAE.create(resolveConfig({ ...MICRO, ...over }), { init: false });
    m.arena.data.set(model.arena.data);
    return m;
  };
  const ref = model.forward(new Tape({ grad: false }), batch, noise);
  // Kept registers go through the shared layer and are dropped afterwards: same output shapes.
  const kept = twin({ keep_register_tokens: true }).forward(new Tape({ grad: false }), batch, noise);
  assert.deepEqual(kept.latent!.shape, [3, 4 + 1, 16], 'joint latent: visible patches only');
  assert.deepEqual(kept.latentCA!.shape, ref.latentCA!.shape);
  assert.notEqual(kept.loss.item(), ref.loss.item());
  const f = twin({ keep_register_tokens: true }).forwardFeat(new Tape({ grad: false }), batch);
  assert.deepEqual(f.audioTokens!.shape, [3, 16, 16]);
  // Multi-ratio masking: one ratio per modality per call in [0.6, 0.9); explicit ratios win.
  const multi = twin({ multi_ratio_masking: true });
  const o = multi.forward(new Tape({ grad: false }), batch, { rng: new Rng(12) });
  for (const [r, m, L] of [
    [o.maskRatioA, o.maskA!, 16],
    [o.maskRatioV, o.maskV!, 4],
  ] as const) {
    assert.ok(r >= 0.6 && r < 0.9, `ratio ${r}`);
    assert.equal(m.lenKeep, Math.trunc(L * (1 - r)));
  }
  assert.notEqual(o.maskRatioA, o.maskRatioV);
  assert.equal(
    multi.forward(new Tape({ grad: false }), batch, { ...noise, maskRatioA: 0.5, maskRatioV: 0.5 }).maskA!
      .lenKeep,
    8,
  );
  assert.throws(() => multi.forward(new Tape({ grad: false }), batch, noise), /pass a random generator/);
  // Zero weights skip their branch.
  const noMae = model.forward(new Tape({ grad: false }), batch, { ...noise, maeLossWeight: 0 });
  assert.equal(noMae.predA, undefined);
  assert.equal(noMae.lossMae.item(), 0);
  assertClose(noMae.loss.data, ref.lossC.data, { rtol: 1e-6, what: 'loss = loss_c' });
  const noC = model.forward(new Tape({ grad: false }), batch, { ...noise, contrastLossWeight: 0 });
  assert.equal(noC.lossC.item(), 0);
  assert.equal(noC.loss.item(), ref.lossMae.item());
  // Two shared layers: the reference's contrastive streams keep only the last one (unchained).
  const two = { shared_depth: 2 };
  const m2 = CAVMAE.create(resolveConfig({ ...MICRO, ...two }), { seed: 13 });
  const m2c = CAVMAE.create(resolveConfig({ ...MICRO, ...two, chain_shared_layers: true }), {
    init: false,
  });
  m2c.arena.data.set(m2.arena.data);
  const u = m2.forward(new Tape({ grad: false }), batch, noise);
  const ch = m2c.forward(new Tape({ grad: false }), batch, noise);
  assert.equal(ch.lossMae.item(), u.lossMae.item());
  assert.notEqual(ch.lossC.item(), u.lossC.item());
});

test('whole-model gradients by finite differences (options without golden data)', () => {
  // Steps per case, measured by a sweep (h = 1e-1 ... 1e-4): along the gradient the loss is
  // strongly curved (central differences converge only below h ~ 1e-3) while float32 round-off
  // grows below that; along random directions round-off dominates below h = 1e-2.
  const cases: [Record<string, unknown>, number][] = [
    [
      {
        ...MICRO,
        keep_register_tokens: true,
        contrastive_heads: true,
        shared_depth: 2,
        chain_shared_layers: true,
      },
      3e-4,
    ],
    [
      {
        ...MICRO,
        global_local_losses: true,
        bidirect_contrast: true,
        contrastive_groups: 2,
        contrast_loss_weight: 1,
      },
      3e-4,
    ],
    [{ ...MICRO, cls_token: false, num_register_tokens: 3, mask_mode: 'time' }, 1e-3],
  ];
  for (const [c, hGrad] of cases) {
    const cfg = resolveConfig(c);
    const model = CAVMAE.create(cfg, { seed: 16 });
    const batch = batchFor(cfg, 4, 17);
    const opts = {
      noiseA: new Rng(18).fillUniform(new Float32Array(4 * 16)),
      noiseV: new Rng(19).fillUniform(new Float32Array(4 * 4)),
      structured: { cols: [[0], [1], [1], [0]] },
    };
    const tp = new Tape();
    tp.backward(model.forward(tp, batch, opts).loss);
    const [range] = model.arena.trainableRanges();
    const theta = model.arena.data.subarray(range.offset, range.offset + range.size);
    const grad = Float64Array.from(model.arena.grad.subarray(range.offset, range.offset + range.size));
    const orig = Float32Array.from(theta);
    const gnorm = Math.sqrt(grad.reduce((s, x) => s + x * x, 0));
    const unit = (v: Float64Array): Float64Array => {
      const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      return v.map((x) => x / n);
    };
    const rng = new Rng(20);
    for (const [d, h] of [
      [unit(grad), hGrad],
      [unit(new Float64Array(grad.length).map(() => rng.normal())), 1e-2],
    ] as const) {
      const along = (h: number): number => {
        for (let i = 0; i < theta.length; i++) theta[i] = orig[i] + h * d[i];
        const l = model.forward(new Tape({ grad: false }), batch, opts).loss.item();
        theta.set(orig);
        return l;
      };
      const fd = (along(h) - along(-h)) / (2 * h);
      const an = d.reduce((s, x, i) => s + x * grad[i], 0);
      const err = Math.abs(fd - an) / gnorm;
      if (process.env.FD_VERBOSE) console.log(`fd ${fd} analytic ${an} |err|/|g| ${err.toExponential(2)}`);
      assert.ok(err < 1e-3, `${JSON.stringify(c)}: fd ${fd} vs analytic ${an} (|err|/|g| ${err})`);
    }
  }
});

test('CAV-MAE / IN-initial weights → Sync grid: audio tables recomputed, Sync tokens fresh', () => {
  const cav = CAVMAE.create(
    resolveConfig({
      ...MICRO,
      model: 'cavmae',
      num_register_tokens: undefined,
      cls_token: undefined,
      audio_length: 64,
    }),
    { seed: 21 },
  );
  const path = join(tmp, 'cavmae-init.safetensors');
  saveModel(path, cav);
  const sync = CAVMAE.create(resolveConfig({ ...MICRO, contrastive_heads: true }), { seed: 22 });
  const fresh = Float32Array.from(sync.arena.get('register_tokens').data);
  const r = loadSyncInit(sync, path);
  assert.deepEqual(r.dropped, ['pos_embed_a', 'decoder_pos_embed_a']);
  assert.deepEqual(r.unexpected, []);
  assert.ok(
    r.missing.every((k) =>
      /^(register_tokens|cls_token_[av]|constrative_head_|pos_embed_a|decoder_pos_embed_a)/.test(k),
    ),
  );
  assert.ok(
    r.missing.includes('register_tokens') && r.missing.includes('constrative_head_audio.0.attn.qkv.weight'),
  );
  for (const k of [
    'blocks_a.0.attn.qkv.weight',
    'patch_embed_a.proj.weight',
    'pos_embed_v',
    'decoder_pred_v.bias',
  ])
    assert.deepEqual(sync.arena.get(k).data, cav.arena.get(k).data, k);
  assert.deepEqual(sync.arena.get('pos_embed_a').data, sincosTable2d(16, 8, 2));
  assert.deepEqual(sync.arena.get('register_tokens').data, fresh);
  // A visual table on another grid is dropped too; the same grid is kept.
  const shapes = new Map(sync.arena.params.map((p) => [p.name, p.shape]));
  const other = new Map(readSafetensorsF32(path));
  other.set('pos_embed_v', { shape: [1, 9, 16], data: new Float32Array(144) });
  assert.deepEqual(adaptToSyncGrid(other, shapes).dropped, [
    'pos_embed_a',
    'decoder_pos_embed_a',
    'pos_embed_v',
  ]);
  // Different encoder sizes are refused with the file named.
  const wide = CAVMAE.create(resolveConfig({ ...MICRO, embed_dim: 32 }), { seed: 1 });
  assert.throws(() => loadSyncInit(wide, path), /cavmae-init\.safetensors: does not fit the Sync model/);
});

test('retrieval features: global tokens per pair, L2-normalised, chunking-invariant', () => {
  const { model } = loadModel(join(dir, 'sync_cls_heads.safetensors'));
  assert.ok(model instanceof CAVMAE && kindTraits(model.config).sync);
  const io = readSafetensorsF32(join(dir, 'sync_cls_heads_io.safetensors'));
  const audio = io.get('input.audio')!;
  const image = io.get('input.image')!;
  // The three fixture pairs as one clip of three pairs.
  const clips = { audio: audio.data, image: image.data, n: 1, frames: 3 };
  const one = clipFeatures(model, clips, { batchPairs: 1 });
  const all = clipFeatures(model, clips, { batchPairs: 32 });
  assert.deepEqual(one.audio!.data, all.audio!.data);
  assert.deepEqual([all.audio!.n, all.audio!.frames, all.audio!.dim], [1, 3, 12]);
  assertClose(all.audio!.data, l2NormalizeRows(io.get('feat.cls_a')!.data, 3, 12), {
    rtol: 1e-4,
    what: 'cls_a',
  });
  assertClose(all.video!.data, l2NormalizeRows(io.get('feat.cls_v')!.data, 3, 12), {
    rtol: 1e-4,
    what: 'cls_v',
  });
  // local_matching: the mean of the patch tokens.
  const local = pairVectors(model, new Tensor(audio.shape, audio.data), new Tensor(image.shape, image.data), {
    representation: 'local',
  });
  const tp = new Tape({ grad: false });
  const tokens = new Tensor(io.get('feat.video_tokens')!.shape, io.get('feat.video_tokens')!.data);
  assertClose(local.video!, ops.l2Normalize(tp, ops.meanTokens(tp, tokens)).data, {
    rtol: 1e-4,
    what: 'local video',
  });
  // Feeds src/eval/retrieval.ts directly: 3 clips of one pair each.
  const per = clipFeatures(model, { ...clips, n: 3, frames: 1 });
  const r = evaluateRetrieval(per.audio!, per.video!);
  assert.equal(r.audioToVideo.n, 3);
  assert.throws(() => clipFeatures(model, { ...clips, n: 2 }), /audio holds/);
});
