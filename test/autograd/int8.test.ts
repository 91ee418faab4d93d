/**
 * int8 inference end to end (`Tape({ int8: true })`: linear layers u8 x s8, LayerNorm and fc1
 * handing quantised rows to the next GEMM, attention in int8 on AVX512-VNNI): the pooled
 * embeddings of a model against fp32, through the model and through the API's `int8` option.
 * Bound: cosine >= 0.999 per clip (measured on the demo task: >= 0.9999, docs/performance.md).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Tape } from '../../src/autograd/tape.js';
import * as ops from '../../src/autograd/ops.js';
import { Rng } from '../../src/tensor/rng.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { CAVMAE } from '../../src/models/cavmae.js';
import { presetConfig } from '../../src/models/config.js';
import { CavMae } from '../../src/api/cavmae.js';
import { kernels } from '../../src/kernels/index.js';

function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  return ab / Math.sqrt(aa * bb);
}

const MIN_COSINE = 0.999;

test(`int8 embeddings of the tiny model keep a cosine >= ${MIN_COSINE} to fp32 (model and API)`, async () => {
  // The tiny preset with 64-wide heads, as the base model's (the int8 attention kernels take 16..64).
  const cfg = presetConfig('tiny', { embed_dim: 128, num_heads: 2 });
  const model = CAVMAE.create(cfg, { seed: 3, grad: false });
  const B = 2;
  const rng = new Rng(5);
  const audio = new Tensor([B, cfg.audio_length, 128]);
  const image = new Tensor([B, 3, cfg.img_size, cfg.img_size]);
  rng.fillNormal(audio.data, 0, 1);
  rng.fillNormal(image.data, 0, 1);
  const pooled = (int8: boolean): { a: Float32Array; v: Float32Array } => {
    const tp = new Tape({ grad: false, int8 });
    const f = model.forwardFeat(tp, { audio, image });
    const a = ops.meanTokens(tp, f.audioTokens!).data.slice();
    const v = ops.meanTokens(tp, f.videoTokens!).data.slice();
    tp.reset();
    return { a, v };
  };
  const fp = pooled(false);
  const q = pooled(true);
  const D = cfg.embed_dim;
  for (let b = 0; b < B; b++) {
    for (const m of ['a', 'v'] as const) {
      const c = cosine(q[m].subarray(b * D, (b + 1) * D), fp[m].subarray(b * D, (b + 1) * D));
      assert.ok(c >= MIN_COSINE, `clip ${b} ${m}: cosine ${c} (${kernels().name} kernels)`);
    }
  }
  // The API's int8 option runs the same path.
  const api32 = CavMae.fromModel(model);
  const api8 = CavMae.fromModel(model, { int8: true });
  const one = audio.data.subarray(0, cfg.audio_length * 128);
  const img = image.data.subarray(0, 3 * cfg.img_size * cfg.img_size);
  const e32 = await api32.embedClip(one, img);
  const e8 = await api8.embedClip(one, img);
  assert.ok(cosine(e8.audio.pooled, e32.audio.pooled) >= MIN_COSINE, 'API int8 audio');
  assert.ok(cosine(e8.visual.pooled, e32.visual.pooled) >= MIN_COSINE, 'API int8 visual');
  assert.notDeepEqual(e8.audio.pooled, e32.audio.pooled, 'the int8 option changes the computation');
});
