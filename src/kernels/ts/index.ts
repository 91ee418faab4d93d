/**
 * The TypeScript reference kernels: the oracle the native addon is tested against and the
 * fallback wherever the addon cannot load. Single threaded; correctness first (float64
 * accumulation everywhere), then speed through contiguous inner loops and reused scratch.
 */
import type { Kernels } from '../api.js';
import { matmulKernels } from './matmul.js';
import { normKernels } from './norm.js';
import { elementwiseKernels } from './activation.js';
import { attentionKernels } from './attention.js';
import { rowKernels } from './index-ops.js';
import { optimKernels } from './optim.js';
import { bf16Kernels } from './bf16.js';

export { erf, erfc, gelu, geluGrad } from './activation.js';
export { bf16Bits, bf16Value, roundBf16 } from './bf16.js';

let threads = 1;

export const tsKernels: Kernels = {
  name: 'ts',
  // Stored only so callers can round-trip the setting; the reference never spawns threads.
  setThreads(n: number): void {
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`setThreads: expected an integer >= 1, got ${n}`);
    threads = n;
  },
  getThreads(): number {
    return threads;
  },
  ...matmulKernels,
  ...normKernels,
  ...elementwiseKernels,
  ...attentionKernels,
  ...rowKernels,
  ...optimKernels,
  ...bf16Kernels,
};
