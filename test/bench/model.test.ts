/**
 * The model benchmark: its FLOP model against the FLOPs the model really executes (counted by
 * instrumenting the GEMM and attention kernels), and the report contract on a tiny run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { kernels, useKernels, type Kernels } from '../../src/kernels/index.js';
import type { FusedKernels } from '../../src/kernels/fused.js';
import { modelFlops, runModelBench, checkModelBenchOptions } from '../../src/bench/model.js';
import { CAVMAE } from '../../src/models/cavmae.js';
import { CAVMAEFT } from '../../src/models/cavmae-ft.js';
import { presetConfig } from '../../src/models/config.js';
import { Tape } from '../../src/autograd/tape.js';
import { Rng, Tensor } from '../../src/tensor/index.js';
import { UserError } from '../../src/util/errors.js';

/** Runs fn with kernels that count GEMM and attention FLOPs; returns the count. */
function countFlops(fn: () => void): number {
  const base = kernels();
  let flops = 0;
  const counting: Kernels = Object.assign(Object.create(null), base, {
    matmul(...a: Parameters<Kernels['matmul']>) {
      flops += 2 * a[3] * a[4] * a[5];
      return base.matmul(...a);
    },
    matmulBatched(...a: Parameters<Kernels['matmulBatched']>) {
      flops += 2 * a[3] * a[4] * a[5] * a[6];
      return base.matmulBatched(...a);
    },
    attentionForward(...a: Parameters<Kernels['attentionForward']>) {
      flops += 4 * a[3] * a[4] * a[4] * a[5];
      return base.attentionForward(...a);
    },
    attentionBackward(...a: Parameters<Kernels['attentionBackward']>) {
      flops += 8 * a[5] * a[6] * a[6] * a[7];
      return base.attentionBackward(...a);
    },
  });
  // The fused linear GEMM and inference attention of the native addon (the TypeScript path
  // composes them from matmul and attentionForward).
  const baseFused = base as unknown as Partial<FusedKernels>;
  const baseGemmEx = baseFused.gemmEx;
  if (baseGemmEx) {
    (counting as unknown as FusedKernels).gemmEx = (...a: Parameters<FusedKernels['gemmEx']>) => {
      flops += 2 * a[3] * a[4] * a[5];
      return baseGemmEx(...a);
    };
  }
  const baseAttention = baseFused.attentionInference;
  if (baseAttention) {
    (counting as unknown as FusedKernels).attentionInference = (
      ...a: Parameters<FusedKernels['attentionInference']>
    ) => {
      flops += 4 * a[2] * a[3] * a[3] * a[4];
      return baseAttention(...a);
    };
  }
  useKernels(counting);
  try {
    fn();
  } finally {
    useKernels(base);
  }
  return flops;
}

test('modelFlops equals the GEMM + attention FLOPs the tiny model executes (embed, pretrain, ft)', () => {
  const cfg = presetConfig('tiny');
  const B = 3;
  const rng = new Rng(0);
  const audio = new Tensor([B, cfg.audio_length, 128]);
  const image = new Tensor([B, 3, cfg.img_size, cfg.img_size]);
  rng.fillNormal(audio.data, 0, 1);
  rng.fillNormal(image.data, 0, 1);
  const model = CAVMAE.create(cfg, { seed: 0 });
  const embed = countFlops(() => model.forwardFeat(new Tape({ grad: false }), { audio, image }));
  assert.equal(embed, modelFlops(cfg, 'embed', B).forward);
  let fwd = 0;
  const total = countFlops(() => {
    const tp = new Tape();
    fwd = countFlops(() => void model.forward(tp, { audio, image }, { rng }));
    // countFlops nests: the inner call restored the outer counter's kernels
    tp.backward(model.forward(tp, { audio, image }, { rng }).loss);
  });
  const expect = modelFlops(cfg, 'pretrain', B);
  assert.equal(fwd, expect.forward);
  assert.equal(total - expect.forward, expect.forward + expect.backward);
  const ftCfg = presetConfig('tiny', { label_dim: 527, model: 'cavmae-ft' });
  const ft = CAVMAEFT.create(ftCfg, { seed: 0 });
  const ftFlops = countFlops(() => ft.forward(new Tape({ grad: false }), { audio, image }, 'multimodal'));
  assert.equal(ftFlops, modelFlops(ftCfg, 'ft', B).forward);
  // The base figures quoted in docs/performance.md (and the issue): ~132 and ~234 GFLOP.
  const base = presetConfig('base');
  assert.ok(Math.abs(modelFlops(base, 'embed', 1).forward / 1e9 - 132) < 1.5);
  const pb = modelFlops(base, 'pretrain', 8);
  assert.ok(Math.abs((pb.forward + pb.backward) / 8 / 1e9 - 234) < 2);
});

test('runModelBench on the tiny preset reports every figure of the contract', async () => {
  const r = await runModelBench({ preset: 'tiny', batch: 2, reps: 1, warmupSeconds: 0, measurePeak: false });
  for (const k of ['embed_clips_per_s', 'pretrain_samples_per_s', 'ft_clips_per_s', 'peak_rss_mb'] as const) {
    assert.ok(Number.isFinite(r[k]) && (r[k] as number) > 0, `${k} = ${r[k]}`);
  }
  assert.equal(r.batch, 2);
  assert.equal(r.dtype, 'fp32');
  assert.ok(r.pretrain_phases && r.pretrain_phases.backward > 0);
  assert.ok(r.env.cpuModel.length > 0 && r.env.loadavgStart.length === 3);
  assert.deepEqual(Object.keys(r.mfu), []); // no peak measured, no MFU
  assert.ok(r.gflop_per_item.embed! > 0);
});

test('the api task times CavMae.load to the first clip and then batch-1 latency (int8 through the API)', async () => {
  const r = await runModelBench({
    preset: 'tiny',
    tasks: ['api'],
    dtype: 'int8',
    reps: 2,
    warmupSeconds: 0,
    measurePeak: false,
  });
  assert.ok(r.api, 'api figures reported');
  assert.ok(r.api.load_first_embed_s > 0 && r.api.latency_s > 0);
  assert.equal(r.api.latency_seconds.length, 2);
  assert.deepEqual(r.seconds.api, r.api.latency_seconds);
  assert.equal(r.embed_clips_per_s, undefined, 'only the api task ran');
  assert.ok(r.gflop_per_item.api! > 0);
});

test('modelFlops splits out the attention FLOPs', () => {
  const base = presetConfig('base');
  for (const task of ['embed', 'ft', 'pretrain'] as const) {
    const f = modelFlops(base, task, 2);
    assert.ok(
      f.attentionForward > 0 && f.attentionForward < 0.2 * f.forward,
      `${task}: ${f.attentionForward}`,
    );
  }
  // embed: 12 layers per modality, 4·T²·D per layer and clip (T = 512 audio, 196 visual tokens).
  const expected = 12 * 4 * 768 * (512 * 512 + 196 * 196);
  assert.equal(modelFlops(base, 'embed', 1).attentionForward, expected);
  assert.equal(modelFlops(base, 'api', 1).forward, modelFlops(base, 'embed', 1).forward);
});

test('bad model-bench options are one-line user errors', () => {
  assert.throws(() => checkModelBenchOptions({ batch: 0 }), UserError);
  assert.throws(
    () => checkModelBenchOptions({ dtype: 'fp16' as 'fp32' }),
    /OptionError: dtype must be one of fp32, bf16, int8, got 'fp16'/,
  );
  assert.throws(() => checkModelBenchOptions({ tasks: ['train' as 'embed'] }), /unknown task 'train'/);
});
