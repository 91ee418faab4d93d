/**
 * Loads the N-API addon built from native/ (node-gyp). Never throws: a missing build,
 * a missing shared library (libdnnl) or an ABI mismatch becomes { ok: false, error }.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kernels } from './api.js';

export type NativeLoad = { ok: true; kernels: Kernels } | { ok: false; error: string };

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
  return process.env.CAVMAE_NATIVE_PATH ?? join(packageRoot(), 'native', 'build', 'Release', 'cavmae_native.node');
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
    const addon = require(path) as Kernels & { name?: string };
    cached = { ok: true, kernels: wrapAddon(addon) };
  } catch (e) {
    cached = { ok: false, error: `addon failed to load: ${(e as Error).message.split('\n')[0]}` };
  }
  return cached;
}

/** The addon exports the Kernels functions directly; this only adds the name. */
function wrapAddon(addon: Record<string, unknown>): Kernels {
  return Object.assign(Object.create(null), addon, { name: 'native' }) as Kernels;
}
