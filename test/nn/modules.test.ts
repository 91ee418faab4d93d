/**
 * nn modules against PyTorch (test/fixtures/model/nn.safetensors, made by
 * scripts/golden/model_golden.py from the peer, which matches the official code bit for bit):
 * the three-LayerNorm Block in each mode with every gradient, the patch-embedding convolution
 * for spectrograms and images, MAE patchify targets, and the sin-cos position tables.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readSafetensorsF32 } from '../../src/io/safetensors.js';
import { Tape } from '../../src/autograd/tape.js';
import { Block } from '../../src/nn/block.js';
import {
  PatchEmbed,
  patchifyAudio,
  patchifyImage,
  unpatchifyAudio,
  unpatchifyImage,
  normalizePatches,
} from '../../src/nn/patch-embed.js';
import { ParamArena, ParamBuilder } from '../../src/tensor/arena.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { sincosTable2d } from '../../src/models/pos-embed.js';
import { assertClose, randomArray, repoRoot, fixture, hasOfficialFixtures } from '../helpers.js';

const golden = readSafetensorsF32(join(repoRoot(), 'test', 'fixtures', 'model', 'nn.safetensors'));
const g = (k: string): { shape: number[]; data: Float32Array } => {
  const t = golden.get(k);
  if (!t) throw new Error(`golden tensor ${k} missing`);
  return t;
};
const asTensor = (k: string): Tensor => new Tensor(g(k).shape, g(k).data);

test('Block: parameter names in the official state-dict order', () => {
  const pb = ParamBuilder.root();
  new Block(pb.scope('blocks_u').scope(0), 8, 2);
  const names = pb.params.map((p) => p.name.replace('blocks_u.0.', ''));
  assert.deepEqual(names, [
    'norm1.weight',
    'norm1.bias',
    'norm1_a.weight',
    'norm1_a.bias',
    'norm1_v.weight',
    'norm1_v.bias',
    'attn.qkv.weight',
    'attn.qkv.bias',
    'attn.proj.weight',
    'attn.proj.bias',
    'norm2.weight',
    'norm2.bias',
    'norm2_a.weight',
    'norm2_a.bias',
    'norm2_v.weight',
    'norm2_v.bias',
    'mlp.fc1.weight',
    'mlp.fc1.bias',
    'mlp.fc2.weight',
    'mlp.fc2.bias',
  ]);
});

test('Block forward and backward in the three LayerNorm modes match PyTorch', () => {
  const pb = ParamBuilder.root();
  const block = new Block(pb, 8, 2);
  const arena = new ParamArena(pb.params);
  for (const p of arena.params) p.data.set(g(`block.${p.name}`).data);
  const r = g('block.cotangent').data;
  for (const mode of [undefined, 'a', 'v'] as const) {
    const tag = mode ?? 'none';
    arena.zeroGrad();
    const tp = new Tape();
    const x = new Tensor([2, 5, 8], Float32Array.from(g('block.input').data), true);
    const y = block.forward(tp, x, mode);
    assertClose(y.data, g(`block.out.${tag}`).data, { rtol: 1e-5, what: `block out ${tag}` });
    tp.backward(y, r);
    assertClose(x.grad!, g(`block.grad.${tag}.input`).data, { rtol: 1e-5, what: `block dx ${tag}` });
    for (const p of arena.params) {
      const key = `block.grad.${tag}.${p.name}`;
      if (golden.has(key)) assertClose(p.grad!, g(key).data, { rtol: 1e-5, what: `block d${p.name} ${tag}` });
      else
        assert.equal(
          Math.max(...p.grad!.map(Math.abs)),
          0,
          `${p.name} is unused in mode ${tag} and must get no gradient`,
        );
    }
  }
});

test('PatchEmbed equals Conv2d(16, stride 16) for a spectrogram [B,T,F] and a non-square image', () => {
  const pb = ParamBuilder.root();
  const pa = new PatchEmbed(pb.scope('a'), 1, 8);
  const pv = new PatchEmbed(pb.scope('v'), 3, 8);
  new ParamArena(pb.params);
  pa.weight.data.set(g('patch_a.weight').data);
  pa.bias.data.set(g('patch_a.bias').data);
  pv.weight.data.set(g('patch_v.weight').data);
  pv.bias.data.set(g('patch_v.bias').data);
  const tp = new Tape({ grad: false });
  const ya = pa.forwardAudio(tp, asTensor('patch_a.input'));
  assert.deepEqual(ya.shape, g('patch_a.out').shape);
  assertClose(ya.data, g('patch_a.out').data, { rtol: 1e-6, what: 'audio patch embedding' });
  const yv = pv.forwardImage(tp, asTensor('patch_v.input'));
  assert.deepEqual(yv.shape, g('patch_v.out').shape);
  assertClose(yv.data, g('patch_v.out').data, { rtol: 1e-6, what: 'image patch embedding' });
});

test('patchify targets (row, column, channel order) and their inverses', () => {
  const a = asTensor('patch_a.input'); // [2, 48, 32]
  const v = asTensor('patch_v.input'); // [2, 3, 32, 48]
  assert.deepEqual(Array.from(patchifyAudio(a, 16)), Array.from(g('patchify_a').data));
  assert.deepEqual(Array.from(patchifyImage(v, 16)), Array.from(g('patchify_v').data));
  assert.deepEqual(Array.from(unpatchifyAudio(patchifyAudio(a, 16), 2, 48, 32, 16)), Array.from(a.data));
  assert.deepEqual(Array.from(unpatchifyImage(patchifyImage(v, 16), 2, 3, 32, 48, 16)), Array.from(v.data));
});

test('normalizePatches uses the unbiased variance and eps 1e-6', () => {
  const x = randomArray(2 * 5, 3);
  const y = normalizePatches(Float32Array.from(x), 2, 5);
  for (let r = 0; r < 2; r++) {
    const row = Array.from(x.subarray(r * 5, r * 5 + 5));
    const mean = row.reduce((s, c) => s + c, 0) / 5;
    const varU = row.reduce((s, c) => s + (c - mean) ** 2, 0) / 4;
    for (let i = 0; i < 5; i++)
      assert.ok(Math.abs(y[r * 5 + i] - (row[i] - mean) / Math.sqrt(varU + 1e-6)) < 1e-6);
  }
});

test('sin-cos tables equal the reference bit for bit (layout: first half = column / time)', () => {
  assert.deepEqual(Array.from(sincosTable2d(16, 2, 3)), Array.from(g('pos.16x2x3').data));
  assert.deepEqual(Array.from(sincosTable2d(8, 4, 4)), Array.from(g('pos.8x4x4').data));
  const base = sincosTable2d(768, 8, 64);
  const rows = g('pos.base_a_rows37');
  const nRows = rows.shape[1];
  for (let i = 0; i < nRows; i++) {
    assert.deepEqual(
      Array.from(base.subarray(i * 37 * 768, (i * 37 + 1) * 768)),
      Array.from(rows.data.subarray(i * 768, (i + 1) * 768)),
      `base audio row ${i * 37}`,
    );
  }
  const dec = sincosTable2d(512, 14, 14);
  const drows = g('pos.base_dec_v_rows13');
  for (let i = 0; i < drows.shape[1]; i++) {
    assert.deepEqual(
      Array.from(dec.subarray(i * 13 * 512, (i * 13 + 1) * 512)),
      Array.from(drows.data.subarray(i * 512, (i + 1) * 512)),
    );
  }
  // docs/reference.md#numeric-checks spot checks: token 1 dim 0 = sin(1) (time 1); token 64 dim 384 = sin(1) (frequency 1); token 0 dim 192 = cos 0.
  assert.equal(base[1 * 768 + 0], Math.fround(Math.sin(1)));
  assert.equal(base[64 * 768 + 384], Math.fround(Math.sin(1)));
  assert.equal(base[0 * 768 + 192], 1);
});

test(
  'sin-cos tables equal the fixed tables stored in the official small checkpoint',
  { skip: !hasOfficialFixtures() },
  () => {
    const ck = readSafetensorsF32(fixture('model_small', 'cavmae_small.safetensors'));
    // embed 48, decoder 32; audio grid 8 x 8, visual 4 x 4.
    assert.deepEqual(Array.from(sincosTable2d(48, 8, 8)), Array.from(ck.get('pos_embed_a')!.data));
    assert.deepEqual(Array.from(sincosTable2d(48, 4, 4)), Array.from(ck.get('pos_embed_v')!.data));
    assert.deepEqual(Array.from(sincosTable2d(32, 8, 8)), Array.from(ck.get('decoder_pos_embed_a')!.data));
    assert.deepEqual(Array.from(sincosTable2d(32, 4, 4)), Array.from(ck.get('decoder_pos_embed_v')!.data));
  },
);
