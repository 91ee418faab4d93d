/**
 * The Sync pretraining model (CAVMAE with a cavmae-sync config) against the PyTorch Sync reference's golden tensors (test/fixtures/sync/, written by
 * scripts/golden/sync_golden.py from scripts/golden/sync_reference.py; docs/sync-reference.md).
 * Three cases: cls_heads (global tokens + registers + contrastive heads), global_local (global +
 * local losses), no_cls (= CAV-MAE on a segment grid); each with masks replayed from the stored
 * noise, every stored gradient, forward_feat and a batch of one.
 *
 * Tolerances (the CAV-MAE ones, fixtures/README.md): tensors max|ours - ref| <= 1e-4 · max|ref|,
 * losses 1e-5 relative, masks and index lists exact, gradients 1e-3 relative.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tape } from '../../src/autograd/tape.js';
import { readSafetensorsF32 } from '../../src/io/safetensors.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { loadModel } from '../../src/models/registry.js';
import { CAVMAE } from '../../src/models/cavmae.js';
import { kindTraits } from '../../src/models/config.js';
import { CLIP_STRATEGIES, similarityMatrix, l2NormalizeRows } from '../../src/eval/retrieval.js';
import { assertClose, repoRoot } from '../helpers.js';

const TENSOR_RTOL = 1e-4;
const LOSS_RTOL = 1e-5;
const GRAD_RTOL = 1e-3;

const dir = join(repoRoot(), 'test', 'fixtures', 'sync');
type Ref = Map<string, { shape: number[]; data: Float32Array }>;

function load(name: string): {
  model: CAVMAE;
  io: Ref;
  meta: { state_dict: [string, number[]][]; params_without_grad: string[]; outputs: Record<string, number> };
} {
  const { model, report } = loadModel(join(dir, `sync_${name}.safetensors`), { grad: true });
  assert.deepEqual([report.missing, report.unexpected], [[], []], `${name}: key report`);
  assert.ok(model instanceof CAVMAE && kindTraits(model.config).sync);
  const io = readSafetensorsF32(join(dir, `sync_${name}_io.safetensors`));
  const meta = JSON.parse(readFileSync(join(dir, `sync_${name}.json`), 'utf8'));
  return { model, io, meta };
}

function getter(io: Ref): (k: string) => { shape: number[]; data: Float32Array } {
  return (k) => {
    const t = io.get(k);
    if (!t) throw new Error(`golden tensor ${k} missing`);
    return t;
  };
}

/** The first `rows` rows of a stored tensor (batch-of-one inputs). */
function rowsOf(t: { shape: number[]; data: Float32Array }, rows: number): Tensor {
  const per = t.data.length / t.shape[0];
  return new Tensor([rows, ...t.shape.slice(1)], t.data.slice(0, rows * per));
}

for (const name of ['cls_heads', 'global_local', 'no_cls'] as const) {
  test(`Sync ${name}: layout, forward, masks, losses, gradients equal the PyTorch reference`, () => {
    const { model, io, meta } = load(name);
    const ref = getter(io);
    const c = model.config;
    // The released state-dict order and shapes.
    assert.deepEqual(
      model.arena.params.map((p) => [p.name, [...p.shape]]),
      meta.state_dict,
    );
    const tp = new Tape();
    const audio = new Tensor(ref('input.audio').shape, ref('input.audio').data);
    const image = new Tensor(ref('input.image').shape, ref('input.image').data);
    const out = model.forward(
      tp,
      { audio, image },
      { noiseA: ref('mask_a.noise').data, noiseV: ref('mask_v.noise').data },
    );

    assert.deepEqual(Array.from(out.maskA!.mask), Array.from(ref('out.mask_a').data), 'mask_a');
    assert.deepEqual(Array.from(out.maskV!.mask), Array.from(ref('out.mask_v').data), 'mask_v');
    for (const [m, k] of [
      [out.maskA!, 'mask_a'],
      [out.maskV!, 'mask_v'],
    ] as const) {
      assert.deepEqual(Array.from(m.idsKeep), Array.from(ref(`${k}.ids_keep`).data), `${k}.ids_keep`);
      assert.deepEqual(
        Array.from(m.idsRestore),
        Array.from(ref(`${k}.ids_restore`).data),
        `${k}.ids_restore`,
      );
    }

    const losses: [string, Tensor | undefined][] = [
      ['loss', out.loss],
      ['loss_mae', out.lossMae],
      ['loss_mae_a', out.lossMaeA],
      ['loss_mae_v', out.lossMaeV],
      ['loss_c', out.lossC],
    ];
    if (c.global_local_losses)
      losses.push(['loss_c_global', out.lossCGlobal], ['loss_c_local', out.lossCLocal]);
    else assert.equal(out.lossCGlobal, undefined);
    for (const [k, v] of losses) assertClose(v!.data, ref(`out.${k}`).data, { rtol: LOSS_RTOL, what: k });
    assert.equal(Math.fround(out.cAcc), ref('out.c_acc').data[0], 'c_acc');

    const tensors: [string, Float32Array][] = [
      ['out.pred_a', out.predA!.data],
      ['out.pred_v', out.predV!.data],
      ['out.cls_a', out.clsA!.data],
      ['out.cls_v', out.clsV!.data],
      ['enc.latent', out.latent!.data],
      ['enc.latent_c_a', out.latentCA!.data],
      ['enc.latent_c_v', out.latentCV!.data],
      ['contrast.logits', out.logits![0]],
    ];
    if (c.global_local_losses)
      tensors.push(['out.local_a', out.localMeanA!.data], ['out.local_v', out.localMeanV!.data]);
    if (io.has('out.recon_v')) {
      const { reconV } = model.reconstruct(out.predA!, out.predV!);
      tensors.push(['out.recon_v', reconV]);
    }
    for (const [k, v] of tensors) {
      assert.equal(v.length, ref(k).data.length, `${k}: size`);
      assertClose(v, ref(k).data, { rtol: TENSOR_RTOL, what: k });
    }

    tp.backward(out.loss);
    const grads = [...io.keys()].filter((k) => k.startsWith('grad.'));
    assert.ok(grads.length >= 8, `${name}: ${grads.length} stored gradients`);
    for (const k of grads)
      assertClose(model.arena.get(k.slice(5)).grad!, ref(k).data, { rtol: GRAD_RTOL, what: k });
    // The parameters PyTorch leaves without a gradient (fixed tables, unused LayerNorms) get none here.
    const noGrad = new Set(meta.params_without_grad);
    for (const p of model.arena.params)
      assert.equal(
        tp.paramsWithGrad.has(p),
        !noGrad.has(p.name) && p.requiresGrad,
        `${p.name}: has a gradient`,
      );
  });

  test(`Sync ${name}: forward_feat and batch-size-1 outputs equal the reference`, () => {
    const { model, io } = load(name);
    const ref = getter(io);
    const audio = new Tensor(ref('input.audio').shape, ref('input.audio').data);
    const image = new Tensor(ref('input.image').shape, ref('input.image').data);
    const tp = new Tape({ grad: false });
    const f = model.forwardFeat(tp, { audio, image });
    assertClose(f.audioTokens!.data, ref('feat.audio_tokens').data, {
      rtol: TENSOR_RTOL,
      what: 'feat.audio_tokens',
    });
    assertClose(f.videoTokens!.data, ref('feat.video_tokens').data, {
      rtol: TENSOR_RTOL,
      what: 'feat.video_tokens',
    });
    assert.deepEqual(f.audioTokens!.shape, ref('feat.audio_tokens').shape);
    if (model.config.cls_token) {
      assertClose(f.clsA!.data, ref('feat.cls_a').data, { rtol: TENSOR_RTOL, what: 'feat.cls_a' });
      assertClose(f.clsV!.data, ref('feat.cls_v').data, { rtol: TENSOR_RTOL, what: 'feat.cls_v' });
    } else assert.equal(f.clsA, undefined);

    // Batch of one (the release's .squeeze() breaks here): sample 0 with its noise row.
    const b1 = { audio: rowsOf(ref('input.audio'), 1), image: rowsOf(ref('input.image'), 1) };
    const o1 = model.forward(new Tape({ grad: false }), b1, {
      noiseA: rowsOf(ref('mask_a.noise'), 1).data,
      noiseV: rowsOf(ref('mask_v.noise'), 1).data,
    });
    for (const [k, v] of [
      ['loss', o1.loss],
      ['loss_mae', o1.lossMae],
    ] as const)
      assertClose(v.data, ref(`b1.out.${k}`).data, { rtol: LOSS_RTOL, what: `b1 ${k}` });
    // One pair: the log-softmax is over one entry (=== also accepts -0).
    assert.ok(o1.lossC.item() === 0 && ref('b1.out.loss_c').data[0] === 0, 'b1 loss_c');
    assert.equal(o1.cAcc, ref('b1.out.c_acc').data[0]);
    assertClose(o1.clsA!.data, ref('b1.out.cls_a').data, { rtol: TENSOR_RTOL, what: 'b1 cls_a' });
    assertClose(o1.clsV!.data, ref('b1.out.cls_v').data, { rtol: TENSOR_RTOL, what: 'b1 cls_v' });
    assert.deepEqual(o1.clsA!.shape, [1, model.config.embed_dim]);
    if (model.config.cls_token) {
      const f1 = model.forwardFeat(new Tape({ grad: false }), b1);
      assertClose(f1.clsA!.data, ref('b1.feat.cls_a').data, { rtol: TENSOR_RTOL, what: 'b1 feat.cls_a' });
      assertClose(f1.clsV!.data, ref('b1.feat.cls_v').data, { rtol: TENSOR_RTOL, what: 'b1 feat.cls_v' });
    }
  });
}

test('Sync retrieval: clip similarities of the four strategies equal the reference loops', () => {
  const io = readSafetensorsF32(join(dir, 'sync_retrieval.safetensors'));
  const ref = getter(io);
  const [n, F, D] = ref('retrieval.audio').shape;
  // Every (clip, pair) row normalised, as the retrieval script does before comparing.
  const audio = { data: l2NormalizeRows(ref('retrieval.audio').data, n * F, D), n, dim: D, frames: F };
  const video = { data: l2NormalizeRows(ref('retrieval.video').data, n * F, D), n, dim: D, frames: F };
  for (const strategy of CLIP_STRATEGIES) {
    const want = ref(`retrieval.${strategy}`).data;
    assertClose(similarityMatrix(audio, video, { strategy, tileCols: 3 }), want, {
      rtol: TENSOR_RTOL,
      what: `A->V ${strategy}`,
    });
    // V->A is the transpose (cosine is symmetric).
    const va = similarityMatrix(video, audio, { strategy });
    const wantT = new Float32Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) wantT[j * n + i] = want[i * n + j];
    assertClose(va, wantT, { rtol: TENSOR_RTOL, what: `V->A ${strategy}` });
  }
});
