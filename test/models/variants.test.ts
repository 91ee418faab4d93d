/**
 * Every preset and every variant is constructed and run forward and backward on a tiny config:
 * parameter sets, counts (base = test/fixtures/official/model_base/cavmae_base_params.json),
 * initialisation (docs/reference.md#initialisation), finite losses and gradients, the options (chained shared layers,
 * bidirectional / grouped contrast, structured masking), and a finite-difference check of
 * the whole model's loss for the variants the golden files do not cover.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Tape } from '../../src/autograd/tape.js';
import * as ops from '../../src/autograd/ops.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/tensor/rng.js';
import { ActivationPool } from '../../src/tensor/pool.js';
import { CAVMAE } from '../../src/models/cavmae.js';
import { CAVMAEFT, FT_MODES } from '../../src/models/cavmae-ft.js';
import {
  PRESETS,
  VARIANTS,
  presetConfig,
  resolveConfig,
  type CavmaeConfig,
} from '../../src/models/config.js';
import { buildModel, parameterShapes } from '../../src/models/registry.js';
import { fixture, hasOfficialFixtures, maxAbs } from '../helpers.js';

/** A config small enough for the TypeScript kernels: 2x2 image patches, 8x2 audio patches. */
const MICRO = {
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

function allFinite(a: Float32Array): boolean {
  for (let i = 0; i < a.length; i++) if (!Number.isFinite(a[i])) return false;
  return true;
}

test(
  'base: parameter names, order, shapes and counts equal the official model',
  { skip: !hasOfficialFixtures() },
  () => {
    const ref = JSON.parse(readFileSync(fixture('model_base', 'cavmae_base_params.json'), 'utf8'));
    for (const [preset, key] of [
      ['base', 'CAVMAE'],
      ['base-ft', 'CAVMAEFT_label527'],
    ] as const) {
      // Layout only: the construction path without allocating 191M floats.
      const model = buildModel(presetConfig(preset), { allocate: false });
      const r = ref[key];
      assert.deepEqual(
        model.arena.params.map((p) => [p.name, [...p.shape]]),
        r.state_dict,
        `${preset}: state-dict keys, order and shapes`,
      );
      assert.equal(model.arena.size, r.total_params);
      assert.equal(model.arena.numTrainable, r.total_trainable);
      assert.equal(model.arena.params.length, r.num_state_dict_keys);
    }
  },
);

test('every preset builds; its parameter set is the official layout of its sizes', () => {
  for (const name of Object.keys(PRESETS)) {
    const cfg = presetConfig(name);
    const shapes = parameterShapes(cfg);
    // 20 tensors per Block; encoder: 2 modality + 2 position + 4 patch-embedding + 6 final-norm tensors.
    const encoder = 14 + 20 * (2 * cfg.modality_specific_depth + cfg.shared_depth);
    const rest = cfg.model === 'cavmae-ft' ? 4 : 5 + 2 + 20 * cfg.decoder_depth + 2 + 4;
    assert.equal(shapes.size, encoder + rest, `${name}: key count`);
  }
  // The tiny preset runs: forward + backward, batch 2.
  const cfg = presetConfig('tiny');
  const model = CAVMAE.create(cfg, { seed: 1 });
  const tp = new Tape();
  const out = model.forward(tp, batchFor(cfg, 2, 1), { rng: new Rng(2) });
  tp.backward(out.loss);
  assert.ok(Number.isFinite(out.loss.item()) && allFinite(model.arena.grad));
  assert.ok(out.lossC.item() > 0 && out.lossMaeA.item() > 0);
});

test('a training step through one pool allocates nothing once warmed up', () => {
  const cfg = resolveConfig(MICRO);
  const model = CAVMAE.create(cfg, { seed: 21 });
  const pool = new ActivationPool();
  const batch = batchFor(cfg, 2, 22);
  const rng = new Rng(23);
  const step = (): number => {
    const tp = new Tape({ pool });
    const out = model.forward(tp, batch, { rng });
    tp.backward(out.loss);
    const loss = out.loss.item();
    model.arena.zeroGrad();
    tp.reset();
    return loss;
  };
  step();
  const warmed = pool.freshAllocations;
  for (let i = 0; i < 3; i++) assert.ok(Number.isFinite(step()));
  assert.equal(pool.freshAllocations, warmed, 'steady-state steps must be served from the pool');
});

test('initialisation follows docs/reference.md#initialisation', () => {
  const cfg = presetConfig('tiny');
  const model = CAVMAE.create(cfg, { seed: 3 });
  const a = model.arena;
  const std = (x: Float32Array): number => Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length);
  // Tokens: normal(0, 0.02) (128 and 64 values: loose tolerance, 0.02 +- 0.006).
  for (const n of ['modality_a', 'modality_v', 'mask_token', 'decoder_modality_a'])
    assert.ok(Math.abs(std(a.get(n).data) - 0.02) < 0.006, `${n} std ${std(a.get(n).data)}`);
  // Linear: xavier_uniform on [out, in], zero bias; qkv as one [3d, d] matrix.
  const qkv = a.get('blocks_u.0.attn.qkv.weight').data;
  const bound = Math.sqrt(6 / (128 + 384));
  assert.ok(maxAbs(qkv) <= bound && maxAbs(qkv) > 0.95 * bound);
  assert.ok(Math.abs(std(qkv) - bound / Math.sqrt(3)) < 0.02 * bound);
  assert.equal(maxAbs(a.get('blocks_u.0.attn.qkv.bias').data), 0);
  // Patch embedding: xavier on [D, C*256], bias U(+-1/sqrt(C*256)).
  const pw = a.get('patch_embed_v.proj.weight').data;
  assert.ok(maxAbs(pw) <= Math.sqrt(6 / (768 + 128)));
  const pbias = a.get('patch_embed_v.proj.bias').data;
  assert.ok(maxAbs(pbias) <= 1 / Math.sqrt(768) && maxAbs(pbias) > 0);
  // LayerNorm 1 / 0.
  assert.ok(
    a.get('norm_a.weight').data.every((x) => x === 1) && a.get('norm_a.bias').data.every((x) => x === 0),
  );
  // Fixed sin-cos tables, frozen.
  assert.equal(a.get('pos_embed_a').requiresGrad, false);
  assert.equal(a.get('pos_embed_a').data[1 * 128], Math.fround(Math.sin(1)));
  // Same seed, same weights; another seed, other weights.
  assert.deepEqual(CAVMAE.create(cfg, { seed: 3 }).arena.data, a.data);
  assert.notDeepEqual(CAVMAE.create(cfg, { seed: 4 }).arena.data.subarray(0, 64), a.data.subarray(0, 64));
});

test('variants: parameter sets, forward and backward', () => {
  for (const variant of VARIANTS) {
    const cfg = resolveConfig({
      ...MICRO,
      variant,
      ...(variant === 'vanilla-av-mae' ? { modality_specific_depth: 0, shared_depth: 2 } : {}),
    });
    const model = CAVMAE.create(cfg, { seed: 5 });
    const names = model.arena.names();
    const has = (prefix: string): boolean => names.some((n) => n.startsWith(prefix));
    assert.equal(has('decoder_'), variant !== 'cav', `${variant}: decoder`);
    assert.equal(has('patch_embed_v'), variant !== 'audio-mae', `${variant}: visual side`);
    assert.equal(has('patch_embed_a'), variant !== 'visual-mae', `${variant}: audio side`);
    assert.equal(
      has('blocks_a'),
      variant !== 'vanilla-av-mae' && variant !== 'visual-mae',
      `${variant}: blocks_a`,
    );
    const tp = new Tape();
    const out = model.forward(tp, batchFor(cfg, 3, 6), { rng: new Rng(7) });
    assert.ok(Number.isFinite(out.loss.item()), `${variant}: loss`);
    const contrastive = variant === 'cavmae' || variant === 'cav';
    assert.equal(out.lossC.item() > 0, contrastive, `${variant}: contrastive term`);
    assert.equal(out.lossMae.item() > 0, variant !== 'cav', `${variant}: reconstruction term`);
    if (variant === 'audio-mae') assert.ok(out.predA && !out.predV && out.lossMaeV.item() === 0);
    if (variant === 'visual-mae') assert.ok(out.predV && !out.predA && out.lossMaeA.item() === 0);
    tp.backward(out.loss);
    assert.ok(allFinite(model.arena.grad), `${variant}: finite gradients`);
    // Parameters outside the graph (PyTorch: grad None) are reported, so an optimiser can skip them.
    const reached = (n: string): boolean => tp.paramsWithGrad.has(model.arena.get(n));
    if (variant !== 'vanilla-av-mae' && variant !== 'visual-mae')
      assert.equal(reached('blocks_a.0.norm1_a.weight'), false, `${variant}: unused LayerNorm`);
    if (variant !== 'visual-mae') assert.equal(reached('modality_a'), true);
    if (variant === 'av-mae') assert.equal(reached('norm_a.weight'), false);
    for (const p of model.arena.params)
      if (!p.requiresGrad) assert.equal(maxAbs(p.grad!), 0, `${variant}: frozen ${p.name}`);
    const g = (n: string): number => maxAbs(model.arena.get(n).grad!);
    if (variant !== 'visual-mae')
      assert.ok(g('patch_embed_a.proj.weight') > 0, `${variant}: audio patch embedding learns`);
    if (contrastive)
      assert.ok(
        g('norm_a.weight') > 0 && g('blocks_u.0.norm1_v.weight') > 0,
        `${variant}: contrastive streams learn`,
      );
    if (variant === 'av-mae' || variant === 'vanilla-av-mae')
      assert.equal(g('norm_a.weight'), 0, `${variant}: no contrastive streams`);
    // forward_feat runs for every variant.
    const f = model.forwardFeat(new Tape({ grad: false }), batchFor(cfg, 2, 8));
    assert.equal(f.audioTokens !== undefined, variant !== 'visual-mae');
    assert.equal(f.videoTokens !== undefined, variant !== 'audio-mae');
  }
  assert.throws(
    () =>
      CAVMAE.create(resolveConfig({ ...MICRO, variant: 'cav' })).forward(
        new Tape(),
        batchFor(resolveConfig(MICRO), 2, 1),
        { maeLossWeight: 1, rng: new Rng(1) },
      ),
    /no decoder/,
  );
  assert.throws(
    () => resolveConfig({ ...MICRO, variant: 'vanilla-av-mae' }),
    /modality_specific_depth" must be 0/,
  );
  assert.throws(() => resolveConfig({ ...MICRO, variant: 'nope' }), /"variant" must be one of/);
  assert.throws(() => resolveConfig({ ...MICRO, embed_dim: 18 }), /not divisible|multiple of 4/);
  assert.throws(() => resolveConfig({ ...MICRO, bogus: 1 }), /unknown key "bogus"/);
});

test('options: chained shared layers, bidirectional and grouped contrast, structured masking, mask ratio', () => {
  const base = resolveConfig({ ...MICRO, modality_specific_depth: 1, shared_depth: 2 });
  const model = CAVMAE.create(base, { seed: 9 });
  const batch = batchFor(base, 4, 10);
  const noise = {
    noiseA: new Rng(11).fillUniform(new Float32Array(4 * 16)),
    noiseV: new Rng(12).fillUniform(new Float32Array(4 * 4)),
  };
  const run = (opts: object, cfg = base): ReturnType<CAVMAE['forward']> => {
    const m = cfg === base ? model : CAVMAE.create(cfg);
    if (m !== model) m.arena.data.set(model.arena.data);
    return m.forward(new Tape({ grad: false }), batch, { ...noise, ...opts });
  };
  const ref = run({});
  const chained = run(
    {},
    resolveConfig({ ...MICRO, modality_specific_depth: 1, shared_depth: 2, chain_shared_layers: true }),
  );
  assert.equal(chained.lossMae.item(), ref.lossMae.item());
  assert.notEqual(chained.lossC.item(), ref.lossC.item());
  const bi = run({ bidirectional: true });
  assert.notEqual(bi.lossC.item(), ref.lossC.item());
  // Groups: the loss is the mean of the per-group losses, each over its own samples only.
  const grouped = run({ contrastiveGroups: 2 });
  const tp = new Tape({ grad: false });
  const a = ops.l2Normalize(tp, ref.audioRep!);
  const v = ops.l2Normalize(tp, ref.videoRep!);
  const half = (lo: number): number =>
    ops
      .infoNce(
        tp,
        new Tensor([2, 16], a.data.slice(lo * 16, (lo + 2) * 16)),
        new Tensor([2, 16], v.data.slice(lo * 16, (lo + 2) * 16)),
      )
      .loss.item();
  assert.ok(Math.abs(grouped.lossC.item() - (0.01 * (half(0) + half(2))) / 2) < 1e-7);
  for (const maskMode of ['time', 'freq', 'tf'] as const) {
    const o = run({ maskMode, rng: new Rng(13) });
    assert.equal(o.maskA!.lenKeep, 4, `${maskMode}: int(16 * 0.25) tokens kept`);
    // time: int(2 * 0.75) = 1 of the 2 time columns removed -> 8 marked tokens + 4 more by noise.
    assert.ok(Number.isFinite(o.loss.item()));
  }
  const m50 = run({ maskRatioA: 0.5, maskRatioV: 0.5 });
  assert.equal(m50.maskA!.lenKeep, 8);
  assert.equal(m50.maskV!.lenKeep, 2);
});

test('fine-tuning model: every mode forward and backward (BCE and CE), head parameters last', () => {
  const cfg = resolveConfig({ ...MICRO, model: 'cavmae-ft', label_dim: 5, decoder_embed_dim: undefined });
  const model = CAVMAEFT.create(cfg, { seed: 14 });
  const names = model.arena.names();
  assert.deepEqual(names.slice(-4), [
    'mlp_head.0.weight',
    'mlp_head.0.bias',
    'mlp_head.1.weight',
    'mlp_head.1.bias',
  ]);
  // All trainable (tr_pos): one range; the head is one contiguous range at the end.
  assert.equal(model.arena.trainableRanges().length, 1);
  assert.deepEqual(
    model.arena.trainableRanges((p) => p.name.startsWith('mlp_head.')),
    [{ offset: model.arena.size - (16 * 2 + 16 * 5 + 5), size: 16 * 2 + 16 * 5 + 5 }],
  );
  const batch = batchFor(cfg, 3, 15);
  const targets = new Float32Array(15).map((_, i) => (i % 5 === i % 3 ? 1 : 0));
  for (const mode of FT_MODES) {
    for (const loss of ['bce', 'ce'] as const) {
      model.arena.zeroGrad();
      const tp = new Tape();
      const logits = model.forward(tp, batch, mode);
      const l =
        loss === 'bce' ? ops.bceWithLogits(tp, logits, targets) : ops.crossEntropy(tp, logits, targets);
      tp.backward(l);
      assert.ok(allFinite(model.arena.grad), `${mode} ${loss}`);
      assert.ok(maxAbs(model.arena.get('mlp_head.1.weight').grad!) > 0);
      assert.ok(
        maxAbs(model.arena.get('pos_embed_a').grad!) > 0 ===
          (mode !== 'videoonly' && mode !== 'missingvideoonly'),
        `${mode}: pos_embed_a gradient`,
      );
    }
  }
});

test('whole-model gradients by finite differences (variants without golden data)', () => {
  // Directional derivatives over ALL trainable parameters at once, so the signal dwarfs float32
  // round-off: along the gradient itself (g·d = |g|) and along two random unit directions.
  const cases: Record<string, unknown>[] = [
    { ...MICRO, variant: 'audio-mae' },
    { ...MICRO, variant: 'vanilla-av-mae', modality_specific_depth: 0, shared_depth: 2 },
    { ...MICRO, bidirect_contrast: true, contrastive_groups: 2, contrast_loss_weight: 1 },
  ];
  for (const c of cases) {
    const cfg = resolveConfig(c);
    const model = CAVMAE.create(cfg, { seed: 16 });
    const batch = batchFor(cfg, 4, 17);
    const opts = {
      noiseA: new Rng(18).fillUniform(new Float32Array(4 * 16)),
      noiseV: new Rng(19).fillUniform(new Float32Array(4 * 4)),
    };
    const tp = new Tape();
    const out = model.forward(tp, batch, opts);
    tp.backward(out.loss);
    const [range] = model.arena.trainableRanges();
    const theta = model.arena.data.subarray(range.offset, range.offset + range.size);
    const grad = Float64Array.from(model.arena.grad.subarray(range.offset, range.offset + range.size));
    const orig = Float32Array.from(theta);
    const lossAlong = (d: Float64Array, h: number): number => {
      for (let i = 0; i < theta.length; i++) theta[i] = orig[i] + h * d[i];
      const l = model.forward(new Tape({ grad: false }), batch, opts).loss.item();
      theta.set(orig);
      return l;
    };
    const unit = (v: Float64Array): Float64Array => {
      const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      return v.map((x) => x / n);
    };
    const rng = new Rng(20);
    const dirs = [
      unit(grad),
      unit(new Float64Array(grad.length).map(() => rng.normal())),
      unit(new Float64Array(grad.length).map(() => rng.normal())),
    ];
    const gnorm = Math.sqrt(grad.reduce((s, x) => s + x * x, 0));
    dirs.forEach((d, k) => {
      const h = 1e-2 / Math.max(1, gnorm); // steep losses (lambda_c = 1, tau = 0.05) need a smaller step
      const fd = (lossAlong(d, h) - lossAlong(d, -h)) / (2 * h);
      const an = d.reduce((s, x, i) => s + x * grad[i], 0);
      const err = Math.abs(fd - an) / gnorm;
      if (process.env.FD_VERBOSE)
        console.log(
          `${cfg.variant} direction ${k}: fd ${fd.toExponential(4)} analytic ${an.toExponential(4)} |err|/|g| ${err.toExponential(2)}`,
        );
      assert.ok(
        err < 1e-3,
        `${cfg.variant}${cfg.bidirect_contrast ? ' (bidirectional, 2 groups)' : ''} direction ${k}: fd ${fd} vs analytic ${an} (|g| ${gnorm})`,
      );
    });
  }
});
