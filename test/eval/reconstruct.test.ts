// Reconstruction views and panel (docs/reference.md#inpainting): the masked-patch MSE against PyTorch on the official
// predictions, the norm_pix_loss display mapping, the paste rule, spectrogram orientation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import sharp from 'sharp';
import { readSafetensorsF32 } from '../../src/io/safetensors.js';
import { normalizePatches, patchifyAudio, patchifyImage } from '../../src/nn/patch-embed.js';
import { Tensor } from '../../src/tensor/tensor.js';
import {
  composePanel,
  denormalizePatches,
  maskedPatchMse,
  reconstructionViews,
  spectrogramImage,
  unnormalizeImage,
} from '../../src/eval/reconstruct.js';
import { normalizeToTensor } from '../../src/vision/image.js';
import { UserError } from '../../src/util/errors.js';
import { assertClose, fixture, hasOfficialFixtures, randomArray, repoRoot } from '../helpers.js';

const golden = readSafetensorsF32(join(repoRoot(), 'test', 'fixtures', 'api', 'golden.safetensors'));

test(
  "maskedPatchMse of the official predictions equals forward_inpaint's loss from PyTorch (1e-5 relative)",
  { skip: !hasOfficialFixtures() && 'official fixtures missing' },
  () => {
    const io = readSafetensorsF32(fixture('model_small', 'cavmae_small_io.safetensors'));
    const audio = new Tensor([1, 128, 128], io.get('input.audio')!.data.slice(0, 128 * 128));
    const image = new Tensor([1, 3, 64, 64], io.get('input.image')!.data.slice(0, 3 * 64 * 64));
    const mseA = maskedPatchMse(
      io.get('out.pred_a')!.data.slice(0, 64 * 256),
      patchifyAudio(audio, 16),
      io.get('out.mask_a')!.data.slice(0, 64),
      256,
      true,
    );
    const mseV = maskedPatchMse(
      io.get('out.pred_v')!.data.slice(0, 16 * 768),
      patchifyImage(image, 16),
      io.get('out.mask_v')!.data.slice(0, 16),
      768,
      true,
    );
    assertClose([mseA], golden.get('inpaint.mse_a0')!.data, { rtol: 1e-5, what: 'audio MSE' });
    assertClose([mseV], golden.get('inpaint.mse_v0')!.data, { rtol: 1e-5, what: 'visual MSE' });
  },
);

test('denormalizePatches inverts the norm_pix_loss target normalisation (1e-5)', () => {
  const x = randomArray(6 * 48, 3, 2);
  for (let i = 0; i < x.length; i++) x[i] += Math.floor(i / 48); // per-patch offsets
  const n = normalizePatches(Float32Array.from(x), 6, 48);
  assertClose(denormalizePatches(n, x, 6, 48), x, { atol: 1e-5, what: 'round trip' });
});

test('views: masked = x·(1−m), pasted keeps visible pixels and takes the prediction where masked', () => {
  const T = 32;
  const S = 32;
  const audio = randomArray(T * 128, 1);
  const image = randomArray(3 * S * S, 2);
  const otherA = randomArray(T * 128, 3);
  const otherV = randomArray(3 * S * S, 4);
  const La = (128 / 16) * (T / 16);
  const Lv = (S / 16) ** 2;
  const maskA = Float32Array.from({ length: La }, (_, i) => (i % 3 === 0 ? 1 : 0));
  const maskV = Float32Array.of(0, 1, 1, 0);
  const v = reconstructionViews({
    audio,
    image,
    audioLength: T,
    imageSize: S,
    predA: patchifyAudio(new Tensor([1, T, 128], otherA), 16),
    predV: patchifyImage(new Tensor([1, 3, S, S], otherV), 16),
    maskA,
    maskV,
  });
  // Audio token f·(T/16) + t covers rows t·16.. (time) and columns f·16.. (mel) of [T, 128].
  for (let t = 0; t < T; t++)
    for (let f = 0; f < 128; f++) {
      const i = t * 128 + f;
      const m = maskA[Math.floor(f / 16) * (T / 16) + Math.floor(t / 16)];
      assert.equal(v.audio!.mask[i], m);
      assert.equal(v.audio!.masked[i], audio[i] * (1 - m));
      assert.equal(v.audio!.pasted[i], m ? otherA[i] : audio[i]);
    }
  for (let c = 0; c < 3; c++)
    for (let y = 0; y < S; y++)
      for (let x = 0; x < S; x++) {
        const i = (c * S + y) * S + x;
        const m = maskV[Math.floor(y / 16) * 2 + Math.floor(x / 16)];
        assert.equal(v.image!.pasted[i], m ? otherV[i] : image[i]);
      }
  // norm_pix_loss: a prediction equal to the normalised target pastes back the original.
  const targetV = normalizePatches(patchifyImage(new Tensor([1, 3, S, S], image), 16), Lv, 768);
  const np = reconstructionViews({ image, imageSize: S, predV: targetV, maskV, normPixLoss: true });
  assertClose(np.image!.pasted, image, { atol: 1e-5, what: 'norm_pix paste of the exact target' });
  assert.throws(
    () => reconstructionViews({ image, imageSize: S, predV: new Float32Array(5), maskV }),
    UserError,
  );
});

test('spectrograms are drawn with low frequencies at the bottom (origin=lower)', () => {
  const T = 4;
  const spec = new Float32Array(T * 128); // [T, 128]
  for (let t = 0; t < T; t++) spec[t * 128 + 0] = 1; // energy in mel bin 0 only
  const img = spectrogramImage(spec, T, 128, 0, 1);
  assert.deepEqual([img.width, img.height], [T, 128]);
  const px = (y: number) => Array.from(img.data.subarray(y * T * 3, y * T * 3 + 3));
  assert.deepEqual(px(127), [252, 231, 33], 'bottom row = bin 0 = high value (viridis yellow)');
  assert.deepEqual(px(0), [71, 1, 85], 'top row = bin 127 = low value (viridis purple)');
});

test('unnormalizeImage undoes the ImageNet normalisation (within one level)', () => {
  const data = Uint8Array.from({ length: 5 * 4 * 3 }, (_, i) => (i * 37) % 256);
  const back = unnormalizeImage(normalizeToTensor({ width: 5, height: 4, data }), 4, 5);
  assertClose(back.data, data, { atol: 1, what: 'pixels' });
});

test('the panel is a PNG with one row per modality', async () => {
  const S = 32;
  const T = 64;
  const base = {
    audio: randomArray(T * 128, 5),
    image: randomArray(3 * S * S, 6),
    audioLength: T,
    imageSize: S,
  };
  const full = reconstructionViews({
    ...base,
    predA: new Float32Array(8 * 4 * 256),
    maskA: new Float32Array(32).fill(1),
    predV: new Float32Array(4 * 768),
    maskV: Float32Array.of(1, 0, 0, 1),
  });
  const png = await composePanel(full, { mseAudio: 0.5, mseVisual: 0.25, title: 'clip' });
  const meta = await sharp(png).metadata();
  assert.equal(meta.format, 'png');
  assert.equal(meta.width, 12 + 3 * (224 + 12));
  const audioOnly = reconstructionViews({
    ...base,
    image: undefined,
    predA: new Float32Array(8 * 4 * 256),
    maskA: new Float32Array(32).fill(1),
  });
  const meta2 = await sharp(await composePanel(audioOnly, { mseAudio: 0.5 })).metadata();
  assert.ok(meta2.height! < meta.height! - 150, `one row is shorter: ${meta2.height} vs ${meta.height}`);
  await assert.rejects(composePanel({ audioLength: T, imageSize: S }), UserError);

  // Every text stays inside the picture at any tile size: the captions wrap, the titles shrink.
  for (const tile of [224, 128, 96]) {
    const opts = {
      mseAudio: 0.9171,
      mseVisual: 0.4729,
      normPixLoss: true,
      maskRatioA: 0.75,
      maskRatioV: 0.75,
      maskMode: 'time-frequency',
      tile,
      title: 'a_rather_long_clip_name_0123456789.mp4',
    };
    const { data, info } = await sharp(await composePanel(full, opts))
      .removeAlpha()
      .raw()
      .toBuffer({ resolveWithObject: true });
    assert.equal(info.width, 12 + 3 * (tile + 12));
    const inked = (x: number) => {
      for (let y = 0; y < info.height; y++) if (data[(y * info.width + x) * 3] < 200) return true;
      return false;
    };
    for (const x of [0, 1, 2, 3, info.width - 4, info.width - 3, info.width - 2, info.width - 1])
      assert.ok(!inked(x), `tile ${tile}: text reaches column ${x} of ${info.width}`);
  }
});
