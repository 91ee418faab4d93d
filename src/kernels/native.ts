/**
 * Loads the N-API addon: the source build in native/build or the prebuilt binary the npm package
 * ships in prebuilds/ (see scripts/native.mjs). Never throws: a missing build,
 * a missing shared library (libdnnl), an ABI mismatch or an out-of-date build (a function of
 * the Kernels interface missing) becomes { ok: false, error }.
 *
 * The addon exports exactly the functions of `Kernels` (api.ts), the fused kernels of fused.ts
 * (gemmEx, gemmInt8, quantizeWeightsInt8), plus diagnostics used by the benchmark: info(), gemmInfo(), copy()
 * and the optional peakProbe().
 */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/package.js';
import type { F32, Kernels } from './api.js';
import { tsKernels } from './ts/index.js';

/** What the addon reports about itself. */
export interface NativeInfo {
  /** Instruction set of the hand-written kernels: 'avx512' or 'avx2'. */
  isa: string;
  dnnlVersion: string;
  /** The ISA oneDNN dispatches to (dnnl_get_effective_cpu_isa), e.g. 'avx512_core_bf16'. */
  dnnlIsa: string;
  dnnlThreading: string;
  /** Current thread count (OpenMP, shared by oneDNN and the hand-written kernels). */
  threads: number;
  /** Processors OpenMP sees. */
  procs: number;
  /** Kernels touching fewer bytes than this run on the calling thread only. */
  parallelMinBytes: number;
  /**
   * How large GEMMs use the threads: 'pieces' (single-threaded tiles on the kernels' pool, the
   * default on every CPU) or 'onednn' (one call on oneDNN's threads, CAVMAE_GEMM_THREADING=onednn).
   * Absent in addons built before the choice existed.
   */
  gemmThreading?: string;
  /**
   * The int8 linear layers' GEMM: 'amx-packed' (our AMX kernel over weights packed once per model,
   * tdpbusd; k not a multiple of 64 on the VNNI kernel; CAVMAE_INT8_GEMM=vnni keeps VNNI),
   * 'vnni-packed' (our AVX512-VNNI kernel over the same packed weights), 'avx2-packed' (our exact AVX2 kernel over the same packed weights, vpmaddwd: CPUs
   * without VNNI, or CAVMAE_INT8_GEMM=avx2 / CAVMAE_NATIVE_ISA=avx2), 'onednn' (VNNI, but
   * CAVMAE_INT8_GEMM=onednn or a shape our kernels do not take) or 'fp32-widened'
   * (CAVMAE_INT8_GEMM=onednn without VNNI: oneDNN's int8 GEMM saturates there, so exact fp32
   * GEMMs over K chunks of 512). Absent in older addons.
   */
  int8Gemm?: string;
  /**
   * fp32 GEMMs of one matrix with row-major A (the linear layers): 'packed' (our AVX-512 8 x 48
   * tiles over B packed into panels once per call; the default on AMD family 26, anywhere with
   * AVX-512 under CAVMAE_F32_GEMM=packed; n a multiple of 16, m >= 64, alpha 1, beta 0) or
   * 'onednn' (oneDNN for all of them). Absent in older addons.
   */
  f32Gemm?: string;
  /** bf16 GEMMs: 'onednn' (AVX-512) or 'fp32-widened' (no AVX-512: oneDNN has no bf16 matmul). */
  bf16Gemm?: string;
  /** Whether int8 attention runs our VNNI kernel; without it, int8 inference's attention is bf16 (fp32 where bf16Gemm is 'fp32-widened'). */
  int8Attention?: boolean;
  compiler: string;
}

export interface NativeDiagnostics {
  info(): NativeInfo;
  /** The oneDNN implementation chosen for an [m,k]x[k,n] matmul, e.g. 'brg:avx512_core'. */
  gemmInfo(m: number, n: number, k: number, transA: boolean, transB: boolean, bf16: boolean): string;
  /** dst = src over n floats, threaded like the kernels (the memory-bandwidth probe). */
  copy(dst: F32, src: F32, n: number): void;
  /**
   * Hardware peak probe (benchmark): kind 0 fp32 FMA GFLOP/s, 1 bf16 (vdpbf16ps; 0 without
   * AVX512-BF16), 3 int8 GOP/s (vpdpbusd; 0 without AVX512-VNNI), on `threads` threads for about
   * `ms` milliseconds; kind 2 a clock estimate in GHz.
   * Optional: an addon built before it lacks it (not in NATIVE_FUNCTIONS, so it still loads).
   */
  peakProbe?(kind: number, threads: number, ms: number): number;
}

export type NativeKernels = Kernels & NativeDiagnostics;

export type NativeLoad = { ok: true; kernels: NativeKernels } | { ok: false; error: string };

/** Every function the addon must export: those of the Kernels interface (as the reference has them) plus the diagnostics. */
export const NATIVE_FUNCTIONS: readonly string[] = [
  ...Object.keys(tsKernels).filter((f) => f !== 'name'),
  'info',
  'gemmInfo',
  'copy',
];

let cached: NativeLoad | undefined;
let loadedPath: string | undefined;

/**
 * Where the addon may be, in the order tried (the node-gyp-build / prebuildify layout; scripts/
 * native.mjs writes both): CAVMAE_NATIVE_PATH alone when set; otherwise the source build, then the
 * prebuilt binary shipped in the npm package.
 */
export function addonCandidates(): string[] {
  if (process.env.CAVMAE_NATIVE_PATH) return [process.env.CAVMAE_NATIVE_PATH];
  const root = packageRoot();
  return [
    join(root, 'native', 'build', 'Release', 'cavmae_native.node'),
    join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'cavmae_native.napi.glibc.node'),
  ];
}

/** The addon file in use (after a successful load), else the first candidate. */
export function addonPath(): string {
  loadNativeKernels();
  return loadedPath ?? addonCandidates()[0];
}

/** What the install step (scripts/native.mjs) recorded: why there is no addon, what to install. */
export interface InstallStatus {
  ok: boolean;
  how: 'built' | 'prebuilt' | 'none';
  reason?: string;
  /** Debian packages that would make the build work. */
  packages?: string[];
}

export function installStatus(): InstallStatus | undefined {
  try {
    return JSON.parse(
      readFileSync(join(packageRoot(), 'native', 'install-status.json'), 'utf8'),
    ) as InstallStatus;
  } catch {
    return undefined;
  }
}

/**
 * Why this machine cannot run the addon at all. Checked before loading: the baseline code is
 * x86-64-v3, and a library with AVX2 code in its initialisers would kill the process with SIGILL
 * on an older CPU instead of throwing.
 */
function platformProblem(): string | undefined {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    return `the native kernels are built for Linux on x86-64 only (this is ${process.platform}-${process.arch})`;
  let flags: string[];
  try {
    flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1].split(/\s+/) ?? [];
  } catch {
    return undefined;
  }
  const missing = ['avx2', 'fma'].filter((f) => !flags.includes(f));
  return missing.length
    ? `this CPU lacks ${missing.join(' and ').toUpperCase()}, which the native kernels need`
    : undefined;
}

function loadOne(path: string): NativeLoad {
  if (!existsSync(path)) return { ok: false, error: `addon not built (${path} is missing)` };
  try {
    const require = createRequire(import.meta.url);
    const addon = require(path) as Record<string, unknown>;
    const missing = NATIVE_FUNCTIONS.filter((f) => typeof addon[f] !== 'function');
    return missing.length
      ? {
          ok: false,
          error: `addon at ${path} is out of date (missing ${missing.join(', ')}); rebuild it with 'npm run build:native'`,
        }
      : { ok: true, kernels: wrapAddon(addon) };
  } catch (e) {
    return { ok: false, error: `addon failed to load: ${String((e as Error)?.message ?? e).split('\n')[0]}` };
  }
}

export function loadNativeKernels(): NativeLoad {
  if (cached) return cached;
  const problem = process.env.CAVMAE_NATIVE_PATH ? undefined : platformProblem();
  if (problem) return (cached = { ok: false, error: problem });
  // The first candidate that loads wins. If none does, report the first one that exists (its load
  // error says why), or the source build's absence when none exists.
  const tried: { path: string; load: NativeLoad }[] = [];
  for (const path of addonCandidates()) {
    const load = loadOne(path);
    if (load.ok) {
      loadedPath = path;
      return (cached = load);
    }
    tried.push({ path, load });
  }
  cached = (tried.find((t) => existsSync(t.path)) ?? tried[0]).load;
  return cached;
}

/** The addon exports the functions directly; this only adds the name (no wrapper per call). */
function wrapAddon(addon: Record<string, unknown>): NativeKernels {
  return Object.assign(Object.create(null), addon, { name: 'native' }) as NativeKernels;
}
