/**
 * Model benchmark: throughput of the whole CAV-MAE on the workload of the PyTorch peer's
 * `torch_bench.py` (../shared/peer/), so the two can be run side by side and compared.
 * Backs `cavmae bench --model-bench` and `npm run bench:compare`.
 *
 * Contract (cli-contracts.md): the report carries `embed_clips_per_s`, `pretrain_samples_per_s`,
 * `ft_clips_per_s` and `peak_rss_mb` under the peer's names, plus what the peer does not report:
 * model FLOPs per clip/sample, model FLOP utilisation (MFU) against the GEMM peak measured in
 * the same process, per-phase times of the pretraining step and the environment.
 *
 * The workload, as torch_bench.py: batch B (8) of standard-normal spectrograms [B,1024,128] and
 * images [B,3,224,224], a randomly initialised model of the preset (base), and
 * - embed: forward_feat (no masking, no gradients) + mean over tokens of both modalities;
 * - pretrain: zero grads, forward with 75% masking and both losses, backward, Adam
 *   (lr 1e-4, betas 0.95/0.999, weight decay 5e-7 as L2, over the parameters that received a
 *   gradient, as torch.optim.Adam skips the others);
 * - ft: the fine-tuning model (527 classes) in multimodal mode, no gradients.
 * Each task: one untimed call, then `reps` timed calls; the median is reported (the peer's
 * timeit). Before the first task the machine is warmed up with a few seconds of 2-thread GEMM
 * (this VM hands out the second core only under sustained load).
 *
 * dtype: fp32; bf16 (every GEMM input rounded to bf16, fp32 accumulation: the counterpart of
 * the peer's autocast); int8 (embed and ft only: linear layers in int8 with weights quantised
 * per output channel and activations per row, attention in bf16; docs/performance.md). MFU = model FLOPs / time / peak, with the peak of the GEMM type the
 * dtype runs on (int8 against the int8 peak).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { kernels as selectKernels } from '../kernels/index.js';
import type { Kernels } from '../kernels/api.js';
import { loadNativeKernels } from '../kernels/native.js';
import { FrozenWeights, Tape } from '../autograd/tape.js';
import * as ops from '../autograd/ops.js';
import { ActivationPool } from '../tensor/pool.js';
import { Rng } from '../tensor/rng.js';
import { Tensor } from '../tensor/tensor.js';
import { CAVMAE } from '../models/cavmae.js';
import { CAVMAEFT } from '../models/cavmae-ft.js';
import { modelDims, presetConfig, type CavmaeConfig } from '../models/config.js';
import { lenKeep } from '../models/masking.js';
import { OptionError } from '../util/errors.js';
import {
  type HostEnv,
  benchGemm,
  hardwarePeakOf,
  hostEnv,
  measureHardwarePeak,
  median,
  now,
  randomFill,
  timeCalls,
  warmUp,
} from './kernels.js';
import { writeSeededCheckpoint } from './seeded-checkpoint.js';
import { EPILOGUE_NONE, fused } from '../kernels/fused.js';

export type ModelTask = 'embed' | 'pretrain' | 'ft' | 'api';
export type ModelDtype = 'fp32' | 'bf16' | 'int8';
/** Every task; `api` runs only when asked for. */
export const MODEL_TASKS: readonly ModelTask[] = ['embed', 'pretrain', 'ft', 'api'];
const DEFAULT_TASKS: readonly ModelTask[] = ['embed', 'pretrain', 'ft'];
export const MODEL_DTYPES: readonly ModelDtype[] = ['fp32', 'bf16', 'int8'];

export interface ModelBenchOptions {
  /** A CAV-MAE pretraining preset (default 'base'); the fine-tuning model uses its encoder with 527 classes. */
  preset?: string;
  batch?: number;
  dtype?: ModelDtype;
  /** Timed calls per task after the untimed one (default 3, as the peer). */
  reps?: number;
  tasks?: readonly ModelTask[];
  threads?: number;
  /** Seconds of 2-thread GEMM before the first task (default 4; 0 skips). */
  warmupSeconds?: number;
  /** Measure the GEMM peak (default true); MFU is omitted without it. */
  measurePeak?: boolean;
  seed?: number;
  log?: (line: string) => void;
  kernels?: Kernels;
  /**
   * The `api` task's checkpoint: timed from `CavMae.load` of this file. Default: the preset's
   * seeded random model written to a temporary file first (untimed, by a child process so that
   * making it does not count in this process's peak RSS; deleted after).
   */
  model?: string;
}

/** Model FLOPs of one batch (multiply-add = 2 FLOPs; GEMMs and attention only). */
export interface ModelFlops {
  forward: number;
  backward: number;
  /** The part of `forward` in attention (q·kᵀ and att·v), for profiles and per-part rates. */
  attentionForward: number;
}

export interface ModelBenchReport {
  bench: 'model';
  preset: string;
  batch: number;
  dtype: ModelDtype;
  threads: number;
  reps: number;
  embed_clips_per_s?: number;
  pretrain_samples_per_s?: number;
  ft_clips_per_s?: number;
  /** Peak resident set size of the process so far (MB), as the peer's ru_maxrss / 1024. */
  peak_rss_mb: number;
  /** Model GFLOP per clip (embed, ft) or per sample (pretrain: forward + backward). */
  gflop_per_item: Partial<Record<ModelTask, number>>;
  /** Achieved model GFLOP/s per task (median time). */
  gflops: Partial<Record<ModelTask | 'pretrain_forward' | 'pretrain_backward', number>>;
  /** gflops / peak of the dtype's GEMM (0..1). */
  mfu: Partial<Record<ModelTask | 'pretrain_forward' | 'pretrain_backward', number>>;
  /** Best 2-thread GEMM GFLOP/s measured in this process per GEMM type (1024x768x3072, NN and NT). */
  peak_gflops: Partial<Record<ModelDtype, number>>;
  /** Seconds per call: every timed repetition, and for pretraining its phases (medians). */
  seconds: Partial<Record<ModelTask, number[]>>;
  pretrain_phases?: { forward: number; backward: number; optimizer: number };
  /**
   * The `api` task, what `serve` and the library API do for one clip: seconds from
   * `CavMae.load(file)` to the first clip's embeddings (audio and image, from tensors), and the
   * median latency of one clip's embeddings after that (each of `reps` calls timed).
   */
  api?: { load_first_embed_s: number; latency_s: number; latency_seconds: number[]; checkpoint: string };
  /**
   * Hardware peak of this process's threads from the bench's probe (register-only vfmadd,
   * vdpbf16ps, vpdpbusd chains), GFLOP/s (int8: GOP/s) per instruction type.
   */
  hardware_peak_gflops?: Partial<Record<ModelDtype, number>>;
  /**
   * Achieved model GFLOP/s / the hardware peak of the dtype (0..1); int8 against the vpdpbusd
   * peak (its linear layers and, with AVX512-VNNI, attention run in int8).
   */
  mfu_hardware?: Partial<Record<ModelTask, number>>;
  /** Bytes of the activation pool after the task (the arena of a step), MB. */
  activation_mb: Partial<Record<ModelTask, number>>;
  params: { pretrain?: number; ft?: number };
  env: ModelBenchEnv;
}

export interface ModelBenchEnv extends HostEnv {
  native?: {
    isa: string;
    dnnlVersion: string;
    dnnlIsa: string;
    compiler: string;
    gemmThreading?: string;
    int8Gemm?: string;
    f32Gemm?: string;
  };
}

// ---------------------------------------------------------------------------------------------
// FLOP counts

/** One transformer block over `tokens` tokens of width D in sequences of length T (forward). */
function blockFlops(tokens: number, T: number, D: number, mlpRatio: number): number {
  const hidden = Math.trunc(D * mlpRatio);
  const linears = 2 * tokens * (D * 3 * D + D * D + D * hidden + hidden * D);
  return linears + attentionFlops(tokens, T, D);
}

/** q·kᵀ and att·v over all heads of one block (forward). */
function attentionFlops(tokens: number, T: number, D: number): number {
  return 4 * tokens * T * D;
}

/**
 * Model FLOPs of one batch of B items for a task. Backward of every GEMM costs twice its
 * forward (input and weight gradients) except the patch embedding, whose input needs no
 * gradient; attention backward is four GEMMs of the forward's two sizes.
 */
export function modelFlops(cfg: CavmaeConfig, task: ModelTask, B: number): ModelFlops {
  const d = modelDims(cfg);
  const D = cfg.embed_dim;
  const p2 = cfg.patch_size * cfg.patch_size;
  const msd = cfg.modality_specific_depth;
  const sd = cfg.shared_depth;
  const r = cfg.mlp_ratio;
  const patchA = 2 * d.La * p2 * D;
  const patchV = 2 * d.Lv * p2 * cfg.in_chans * D;
  if (task === 'embed' || task === 'api') {
    const f = patchA + patchV + (msd + sd) * (blockFlops(d.La, d.La, D, r) + blockFlops(d.Lv, d.Lv, D, r));
    const att = (msd + sd) * (attentionFlops(d.La, d.La, D) + attentionFlops(d.Lv, d.Lv, D));
    return { forward: B * f, backward: 0, attentionForward: B * att };
  }
  if (task === 'ft') {
    const L = d.La + d.Lv;
    const f =
      patchA +
      patchV +
      msd * (blockFlops(d.La, d.La, D, r) + blockFlops(d.Lv, d.Lv, D, r)) +
      sd * blockFlops(L, L, D, r) +
      2 * D * (cfg.label_dim ?? 527);
    const att =
      msd * (attentionFlops(d.La, d.La, D) + attentionFlops(d.Lv, d.Lv, D)) + sd * attentionFlops(L, L, D);
    return { forward: B * f, backward: 0, attentionForward: B * att };
  }
  const Ka = lenKeep(d.La, cfg.mask_ratio_a);
  const Kv = lenKeep(d.Lv, cfg.mask_ratio_v);
  const K = Ka + Kv;
  const Dd = cfg.decoder_embed_dim;
  const L = d.La + d.Lv;
  // Contrastive streams: with the reference's quirk only the last shared layer runs on them.
  const contrastLayers = cfg.chain_shared_layers ? sd : Math.min(sd, 1);
  const enc =
    msd * (blockFlops(Ka, Ka, D, r) + blockFlops(Kv, Kv, D, r)) +
    sd * blockFlops(K, K, D, r) +
    contrastLayers * (blockFlops(Ka, Ka, D, r) + blockFlops(Kv, Kv, D, r));
  const encAttention =
    msd * (attentionFlops(Ka, Ka, D) + attentionFlops(Kv, Kv, D)) +
    sd * attentionFlops(K, K, D) +
    contrastLayers * (attentionFlops(Ka, Ka, D) + attentionFlops(Kv, Kv, D));
  const dec =
    2 * K * D * Dd +
    cfg.decoder_depth * blockFlops(L, L, Dd, r) +
    2 * d.La * Dd * p2 +
    2 * d.Lv * Dd * p2 * cfg.in_chans;
  const contrastive = 2 * B * B * D; // the similarity matrix a·vᵀ (negligible, counted for completeness)
  const forward = B * (patchA + patchV + enc + dec) + contrastive;
  // Attention backward = 2x forward; every linear 2x forward; patch embedding: weight gradient only.
  const backward = 2 * forward - B * (patchA + patchV);
  const attentionForward = B * (encAttention + cfg.decoder_depth * attentionFlops(L, L, Dd));
  return { forward, backward, attentionForward };
}

// ---------------------------------------------------------------------------------------------
// The benchmark

/** Best GOP/s of the int8 linear layer (activation quantisation included) at 1024x768x3072. */
function int8Peak(K: Kernels, threads: number, batchSeconds: number): number {
  const f = fused(K);
  const m = 1024;
  const k = 768;
  const n = 3072;
  const x = randomFill(new Float32Array(m * k), 21);
  const w = randomFill(new Float32Array(n * k), 22);
  const wq = new Int8Array(n * k);
  const ws = new Float32Array(n);
  const wc = new Int32Array(n);
  f.quantizeWeightsInt8(w, n, k, wq, ws, wc);
  // As the model's layers run: with the weights packed where the backend's GEMM reads them so.
  let packed: Uint8Array | null = null;
  if (f.packsInt8Weights(n, k)) f.packWeightsInt8(wq, n, k, (packed = new Uint8Array(n * k)));
  const c = new Float32Array(m * n);
  K.setThreads(threads);
  const t = timeCalls(
    () => f.gemmInt8(x, wq, ws, wc, c, m, n, k, null, EPILOGUE_NONE, null, null, null, null, null, packed),
    batchSeconds,
    3,
  );
  return (2 * m * n * k) / t.best / 1e9;
}

function timeit(fn: () => void, reps: number): number[] {
  fn(); // warm-up: primitive creation, pool growth, page faults
  const out: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = now();
    fn();
    out.push(now() - t0);
  }
  return out;
}

function round(x: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function rssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

function makeEnv(K: Kernels, warmupSeconds: number): ModelBenchEnv {
  const nat = loadNativeKernels();
  const env: ModelBenchEnv = hostEnv(K, warmupSeconds, nat.ok ? undefined : nat.error);
  env.cpuFlags = env.cpuFlags.filter((f) => /^(avx|amx|fma|f16c|sse4)/.test(f));
  if (K.name === 'native' && nat.ok) {
    const info = nat.kernels.info();
    env.native = {
      isa: info.isa,
      dnnlVersion: info.dnnlVersion,
      dnnlIsa: info.dnnlIsa,
      compiler: info.compiler,
      gemmThreading: info.gemmThreading,
      int8Gemm: info.int8Gemm,
      f32Gemm: info.f32Gemm,
    };
  }
  return env;
}

/** Checks options a person typed; throws an OptionError naming the problem. */
export function checkModelBenchOptions(opts: ModelBenchOptions): void {
  if (opts.batch !== undefined && !(Number.isInteger(opts.batch) && opts.batch >= 1 && opts.batch <= 4096))
    throw new OptionError((n) => `${n('batch')} must be an integer between 1 and 4096, got ${opts.batch}`);
  if (opts.reps !== undefined && !(Number.isInteger(opts.reps) && opts.reps >= 1 && opts.reps <= 1000))
    throw new OptionError((n) => `${n('reps')} must be an integer between 1 and 1000, got ${opts.reps}`);
  if (opts.dtype !== undefined && !MODEL_DTYPES.includes(opts.dtype))
    throw new OptionError(
      (n) => `${n('dtype')} must be one of ${MODEL_DTYPES.join(', ')}, got '${opts.dtype}'`,
    );
  for (const t of opts.tasks ?? [])
    if (!MODEL_TASKS.includes(t))
      throw new OptionError((n) => `${n('tasks')}: unknown task '${t}' (known: ${MODEL_TASKS.join(', ')})`);
  if (
    opts.threads !== undefined &&
    !(Number.isInteger(opts.threads) && opts.threads >= 1 && opts.threads <= 256)
  )
    throw new OptionError((n) => `${n('threads')} must be an integer between 1 and 256, got ${opts.threads}`);
}

function pretrainConfig(preset: string): CavmaeConfig {
  let cfg: CavmaeConfig;
  try {
    cfg = presetConfig(preset);
  } catch (e) {
    throw new OptionError((n) => `${n('preset')}: ${(e as Error).message}`);
  }
  if (cfg.model !== 'cavmae')
    throw new OptionError(
      (n) =>
        `${n('preset')} must name a CAV-MAE pretraining preset (e.g. base, tiny), got '${preset}' (${cfg.model})`,
    );
  return cfg;
}

export async function runModelBench(opts: ModelBenchOptions = {}): Promise<ModelBenchReport> {
  checkModelBenchOptions(opts);
  const log = opts.log ?? (() => {});
  const preset = opts.preset ?? 'base';
  const cfg = pretrainConfig(preset);
  const ftCfg = presetConfig(preset, { label_dim: 527, model: 'cavmae-ft' });
  const B = opts.batch ?? 8;
  const dtype = opts.dtype ?? 'fp32';
  const reps = opts.reps ?? 3;
  const tasks = opts.tasks ?? DEFAULT_TASKS;
  const K = opts.kernels ?? selectKernels();
  const threads = Math.min(opts.threads ?? 2, Math.max(1, cpus().length));
  const warmupSeconds = opts.warmupSeconds ?? (K.name === 'native' ? 4 : 0);
  const bf16 = dtype === 'bf16';
  const int8 = dtype === 'int8';
  if (int8 && tasks.includes('pretrain') && opts.tasks !== undefined)
    throw new OptionError(
      (n) => `${n('dtype')} int8 is for inference (embed, ft): training runs in fp32 or bf16`,
    );
  const seed = opts.seed ?? 0;
  const savedThreads = K.getThreads();
  const env = makeEnv(K, warmupSeconds);
  const report: ModelBenchReport = {
    bench: 'model',
    preset,
    batch: B,
    dtype,
    threads,
    reps,
    peak_rss_mb: 0,
    gflop_per_item: {},
    gflops: {},
    mfu: {},
    peak_gflops: {},
    seconds: {},
    activation_mb: {},
    params: {},
    env,
  };
  K.setThreads(threads);
  try {
    if (warmupSeconds > 0) {
      log(`warming up (${warmupSeconds} s of ${threads}-thread GEMM)...`);
      warmUp(K, threads, warmupSeconds);
    }
    if (opts.measurePeak ?? true) {
      // The same GEMM routine the model calls, at the widest ViT-B shape.
      for (const dt of bf16 ? (['fp32', 'bf16'] as const) : (['fp32'] as const)) {
        let best = 0;
        for (const trans of ['NN', 'NT'] as const) {
          const r = benchGemm(
            K,
            { m: 1024, k: 768, n: 3072 },
            trans,
            dt,
            threads,
            K.name === 'native' ? 0.2 : 0.02,
            3,
          );
          best = Math.max(best, r.gflops);
        }
        report.peak_gflops[dt] = round(best, 1);
        log(`GEMM peak ${dt} (${threads} threads): ${best.toFixed(1)} GFLOP/s`);
      }
      if (int8) {
        report.peak_gflops.int8 = round(int8Peak(K, threads, K.name === 'native' ? 0.2 : 0.02), 1);
        log(
          `GEMM peak int8 (${threads} threads, with per-row activation quantisation): ${report.peak_gflops.int8} GOP/s`,
        );
      }
      const nat = loadNativeKernels();
      const hw = K.name === 'native' && nat.ok ? measureHardwarePeak(nat.kernels, [threads], 200) : undefined;
      if (hw) {
        report.hardware_peak_gflops = { fp32: round(hw.fp32, 1), bf16: round(hw.bf16, 1) };
        if (hw.int8 > 0) report.hardware_peak_gflops.int8 = round(hw.int8, 1);
        log(
          `hardware peak (${threads} threads): fp32 ${hw.fp32.toFixed(1)}, bf16 ${hw.bf16.toFixed(1)} GFLOP/s, int8 ${hw.int8.toFixed(1)} GOP/s`,
        );
      }
      K.setThreads(threads);
    }
    const rng = new Rng(seed + 1);
    const S = cfg.img_size;
    const T = cfg.audio_length;
    const audio = new Tensor([B, T, 128]);
    const image = new Tensor([B, 3, S, S]);
    rng.fillNormal(audio.data, 0, 1);
    rng.fillNormal(image.data, 0, 1);
    const batch = { audio, image };
    const peak = report.peak_gflops[dtype];
    const hwPeak = report.hardware_peak_gflops;
    /** The hardware peak of the dtype: int8 runs linear layers and attention in int8 (VNNI). */
    const hardwarePeakFor = (): number | undefined =>
      hwPeak ? hardwarePeakOf(hwPeak, int8 ? 'int8' : dtype === 'bf16' ? 'bf16' : 'fp32') || undefined : undefined;
    const record = (
      task: ModelTask | 'pretrain_forward' | 'pretrain_backward',
      flop: number,
      seconds: number,
    ): void => {
      const g = flop / seconds / 1e9;
      report.gflops[task] = round(g, 1);
      if (peak) report.mfu[task] = round(g / peak, 3);
      const hp = task === 'pretrain_forward' || task === 'pretrain_backward' ? undefined : hardwarePeakFor();
      if (hp) (report.mfu_hardware ??= {})[task as ModelTask] = round(g / hp, 3);
    };

    if (tasks.includes('api')) {
      // What serve and the library API do: load a checkpoint, embed one clip (audio and image,
      // each its own batch-1 forward pass). Timed from CavMae.load to the first embeddings, then
      // `reps` more clips one at a time.
      const { CavMae } = await import('../api/cavmae.js');
      let file = opts.model;
      let tmp: string | undefined;
      if (!file) {
        tmp = mkdtempSync(join(tmpdir(), 'cavmae-bench-'));
        file = join(tmp, `${preset}.safetensors`);
        log(`api: writing the seeded ${preset} model to ${file} (untimed)...`);
        writeSeededCheckpoint(preset, seed, file);
      }
      try {
        const clipAudio = audio.data.slice(0, T * 128);
        const clipImage = image.data.slice(0, 3 * S * S);
        log(`api: CavMae.load + first clip, ${dtype}...`);
        const t0 = now();
        const api = await CavMae.load(file, { bf16, int8 });
        await api.embedClip(clipAudio, clipImage);
        const first = now() - t0;
        const lat: number[] = [];
        for (let i = 0; i < reps; i++) {
          const t = now();
          await api.embedClip(clipAudio, clipImage);
          lat.push(now() - t);
        }
        report.api = {
          load_first_embed_s: round(first),
          latency_s: round(median(lat)),
          latency_seconds: lat.map((x) => round(x)),
          checkpoint: opts.model ?? `${preset} (seeded random, temporary file)`,
        };
        report.seconds.api = report.api.latency_seconds;
        const fl = modelFlops(cfg, 'api', 1);
        report.gflop_per_item.api = round(fl.forward / 1e9, 2);
        record('api', fl.forward, median(lat));
        log(
          `api: load + first clip ${report.api.load_first_embed_s} s, then ${report.api.latency_s} s per clip`,
        );
      } finally {
        if (tmp) rmSync(tmp, { recursive: true, force: true });
      }
    }

    let model: CAVMAE | undefined;
    const runPretrain = tasks.includes('pretrain') && !int8;
    if (tasks.includes('embed') || runPretrain) {
      // int8: an inference model (linear layers held in int8 only, as CavMae.load int8 makes).
      model = CAVMAE.create(cfg, { seed, grad: runPretrain, int8 });
      report.params.pretrain = model.arena.size;
    }

    if (tasks.includes('embed')) {
      const pool = new ActivationPool();
      // Serving a loaded model: its bf16 / int8 weight copies are made once (as the API does).
      const frozen = new FrozenWeights();
      const embed = (): void => {
        const tp = new Tape({ grad: false, bf16, int8, pool, frozen });
        const f = model!.forwardFeat(tp, batch);
        ops.meanTokens(tp, f.audioTokens!);
        ops.meanTokens(tp, f.videoTokens!);
        tp.reset();
      };
      log(`embed: batch ${B}, ${dtype}...`);
      const s = timeit(embed, reps);
      const med = median(s);
      report.seconds.embed = s.map((x) => round(x));
      report.embed_clips_per_s = round(B / med);
      const fl = modelFlops(cfg, 'embed', B);
      report.gflop_per_item.embed = round(fl.forward / B / 1e9, 2);
      record('embed', fl.forward, med);
      report.activation_mb.embed = round(pool.allocatedBytes / 1e6, 1);
      pool.clear();
      log(`embed: ${report.embed_clips_per_s} clips/s (${report.gflops.embed} GFLOP/s)`);
    }

    if (runPretrain) {
      const m = model!;
      const arena = m.arena;
      const pool = new ActivationPool();
      const adamM = new Float32Array(arena.size);
      const adamV = new Float32Array(arena.size);
      let step = 0;
      const phases = { forward: [] as number[], backward: [] as number[], optimizer: [] as number[] };
      const pretrain = (): void => {
        const t0 = now();
        arena.zeroGrad(); // optimizer.zero_grad()
        const tp = new Tape({ pool, bf16 });
        const out = m.forward(tp, batch, { rng });
        const t1 = now();
        tp.backward(out.loss);
        const t2 = now();
        step++;
        for (const { offset: o, size: n } of arena.trainableRanges((p) => tp.paramsWithGrad.has(p))) {
          const v = (x: Float32Array): Float32Array => x.subarray(o, o + n);
          K.adamUpdate(
            v(arena.data),
            v(arena.grad),
            v(adamM),
            v(adamV),
            n,
            1e-4,
            0.95,
            0.999,
            1e-8,
            5e-7,
            step,
            false,
          );
        }
        tp.reset();
        const t3 = now();
        phases.forward.push(t1 - t0);
        phases.backward.push(t2 - t1);
        phases.optimizer.push(t3 - t2);
      };
      log(`pretrain: batch ${B}, ${dtype}...`);
      const s = timeit(pretrain, reps);
      for (const k of ['forward', 'backward', 'optimizer'] as const) phases[k].shift(); // the untimed call
      const med = median(s);
      report.seconds.pretrain = s.map((x) => round(x));
      report.pretrain_samples_per_s = round(B / med);
      const fl = modelFlops(cfg, 'pretrain', B);
      report.gflop_per_item.pretrain = round((fl.forward + fl.backward) / B / 1e9, 2);
      record('pretrain', fl.forward + fl.backward, med);
      report.pretrain_phases = {
        forward: round(median(phases.forward)),
        backward: round(median(phases.backward)),
        optimizer: round(median(phases.optimizer)),
      };
      record('pretrain_forward', fl.forward, report.pretrain_phases.forward);
      record('pretrain_backward', fl.backward, report.pretrain_phases.backward);
      report.activation_mb.pretrain = round(pool.allocatedBytes / 1e6, 1);
      log(
        `pretrain: ${report.pretrain_samples_per_s} samples/s (${report.gflops.pretrain} GFLOP/s; forward ` +
          `${report.pretrain_phases.forward} s, backward ${report.pretrain_phases.backward} s, optimizer ${report.pretrain_phases.optimizer} s)`,
      );
      pool.clear();
    }

    if (tasks.includes('ft')) {
      const ft = CAVMAEFT.create(ftCfg, { seed, grad: false, int8 });
      report.params.ft = ft.arena.size;
      const pool = new ActivationPool();
      const frozen = new FrozenWeights();
      const forwardFt = (): void => {
        const tp = new Tape({ grad: false, bf16, int8, pool, frozen });
        ft.forward(tp, batch, 'multimodal');
        tp.reset();
      };
      log(`ft: batch ${B}, ${dtype}...`);
      const s = timeit(forwardFt, reps);
      const med = median(s);
      report.seconds.ft = s.map((x) => round(x));
      report.ft_clips_per_s = round(B / med);
      const fl = modelFlops(ftCfg, 'ft', B);
      report.gflop_per_item.ft = round(fl.forward / B / 1e9, 2);
      record('ft', fl.forward, med);
      report.activation_mb.ft = round(pool.allocatedBytes / 1e6, 1);
      log(`ft: ${report.ft_clips_per_s} clips/s (${report.gflops.ft} GFLOP/s)`);
    }
    report.peak_rss_mb = round(rssMb(), 1);
    env.loadavgEnd = loadavg().map((x) => round(x, 2));
    return report;
  } finally {
    K.setThreads(savedThreads);
  }
}

/** A human-readable summary (the CLI without --json). */
export function formatModelReport(r: ModelBenchReport): string {
  const lines: string[] = [];
  const e = r.env;
  lines.push(
    `cavmae model benchmark: preset ${r.preset}, batch ${r.batch}, ${r.dtype}, ${r.threads} threads, median of ${r.reps} (${e.backend}` +
      `${e.native ? `, oneDNN ${e.native.dnnlVersion} ${e.native.dnnlIsa}` : ''})`,
  );
  lines.push(
    `cpu: ${e.cpuModel}, ${e.logicalCpus} logical CPUs; node ${e.node}; load ${e.loadavgStart.join(' ')} -> ${(e.loadavgEnd ?? []).join(' ')}`,
  );
  const peaks = Object.entries(r.peak_gflops).map(([k, v]) => `${k} ${v} GFLOP/s`);
  if (peaks.length) lines.push(`GEMM peak measured: ${peaks.join(', ')}`);
  const row = (name: string, rate: number | undefined, unit: string, task: ModelTask): void => {
    if (rate === undefined) return;
    const mfu = r.mfu[task] !== undefined ? `, MFU ${(100 * r.mfu[task]!).toFixed(0)}%` : '';
    lines.push(
      `${name.padEnd(22)} ${rate.toFixed(3).padStart(8)} ${unit}  (${r.gflop_per_item[task]} GFLOP each, ${r.gflops[task]} GFLOP/s${mfu})`,
    );
  };
  row('embedding', r.embed_clips_per_s, 'clips/s  ', 'embed');
  row('pretraining step', r.pretrain_samples_per_s, 'samples/s', 'pretrain');
  if (r.pretrain_phases) {
    const p = r.pretrain_phases;
    lines.push(
      `${''.padEnd(22)} forward ${p.forward} s, backward ${p.backward} s, optimizer ${p.optimizer} s per step`,
    );
  }
  row('fine-tuning forward', r.ft_clips_per_s, 'clips/s  ', 'ft');
  if (r.api)
    lines.push(
      `${'API, one clip'.padEnd(22)} ${r.api.latency_s.toFixed(3).padStart(8)} s latency  (CavMae.load to the first clip: ${r.api.load_first_embed_s} s)`,
    );
  const hw = r.hardware_peak_gflops;
  if (hw)
    lines.push(
      `hardware peak: fp32 ${hw.fp32} / bf16 ${hw.bf16} GFLOP/s${hw.int8 ? ` / int8 ${hw.int8} GOP/s` : ''}; MFU vs hardware: ` +
        Object.entries(r.mfu_hardware ?? {})
          .map(([t, v]) => `${t} ${(100 * v).toFixed(0)}%`)
          .join(', '),
    );
  lines.push(`peak RSS: ${r.peak_rss_mb} MB`);
  return lines.join('\n');
}
