/** The deterministic items of the crash-safety test (shared by the test and its child process). */
import type { NewItem } from '../../src/index/index.js';
import { seededVector } from './test-media.js';

export const CRASH_ID = { modelId: 'sha256:crash-test', modelName: 'crash-test', dim: 256 };

export function crashItem(i: number): NewItem {
  const modality = i % 4 === 0 ? 'audio' : i % 4 === 1 ? 'image' : 'video';
  return {
    path: `/virtual/crash/item-${String(i).padStart(5, '0')}.bin`,
    modality,
    mtimeMs: 1_600_000_000_000 + i,
    size: 10_000 + i,
    embedding: {
      ...(modality !== 'image' ? { audio: seededVector(`crash:${i}:a`, CRASH_ID.dim) } : {}),
      ...(modality !== 'audio' ? { visual: seededVector(`crash:${i}:v`, CRASH_ID.dim) } : {}),
    },
  };
}
