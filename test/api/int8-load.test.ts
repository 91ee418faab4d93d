/**
 * Inference-only int8 models (`CavMae.load(path, { int8: true })`, `create(config, { int8: true
 * })`): every linear layer's and patch embedding's weight is held only as its int8 quantisation,
 * never in fp32. Checked: the outputs are bit-identical to the int8 path over an fp32 model (an
 * int8 tape quantising the fp32 weights itself: what int8 was before), for a CAV-MAE, a Sync
 * and a fine-tuned model, from safetensors (fp32 and bf16 storage) and .pth; no fp32 copy of a
 * GEMM weight exists; fp32 / bf16 use, training and saving are refused with a clear error.
 * Tolerance: none (exact equality).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CavMae } from '../../src/api/cavmae.js';
import { Tape } from '../../src/autograd/tape.js';
import * as ops from '../../src/autograd/ops.js';
import {
  CAVMAE,
  CAVMAEFT,
  loadModel,
  presetConfig,
  saveModel,
  type AnyModel,
} from '../../src/models/index.js';
import { Rng } from '../../src/tensor/rng.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { UserError } from '../../src/util/errors.js';
import { FIXTURE_PTH } from './models.js';
import { hasOfficialFixtures, randomArray } from '../helpers.js';

// 64-wide heads, as the base model's (the int8 attention kernels take head widths 16..64).
const TINY = presetConfig('tiny', { embed_dim: 128, num_heads: 2 });

function inputs(
  cfg: { audio_length: number; img_size: number },
  B: number,
): { audio: Tensor; image: Tensor } {
  const rng = new Rng(11);
  const audio = new Tensor([B, cfg.audio_length, 128]);
  const image = new Tensor([B, 3, cfg.img_size, cfg.img_size]);
  rng.fillNormal(audio.data, 0, 1);
  rng.fillNormal(image.data, 0, 1);
  return { audio, image };
}

function featInt8(model: CAVMAE, batch: { audio: Tensor; image: Tensor }): Float32Array[] {
  const tp = new Tape({ grad: false, int8: true });
  const f = model.forwardFeat(tp, batch);
  const out = [f.audioTokens!.data.slice(), f.videoTokens!.data.slice()];
  tp.reset();
  return out;
}

function withTmp<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'cavmae-int8-'));
  return fn(dir).finally(() => rmSync(dir, { recursive: true, force: true }));
}

function gemmWeights(model: AnyModel): number {
  return model.arena.params.filter((p) => p.gemm).reduce((s, p) => s + p.size, 0);
}

test('an int8 model (create) computes exactly what an int8 tape computes over the fp32 model', () => {
  for (const cfg of [TINY, presetConfig('sync-tiny', { embed_dim: 128, num_heads: 2 })]) {
    const fp = CAVMAE.create(cfg, { seed: 3, grad: false });
    const q = CAVMAE.create(cfg, { seed: 3, int8: true });
    assert.equal(q.arena.int8, true);
    // Only the non-GEMM parameters (LayerNorms, biases, position tables, tokens) keep fp32.
    assert.equal(q.arena.data.length, q.arena.size - gemmWeights(q));
    assert.ok(q.arena.data.length < fp.arena.size / 10, `${q.arena.data.length} fp32 values kept`);
    const batch = inputs(cfg, 2);
    const a = featInt8(fp, batch);
    const b = featInt8(q, batch);
    for (let i = 0; i < a.length; i++) assert.deepEqual(b[i], a[i], `${cfg.model} output ${i}`);
  }
});

test('the fine-tuning model in int8: logits identical to the int8 tape over fp32', () => {
  const cfg = presetConfig('tiny-ft', { embed_dim: 128, num_heads: 2 });
  const fp = CAVMAEFT.create(cfg, { seed: 4, grad: false });
  const q = CAVMAEFT.create(cfg, { seed: 4, int8: true });
  const batch = inputs(cfg, 2);
  const logits = (m: CAVMAEFT): Float32Array => {
    const tp = new Tape({ grad: false, int8: true });
    const out = m.forward(tp, batch, 'multimodal').data.slice();
    tp.reset();
    return out;
  };
  assert.deepEqual(logits(q), logits(fp));
});

test('CavMae.load int8: same embeddings as before (int8 over the fp32 weights), bit for bit', async () => {
  await withTmp(async (dir) => {
    const model = CAVMAE.create(TINY, { seed: 5, grad: false });
    const f32 = join(dir, 'tiny.safetensors');
    const b16 = join(dir, 'tiny-bf16.safetensors');
    saveModel(f32, model);
    saveModel(b16, model, { dtype: 'BF16' });
    const a = randomArray(TINY.audio_length * 128, 1);
    const v = randomArray(3 * TINY.img_size ** 2, 2);
    for (const file of [f32, b16]) {
      // Before: the fp32 model loaded, its int8 copies made by the tape.
      const before = CavMae.fromModel(loadModel(file).model, { int8: true });
      const after = await CavMae.load(file, { int8: true });
      assert.equal(after.model.arena.int8, true);
      const e0 = await before.embedClip(a, v);
      const e1 = await after.embedClip(a, v);
      assert.deepEqual(e1.audio.pooled, e0.audio.pooled, `${file}: audio`);
      assert.deepEqual(e1.visual.pooled, e0.visual.pooled, `${file}: visual`);
      assert.deepEqual(after.tokens('a', a, 1), before.tokens('a', a, 1), `${file}: audio tokens`);
      assert.deepEqual(after.tokens('v', v, 1), before.tokens('v', v, 1), `${file}: visual tokens`);
    }
  });
});

test(
  'CavMae.load int8 of a .pth (the official small fixture): identical to int8 over fp32',
  { skip: !hasOfficialFixtures() && 'no official fixtures' },
  async () => {
    const before = CavMae.fromModel(loadModel(FIXTURE_PTH).model, { int8: true });
    const after = await CavMae.load(FIXTURE_PTH, { int8: true });
    const c = after.config;
    const a = randomArray(c.audio_length * 128, 3);
    const v = randomArray(3 * c.img_size ** 2, 4);
    assert.deepEqual(after.tokens('a', a, 1), before.tokens('a', a, 1));
    assert.deepEqual(after.tokens('v', v, 1), before.tokens('v', v, 1));
  },
);

test('an int8 model refuses fp32 / bf16 use, training and saving with a clear error', async () => {
  await withTmp(async (dir) => {
    const file = join(dir, 'tiny.safetensors');
    saveModel(file, CAVMAE.create(TINY, { seed: 6, grad: false }));
    const api = await CavMae.load(file, { int8: true });
    const model = api.model as CAVMAE;
    const int8Only = (e: unknown): boolean =>
      e instanceof UserError && /int8 only|int8 inference/.test(e.message);
    const batch = inputs(TINY, 1);
    // fp32 and bf16 forward passes would read the weights' fp32 values.
    for (const bf16 of [false, true])
      assert.throws(() => model.forwardFeat(new Tape({ grad: false, bf16 }), batch), int8Only);
    // Training: no gradients, and the forward reads fp32 weights.
    assert.throws(() => model.arena.grad, int8Only);
    assert.throws(() => model.forward(new Tape(), batch, { rng: new Rng(1) }), int8Only);
    // A GEMM weight's fp32 values do not exist; the rest are there.
    const w = model.arena.get('blocks_a.0.attn.qkv.weight');
    assert.throws(() => w.data, /blocks_a\.0\.attn\.qkv\.weight.*int8 only/);
    // Its int8 values: row-major, or packed for the GEMM alone (the same bytes in another order).
    assert.ok(w.int8 && (w.int8.q ?? w.int8.packed)!.length === w.size);
    assert.equal(model.arena.get('blocks_a.0.attn.qkv.bias').data.length, 3 * TINY.embed_dim);
    assert.throws(() => saveModel(join(dir, 'again.safetensors'), model), int8Only);
    // The API without int8 over an int8 model.
    assert.throws(() => CavMae.fromModel(model), /int8: true/);
    // The id: stable, and not the fp32 model's (its embeddings differ).
    const again = await CavMae.load(file, { int8: true });
    assert.equal(api.modelId, again.modelId);
    assert.notEqual(api.modelId, (await CavMae.load(file)).modelId);
  });
});

test('int8 model ops: a tape without int8 over it names the weight', () => {
  const q = CAVMAE.create(TINY, { seed: 7, int8: true });
  const tp = new Tape({ grad: false });
  const x = tp.constant([1, 4, TINY.embed_dim], randomArray(4 * TINY.embed_dim, 8));
  const fc1 = q.encoder.blocks_a[0].mlp.fc1;
  assert.throws(() => ops.linear(tp, x, fc1.weight, fc1.bias), /blocks_a\.0\.mlp\.fc1\.weight/);
});
