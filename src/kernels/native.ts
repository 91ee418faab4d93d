/**
 * Loads the N-API addon built from native/ (node-gyp). Never throws: a missing build,
 * a missing shared library (libdnnl), an ABI mismatch or an out-of-date build (a function of
 * the Kernels interface missing) becomes { ok: false, error }.
 *
 * The addon exports exactly the functions of `Kernels` (api.ts), the fused kernels of fused.ts
 * (gemmEx, gemmInt8, quantizeWeightsInt8), plus diagnostics used by the benchmark: info(), gemmInfo(), copy()
 * and the optional peakProbe().
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { F32, Kernels } from './api.js';

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
   * How large GEMMs use the threads, chosen per CPU: 'pieces' (single-threaded tiles on the
   * kernels' pool) or 'onednn' (one call on oneDNN's threads: AMD Zen 5); CAVMAE_GEMM_THREADING
   * overrides. Absent in addons built before the choice existed.
   */
  gemmThreading?: string;
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

/** Every function the addon must export (the Kernels interface plus the diagnostics). */
export const NATIVE_FUNCTIONS = [
  'setThreads',
  'getThreads',
  'matmul',
  'matmulBatched',
  'layerNormForward',
  'layerNormBackward',
  'geluForward',
  'geluBackward',
  'softmaxForward',
  'softmaxBackward',
  'biasAdd',
  'biasBackward',
  'add',
  'axpy',
  'attentionForward',
  'attentionBackward',
  'gatherRows',
  'scatterAddRows',
  'meanPool',
  'meanPoolBackward',
  'l2Normalize',
  'l2NormalizeBackward',
  'adamUpdate',
  'f32ToBf16',
  'bf16ToF32',
  'info',
  'gemmInfo',
  'copy',
] as const;

let cached: NativeLoad | undefined;

/** Package root: this file is dist/src/kernels/native.js (or src/kernels/native.ts under tsx). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}

export function addonPath(): string {
  return (
    process.env.CAVMAE_NATIVE_PATH ?? join(packageRoot(), 'native', 'build', 'Release', 'cavmae_native.node')
  );
}

export function loadNativeKernels(): NativeLoad {
  if (cached) return cached;
  const path = addonPath();
  if (!existsSync(path)) {
    cached = { ok: false, error: `addon not built (${path} is missing)` };
    return cached;
  }
  try {
    const require = createRequire(import.meta.url);
    const addon = require(path) as Record<string, unknown>;
    const missing = NATIVE_FUNCTIONS.filter((f) => typeof addon[f] !== 'function');
    cached = missing.length
      ? {
          ok: false,
          error: `addon at ${path} is out of date (missing ${missing.join(', ')}); rebuild it with 'npm run build:native'`,
        }
      : { ok: true, kernels: wrapAddon(addon) };
  } catch (e) {
    cached = {
      ok: false,
      error: `addon failed to load: ${String((e as Error)?.message ?? e).split('\n')[0]}`,
    };
  }
  return cached;
}

/** The addon exports the functions directly; this only adds the name (no wrapper per call). */
function wrapAddon(addon: Record<string, unknown>): NativeKernels {
  return Object.assign(Object.create(null), addon, { name: 'native' }) as NativeKernels;
}
