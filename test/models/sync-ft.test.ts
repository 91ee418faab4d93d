/**
 * The Sync classifier (CAVMAEFT with the self_attention_cls aggregator) against the PyTorch fine-tuning reference
 * (scripts/golden/sync_ft_golden.py → test/fixtures/sync/sync_ft_<case>.*): logits, BCE loss and
 * the gradient of every parameter, for multimodal with global tokens + registers, multimodal
 * with token means, audio-only with kept registers, video-only. Then a whole-model directional
 * finite-difference check and fine-tuning from a Sync pretraining checkpoint.
 *
 * Tolerances: tensors max|ours - ref| <= 1e-4 · max|ref|, loss 1e-5 relative, gradients 1e-3
 * relative to max|ref grad|.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ops from '../../src/autograd/ops.js';
import { Tape } from '../../src/autograd/tape.js';
import { readSafetensorsF32 } from '../../src/io/safetensors.js';
import { Rng } from '../../src/tensor/rng.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { resolveConfig } from '../../src/models/config.js';
import { loadModel } from '../../src/models/registry.js';
import { CAVMAEFT, isSyncFtHead } from '../../src/models/cavmae-ft.js';
import { assertClose, repoRoot } from '../helpers.js';

const dir = join(repoRoot(), 'test', 'fixtures', 'sync');

for (const name of ['mm_cls', 'mm_mean', 'audioonly', 'videoonly'] as const) {
  test(`Sync fine-tuning ${name}: logits, loss and every gradient equal the PyTorch reference`, () => {
    const { model, report } = loadModel(join(dir, `sync_ft_${name}.safetensors`), { grad: true });
    assert.deepEqual([report.missing, report.unexpected], [[], []]);
    assert.ok(model instanceof CAVMAEFT && model.head === 'aggregator');
    const meta = JSON.parse(readFileSync(join(dir, `sync_ft_${name}.json`), 'utf8'));
    assert.deepEqual(
      model.arena.params.map((p) => [p.name, [...p.shape]]),
      meta.state_dict,
    );
    const io = readSafetensorsF32(join(dir, `sync_ft_${name}_io.safetensors`));
    const ref = (k: string): { shape: number[]; data: Float32Array } => io.get(k)!;
    const tp = new Tape();
    const logits = model.forward(tp, {
      audio: new Tensor(ref('input.audio').shape, ref('input.audio').data),
      image: new Tensor(ref('input.image').shape, ref('input.image').data),
    });
    assert.deepEqual(logits.shape, ref('out.logits').shape);
    assertClose(logits.data, ref('out.logits').data, { rtol: 1e-4, what: 'logits' });
    const loss = ops.bceWithLogits(tp, logits, ref('input.labels').data);
    assertClose(loss.data, ref('out.loss').data, { rtol: 1e-5, what: 'loss' });
    tp.backward(loss);
    const noGrad = new Set<string>(meta.params_without_grad);
    let n = 0;
    for (const p of model.arena.params) {
      assert.equal(tp.paramsWithGrad.has(p), !noGrad.has(p.name), `${p.name}: has a gradient`);
      if (noGrad.has(p.name)) continue;
      assertClose(p.grad!, ref(`grad.${p.name}`).data, { rtol: 1e-3, what: `grad.${p.name}` });
      n++;
    }
    assert.ok(n > 50, `${n} gradients compared`);
  });
}

test('Sync fine-tuning: whole-model directional finite differences (every mode)', () => {
  for (const mode of ['multimodal', 'audioonly', 'videoonly'] as const) {
    const cfg = resolveConfig({
      model: 'cavmae-sync-ft',
      img_size: 32,
      audio_length: 32,
      embed_dim: 8,
      num_heads: 2,
      modality_specific_depth: 1,
      shared_depth: 1,
      num_register_tokens: 1,
      cls_token: mode !== 'videoonly',
      total_frame: 2,
      label_dim: 3,
      mode,
    });
    const model = CAVMAEFT.create(cfg, { seed: 31 });
    const rng = new Rng(32);
    const batch = {
      audio: new Tensor([4, 32, 128], rng.fillNormal(new Float32Array(4 * 32 * 128))),
      image: new Tensor([4, 3, 32, 32], rng.fillNormal(new Float32Array(4 * 3 * 32 * 32))),
    };
    const labels = Float32Array.from([1, 0, 1, 0, 0, 1]);
    const lossOf = (tp: Tape): Tensor => ops.bceWithLogits(tp, model.forward(tp, batch), labels);
    const tp = new Tape();
    const loss = lossOf(tp);
    tp.backward(loss);
    const ranges = model.arena.trainableRanges((p) => tp.paramsWithGrad.has(p));
    const idx: number[] = [];
    for (const r of ranges) for (let i = r.offset; i < r.offset + r.size; i++) idx.push(i);
    const grad = Float64Array.from(idx, (i) => model.arena.grad[i]);
    const theta = model.arena.data;
    const orig = Float32Array.from(theta);
    const gnorm = Math.sqrt(grad.reduce((s, x) => s + x * x, 0));
    const unit = (v: Float64Array): Float64Array => {
      const nv = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      return v.map((x) => x / nv);
    };
    const r2 = new Rng(33);
    const dirs = [unit(grad), unit(new Float64Array(grad.length).map(() => r2.normal()))];
    for (const d of dirs) {
      const along = (h: number): number => {
        idx.forEach((i, k) => (theta[i] = orig[i] + h * d[k]));
        const l = lossOf(new Tape({ grad: false })).item();
        theta.set(orig);
        return l;
      };
      // Small enough for the steep directions (truncation ~ h²), large enough for float32 losses.
      const h = 2e-3 / Math.max(1, gnorm);
      const fd = (along(h) - along(-h)) / (2 * h);
      const an = d.reduce((s, x, k) => s + x * grad[k], 0);
      const err = Math.abs(fd - an) / gnorm;
      if (process.env.FD_VERBOSE)
        console.log(`${mode}: fd ${fd} analytic ${an} |err|/|g| ${err.toExponential(2)}`);
      assert.ok(err < 1e-3, `${mode}: directional derivative fd ${fd} vs analytic ${an} (|err|/|g| ${err})`);
    }
  }
});

test('Sync fine-tuning from a Sync pretraining checkpoint: encoder loads, only the head is fresh', () => {
  const { model, report, config } = loadModel(join(dir, 'sync_cls_heads.safetensors'), {
    kind: 'cavmae-sync-ft',
    overrides: { label_dim: 4 },
  });
  assert.ok(model instanceof CAVMAEFT && model.head === 'aggregator');
  assert.equal(config.num_register_tokens, 2);
  assert.equal(config.cls_token, true);
  assert.equal(config.tr_pos, true, 'fine-tuning trains the position tables (official default)');
  assert.ok(report.missing.length > 0 && report.missing.every(isSyncFtHead), report.missing.join(', '));
  assert.ok(
    report.unexpected.every((k) => /^(decoder_|mask_token|constrative_head_)/.test(k)),
    report.unexpected.join(', '),
  );
  const pre = readSafetensorsF32(join(dir, 'sync_cls_heads.safetensors'));
  for (const k of ['register_tokens', 'cls_token_a', 'blocks_a.1.mlp.fc1.weight', 'norm_v.bias'])
    assert.deepEqual(model.arena.get(k).data, pre.get(k)!.data, k);
  // Clips must be whole: 16 pairs per clip by default.
  const audio = new Tensor([3, 48, 128]);
  const image = new Tensor([3, 3, 48, 48]);
  assert.throws(
    () => model.forward(new Tape({ grad: false }), { audio, image }),
    /whole clips of total_frame 16/,
  );
});

test('Sync fine-tuning config: aggregate and mode are checked', () => {
  const base = {
    model: 'cavmae-sync-ft',
    label_dim: 3,
    img_size: 32,
    audio_length: 32,
    embed_dim: 8,
    num_heads: 2,
  };
  assert.throws(
    () => resolveConfig({ ...base, aggregate: 'concat_mlp' }),
    /"aggregate" must be "self_attention_cls"/,
  );
  assert.throws(() => resolveConfig({ ...base, mode: 'missingaudioonly' }), /"mode" must be one of/);
  assert.throws(
    () => resolveConfig({ ...base, contrastive_heads: true }),
    /does not apply to model "cavmae-sync-ft"/,
  );
  const c = resolveConfig(base);
  assert.deepEqual(
    [c.aggregate, c.mode, c.num_register_tokens, c.cls_token, c.total_frame, c.tr_pos],
    ['self_attention_cls', 'multimodal', 0, false, 16, true],
  );
});
