/** Building by config, saving and loading checkpoints (fp32 and bf16 storage), config resolution, key reports. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tape } from '../../src/autograd/tape.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { Rng } from '../../src/tensor/rng.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { CAVMAE } from '../../src/models/cavmae.js';
import { resolveConfig } from '../../src/models/config.js';
import { buildModel, loadModel, readConfigArg, saveModel } from '../../src/models/registry.js';
import { UserError } from '../../src/util/errors.js';
import { assertClose, fixture, hasOfficialFixtures } from '../helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'cavmae-registry-'));
const MICRO = {
  img_size: 32,
  audio_length: 32,
  embed_dim: 16,
  num_heads: 2,
  modality_specific_depth: 1,
  shared_depth: 2,
  decoder_embed_dim: 8,
  decoder_depth: 1,
  decoder_num_heads: 2,
  norm_pix_loss: true,
};

function run(model: CAVMAE): Float32Array {
  const rng = new Rng(3);
  const batch = {
    audio: new Tensor([2, 32, 128], rng.fillNormal(new Float32Array(2 * 32 * 128))),
    image: new Tensor([2, 3, 32, 32], rng.fillNormal(new Float32Array(2 * 3 * 32 * 32))),
  };
  const out = model.forward(new Tape({ grad: false }), batch, { rng: new Rng(4) });
  return Float32Array.from([out.loss.item(), ...out.predA!.data]);
}

test('save then load (fp32): same config (extras included), same parameters, same outputs', () => {
  const cfg = resolveConfig({
    ...MICRO,
    chain_shared_layers: true,
    bidirect_contrast: true,
    contrastive_groups: 2,
    contrast_loss_weight: 0.1,
  });
  const model = CAVMAE.create(cfg, { seed: 1 });
  const path = join(tmp, 'm.safetensors');
  saveModel(path, model);
  const meta = readSafetensors(path).metadata;
  assert.equal(meta.class, 'CAVMAE');
  assert.ok(meta['cavmae.config']);
  const { model: back, config, report } = loadModel(path);
  assert.deepEqual(config, cfg);
  assert.deepEqual([report.missing, report.unexpected], [[], []]);
  assert.deepEqual(back.arena.data, model.arena.data);
  assert.ok(back instanceof CAVMAE);
  assert.deepEqual(run(back), run(model));
  // The stored preprocessing follows the config (32 frames, 32 px), not the base defaults.
  const pre = JSON.parse(meta['cavmae.preprocess']) as {
    audio: { targetLength: number; melBins: number };
    image: { size: number };
  };
  assert.deepEqual([pre.audio.targetLength, pre.audio.melBins, pre.image.size], [32, 128, 32]);
});

test('bf16 storage halves the file; values are the bf16 roundings; outputs stay close', () => {
  const cfg = resolveConfig(MICRO);
  const model = CAVMAE.create(cfg, { seed: 2 });
  const f32 = join(tmp, 'f32.safetensors');
  const b16 = join(tmp, 'b16.safetensors');
  saveModel(f32, model);
  saveModel(b16, model, { dtype: 'BF16' });
  const st = readSafetensors(b16);
  assert.equal(st.tensors.get('norm.weight')!.dtype, 'BF16');
  const { model: back } = loadModel(b16);
  const a = model.arena.data;
  const b = back.arena.data;
  for (let i = 0; i < a.length; i++) {
    // Round-to-nearest bf16 is within half an ulp of an 8-bit mantissa: 2^-9 relative.
    assert.ok(Math.abs(a[i] - b[i]) <= Math.abs(a[i]) * 2 ** -8, `param ${i}: ${a[i]} vs ${b[i]}`);
  }
  assertClose(run(back as CAVMAE), run(model), { rtol: 2e-2, what: 'outputs of the bf16-stored model' });
});

test('config arguments: presets, JSON files, fixture summaries, errors naming the file', () => {
  assert.equal(readConfigArg('tiny').embed_dim, 128);
  const p = join(tmp, 'cfg.json');
  writeFileSync(p, JSON.stringify({ embed_dim: 32, num_heads: 4 }));
  assert.deepEqual(readConfigArg(p), { embed_dim: 32, num_heads: 4 });
  const nested = join(tmp, 'summary.json');
  writeFileSync(nested, JSON.stringify({ class: 'CAVMAEFT', config: { embed_dim: 48, label_dim: 10 } }));
  assert.deepEqual(readConfigArg(nested), { embed_dim: 48, label_dim: 10, model: 'cavmae-ft' });
  assert.throws(
    () => readConfigArg(join(tmp, 'absent.json')),
    (e: unknown) => e instanceof UserError && /absent\.json: neither a preset/.test(e.message),
  );
  writeFileSync(p, '[1, 2]');
  assert.throws(() => readConfigArg(p), /cfg\.json: a config must be a JSON object/);
  assert.throws(
    () => resolveConfig({ embed_dim: 'wide' }, 'x.json'),
    /x\.json: "embed_dim" must be a number/,
  );
});

test(
  'loading refuses missing keys and (strict) unexpected ones, and infers presets from shapes',
  { skip: !hasOfficialFixtures() },
  () => {
    const model = buildModel(resolveConfig(MICRO), { seed: 5 });
    const partial = join(tmp, 'partial.safetensors');
    const sd = model.arena.stateDict();
    sd.delete('norm_a.weight');
    sd.set('extra.key', { shape: [1], data: new Float32Array(1) });
    writeSafetensors(partial, new Map([...sd].map(([k, v]) => [k, { dtype: 'F32' as const, ...v }])));
    assert.throws(
      () => loadModel(partial, { config: { ...MICRO } }),
      /partial\.safetensors: 1 parameter\(s\) missing from the checkpoint.*norm_a\.weight/,
    );
    const r = loadModel(partial, { config: { ...MICRO }, allowMissing: () => true });
    assert.deepEqual(r.report.missing, ['norm_a.weight']);
    assert.deepEqual(r.report.unexpected, ['extra.key']);
    assert.match(
      r.reportText,
      /_IncompatibleKeys\(missing_keys=\['norm_a\.weight'\], unexpected_keys=\['extra\.key'\]\)/,
    );
    assert.throws(() => loadModel(partial, { config: { ...MICRO }, strict: true }), /missing/);
    // The released .pth carries no config: its shapes identify the preset.
    const { config } = loadModel(fixture('model_small', 'cavmae_small.pth'));
    assert.equal(config.embed_dim, 48);
    assert.equal(config.decoder_depth, 2);
  },
);

test('a one-modality MAE fine-tunes as a one-modality CAVMAEFT (paper table 1)', () => {
  const pre = CAVMAE.create(resolveConfig({ ...MICRO, variant: 'audio-mae' }), { seed: 6 });
  const path = join(tmp, 'audio-mae.safetensors');
  saveModel(path, pre);
  const { model, config, report } = loadModel(path, { kind: 'cavmae-ft', overrides: { label_dim: 3 } });
  assert.equal(config.variant, 'audio-mae');
  assert.deepEqual(report.missing, [
    'mlp_head.0.weight',
    'mlp_head.0.bias',
    'mlp_head.1.weight',
    'mlp_head.1.bias',
  ]);
  assert.ok(report.unexpected.every((k) => k === 'mask_token' || k.startsWith('decoder_')));
  assert.ok(
    !model.arena
      .names()
      .some(
        (n) =>
          /^(patch_embed_v|modality_v|pos_embed_v|blocks_v|norm_v|norm)\./.test(n) ||
          n === 'modality_v' ||
          n === 'pos_embed_v',
      ),
  );
  const audio = new Tensor([2, 32, 128], new Rng(7).fillNormal(new Float32Array(2 * 32 * 128)));
  assert.ok(!(model instanceof CAVMAE));
  const logits = model.forward(new Tape({ grad: false }), { audio }, 'audioonly');
  assert.deepEqual(logits.shape, [2, 3]);
  assert.throws(
    () => model.forward(new Tape({ grad: false }), { audio }, 'multimodal'),
    /one modality: use mode audioonly/,
  );
  // Its audio features equal the pretraining model's forwardFeat (same encoder path).
  const a = model.forwardFeat(new Tape({ grad: false }), { audio }, 'a').audioTokens!;
  assert.deepEqual(a.data, pre.forwardFeat(new Tape({ grad: false }), { audio }).audioTokens!.data);
});
