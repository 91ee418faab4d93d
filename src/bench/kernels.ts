/**
 * Kernel benchmark: GFLOP/s of every GEMM shape a ViT-B CAV-MAE runs, the time of every other
 * kernel at [1024 x 768] against the machine's measured memory bandwidth, and the JS -> native
 * call overhead. Backs `cavmae bench` and `npm run bench`.
 *
 * Contract: the report is one JSON object `{ env, peak, gemm, kernels, overhead, bandwidth }`;
 * `gemm` entries are `{ m, k, n, trans, dtype, threads, gflops, ... }` (cli-contracts.md).
 * Method: a warm-up of sustained 2-thread GEMM first (this VM hands out the second core only
 * after a few seconds of load), then for every configuration a few timed batches of calls; the
 * reported figure is the best batch (the machine is shared, and the best batch is the one the
 * least disturbed by other processes), the median is recorded next to it. The peak is the
 * highest GEMM rate measured per dtype; utilisation is every other rate divided by it.
 * `peak.hardware` is the machine's raw arithmetic peak from register-only FMA chains (fp32
 * vfmadd, bf16 vdpbf16ps) at each thread count, plus a clock estimate; every GEMM entry also
 * carries `hardwareUtilisation` against it, so a GEMM target can be checked against what the
 * cores can do at all, not only against the best GEMM measured.
 * Memory-bound kernels are compared with a copy of the same working set (`bandwidth`): the
 * bound is bytes moved / copy bandwidth, and `ratio` = time / bound (1.0 = at the bound).
 */
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import type { Kernels } from '../kernels/api.js';
import { kernels as selectKernels } from '../kernels/index.js';
import { loadNativeKernels, type NativeKernels } from '../kernels/native.js';

export type Trans = 'NN' | 'NT' | 'TN';
export type Dtype = 'fp32' | 'bf16';

export interface GemmResult {
  m: number;
  k: number;
  n: number;
  trans: Trans;
  dtype: Dtype;
  threads: number;
  /** Best batch. */
  gflops: number;
  gflopsMedian: number;
  /** Milliseconds per call (best batch). */
  ms: number;
  /** gflops / peak[dtype]. */
  utilisation: number;
  /** gflops / the hardware FMA peak of this dtype at this thread count (when probed). */
  hardwareUtilisation?: number;
}

/**
 * Raw arithmetic peak of the cores (register-only chains of the instruction each dtype's GEMMs
 * run on), GFLOP/s. On a CPU with AMX where our int8 GEMM runs AMX (int8Gemm 'amx-packed') int8
 * is the tdpbusd peak, and where oneDNN runs its AMX kernels (dnnlIsa avx512_core_amx) bf16 is the
 * tdpbf16ps peak; the AVX-512 figures are then kept as int8Vnni / bf16Avx512.
 */
export interface HardwarePeak {
  /** At the largest thread count measured. */
  fp32: number;
  bf16: number;
  /** int8 GOP/s: vpdpbusd, or tdpbusd on AMX (0 without AVX512-VNNI or with an addon built before this probe). */
  int8: number;
  /** Where int8 is the AMX peak: the vpdpbusd peak. */
  int8Vnni?: number;
  /** Where bf16 is the AMX peak: the vdpbf16ps peak. */
  bf16Avx512?: number;
  /** Clock estimate from a dependent integer-add chain (one add per cycle), GHz, one thread. */
  ghzEstimate: number;
  byThreads: { threads: number; fp32: number; bf16: number; int8: number; int8Vnni?: number; bf16Avx512?: number }[];
}

export interface KernelResult {
  kernel: string;
  /** e.g. "1024x768" or "B2 T512 C768 H12". */
  shape: string;
  dtype: Dtype;
  threads: number;
  /** Microseconds per call (best batch) and the median batch. */
  us: number;
  usMedian: number;
  /** Bytes the kernel must move at least (inputs read once, outputs written once). */
  bytes: number;
  gbps: number;
  /** bytes / measured copy bandwidth at this thread count, in microseconds; 0 for compute-bound kernels. */
  boundUs: number;
  /** us / boundUs (target <= 1.5); for compute-bound kernels (attention) gflops and utilisation instead. */
  ratio?: number;
  gflops?: number;
  utilisation?: number;
}

/** The machine and process a benchmark ran on (both benchmarks' reports carry it). */
export interface HostEnv {
  date: string;
  backend: 'native' | 'ts';
  nativeError?: string;
  cpuModel: string;
  /** Vendor, family, model number and microarchitecture (e.g. AMD family 25 model 17, Zen 4). */
  cpuArch?: CpuArch;
  cpuFlags: string[];
  logicalCpus: number;
  cache?: Record<string, string>;
  node: string;
  v8: string;
  platform: string;
  /** OPENBLAS_*, OMP_*, GOMP_*, ONEDNN_*, DNNL_*, CAVMAE_* variables as set. */
  variables: Record<string, string>;
  loadavgStart: number[];
  loadavgEnd?: number[];
  warmupSeconds: number;
}

export function hostEnv(K: Kernels, warmupSeconds: number, nativeError?: string): HostEnv {
  const cpu = cpuInfo();
  return {
    date: new Date().toISOString(),
    backend: K.name,
    ...(nativeError !== undefined ? { nativeError } : {}),
    cpuModel: cpu.model,
    cpuArch: cpu.arch,
    cpuFlags: cpu.flags,
    logicalCpus: Math.max(1, cpus().length),
    cache: cpu.cache,
    node: process.version,
    v8: process.versions.v8,
    platform: `${process.platform}-${process.arch}`,
    variables: envVariables(),
    loadavgStart: loadavg().map((x) => Math.round(x * 100) / 100),
    warmupSeconds,
  };
}

export interface BenchEnv extends HostEnv {
  /** Thread counts measured, and the backend's default. */
  threads: number[];
  defaultThreads: number;
  native?: {
    isa: string;
    dnnlVersion: string;
    dnnlIsa: string;
    dnnlThreading: string;
    compiler: string;
    parallelMinBytes: number;
    /** oneDNN implementation per layout at 1024x768x3072, e.g. "brg:avx512_core_bf16". */
    gemmImpl: Record<string, string>;
  };
  quick: boolean;
}

export interface BenchReport {
  env: BenchEnv;
  /** Highest GEMM GFLOP/s measured per dtype (any shape, any thread count), and the hardware probe. */
  peak: Record<Dtype, number> & { hardware?: HardwarePeak };
  gemm: GemmResult[];
  kernels: KernelResult[];
  /** Copy bandwidth of the [1024 x 768] working set per thread count, GB/s (read + write). */
  bandwidth: { threads: number; gbps: number; bytes: number }[];
  /** Microseconds per call of a kernel doing (almost) nothing: the JS -> native crossing. */
  overhead: { call: string; args: number; us: number }[];
}

export interface KernelBenchOptions {
  /** One GEMM shape, fewer repetitions, shorter warm-up: a smoke run of a few seconds. */
  quick?: boolean;
  /** Thread counts to measure (default [1, 2], capped at the CPUs present). */
  threads?: number[];
  /** Progress lines (stderr in the CLI). */
  log?: (line: string) => void;
  /**
   * Measure only these parts: 'gemm', 'peak' (hardware probe), 'attention', 'overhead',
   * 'elementwise' (every memory-bound kernel), or kernel names ('add', 'geluForward', ...).
   * Default: everything.
   */
  only?: string[];
  /** Override the backend (tests). */
  kernels?: Kernels;
  /** Timing controls (tests use tiny values to check the report's shape only). */
  batchSeconds?: number;
  batches?: number;
  warmupSeconds?: number;
  /** Milliseconds per hardware-peak probe (default 300; tests use a few). */
  probeMs?: number;
}

const GEMM_M = [128, 708, 1024, 4096];
const GEMM_N = [768, 2304, 3072];
const GEMM_K = 768;
const TRANS: Trans[] = ['NN', 'NT', 'TN'];
const DTYPES: Dtype[] = ['fp32', 'bf16'];
const ROWS = 1024;
const COLS = 768;

/** Seconds from a high-resolution timer. */
export function now(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/**
 * Times `fn`: calibrates how many calls make a batch of ~`batchSeconds`, then runs `batches`
 * batches; returns seconds per call of the best and of the median batch.
 */
export function timeCalls(
  fn: () => void,
  batchSeconds: number,
  batches: number,
): { best: number; median: number } {
  fn(); // first call: primitive creation, page faults
  let iters = 1;
  for (;;) {
    const t0 = now();
    for (let i = 0; i < iters; i++) fn();
    const dt = now() - t0;
    if (dt >= batchSeconds / 4 || iters >= 1 << 24) {
      iters = Math.max(1, Math.ceil((iters * batchSeconds) / Math.max(dt, 1e-9)));
      break;
    }
    iters *= 4;
  }
  const per: number[] = [];
  for (let b = 0; b < batches; b++) {
    const t0 = now();
    for (let i = 0; i < iters; i++) fn();
    per.push((now() - t0) / iters);
  }
  return { best: Math.min(...per), median: median(per) };
}

export function randomFill(x: Float32Array, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  for (let i = 0; i < x.length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    x[i] = ((s >>> 0) / 4294967296 - 0.5) * 2 * scale;
  }
  return x;
}

/** The CPU's vendor, family and model numbers and, where known, its microarchitecture. */
export interface CpuArch {
  vendor: string;
  family: number;
  model: number;
  /** e.g. 'Zen 4' (AMD family 25 models 0x10-0x1f, 0x60-0x7f, 0xa0-0xaf), 'Zen 5' (family 26). */
  microarchitecture: string;
}

/** AMD's microarchitecture from family and model (the kernels' per-CPU choices key on it). */
export function microarchitecture(vendor: string, family: number, model: number): string {
  if (vendor !== 'AuthenticAMD')
    return vendor === 'GenuineIntel' ? `Intel family ${family} model ${model}` : 'unknown';
  if (family === 23) return model >= 0x30 ? 'Zen 2' : 'Zen / Zen+';
  if (family === 25)
    return (model >= 0x10 && model <= 0x1f) ||
      (model >= 0x60 && model <= 0x7f) ||
      (model >= 0xa0 && model <= 0xaf)
      ? 'Zen 4'
      : 'Zen 3';
  if (family === 26) return 'Zen 5';
  return `AMD family ${family}`;
}

export function cpuInfo(): { model: string; flags: string[]; cache: Record<string, string>; arch?: CpuArch } {
  let model = cpus()[0]?.model ?? 'unknown';
  let flags: string[] = [];
  const cache: Record<string, string> = {};
  let arch: CpuArch | undefined;
  try {
    const text = readFileSync('/proc/cpuinfo', 'utf8');
    const field = (name: string): string | undefined =>
      new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm').exec(text)?.[1].trim();
    const vendor = field('vendor_id');
    const family = Number(field('cpu family'));
    const modelNumber = Number(field('model'));
    if (vendor && Number.isInteger(family) && Number.isInteger(modelNumber))
      arch = {
        vendor,
        family,
        model: modelNumber,
        microarchitecture: microarchitecture(vendor, family, modelNumber),
      };
    const modelLine = /^model name\s*:\s*(.*)$/m.exec(text);
    if (modelLine) model = modelLine[1].trim();
    const flagLine = /^flags\s*:\s*(.*)$/m.exec(text);
    if (flagLine) flags = flagLine[1].trim().split(/\s+/);
    const sizeLine = /^cache size\s*:\s*(.*)$/m.exec(text);
    if (sizeLine) cache.reported = sizeLine[1].trim();
  } catch {
    // not Linux: the model from os.cpus() is all there is
  }
  for (const [level, idx] of [
    ['L1d', 0],
    ['L2', 2],
    ['L3', 3],
  ] as const) {
    try {
      cache[level] = readFileSync(`/sys/devices/system/cpu/cpu0/cache/index${idx}/size`, 'utf8').trim();
    } catch {
      // no sysfs cache information
    }
  }
  return { model, flags, cache, arch };
}

export function envVariables(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && /^(OPENBLAS_|OMP_|GOMP_|KMP_|ONEDNN_|DNNL_|MKL_|CAVMAE_)/.test(k)) out[k] = v;
  }
  return out;
}

/** Keeps 2 threads busy with GEMM for `seconds` (the VM ramps the second core up under load). */
export function warmUp(K: Kernels, threads: number, seconds: number): void {
  const m = 512;
  const a = randomFill(new Float32Array(m * m), 1);
  const b = randomFill(new Float32Array(m * m), 2);
  const c = new Float32Array(m * m);
  K.setThreads(threads);
  const end = now() + seconds;
  while (now() < end) K.matmul(a, b, c, m, m, m, false, false, 1, 0, false);
}

export interface Shape {
  m: number;
  k: number;
  n: number;
}

function gemmShapes(quick: boolean): Shape[] {
  if (quick) return [{ m: 1024, k: GEMM_K, n: 3072 }];
  const out: Shape[] = [];
  for (const m of GEMM_M) for (const n of GEMM_N) out.push({ m, k: GEMM_K, n });
  return out;
}

export function benchGemm(
  K: Kernels,
  s: Shape,
  trans: Trans,
  dtype: Dtype,
  threads: number,
  batchSeconds: number,
  batches: number,
) {
  const a = randomFill(new Float32Array(s.m * s.k), 11);
  const b = randomFill(new Float32Array(s.k * s.n), 12);
  const c = new Float32Array(s.m * s.n);
  const ta = trans === 'TN';
  const tb = trans === 'NT';
  const bf16 = dtype === 'bf16';
  K.setThreads(threads);
  const t = timeCalls(() => K.matmul(a, b, c, s.m, s.n, s.k, ta, tb, 1, 0, bf16), batchSeconds, batches);
  const flop = 2 * s.m * s.n * s.k;
  return { gflops: flop / t.best / 1e9, gflopsMedian: flop / t.median / 1e9, ms: t.best * 1e3 };
}

/** One kernel configuration: a closure over preallocated buffers plus the bytes it must move. */
interface KernelCase {
  kernel: string;
  shape: string;
  dtype: Dtype;
  bytes: number;
  flop?: number;
  run: () => void;
}

function kernelCases(K: Kernels): KernelCase[] {
  const r = ROWS;
  const c = COLS;
  const n = r * c;
  const shape = `${r}x${c}`;
  const f = (len: number, seed: number, scale = 1) => randomFill(new Float32Array(len), seed, scale);
  const x = f(n, 1);
  const y = f(n, 2);
  const out = new Float32Array(n);
  const dinp = new Float32Array(n);
  const w = f(c, 3);
  const b = f(c, 4);
  const mean = new Float32Array(r);
  const rstd = new Float32Array(r);
  K.layerNormForward(out, mean, rstd, x, w, b, r, c, 1e-6);
  const dw = new Float32Array(c);
  const db = new Float32Array(c);
  const probs = new Float32Array(n);
  K.softmaxForward(probs, x, r, c, 1);
  const norms = new Float32Array(r);
  const unit = new Float32Array(n);
  K.l2Normalize(unit, norms, x, r, c, 1e-12);
  // A random permutation of the rows (un-shuffling after masking).
  const perm = Int32Array.from({ length: r }, (_, i) => i);
  for (let i = r - 1; i > 0; i--) {
    const j = (i * 7919 + 13) % (i + 1);
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  const pooled = new Float32Array(c);
  const pm = new Float32Array(n);
  const pv = new Float32Array(n);
  const u16 = new Uint16Array(n);
  K.f32ToBf16(u16, x, n);
  const F = 4;
  const cases: KernelCase[] = [
    {
      kernel: 'layerNormForward',
      shape,
      dtype: 'fp32',
      bytes: 2 * F * n,
      run: () => K.layerNormForward(out, mean, rstd, x, w, b, r, c, 1e-6),
    },
    {
      kernel: 'layerNormBackward',
      shape,
      dtype: 'fp32',
      bytes: 4 * F * n,
      run: () => K.layerNormBackward(dinp, dw, db, y, x, w, mean, rstd, r, c),
    },
    { kernel: 'geluForward', shape, dtype: 'fp32', bytes: 2 * F * n, run: () => K.geluForward(out, x, n) },
    {
      kernel: 'geluBackward',
      shape,
      dtype: 'fp32',
      bytes: 4 * F * n,
      run: () => K.geluBackward(dinp, x, y, n),
    },
    {
      kernel: 'softmaxForward',
      shape,
      dtype: 'fp32',
      bytes: 2 * F * n,
      run: () => K.softmaxForward(out, x, r, c, 0.125),
    },
    {
      kernel: 'softmaxBackward',
      shape,
      dtype: 'fp32',
      bytes: 4 * F * n,
      run: () => K.softmaxBackward(dinp, probs, y, r, c, 0.125),
    },
    { kernel: 'biasAdd', shape, dtype: 'fp32', bytes: 2 * F * n, run: () => K.biasAdd(out, b, r, c) },
    { kernel: 'biasBackward', shape, dtype: 'fp32', bytes: F * n, run: () => K.biasBackward(db, y, r, c) },
    { kernel: 'add', shape, dtype: 'fp32', bytes: 3 * F * n, run: () => K.add(out, x, y, n) },
    { kernel: 'axpy', shape, dtype: 'fp32', bytes: 3 * F * n, run: () => K.axpy(dinp, x, 1e-3, n) },
    {
      kernel: 'gatherRows',
      shape,
      dtype: 'fp32',
      bytes: 2 * F * n,
      run: () => K.gatherRows(out, x, perm, r, c),
    },
    {
      kernel: 'scatterAddRows',
      shape,
      dtype: 'fp32',
      bytes: 3 * F * n,
      run: () => K.scatterAddRows(dinp, y, perm, r, c),
    },
    { kernel: 'meanPool', shape, dtype: 'fp32', bytes: F * n, run: () => K.meanPool(pooled, x, 1, r, c) },
    {
      kernel: 'meanPoolBackward',
      shape,
      dtype: 'fp32',
      bytes: 2 * F * n,
      run: () => K.meanPoolBackward(dinp, pooled, 1, r, c),
    },
    {
      kernel: 'l2Normalize',
      shape,
      dtype: 'fp32',
      bytes: 2 * F * n,
      run: () => K.l2Normalize(out, norms, x, r, c, 1e-12),
    },
    {
      kernel: 'l2NormalizeBackward',
      shape,
      dtype: 'fp32',
      bytes: 4 * F * n,
      run: () => K.l2NormalizeBackward(dinp, y, unit, norms, r, c, 1e-12),
    },
    // Adam over n parameters: reads p, g, m, v; writes p, m, v.
    {
      kernel: 'adamUpdate',
      shape: `${n}`,
      dtype: 'fp32',
      bytes: 7 * F * n,
      run: () => K.adamUpdate(out, y, pm, pv, n, 1e-4, 0.9, 0.999, 1e-8, 0.05, 10, true),
    },
    { kernel: 'f32ToBf16', shape, dtype: 'bf16', bytes: 6 * n, run: () => K.f32ToBf16(u16, x, n) },
    { kernel: 'bf16ToF32', shape, dtype: 'bf16', bytes: 6 * n, run: () => K.bf16ToF32(out, u16, n) },
  ];
  // Attention at [1024 x 768] tokens: B=2 sequences of T=512 (the audio branch), 12 heads of 64.
  const B = 2;
  const T = 512;
  const C = COLS;
  const H = 12;
  const qkv = f(B * T * 3 * C, 5, 1.5);
  const att = new Float32Array(B * H * T * T);
  const aout = new Float32Array(B * T * C);
  const dqkv = new Float32Array(B * T * 3 * C);
  const scratch = new Float32Array(B * H * T * T);
  const dout = f(B * T * C, 6);
  const flopFwd = 4 * B * H * T * T * (C / H);
  for (const dtype of DTYPES) {
    const bf16 = dtype === 'bf16';
    const ashape = `B${B} T${T} C${C} H${H}`;
    cases.push(
      {
        kernel: 'attentionForward',
        shape: ashape,
        dtype,
        bytes: 0,
        flop: flopFwd,
        run: () => K.attentionForward(aout, att, qkv, B, T, C, H, 0.125, bf16),
      },
      {
        kernel: 'attentionBackward',
        shape: ashape,
        dtype,
        bytes: 0,
        flop: 2 * flopFwd,
        run: () => K.attentionBackward(dqkv, scratch, dout, qkv, att, B, T, C, H, 0.125, bf16),
      },
    );
  }
  return cases;
}

/** Copy bandwidth (GB/s, bytes read + written) of the [1024 x 768] working set. */
function measureBandwidth(
  K: Kernels,
  threads: number,
  batchSeconds: number,
  batches: number,
): { gbps: number; bytes: number } {
  const n = ROWS * COLS;
  const src = randomFill(new Float32Array(n), 9);
  const dst = new Float32Array(n);
  const nat = K as Partial<NativeKernels>;
  K.setThreads(threads);
  // The addon's own threaded copy; the TypeScript path has no threads, so TypedArray.set (memmove).
  const copy = nat.copy ? () => nat.copy!(dst, src, n) : () => dst.set(src);
  const t = timeCalls(copy, batchSeconds, batches);
  const bytes = 8 * n;
  return { gbps: bytes / t.best / 1e9, bytes };
}

function measureOverhead(K: Kernels): { call: string; args: number; us: number }[] {
  const one = new Float32Array(16);
  const u16 = new Uint16Array(16);
  const cases: { call: string; args: number; fn: () => void }[] = [
    { call: 'getThreads()', args: 0, fn: () => K.getThreads() },
    { call: 'add(n=1)', args: 4, fn: () => K.add(one, one, one, 1) },
    { call: 'f32ToBf16(n=1)', args: 3, fn: () => K.f32ToBf16(u16, one, 1) },
    {
      call: 'adamUpdate(n=1)',
      args: 12,
      fn: () => K.adamUpdate(one, one, one, one, 1, 0, 0.9, 0.999, 1e-8, 0, 1, false),
    },
    {
      call: 'matmul(1x1x1)',
      args: 11,
      fn: () => K.matmul(one, one, one, 1, 1, 1, false, false, 1, 0, false),
    },
  ];
  K.setThreads(1);
  return cases.map(({ call, args, fn }) => ({ call, args, us: timeCalls(fn, 0.05, 5).best * 1e6 }));
}

/** The parts `--only` accepts besides kernel names. */
export const BENCH_PARTS = ['gemm', 'peak', 'attention', 'overhead', 'elementwise'] as const;

/**
 * Hardware FMA peak per thread count (best of a few ~0.3 s probes) and a clock estimate. The
 * largest thread count goes first, right after the multi-threaded warm-up: after a second of
 * single-threaded work this VM parks the second vCPU again.
 */
/**
 * The peak of the instruction a dtype's GEMMs run on. Without AVX512-BF16 (bf16) or VNNI (int8)
 * the probe reports 0 and those GEMMs run on fp32 FMAs over widened operands (native/gemm.cc),
 * so the fp32 peak is theirs.
 */
export function hardwarePeakOf(
  hw: { fp32?: number; bf16?: number; int8?: number },
  dtype: 'fp32' | 'bf16' | 'int8',
): number {
  const own = hw[dtype] ?? 0;
  return own > 0 ? own : (hw.fp32 ?? 0);
}

export function measureHardwarePeak(
  nat: NativeKernels,
  threads: number[],
  ms: number,
): HardwarePeak | undefined {
  if (typeof nat.peakProbe !== 'function') return undefined; // an addon built before the probe
  const best = (kind: number, t: number): number => {
    try {
      return Math.max(...[0, 1, 2].map(() => nat.peakProbe!(kind, t, ms)));
    } catch {
      return 0; // an addon built before this kind of probe
    }
  };
  const info = typeof nat.info === 'function' ? nat.info() : undefined;
  const amxInt8 = info?.int8Gemm === 'amx-packed';
  const amxBf16 = (info?.dnnlIsa ?? '').includes('amx');
  const byThreads = [...threads]
    .reverse()
    .map((t) => {
      const row: HardwarePeak['byThreads'][number] = { threads: t, fp32: best(0, t), bf16: best(1, t), int8: best(3, t) };
      const int8Amx = amxInt8 ? best(4, t) : 0;
      const bf16Amx = amxBf16 ? best(5, t) : 0;
      if (int8Amx > 0) [row.int8Vnni, row.int8] = [row.int8, int8Amx];
      if (bf16Amx > 0) [row.bf16Avx512, row.bf16] = [row.bf16, bf16Amx];
      return row;
    })
    .reverse();
  const top = byThreads[byThreads.length - 1];
  const ghzEstimate = Math.max(...[0, 1, 2].map(() => nat.peakProbe!(2, 1, Math.max(1, ms / 3))));
  const extra = {
    ...(top.int8Vnni !== undefined ? { int8Vnni: top.int8Vnni } : {}),
    ...(top.bf16Avx512 !== undefined ? { bf16Avx512: top.bf16Avx512 } : {}),
  };
  return { fp32: top.fp32, bf16: top.bf16, int8: top.int8, ...extra, ghzEstimate, byThreads };
}

export async function runKernelBench(opts: KernelBenchOptions = {}): Promise<BenchReport> {
  const log = opts.log ?? (() => {});
  const only = opts.only && opts.only.length > 0 ? new Set(opts.only) : undefined;
  const want = (part: string) => !only || only.has(part);
  const wantKernel = (name: string) =>
    !only || only.has(name) || only.has(name.startsWith('attention') ? 'attention' : 'elementwise');
  const quick = opts.quick ?? false;
  const K = opts.kernels ?? selectKernels();
  const nat = loadNativeKernels();
  const maxThreads = Math.max(1, cpus().length);
  const threads = [...new Set((opts.threads ?? [1, 2]).map((t) => Math.min(t, maxThreads)))].sort(
    (a, b) => a - b,
  );
  const defaultThreads = K.getThreads();
  const isNative = K.name === 'native';
  // The TypeScript GEMM runs at ~1 GFLOP/s: only the quick shape is feasible there.
  const quickRun = quick || !isNative;
  const batchSeconds = opts.batchSeconds ?? (quickRun ? 0.05 : 0.1);
  const batches = opts.batches ?? (quickRun ? 3 : 4);
  const warmupSeconds = opts.warmupSeconds ?? (!isNative ? 0 : quick ? 1.5 : 4);

  const env: BenchEnv = {
    ...hostEnv(K, warmupSeconds, nat.ok ? undefined : nat.error),
    threads,
    defaultThreads,
    quick: quickRun,
  };
  if (isNative && nat.ok) {
    const info = nat.kernels.info();
    const gemmImpl: Record<string, string> = {};
    for (const dtype of DTYPES) {
      for (const trans of TRANS) {
        gemmImpl[`${dtype} ${trans}`] = nat.kernels.gemmInfo(
          1024,
          3072,
          768,
          trans === 'TN',
          trans === 'NT',
          dtype === 'bf16',
        );
      }
    }
    env.native = {
      isa: info.isa,
      dnnlVersion: info.dnnlVersion,
      dnnlIsa: info.dnnlIsa,
      dnnlThreading: info.dnnlThreading,
      compiler: info.compiler,
      parallelMinBytes: info.parallelMinBytes,
      gemmImpl,
    };
  }

  try {
    if (warmupSeconds > 0) {
      log(`warming up (${warmupSeconds} s of ${threads[threads.length - 1]}-thread GEMM)...`);
      warmUp(K, threads[threads.length - 1], warmupSeconds);
    }

    const peak = { fp32: 0, bf16: 0 } as BenchReport['peak'];
    if (isNative && nat.ok && want('peak')) {
      const hw = measureHardwarePeak(nat.kernels, threads, opts.probeMs ?? 300);
      if (hw) {
        peak.hardware = hw;
        for (const h of hw.byThreads)
          log(
            `hardware FMA peak ${t2s(h.threads)}: fp32 ${h.fp32.toFixed(1)}, bf16 ${h.bf16.toFixed(1)} GFLOP/s, int8 ${h.int8.toFixed(1)} GOP/s`,
          );
        log(`clock estimate: ${hw.ghzEstimate.toFixed(2)} GHz`);
      }
    }

    const gemm: GemmResult[] = [];
    for (const s of want('gemm') ? gemmShapes(quickRun) : []) {
      for (const trans of TRANS) {
        for (const dtype of DTYPES) {
          for (const t of [...threads].reverse()) {
            const r = benchGemm(K, s, trans, dtype, t, batchSeconds, batches);
            gemm.push({ m: s.m, k: s.k, n: s.n, trans, dtype, threads: t, ...r, utilisation: 0 });
            log(
              `gemm ${s.m}x${s.k}x${s.n} ${trans} ${dtype} ${t}T: ${r.gflops.toFixed(1)} GFLOP/s (median ${r.gflopsMedian.toFixed(1)})`,
            );
          }
        }
      }
    }
    for (const g of gemm) peak[g.dtype] = Math.max(peak[g.dtype], g.gflops);
    for (const g of gemm) {
      g.utilisation = peak[g.dtype] > 0 ? g.gflops / peak[g.dtype] : 0;
      const hw = peak.hardware?.byThreads.find((h) => h.threads === g.threads);
      if (hw && hardwarePeakOf(hw, g.dtype) > 0) g.hardwareUtilisation = g.gflops / hardwarePeakOf(hw, g.dtype);
    }

    const bandwidth = threads.map((t) => ({ threads: t, ...measureBandwidth(K, t, batchSeconds, batches) }));
    for (const bw of bandwidth) log(`copy bandwidth ${t2s(bw.threads)}: ${bw.gbps.toFixed(1)} GB/s`);

    const kernels: KernelResult[] = [];
    const cases = kernelCases(K);
    // Every thread count of one kernel back to back (largest first), rather than all kernels at
    // one thread count and then all at the next: a long single-threaded stretch lets this VM park
    // the second vCPU, and the next multi-threaded figures then measure its wake-up.
    for (const kc of cases) {
      if (!wantKernel(kc.kernel)) continue;
      for (const t of [...threads].reverse()) {
        if (!isNative && kc.kernel.startsWith('attention') && t > 1) continue; // single-threaded reference: once is enough
        K.setThreads(t);
        const bw = bandwidth.find((x) => x.threads === t)!.gbps;
        const tm = timeCalls(kc.run, batchSeconds / 2, batches);
        const us = tm.best * 1e6;
        const res: KernelResult = {
          kernel: kc.kernel,
          shape: kc.shape,
          dtype: kc.dtype,
          threads: t,
          us,
          usMedian: tm.median * 1e6,
          bytes: kc.bytes,
          gbps: kc.bytes / tm.best / 1e9,
          boundUs: kc.bytes > 0 ? (kc.bytes / (bw * 1e9)) * 1e6 : 0,
        };
        if (kc.bytes > 0) res.ratio = us / res.boundUs;
        if (kc.flop) {
          res.gflops = kc.flop / tm.best / 1e9;
          res.utilisation = peak[kc.dtype] > 0 ? res.gflops / peak[kc.dtype] : 0;
        }
        kernels.push(res);
        log(
          `${kc.kernel} ${kc.shape} ${kc.dtype} ${t2s(t)}: ${us.toFixed(1)} us` +
            (res.ratio !== undefined ? ` (${res.ratio.toFixed(2)}x the bandwidth bound)` : '') +
            (res.gflops !== undefined ? ` (${res.gflops.toFixed(1)} GFLOP/s)` : ''),
        );
      }
    }
    // Reported grouped by thread count, in case order (as before).
    kernels.sort((a, b) => a.threads - b.threads);

    const overhead = want('overhead') ? measureOverhead(K) : [];
    for (const o of overhead) log(`call overhead ${o.call}: ${o.us.toFixed(3)} us`);
    env.loadavgEnd = loadavg().map((x) => Math.round(x * 100) / 100);
    return { env, peak, gemm, kernels, bandwidth, overhead };
  } finally {
    K.setThreads(defaultThreads);
  }
}

function t2s(t: number): string {
  return `${t} thread${t === 1 ? '' : 's'}`;
}

/** A human-readable summary of a report (the CLI's output without --json). */
export function formatKernelReport(r: BenchReport): string {
  const lines: string[] = [];
  const e = r.env;
  lines.push(
    `cavmae kernel benchmark (${e.backend}${e.native ? `: kernels ${e.native.isa}, oneDNN ${e.native.dnnlVersion} ${e.native.dnnlIsa}` : ''})`,
  );
  lines.push(
    `cpu: ${e.cpuModel}, ${e.logicalCpus} logical CPUs; node ${e.node}; load ${e.loadavgStart.join(' ')} -> ${(e.loadavgEnd ?? []).join(' ')}`,
  );
  lines.push(`peak GEMM: fp32 ${r.peak.fp32.toFixed(1)} GFLOP/s, bf16 ${r.peak.bf16.toFixed(1)} GFLOP/s`);
  const hw = r.peak.hardware;
  if (hw) {
    lines.push(
      `hardware FMA peak (register-only chains, ~${hw.ghzEstimate.toFixed(2)} GHz): ` +
        hw.byThreads
          .map(
            (h) =>
              `${t2s(h.threads)} fp32 ${h.fp32.toFixed(1)} / bf16 ${h.bf16.toFixed(1)} GFLOP/s / int8 ${h.int8.toFixed(1)} GOP/s`,
          )
          .join(', '),
    );
  }
  lines.push('');
  lines.push('GEMM (m x k x n)           trans dtype threads   GFLOP/s  median  util  of hw');
  for (const g of r.gemm) {
    lines.push(
      `${`${g.m} x ${g.k} x ${g.n}`.padEnd(26)} ${g.trans.padEnd(5)} ${g.dtype.padEnd(5)} ${String(g.threads).padStart(7)} ` +
        `${g.gflops.toFixed(1).padStart(9)} ${g.gflopsMedian.toFixed(1).padStart(7)} ${(100 * g.utilisation).toFixed(0).padStart(4)}%` +
        (g.hardwareUtilisation !== undefined
          ? ` ${(100 * g.hardwareUtilisation).toFixed(0).padStart(5)}%`
          : ''),
    );
  }
  lines.push('');
  lines.push(
    `copy bandwidth: ${r.bandwidth.map((b) => `${b.gbps.toFixed(1)} GB/s (${t2s(b.threads)})`).join(', ')}`,
  );
  lines.push('kernel                shape               dtype threads        us    GB/s  x bound');
  for (const k of r.kernels) {
    const tail =
      k.ratio !== undefined ? k.ratio.toFixed(2).padStart(8) : `${k.gflops!.toFixed(1)} GFLOP/s`.padStart(8);
    lines.push(
      `${k.kernel.padEnd(21)} ${k.shape.padEnd(19)} ${k.dtype.padEnd(5)} ${String(k.threads).padStart(7)} ` +
        `${k.us.toFixed(1).padStart(9)} ${k.gbps.toFixed(1).padStart(7)} ${tail}`,
    );
  }
  lines.push('');
  lines.push(
    `JS -> native call overhead: ${r.overhead.map((o) => `${o.call} ${o.us.toFixed(3)} us`).join(', ')}`,
  );
  return lines.join('\n');
}
