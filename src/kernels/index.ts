/**
 * Kernel dispatch: the native addon when it loads, the TypeScript reference otherwise.
 * CAVMAE_KERNELS=ts forces the reference (tests use both explicitly).
 * A missing or broken addon prints one clear line (once) and never throws at import.
 */
import type { Kernels } from './api.js';
import { tsKernels } from './ts/index.js';
import { loadNativeKernels } from './native.js';

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
    if (process.env.CAVMAE_QUIET_FALLBACK !== '1') {
      process.stderr.write(
        `cavmae: native kernels unavailable (${nativeError}); using the TypeScript reference kernels (slow). ` +
          `Run 'npm run setup' to build them.\n`,
      );
    }
    chosen = tsKernels;
  }
  return chosen;
}

/** Override the dispatch (tests, benchmarks). */
export function useKernels(k: Kernels): void {
  chosen = k;
}
