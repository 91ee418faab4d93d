/**
 * CAVMAE against the official implementation's golden tensors
 * (test/fixtures/official/model_small/cavmae_small_io.safetensors), through both the .pth and the
 * .safetensors checkpoint, replaying the reference's mask noise.
 *
 * Tolerances (fixtures/README.md): tensors max|ours - ref| <= 1e-4 · max|ref|, losses 1e-5
 * relative, masks exact, gradients 1e-3 relative.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readSafetensorsF32 } from '../../src/io/safetensors.js';
import { Tape } from '../../src/autograd/tape.js';
import * as ops from '../../src/autograd/ops.js';
import { runBlocks } from '../../src/nn/block.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { CAVMAE } from '../../src/models/cavmae.js';
import { loadModel } from '../../src/models/registry.js';
import { assertClose, fixture, hasOfficialFixtures } from '../helpers.js';

const TENSOR_RTOL = 1e-4;
const LOSS_RTOL = 1e-5;
const GRAD_RTOL = 1e-3;

const skip = !hasOfficialFixtures();
const io = skip ? new Map() : readSafetensorsF32(fixture('model_small', 'cavmae_small_io.safetensors'));
const ref = (k: string): { shape: number[]; data: Float32Array } => {
  const t = io.get(k);
  if (!t) throw new Error(`golden tensor ${k} missing`);
  return t;
};
const input = (k: string): Tensor => new Tensor(ref(k).shape, ref(k).data);

function loadSmall(format: 'pth' | 'safetensors'): CAVMAE {
  // The .pth (as released) carries no config: pass the preset. The safetensors has it in its metadata.
  const { model, report } = loadModel(fixture('model_small', `cavmae_small.${format}`), {
    config: format === 'pth' ? 'small-fixture' : undefined,
    grad: true,
  });
  assert.deepEqual([report.missing, report.unexpected], [[], []]);
  assert.ok(model instanceof CAVMAE);
  return model;
}

for (const format of ['safetensors', 'pth'] as const) {
  test(`CAVMAE.forward + backward equal the official outputs (${format})`, { skip }, () => {
    const model = loadSmall(format);
    const tp = new Tape();
    const batch = { audio: input('input.audio'), image: input('input.image') };
    const out = model.forward(tp, batch, {
      noiseA: ref('mask_a.noise').data,
      noiseV: ref('mask_v.noise').data,
    });
    // Masks and their index bookkeeping: exact.
    assert.deepEqual(Array.from(out.maskA!.mask), Array.from(ref('out.mask_a').data));
    assert.deepEqual(Array.from(out.maskV!.mask), Array.from(ref('out.mask_v').data));
    for (const [m, k] of [
      [out.maskA!, 'mask_a'],
      [out.maskV!, 'mask_v'],
    ] as const) {
      assert.deepEqual(Array.from(m.idsKeep), Array.from(ref(`${k}.ids_keep`).data));
      assert.deepEqual(Array.from(m.idsRestore), Array.from(ref(`${k}.ids_restore`).data));
      assert.deepEqual(Array.from(m.idsShuffle), Array.from(ref(`${k}.ids_shuffle`).data));
    }
    const losses: [string, Tensor][] = [
      ['loss', out.loss],
      ['loss_mae', out.lossMae],
      ['loss_mae_a', out.lossMaeA],
      ['loss_mae_v', out.lossMaeV],
      ['loss_c', out.lossC],
    ];
    for (const [k, v] of losses) assertClose(v.data, ref(`out.${k}`).data, { rtol: LOSS_RTOL, what: k });
    assert.equal(Math.fround(out.cAcc), ref('out.c_acc').data[0]);
    assertClose(out.predA!.data, ref('out.pred_a').data, { rtol: TENSOR_RTOL, what: 'pred_a' });
    assertClose(out.predV!.data, ref('out.pred_v').data, { rtol: TENSOR_RTOL, what: 'pred_v' });
    assertClose(out.latent!.data, ref('enc.latent').data, { rtol: TENSOR_RTOL, what: 'enc.latent' });
    assertClose(out.latentCA!.data, ref('enc.latent_c_a').data, {
      rtol: TENSOR_RTOL,
      what: 'enc.latent_c_a',
    });
    assertClose(out.latentCV!.data, ref('enc.latent_c_v').data, {
      rtol: TENSOR_RTOL,
      what: 'enc.latent_c_v',
    });
    assertClose(out.audioRep!.data, ref('contrast.audio_rep').data, { rtol: TENSOR_RTOL, what: 'audio_rep' });
    assertClose(out.videoRep!.data, ref('contrast.video_rep').data, { rtol: TENSOR_RTOL, what: 'video_rep' });
    assertClose(out.logits![0], ref('contrast.logits').data, { rtol: TENSOR_RTOL, what: 'contrast logits' });

    tp.backward(out.loss);
    let n = 0;
    for (const k of io.keys()) {
      if (!k.startsWith('grad.')) continue;
      assertClose(model.arena.get(k.slice(5)).grad!, ref(k).data, { rtol: GRAD_RTOL, what: k });
      n++;
    }
    assert.equal(n, 5);
    // Fixed position tables get no gradient.
    assert.equal(Math.max(...model.arena.get('pos_embed_a').grad!.map(Math.abs)), 0);
  });
}

test('CAVMAE.forwardFeat and its intermediates equal the official forward_feat', { skip }, () => {
  const model = loadSmall('safetensors');
  const tp = new Tape({ grad: false });
  const batch = { audio: input('input.audio'), image: input('input.image') };
  const f = model.forwardFeat(tp, batch);
  assertClose(f.audioTokens!.data, ref('feat.audio_tokens').data, {
    rtol: TENSOR_RTOL,
    what: 'audio_tokens',
  });
  assertClose(f.videoTokens!.data, ref('feat.video_tokens').data, {
    rtol: TENSOR_RTOL,
    what: 'video_tokens',
  });
  const pa = ops.meanTokens(tp, f.audioTokens!);
  const pv = ops.meanTokens(tp, f.videoTokens!);
  assertClose(pa.data, ref('feat.audio_pooled').data, { rtol: TENSOR_RTOL, what: 'audio_pooled' });
  assertClose(pv.data, ref('feat.video_pooled').data, { rtol: TENSOR_RTOL, what: 'video_pooled' });
  assertClose(ops.l2Normalize(tp, pa).data, ref('feat.audio_pooled_l2n').data, {
    rtol: TENSOR_RTOL,
    what: 'audio_pooled_l2n',
  });
  assertClose(ops.l2Normalize(tp, pv).data, ref('feat.video_pooled_l2n').data, {
    rtol: TENSOR_RTOL,
    what: 'video_pooled_l2n',
  });
  // Intermediates: the raw patch embeddings, then blocks 0 and 10 of each modality.
  const enc = model.encoder;
  assertClose(enc.patch_embed_a!.forwardAudio(tp, batch.audio).data, ref('feat.inter.patch_embed_a').data, {
    rtol: TENSOR_RTOL,
    what: 'patch_embed_a',
  });
  assertClose(enc.patch_embed_v!.forwardImage(tp, batch.image).data, ref('feat.inter.patch_embed_v').data, {
    rtol: TENSOR_RTOL,
    what: 'patch_embed_v',
  });
  let a = runBlocks(tp, enc.blocks_a.slice(0, 1), enc.embedAudio(tp, batch.audio));
  assertClose(a.data, ref('feat.inter.blocks_a.0').data, { rtol: TENSOR_RTOL, what: 'blocks_a.0' });
  a = runBlocks(tp, enc.blocks_a.slice(1), a);
  assertClose(a.data, ref('feat.inter.blocks_a.10').data, { rtol: TENSOR_RTOL, what: 'blocks_a.10' });
  let v = runBlocks(tp, enc.blocks_v.slice(0, 1), enc.embedVideo(tp, batch.image));
  assertClose(v.data, ref('feat.inter.blocks_v.0').data, { rtol: TENSOR_RTOL, what: 'blocks_v.0' });
  v = runBlocks(tp, enc.blocks_v.slice(1), v);
  assertClose(v.data, ref('feat.inter.blocks_v.10').data, { rtol: TENSOR_RTOL, what: 'blocks_v.10' });
});

test('forwardInpaint returns the predictions, masks and unweighted pixel losses', { skip }, () => {
  const model = loadSmall('safetensors');
  const out = model.forwardInpaint(
    new Tape({ grad: false }),
    { audio: input('input.audio'), image: input('input.image') },
    {
      noiseA: ref('mask_a.noise').data,
      noiseV: ref('mask_v.noise').data,
    },
  );
  assertClose(out.predA!.data, ref('out.pred_a').data, { rtol: TENSOR_RTOL, what: 'inpaint pred_a' });
  assertClose(out.predV!.data, ref('out.pred_v').data, { rtol: TENSOR_RTOL, what: 'inpaint pred_v' });
  assertClose(out.lossPixelA.data, ref('out.loss_mae_a').data, { rtol: LOSS_RTOL, what: 'loss_pixel_a' });
  assertClose(out.lossPixelV.data, ref('out.loss_mae_v').data, { rtol: LOSS_RTOL, what: 'loss_pixel_v' });
  assert.deepEqual(Array.from(out.maskA!.mask), Array.from(ref('out.mask_a').data));
});
