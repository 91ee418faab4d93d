/**
 * Kernel dispatch: the native addon when it loads, the TypeScript reference otherwise.
 * CAVMAE_KERNELS=ts forces the reference (tests use both explicitly).
 * A missing or broken addon prints one line (once, on stderr: why, and what to install; CAVMAE_QUIET=1
 * hides it) and never throws at import.
 */
import type { Kernels } from './api.js';
import { tsKernels } from './ts/index.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../util/package.js';
import {
  addonPath,
  installStatus,
  loadNativeKernels,
  type NativeInfo,
  type NativeKernels,
} from './native.js';

export type { Kernels } from './api.js';
export { tsKernels } from './ts/index.js';

let chosen: Kernels | undefined;
let nativeError: string | undefined;

/** The native kernels, or undefined (with the reason in nativeLoadError()). */
export function nativeKernels(): Kernels | undefined {
  const r = loadNativeKernels();
  if (!r.ok) nativeError = r.error;
  return r.ok ? r.kernels : undefined;
}

export function nativeLoadError(): string | undefined {
  nativeKernels();
  return nativeError;
}

/** The kernels every layer above should use. */
export function kernels(): Kernels {
  if (chosen) return chosen;
  if (process.env.CAVMAE_KERNELS === 'ts') {
    chosen = tsKernels;
    return chosen;
  }
  const nat = nativeKernels();
  if (nat) {
    chosen = nat;
  } else {
    const quiet = process.env.CAVMAE_QUIET === '1' || process.env.CAVMAE_QUIET_FALLBACK === '1';
    if (!quiet) process.stderr.write(`${slowKernelsNotice(nativeError ?? 'unknown reason')}\n`);
    chosen = tsKernels;
  }
  return chosen;
}

/**
 * The one line printed when the addon is unavailable: why, and what to do about it. The install
 * step's record (native/install-status.json) names the Debian packages it found missing.
 */
export function slowKernelsNotice(error: string): string {
  const status = installStatus();
  const root = packageRoot();
  const packages = status?.packages?.length ? status.packages : /libdnnl/.test(error) ? ['libdnnl-dev'] : [];
  const why = status && !status.ok && status.reason ? `; at install: ${status.reason}` : '';
  const fix = existsSync(join(root, '.git'))
    ? "run 'npm run setup' to build them"
    : `to get them: ${packages.length ? `sudo apt-get install -y ${packages.join(' ')}, then ` : ''}npm rebuild cavmae`;
  return (
    `cavmae: native kernels unavailable (${error}${why}); running on the TypeScript reference kernels ` +
    `(correct, but tens of times slower); ${fix}. CAVMAE_QUIET=1 hides this line.`
  );
}

/** Which kernels are in use, and for the addon, which file and build (the API's `kernelInfo`). */
export interface KernelStatus {
  name: 'native' | 'ts';
  /** The addon file (native only). */
  addon?: string;
  /** The addon's own report: ISA, oneDNN version and ISA, threads (native only). */
  native?: NativeInfo;
  /** Why the addon is not in use (ts only; undefined when CAVMAE_KERNELS=ts asked for it). */
  reason?: string;
}

export function kernelStatus(): KernelStatus {
  const k = kernels();
  if (k.name === 'native') return { name: 'native', addon: addonPath(), native: (k as NativeKernels).info() };
  return { name: 'ts', reason: process.env.CAVMAE_KERNELS === 'ts' ? undefined : nativeLoadError() };
}

/** Override the dispatch (tests, benchmarks). */
export function useKernels(k: Kernels): void {
  chosen = k;
}

/**
 * Whether bf16 GEMMs are faster than fp32 here: the addon with oneDNN on a CPU with bf16 dot
 * products (AVX512-BF16, AMX). Elsewhere bf16 only adds rounding: without AVX-512 oneDNN has no
 * bf16 matmul and the addon widens to fp32 (AMD Zen 3: the demo's bf16 pretraining ran at 1.8
 * steps/s against 3.1 in fp32), and the TypeScript kernels emulate the rounding. Recipes that ask
 * for bf16 (the tiny one, the demo's) take it only where this holds.
 */
export function bf16IsFast(): boolean {
  const k = kernels();
  if (k.name !== 'native') return false;
  const info = (k as NativeKernels).info();
  return info.bf16Gemm !== 'fp32-widened' && /bf16|amx/.test(info.dnnlIsa);
}
