/**
 * Training batches of whole clips for the CAV-MAE Sync classifier (the slice of DataLoader that
 * trainLoop uses): `batchSize` clips x F (segment, frame) pairs, audio [B·F, L, 128] and image
 * [B·F, 3, S, S] (src/data/sync.ts: syncClipBatches), labels [B, K] with label smoothing as the
 * CAV-MAE loader. Clips are shuffled per epoch by a permutation that is a pure function of (seed,
 * epoch), so a resumed run replays the same batches; the last partial batch is dropped.
 * Unreadable clips are left out of their batch (reported once each).
 */
import { labelVector } from '../data/augment.js';
import { resolveLabels, type Dataset, type LabelMap } from '../data/datafile.js';
import type { Batch } from '../data/loader.js';
import { Rng } from '../data/rng.js';
import { syncClipBatches, type SyncClipFailure } from '../data/sync.js';
import { OptionError, fileError } from '../util/errors.js';

/** Clip batches for the training loop (the slice of DataLoader that trainLoop uses). */
export class ClipLoader {
  readonly batchSize: number;
  readonly size: number;
  private readonly labels: Int32Array[];
  private readonly failed = new Set<number>();

  constructor(
    readonly dataset: Dataset,
    private readonly o: {
      batchSize: number;
      seed: number;
      segmentLength: number;
      pairs: number;
      imageSize: number;
      labelMap: LabelMap;
      labelSmooth: number;
      audioNorm?: { mean: number; std: number };
    },
  ) {
    if (!(Number.isInteger(o.batchSize) && o.batchSize >= 1))
      throw new OptionError(
        (n) => `${n('batchSize')} must be a positive integer (clips), got ${o.batchSize}`,
      );
    this.batchSize = o.batchSize;
    this.size = dataset.items.length;
    this.labels = resolveLabels(dataset, o.labelMap);
  }

  get numBatches(): number {
    return Math.floor(this.size / this.batchSize);
  }

  /** Dataset indices of epoch `epoch` in visiting order (Fisher-Yates from (seed, epoch)). */
  epochOrder(epoch: number): Int32Array {
    const order = Int32Array.from({ length: this.size }, (_, i) => i);
    return Rng.derive(this.o.seed, 0x73796e63, epoch).shuffle(order) as Int32Array;
  }

  private async build(order: Int32Array, epoch: number, b: number): Promise<Batch> {
    const B = this.batchSize;
    const idx = order.subarray(b * B, (b + 1) * B);
    const report = (f: SyncClipFailure): void => {
      if (this.failed.has(f.index)) return;
      this.failed.add(f.index);
      process.stderr.write(
        `cavmae: warning: unreadable clip (entry ${f.index}, id "${f.id}"): ${f.message}; left out of its batches\n`,
      );
    };
    let got: Batch | undefined;
    for await (const c of syncClipBatches(this.dataset, {
      segmentLength: this.o.segmentLength,
      pairs: this.o.pairs,
      imageSize: this.o.imageSize,
      audioMean: this.o.audioNorm?.mean,
      audioStd: this.o.audioNorm?.std,
      clipsPerBatch: B,
      order: idx,
      onFailure: report,
    })) {
      const K = this.o.labelMap.numLabels;
      const labels = new Float32Array(c.n * K);
      c.indices.forEach((i, r) => labels.set(labelVector(this.labels[i], K, this.o.labelSmooth), r * K));
      got = {
        audio: c.audio,
        image: c.image,
        labels,
        ids: c.ids,
        indices: c.indices,
        lambdas: new Float32Array(c.n).fill(NaN),
        size: c.n,
        epoch,
        batchIndex: b,
      };
    }
    if (!got)
      throw fileError(
        this.dataset.path,
        `no clip of batch ${b} (epoch ${epoch + 1}) could be read: ${[...idx].map((i) => this.dataset.items[i].id).join(', ')}`,
      );
    return got;
  }

  /** Batches of epoch `epoch` from `startBatch`, decoding one batch ahead of the consumer. */
  async *batches(epoch = 0, startBatch = 0): AsyncGenerator<Batch> {
    const order = this.epochOrder(epoch);
    const nb = this.numBatches;
    let next = startBatch < nb ? this.build(order, epoch, startBatch) : undefined;
    for (let b = startBatch; b < nb; b++) {
      const cur = await next!;
      next = b + 1 < nb ? this.build(order, epoch, b + 1) : undefined;
      next?.catch(() => {}); // surfaced when awaited
      yield cur;
    }
  }

  async close(): Promise<void> {}
}
