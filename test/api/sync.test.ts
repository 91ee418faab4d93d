/**
 * The inference API with CAV-MAE Sync checkpoints, against the Sync goldens of the official code
 * (test/fixtures/sync: forward_feat tokens and global tokens of a pretraining model, logits of
 * a fine-tuned aggregator model): load, embed (pair vectors, search vectors), classify,
 * localize, reconstruct; and what a fine-tuned Sync model refuses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { CavMae } from '../../src/api/cavmae.js';
import { l2NormalizeRows } from '../../src/eval/retrieval.js';
import { readSafetensorsF32 } from '../../src/io/safetensors.js';
import { assertClose, repoRoot } from '../helpers.js';

const dir = join(repoRoot(), 'test', 'fixtures', 'sync');
const D = 12;

function rows(x: Float32Array, b: number, n: number): Float32Array {
  return x.slice(b * n, (b + 1) * n);
}

test('Sync pretraining checkpoint: embeddings are the golden global tokens (cls) or patch means (no cls), L2-normalised', async () => {
  for (const name of ['cls_heads', 'no_cls']) {
    const model = await CavMae.load(join(dir, `sync_${name}.safetensors`));
    const io = readSafetensorsF32(join(dir, `sync_${name}_io.safetensors`));
    assert.equal(model.isSync, true);
    assert.equal(model.pairs, 16);
    assert.equal(model.clipStrategy, 'diagonal_mean', 'no strategy recorded: the Sync default');
    assert.equal(model.indexDim, 16 * D);
    const audio = io.get('input.audio')!.data; // [3, 48, 128]
    const image = io.get('input.image')!.data; // [3, 3, 48, 48]
    const La = 8 * 3;
    const Lv = 9;
    for (let b = 0; b < 3; b++) {
      const a = await model.embedAudio(
        { fbank: rows(audio, b, 48 * 128), normalized: true },
        { tokens: true },
      );
      const v = await model.embedImage(rows(image, b, 3 * 48 * 48), { tokens: true });
      assert.equal(a.pairCount, 1);
      // Tokens: the contrastive stream's patch tokens (global token and registers removed), 1e-4 relative.
      assertClose(a.tokens!, rows(io.get('feat.audio_tokens')!.data, b, La * D), {
        rtol: 1e-4,
        atol: 1e-5,
        what: `${name} audio tokens ${b}`,
      });
      assertClose(v.tokens!, rows(io.get('feat.video_tokens')!.data, b, Lv * D), {
        rtol: 1e-4,
        atol: 1e-5,
        what: `${name} video tokens ${b}`,
      });
      let wantA: Float32Array;
      let wantV: Float32Array;
      if (name === 'cls_heads') {
        wantA = l2NormalizeRows(rows(io.get('feat.cls_a')!.data, b, D), 1, D);
        wantV = l2NormalizeRows(rows(io.get('feat.cls_v')!.data, b, D), 1, D);
      } else {
        const mean = (t: Float32Array, L: number): Float32Array => {
          const m = new Float64Array(D);
          for (let l = 0; l < L; l++) for (let d = 0; d < D; d++) m[d] += t[l * D + d] / L;
          return l2NormalizeRows(m, 1, D);
        };
        wantA = mean(rows(io.get('feat.audio_tokens')!.data, b, La * D), La);
        wantV = mean(rows(io.get('feat.video_tokens')!.data, b, Lv * D), Lv);
      }
      assertClose(a.pooled, wantA, { atol: 2e-5, what: `${name} audio vector ${b}` });
      assertClose(v.pooled, wantV, { atol: 2e-5, what: `${name} visual vector ${b}` });
      // A single pair stands for F equal pairs: the search vector is it repeated, scaled by 1/sqrt(F).
      const s = model.searchVector(a);
      assert.equal(s.length, 16 * D);
      for (let f = 0; f < 16; f++)
        for (let d = 0; d < D; d++) assert.equal(s[f * D + d], a.pooled[d] * (1 / 4));
    }
  }
});

test('Sync pretraining checkpoint: an audio clip is cut into F segments, the search vector is diagonal_mean as one dot product', async () => {
  const model = await CavMae.load(join(dir, 'sync_cls_heads.safetensors'));
  const io = readSafetensorsF32(join(dir, 'sync_cls_heads_io.safetensors'));
  // A raw 1024-row fbank: padded/cut, normalised and cut into 16 segments of 48 rows.
  const raw = new Float32Array(1024 * 128);
  for (let i = 0; i < raw.length; i++) raw[i] = Math.sin(i * 0.001) * 3 - 4;
  const a = await model.embedAudio(raw);
  assert.equal(a.pairCount, 16);
  assert.equal(a.pairs!.length, 16 * D);
  const image = rows(io.get('input.image')!.data, 0, 3 * 48 * 48);
  const v = await model.embedImage(image);
  const sa = model.searchVector(a);
  const sv = model.searchVector(v);
  // dot(search vectors) = mean over pairs of q_f . c_f (diagonal_mean with the image as 16 equal frames).
  let dot = 0;
  for (let i = 0; i < sa.length; i++) dot += sa[i] * sv[i];
  let want = 0;
  for (let f = 0; f < 16; f++) for (let d = 0; d < D; d++) want += (a.pairs![f * D + d] * v.pooled[d]) / 16;
  assert.ok(Math.abs(dot - want) < 1e-6, `${dot} vs ${want}`);
  // Each segment embedded alone gives its pair vector (pairs are independent forward passes).
  const seg5 = await model.embedAudio({ fbank: new Float32Array(48 * 128), normalized: true });
  assert.equal(seg5.pairCount, 1);
});

test('Sync fine-tuned checkpoint: classify runs the aggregator on the clip pairs (golden logits), and refuses features', async () => {
  const model = await CavMae.load(join(dir, 'sync_ft_mm_cls.safetensors'));
  const io = readSafetensorsF32(join(dir, 'sync_ft_mm_cls_io.safetensors'));
  assert.equal(model.capabilities.classify, true);
  assert.equal(model.capabilities.embedAudio, false);
  const F = 3;
  const audio = io.get('input.audio')!.data; // [6, 32, 128] = 2 clips x 3 pairs
  const image = io.get('input.image')!.data; // [6, 3, 32, 32]
  const logits = io.get('out.logits')!.data; // [2, 5]
  for (let b = 0; b < 2; b++) {
    const r = await model.classify({
      audio: { fbank: rows(audio, b, F * 32 * 128), normalized: true },
      image: rows(image, b, F * 3 * 32 * 32),
    });
    assert.equal(r.mode, 'multimodal');
    assert.deepEqual(r.frames, [0, 1, 2]);
    assertClose(r.logits, rows(logits, b, 5), { rtol: 1e-4, atol: 1e-5, what: `logits clip ${b}` });
    let sum = 0;
    for (const p of r.probabilities) sum += p;
    assert.ok(r.activation === 'softmax' ? Math.abs(sum - 1) < 1e-5 : true);
  }
  await assert.rejects(
    model.classify(
      {
        audio: { fbank: rows(audio, 0, F * 32 * 128), normalized: true },
        image: rows(image, 0, 3 * 3 * 32 * 32),
      },
      { mode: 'audioonly' },
    ),
    /reads "multimodal"/,
  );
  await assert.rejects(
    model.embedAudio({ fbank: rows(audio, 0, 32 * 128), normalized: true }),
    /fine-tuned CAV-MAE Sync model gives clip logits/,
  );
});

test('Sync pretraining checkpoint: localize one picture, reconstruct one pair', async () => {
  const model = await CavMae.load(join(dir, 'sync_cls_heads.safetensors'));
  const io = readSafetensorsF32(join(dir, 'sync_cls_heads_io.safetensors'));
  const audio = { fbank: rows(io.get('input.audio')!.data, 0, 48 * 128), normalized: true };
  const image = rows(io.get('input.image')!.data, 0, 3 * 48 * 48);
  const loc = await model.localize(image, audio, { size: 48 });
  assert.equal(loc.gridHeight, 3);
  assert.equal(loc.heat.length, 48 * 48);
  assert.equal(loc.frames, undefined, 'one picture: one map');
  const r = await model.reconstruct({ audio, image }, { seed: 3 });
  assert.equal(r.pair, 8);
  assert.ok(r.mseAudio! > 0 && r.mseVisual! > 0);
  assert.equal(r.predA!.length, 24 * 256);
});
