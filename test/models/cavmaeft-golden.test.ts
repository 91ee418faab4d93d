/**
 * CAVMAEFT against the official implementation (test/fixtures/official/model_small/
 * cavmaeft_small_io.safetensors): the five forward modes, forward_feat ('av' and 'a'), and a
 * fine-tuning model initialised from the pretraining checkpoint with strict=False (encoder from
 * cavmae_small through both .pth and .safetensors, head from cavmaeft_small).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readSafetensorsF32 } from '../../src/io/safetensors.js';
import { loadStateDict } from '../../src/io/checkpoint.js';
import { Tape } from '../../src/autograd/tape.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { CAVMAEFT, FT_MODES } from '../../src/models/cavmae-ft.js';
import { loadInto, loadModel } from '../../src/models/registry.js';
import { assertClose, fixture, hasOfficialFixtures } from '../helpers.js';

const skip = !hasOfficialFixtures();
const io = skip ? new Map() : readSafetensorsF32(fixture('model_small', 'cavmaeft_small_io.safetensors'));
const ref = (k: string): { shape: number[]; data: Float32Array } => {
  const t = io.get(k);
  if (!t) throw new Error(`golden tensor ${k} missing`);
  return t;
};
const batch = (): { audio: Tensor; image: Tensor } => ({
  audio: new Tensor(ref('input.audio').shape, ref('input.audio').data),
  image: new Tensor(ref('input.image').shape, ref('input.image').data),
});

test('CAVMAEFT: logits of all five modes and forward_feat equal the official ones', { skip }, () => {
  const { model, config, report } = loadModel(fixture('model_small', 'cavmaeft_small.safetensors'));
  assert.ok(model instanceof CAVMAEFT);
  assert.equal(config.label_dim, 10);
  assert.equal(config.tr_pos, true, 'CAVMAEFT defaults to trainable position tables');
  assert.deepEqual([report.missing, report.unexpected], [[], []]);
  for (const mode of FT_MODES) {
    const logits = model.forward(new Tape({ grad: false }), batch(), mode);
    assert.deepEqual(logits.shape, [3, 10]);
    assertClose(logits.data, ref(`logits.${mode}`).data, { rtol: 1e-4, what: `logits ${mode}` });
  }
  // Single-modality modes need only their input.
  const { audio } = batch();
  assertClose(
    model.forward(new Tape({ grad: false }), { audio }, 'audioonly').data,
    ref('logits.audioonly').data,
    { rtol: 1e-4 },
  );
  assert.throws(() => model.forward(new Tape({ grad: false }), { audio }, 'multimodal'), /needs "image"/);
  const av = model.forwardFeat(new Tape({ grad: false }), batch(), 'av');
  assertClose(av.audioTokens!.data, ref('feat_av.audio_tokens').data, { rtol: 1e-4, what: 'feat av audio' });
  assertClose(av.videoTokens!.data, ref('feat_av.video_tokens').data, { rtol: 1e-4, what: 'feat av video' });
  const a = model.forwardFeat(new Tape({ grad: false }), { audio }, 'a');
  assert.equal(a.videoTokens, undefined);
  assertClose(a.audioTokens!.data, ref('feat_a.audio_tokens').data, { rtol: 1e-4, what: 'feat a audio' });
});

for (const format of ['pth', 'safetensors'] as const) {
  test(`CAVMAEFT from the pretraining checkpoint with strict=False (${format})`, { skip }, () => {
    const { model } = loadModel(fixture('model_small', 'cavmaeft_small.safetensors'));
    assert.ok(model instanceof CAVMAEFT);
    const pre = loadStateDict(fixture('model_small', `cavmae_small.${format}`));
    const report = loadInto(model, pre.tensors, `cavmae_small.${format}`);
    // PyTorch's report for this load (fixtures/model_small/cavmaeft_small_io.json).
    assert.deepEqual(report.missing, [
      'mlp_head.0.weight',
      'mlp_head.0.bias',
      'mlp_head.1.weight',
      'mlp_head.1.bias',
    ]);
    assert.ok(
      report.unexpected.includes('mask_token') &&
        report.unexpected.every((k) => k === 'mask_token' || k.startsWith('decoder_')),
    );
    for (const mode of ['multimodal', 'audioonly', 'videoonly'] as const) {
      const logits = model.forward(new Tape({ grad: false }), batch(), mode);
      assertClose(logits.data, ref(`ft_from_pretrain.logits.${mode}`).data, {
        rtol: 1e-4,
        what: `ft_from_pretrain ${mode}`,
      });
    }
  });
}

test(
  'loading a pretraining checkpoint as a fine-tuning model keeps a fresh head and reports it',
  { skip },
  () => {
    const { model, report, config } = loadModel(fixture('model_small', 'cavmae_small.safetensors'), {
      kind: 'cavmae-ft',
      overrides: { label_dim: 7 },
    });
    assert.ok(model instanceof CAVMAEFT);
    assert.equal(config.label_dim, 7);
    assert.equal(config.tr_pos, true);
    assert.deepEqual(report.missing, [
      'mlp_head.0.weight',
      'mlp_head.0.bias',
      'mlp_head.1.weight',
      'mlp_head.1.bias',
    ]);
    assert.equal(report.unexpected.length, 1 + 2 + 2 + 2 + 20 * 2 + 2 + 4);
    // docs/reference.md#initialisation head init: LayerNorm 1/0, xavier weight, zero bias.
    assert.ok(model.arena.get('mlp_head.0.weight').data.every((x) => x === 1));
    assert.ok(model.arena.get('mlp_head.1.bias').data.every((x) => x === 0));
    const bound = Math.sqrt(6 / (48 + 7));
    const w = model.arena.get('mlp_head.1.weight').data;
    assert.ok(w.every((x) => Math.abs(x) <= bound) && w.some((x) => x !== 0));
  },
);
