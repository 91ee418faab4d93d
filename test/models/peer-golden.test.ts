/**
 * Configurations the shared fixtures do not cover, against the PyTorch peer
 * (test/fixtures/model/*.safetensors from scripts/golden/model_golden.py):
 * - two shared layers, so the reference's contrastive-stream quirk shows (docs/reference.md#shared-layer-loop),
 *   with the gradient of EVERY parameter; norm_pix_loss off; another contrastive weight;
 * - the fine-tuning model with trainable position tables: logits, BCE loss, every gradient;
 * - structured masking (time / freq / tf) replayed from the reference's rows and columns.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readSafetensors, readSafetensorsF32 } from '../../src/io/safetensors.js';
import { Tape } from '../../src/autograd/tape.js';
import * as ops from '../../src/autograd/ops.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { CAVMAE } from '../../src/models/cavmae.js';
import { CAVMAEFT } from '../../src/models/cavmae-ft.js';
import { resolveConfig } from '../../src/models/config.js';
import { configFromMetadata } from '../../src/models/registry.js';
import { makeMasking } from '../../src/models/masking.js';
import { assertClose, maxAbs, repoRoot } from '../helpers.js';

const dir = join(repoRoot(), 'test', 'fixtures', 'model');

function loadGolden(name: string): {
  t: (k: string) => { shape: number[]; data: Float32Array };
  keys: string[];
  meta: Record<string, string>;
} {
  const path = join(dir, name);
  const m = readSafetensorsF32(path);
  const meta = readSafetensors(path).metadata;
  return {
    t: (k) => {
      const v = m.get(k);
      if (!v) throw new Error(`${name}: ${k} missing`);
      return v;
    },
    keys: [...m.keys()],
    meta,
  };
}

function loadParams(arena: CAVMAE['arena'], keys: string[], t: (k: string) => { data: Float32Array }): void {
  const names = keys.filter((k) => k.startsWith('param.')).map((k) => k.slice(6));
  assert.deepEqual([...names].sort(), arena.names().sort(), 'golden parameters = model parameters');
  for (const n of names) arena.get(n).data.set(t(`param.${n}`).data);
}

test('two shared layers: outputs, the quirk and the gradient of every parameter match PyTorch', () => {
  const { t, keys, meta } = loadGolden('quirk2.safetensors');
  const cfg = resolveConfig(configFromMetadata(meta, 'quirk2')!);
  assert.equal(cfg.shared_depth, 2);
  assert.equal(cfg.chain_shared_layers, false, 'the reference behaviour is the default');
  const model = CAVMAE.create(cfg);
  loadParams(model.arena, keys, t);
  const batch = {
    audio: new Tensor(t('input.audio').shape, t('input.audio').data),
    image: new Tensor(t('input.image').shape, t('input.image').data),
  };
  const noise = { noiseA: t('input.noise_a').data, noiseV: t('input.noise_v').data };
  const tp = new Tape();
  const out = model.forward(tp, batch, noise);
  for (const [k, v] of [
    ['loss', out.loss],
    ['loss_mae', out.lossMae],
    ['loss_mae_a', out.lossMaeA],
    ['loss_mae_v', out.lossMaeV],
    ['loss_c', out.lossC],
  ] as const) {
    assertClose(v.data, t(`out.${k}`).data, { rtol: 1e-5, what: k });
  }
  assert.equal(Math.fround(out.cAcc), t('out.c_acc').data[0]);
  assert.deepEqual(Array.from(out.maskA!.mask), Array.from(t('out.mask_a').data));
  assert.deepEqual(Array.from(out.maskV!.mask), Array.from(t('out.mask_v').data));
  assertClose(out.predA!.data, t('out.pred_a').data, { rtol: 1e-4, what: 'pred_a' });
  assertClose(out.predV!.data, t('out.pred_v').data, { rtol: 1e-4, what: 'pred_v' });
  tp.backward(out.loss);
  let compared = 0;
  for (const p of model.arena.params) {
    const key = `grad.${p.name}`;
    if (keys.includes(key)) {
      // Tiny gradients (unused-branch LayerNorms are exactly 0 in both) get an absolute floor.
      assertClose(p.grad!, t(key).data, { rtol: 1e-3, atol: 1e-9, what: key });
      compared++;
    } else {
      assert.equal(maxAbs(p.grad!), 0, `${p.name}: PyTorch has no gradient, ours must be zero`);
    }
  }
  assert.ok(compared > 100, `compared ${compared} gradients`);
  // Under the quirk, the first shared layer's audio/visual LayerNorms never reach the loss.
  assert.equal(maxAbs(model.arena.get('blocks_u.0.norm1_a.weight').grad!), 0);
  assert.ok(maxAbs(model.arena.get('blocks_u.1.norm1_a.weight').grad!) > 0);

  // Per-patch normalisation off, and another contrastive weight.
  const nonorm = CAVMAE.create(
    resolveConfig({ ...configFromMetadata(meta, 'quirk2')!, norm_pix_loss: false }),
  );
  loadParams(nonorm.arena, keys, t);
  const o2 = nonorm.forward(new Tape({ grad: false }), batch, noise);
  assertClose(o2.lossMaeA.data, t('nonorm.loss_mae_a').data, {
    rtol: 1e-5,
    what: 'loss_mae_a without norm_pix_loss',
  });
  assertClose(o2.lossMaeV.data, t('nonorm.loss_mae_v').data, {
    rtol: 1e-5,
    what: 'loss_mae_v without norm_pix_loss',
  });
  const o3 = model.forward(new Tape({ grad: false }), batch, { ...noise, contrastLossWeight: 0.1 });
  assertClose(o3.lossC.data, t('w01.loss_c').data, { rtol: 1e-5, what: 'loss_c at weight 0.1' });
  assertClose(o3.loss.data, t('w01.loss').data, { rtol: 1e-5, what: 'loss at weight 0.1' });

  // forward_feat chains the shared layers (in the reference too).
  const f = model.forwardFeat(new Tape({ grad: false }), batch);
  assertClose(f.audioTokens!.data, t('feat.audio_tokens').data, { rtol: 1e-4, what: 'feat audio' });
  assertClose(f.videoTokens!.data, t('feat.video_tokens').data, { rtol: 1e-4, what: 'feat video' });

  // The chained option changes only the contrastive part.
  const chained = CAVMAE.create(
    resolveConfig({ ...configFromMetadata(meta, 'quirk2')!, chain_shared_layers: true }),
  );
  loadParams(chained.arena, keys, t);
  const o4 = chained.forward(new Tape({ grad: false }), batch, noise);
  assertClose(o4.lossMae.data, t('out.loss_mae').data, { rtol: 1e-5, what: 'chained loss_mae' });
  assert.ok(
    Math.abs(o4.lossC.item() - t('out.loss_c').data[0]) > 1e-6,
    'chaining the shared layers changes loss_c',
  );
});

test('CAVMAEFT with trainable position tables: logits, BCE and every gradient match PyTorch', () => {
  const { t, keys, meta } = loadGolden('ft.safetensors');
  const cfg = resolveConfig(configFromMetadata(meta, 'ft')!);
  assert.equal(cfg.model, 'cavmae-ft');
  assert.equal(cfg.tr_pos, true);
  const model = CAVMAEFT.create(cfg);
  loadParams(model.arena as CAVMAE['arena'], keys, t);
  const tp = new Tape();
  const logits = model.forward(tp, {
    audio: new Tensor(t('input.audio').shape, t('input.audio').data),
    image: new Tensor(t('input.image').shape, t('input.image').data),
  });
  assertClose(logits.data, t('out.logits').data, { rtol: 1e-4, what: 'logits' });
  const loss = ops.bceWithLogits(tp, logits, t('input.labels').data);
  assertClose(loss.data, t('out.loss').data, { rtol: 1e-5, what: 'bce' });
  tp.backward(loss);
  let compared = 0;
  for (const p of model.arena.params) {
    const key = `grad.${p.name}`;
    if (keys.includes(key)) {
      assertClose(p.grad!, t(key).data, { rtol: 1e-3, atol: 1e-9, what: key });
      compared++;
    } else {
      assert.equal(maxAbs(p.grad!), 0, `${p.name}: PyTorch has no gradient, ours must be zero`);
    }
  }
  assert.ok(maxAbs(model.arena.get('pos_embed_a').grad!) > 0, 'trainable position tables get gradients');
  assert.ok(compared > 100);
});

test('structured masking (time, freq, tf) replays the reference from its rows and columns', () => {
  const { t } = loadGolden('masking.safetensors');
  const B = 3,
    f = 8,
    tc = 64,
    L = 512;
  for (const mode of ['time', 'freq', 'tf'] as const) {
    const toLists = (k: string): number[][] =>
      Array.from({ length: B }, (_, b) =>
        Array.from(t(k).data.subarray(b * (t(k).data.length / B), (b + 1) * (t(k).data.length / B))).filter(
          (v) => v >= 0,
        ),
      );
    const m = makeMasking({
      B,
      L,
      ratio: 0.75,
      mode,
      grid: { f, t: tc },
      noise: t(`${mode}.noise`).data,
      structured: { cols: toLists(`${mode}.cols`), rows: toLists(`${mode}.rows`) },
    });
    const refKeep = t(`${mode}.ids_keep`).data;
    const refMask = t(`${mode}.mask`).data;
    if (mode !== 'tf') {
      assert.deepEqual(Array.from(m.mask), Array.from(refMask), `${mode}: mask`);
      assert.deepEqual(Array.from(m.idsKeep), Array.from(refKeep), `${mode}: ids_keep`);
      // time removes exactly 48 columns, freq exactly 6 rows (384 tokens each).
      for (let b = 0; b < B; b++)
        assert.equal(
          m.mask.subarray(b * L, (b + 1) * L).reduce((s, x) => s + x, 0),
          384,
        );
    } else {
      // 33 columns + 4 rows cover 388 tokens but 384 are removed: the 124 kept tokens with
      // distinct noise agree; the 4 kept tied tokens (noise 1.1) depend on argsort's tie order.
      for (let b = 0; b < B; b++) {
        const ours = Array.from(m.idsKeep.subarray(b * 128, b * 128 + 124));
        assert.deepEqual(
          ours,
          Array.from(refKeep.subarray(b * 128, b * 128 + 124)),
          `tf sample ${b}: the untied kept tokens`,
        );
        const tiedOurs = Array.from(m.idsKeep.subarray(b * 128 + 124, (b + 1) * 128));
        assert.equal(tiedOurs.length, 4);
        const covered = (id: number): boolean =>
          toLists('tf.cols')[b].includes(id % tc) || toLists('tf.rows')[b].includes(Math.floor(id / tc));
        assert.ok(tiedOurs.every(covered), 'the 4 extra kept tokens are marked ones');
      }
      // PyTorch's exact choice replays through its permutation.
      const exact = makeMasking({
        B,
        L,
        ratio: 0.75,
        mode,
        idsShuffle: Int32Array.from(t('tf.ids_shuffle').data),
      });
      assert.deepEqual(Array.from(exact.mask), Array.from(refMask), 'tf: mask replayed from ids_shuffle');
      assert.deepEqual(
        Array.from(exact.idsKeep),
        Array.from(refKeep),
        'tf: ids_keep replayed from ids_shuffle',
      );
    }
  }
});
