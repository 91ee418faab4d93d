/**
 * The TypeScript reference kernels: the oracle the native addon is tested against and the
 * fallback wherever the addon cannot load. Single threaded; correctness first (float64
 * accumulation everywhere), then speed through contiguous inner loops and reused scratch.
 */
import type { Kernels } from '../api.js';
import { matmul, matmulBatched } from './matmul.js';
import { layerNormBackward, layerNormForward, l2Normalize, l2NormalizeBackward } from './norm.js';
import {
  add,
  axpy,
  biasAdd,
  biasBackward,
  geluBackward,
  geluForward,
  softmaxBackward,
  softmaxForward,
} from './activation.js';
import { attentionBackward, attentionForward } from './attention.js';
import { gatherRows, meanPool, meanPoolBackward, scatterAddRows } from './index-ops.js';
import { adamUpdate } from './optim.js';
import { bf16ToF32, f32ToBf16 } from './bf16.js';

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
  matmul,
  matmulBatched,
  layerNormForward,
  layerNormBackward,
  geluForward,
  geluBackward,
  softmaxForward,
  softmaxBackward,
  biasAdd,
  biasBackward,
  add,
  axpy,
  attentionForward,
  attentionBackward,
  gatherRows,
  scatterAddRows,
  meanPool,
  meanPoolBackward,
  l2Normalize,
  l2NormalizeBackward,
  adamUpdate,
  f32ToBf16,
  bf16ToF32,
};
