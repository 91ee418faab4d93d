/**
 * Loader throughput benchmark: samples/s of `createLoader` on a dataset, per epoch, so that the
 * cold first pass (decoding everything) and warm passes (decoded-media cache) are both visible.
 * The consumer does nothing but touch the batch, so this is the loader's ceiling on this machine.
 */
import { loadDataset, loadLabelCsv } from './datafile.js';
import { createLoader, type LoaderOptions } from './loader.js';
import { cacheStats } from './sample.js';

export interface BenchLoaderOptions extends Omit<LoaderOptions, 'labelMap'> {
  data: string;
  labelCsv?: string;
  epochs: number;
  /** Stop each epoch after this many batches. */
  maxBatches?: number;
  /**
   * Simulated training step: the consumer blocks the main thread this many milliseconds per
   * batch (synchronously, as a native training step does). With overlap, throughput is bounded by
   * the slower of loader and step, not their sum.
   */
  stepMs?: number;
}

export interface BenchLoaderResult {
  data: string;
  items: number;
  batch_size: number;
  workers: number;
  train: boolean;
  target_length: number;
  image_size: number;
  step_ms: number;
  epochs: { epoch: number; samples: number; seconds: number; samples_per_s: number }[];
  /** Mean over the epochs after the first (or the first when there is one). */
  samples_per_s: number;
  first_batch_s: number;
  failures: number;
  main_thread_cache: { hits: number; misses: number; bytes: number };
}

export async function benchLoader(o: BenchLoaderOptions): Promise<BenchLoaderResult> {
  const ds = loadDataset(o.data);
  const labelMap = o.labelCsv ? loadLabelCsv(o.labelCsv) : undefined;
  const t0 = performance.now();
  const loader = createLoader(ds, { ...o, labelMap });
  const epochs: BenchLoaderResult['epochs'] = [];
  let firstBatch = NaN;
  let sink = 0;
  try {
    for (let e = 0; e < o.epochs; e++) {
      const start = performance.now();
      let samples = 0;
      let b = 0;
      for await (const batch of loader.batches(e)) {
        if (Number.isNaN(firstBatch)) firstBatch = (performance.now() - t0) / 1000;
        sink += batch.audio[0] + batch.image[0];
        if (o.stepMs) {
          const until = performance.now() + o.stepMs;
          while (performance.now() < until) sink += 0;
        }
        samples += batch.size;
        if (o.maxBatches !== undefined && ++b >= o.maxBatches) break;
      }
      const seconds = (performance.now() - start) / 1000;
      epochs.push({ epoch: e, samples, seconds: round(seconds), samples_per_s: round(samples / seconds) });
    }
  } finally {
    await loader.close();
  }
  if (!Number.isFinite(sink)) throw new Error('non-finite batch values');
  const warm = epochs.length > 1 ? epochs.slice(1) : epochs;
  const total = warm.reduce((s, e) => s + e.samples, 0);
  const secs = warm.reduce((s, e) => s + e.seconds, 0);
  return {
    data: ds.path,
    items: ds.items.length,
    batch_size: o.batchSize,
    workers: o.workers ?? 2,
    train: o.train,
    target_length: loader.config.targetLength,
    image_size: loader.config.imageSize,
    step_ms: o.stepMs ?? 0,
    epochs,
    samples_per_s: round(total / secs),
    first_batch_s: round(firstBatch),
    failures: loader.failures.length,
    main_thread_cache: cacheStats(),
  };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
