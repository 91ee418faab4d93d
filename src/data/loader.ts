/**
 * The data loader: batches of (fbank [B,T,128], image [B,3,S,S], label vector [B,K]) with the
 * reference's train and eval behaviour, decoded on worker threads with a bounded prefetch.
 *
 * Contract:
 * - Order per epoch: weighted sampling with replacement when `weights` are given (PyTorch's
 *   WeightedRandomSampler, num_samples = N), else a seeded shuffle when `shuffle`, else file order.
 *   `dropLast` drops the final partial batch (the reference drops it for training AND validation).
 * - Sample at epoch position p is a pure function of (seed, epoch, p) and the files: the mixup
 *   coin, its partner, replacements for unreadable files and every augmentation draw are taken
 *   from generators derived from those words, never from shared state. So batches are identical
 *   for any number of workers and any completion order, and `startBatch` resumes mid-epoch.
 * - Augmentations (mixup, SpecAugment, noise + roll) and the random frame apply only when
 *   `train` is true; evaluation uses frame `frameUse` (default totalFrames/2 = 5).
 * - An unreadable file is reported once (stderr and `loader.failures`) and its item is replaced
 *   by another item drawn from the position's replacement generator; the item is then skipped for
 *   the rest of the loader's life. Never trains on constants.
 * - Workers run compiled JavaScript (`dist/src/data/worker.js`); under tsx the `.ts` sibling is
 *   used. `workers: 0` builds samples on the calling thread (same results).
 */
import { Worker } from 'node:worker_threads';
import { NUM_MEL_BINS } from '../audio/index.js';
import { UserError } from '../util/errors.js';
import { buildLabelMap, resolveLabels, type Dataset, type LabelMap } from './datafile.js';
import { Rng } from './rng.js';
import {
  buildSample,
  SampleLoadError,
  type SampleConfig,
  type SampleItem,
  type SampleResult,
  type SampleTask,
} from './sample.js';
import { AUDIO_NORM } from '../audio/index.js';

export interface LoaderOptions {
  batchSize: number;
  /** Training behaviour (random frame, augmentation) or evaluation (fixed frame, none). */
  train: boolean;
  /** Fbank rows per sample (1024 in the reference recipes). */
  targetLength?: number;
  seed?: number;
  /** Default epoch for iteration (`loader.batches(epoch)` overrides). */
  epoch?: number;
  /** Default: `train`. */
  shuffle?: boolean;
  /** Default: true (the reference drops the last partial batch in training and validation). */
  dropLast?: boolean;
  /** Balanced sampling weights, one per item (docs/reference.md#balanced-sampling); implies sampling with replacement. */
  weights?: ArrayLike<number>;
  /** Frame used in evaluation (default floor(totalFrames/2)). */
  frameUse?: number;
  totalFrames?: number;
  /**
   * CAV-MAE Sync (segment, frame) pairs: `targetLength` is the segment length L, cut from the
   * 1024-row fbank around the sample's frame (train: a random one of totalFrames = 16; eval:
   * frameUse, default the middle one). Use with mixup 0, freqm/timem 0, noise false (the Sync
   * loader has no audio augmentation).
   */
  syncSegments?: boolean;
  freqm?: number;
  timem?: number;
  /** Mixup probability (0.5 in fine-tuning recipes). */
  mixup?: number;
  noise?: boolean;
  /** Random level change of the fbank, uniform in ±gainDb dB (default 0: off; not in the reference). */
  gainDb?: number;
  /** Random time shift without wrap-around, uniform in ±timeShift rows (default 0: off; not in the reference). */
  timeShift?: number;
  labelSmooth?: number;
  /** Label index; default: built from the dataset's labels (`buildLabelMap`). */
  labelMap?: LabelMap;
  /** Image side fed to the model (224 in the reference). */
  imageSize?: number;
  audioMean?: number;
  audioStd?: number;
  /** Worker threads (default 2); 0 decodes on the calling thread. */
  workers?: number;
  /** Batches decoded ahead of the consumer (default 2). */
  prefetch?: number;
  /** Samples in flight per worker (default 2; overlaps file I/O with compute). */
  inflightPerWorker?: number;
  /**
   * Decoded-media cache per worker in MiB (default 384): raw fbanks and resized images are
   * deterministic, so they are reused across epochs. Items are routed to workers by index so
   * each item is cached once.
   */
  cacheMB?: number;
  /** First batch of the epoch to produce (resume mid-epoch). */
  startBatch?: number;
  /** Consecutive unreadable replacements for one position before giving up (default 100). */
  maxRetries?: number;
  /** Called once per unreadable file; default prints one line to stderr. */
  onFailure?: (f: LoadFailure) => void;
  /**
   * What an unreadable item becomes: 'replace' (default in training: another item takes its
   * place), 'skip' (default in evaluation: the row is left out, so batches may be smaller and
   * metrics/embeddings cover the readable items only), or 'error' (stop).
   */
  onUnreadable?: 'replace' | 'skip' | 'error';
}

export interface Batch {
  /** [B, T, 128] normalised fbank (time first). */
  audio: Float32Array;
  /** [B, 3, S, S] ImageNet-normalised image. */
  image: Float32Array;
  /** [B, K] label vectors (smoothed / mixed). */
  labels: Float32Array;
  ids: string[];
  /** Dataset index of each row (after any replacement). */
  indices: number[];
  /** Mixup λ per row (NaN when the row was not mixed). */
  lambdas: Float32Array;
  size: number;
  epoch: number;
  batchIndex: number;
}

export interface LoadFailure {
  path: string;
  index: number;
  id: string;
  message: string;
  epoch: number;
  position: number;
}

export type WorkerReply =
  | { id: number; ok: true; result: SampleResult }
  | { id: number; ok: false; which: 'primary' | 'partner'; path: string; message: string; fatal?: undefined }
  | { id: number; ok: false; fatal: true; message: string };

// Stream tags for Rng.derive: each purpose gets its own generator.
const TAG_ORDER = 0x6f726472;
const TAG_MIX = 0x6d697875;
const TAG_REPLACE = 0x7265706c;

/**
 * Runs sample tasks on worker threads (or inline). Every task is posted to its worker as soon as
 * it is queued, and the worker keeps its own FIFO with `inflight` tasks running: so decoding goes
 * on while the main thread is busy in a long synchronous training step. An item always goes to
 * worker `index mod workers`, so its decoded media are cached in one worker only.
 */
class SamplePool {
  private readonly workers: Worker[] = [];
  private readonly busy: number[] = [];
  private readonly inlineQueue: {
    id: number;
    task: SampleTask;
    resolve: (r: WorkerReply) => void;
    reject: (e: unknown) => void;
  }[] = [];
  private readonly pending = new Map<
    number,
    { resolve: (r: WorkerReply) => void; reject: (e: unknown) => void; worker: number }
  >();
  private nextId = 0;
  private inlineBusy = 0;
  private closed = false;
  private fatal: Error | undefined;

  constructor(
    private readonly config: SampleConfig,
    private readonly numWorkers: number,
    private readonly inflight: number,
  ) {
    for (let w = 0; w < numWorkers; w++) this.spawn(w);
  }

  private spawn(w: number): void {
    const worker = startWorker({ config: this.config, inflight: this.inflight });
    worker.unref(); // referenced only while it has work, so an idle loader never keeps the process alive
    worker.on('message', (reply: WorkerReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (--this.busy[w] === 0) worker.unref();
      p.resolve(reply);
    });
    const die = (e: Error): void => {
      if (this.closed) return;
      this.fatal = new Error(`loader worker ${w} died: ${e.message}`);
      for (const [id, p] of this.pending) {
        if (p.worker === w) {
          this.pending.delete(id);
          p.reject(this.fatal);
        }
      }
    };
    worker.on('error', die);
    worker.on('exit', (code) => die(new Error(`exit code ${code}`)));
    this.workers[w] = worker;
    this.busy[w] = 0;
  }

  run(task: SampleTask): Promise<WorkerReply> {
    if (this.closed) return Promise.reject(new Error('loader is closed'));
    if (this.fatal) return Promise.reject(this.fatal);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.numWorkers === 0) {
        this.inlineQueue.push({ id, task, resolve, reject });
        this.pumpInline();
        return;
      }
      const w = task.primary.index % this.numWorkers;
      if (this.busy[w]++ === 0) this.workers[w].ref();
      this.pending.set(id, { resolve, reject, worker: w });
      this.workers[w].postMessage({ id, task });
    });
  }

  private pumpInline(): void {
    while (this.inlineQueue.length > 0 && this.inlineBusy < this.inflight) {
      const q = this.inlineQueue.shift()!;
      this.inlineBusy++;
      runSampleTask(q.id, q.task, this.config).then((r) => {
        this.inlineBusy--;
        q.resolve(r);
        this.pumpInline();
      }, q.reject);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const q of this.inlineQueue.splice(0)) q.reject(new Error('loader closed'));
    for (const [, p] of this.pending) p.reject(new Error('loader closed'));
    this.pending.clear();
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/**
 * Starts `worker.js` next to this file. When this file runs as TypeScript (tsx, in tests), the
 * worker registers tsx's loader first: Node does not hand the parent's loader hooks to workers.
 */
function startWorker(workerData: unknown): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL('./worker.js', here), { workerData });
  const script = new URL('./worker.ts', here).href;
  const api = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(script)}); });`;
  return new Worker(boot, { eval: true, workerData });
}

/** One sample task's reply (in a worker thread, or inline): the sample, an unreadable file, or a bug. */
export async function runSampleTask(
  id: number,
  task: SampleTask,
  config: SampleConfig,
): Promise<WorkerReply> {
  try {
    return { id, ok: true, result: await buildSample(task, config) };
  } catch (e) {
    if (e instanceof SampleLoadError)
      return { id, ok: false, which: e.which, path: e.path, message: e.message };
    return { id, ok: false, fatal: true, message: (e as Error)?.stack ?? String(e) };
  }
}

/** A loader error message that names the file (once). */
const withPath = (path: string, message: string): string =>
  message.startsWith(path) ? message : `${path}: ${message}`;

interface Resolved {
  result: SampleResult;
  index: number;
}

export class DataLoader implements AsyncIterable<Batch> {
  readonly batchSize: number;
  readonly config: SampleConfig;
  readonly labelMap: LabelMap;
  /** Every unreadable file met so far (one entry per file). */
  readonly failures: LoadFailure[] = [];
  private readonly items: SampleItem[];
  private readonly bad = new Set<number>();
  private readonly reportedPaths = new Set<string>();
  private readonly pool: SamplePool;
  private readonly cumWeights: Float64Array | undefined;
  private readonly opts: Required<
    Pick<
      LoaderOptions,
      | 'seed'
      | 'epoch'
      | 'shuffle'
      | 'dropLast'
      | 'mixup'
      | 'prefetch'
      | 'startBatch'
      | 'maxRetries'
      | 'onUnreadable'
    >
  > &
    LoaderOptions;

  constructor(
    readonly dataset: Dataset,
    options: LoaderOptions,
  ) {
    const o = options;
    const n = dataset.items.length;
    if (!(Number.isInteger(o.batchSize) && o.batchSize > 0))
      throw new UserError(`batch size must be a positive integer, got ${o.batchSize}`);
    if (n === 0) throw new UserError(`${dataset.path}: the data file has no entries`);
    this.batchSize = o.batchSize;
    this.opts = {
      ...o,
      seed: o.seed ?? 0,
      epoch: o.epoch ?? 0,
      shuffle: o.shuffle ?? o.train,
      dropLast: o.dropLast ?? true,
      mixup: o.train ? (o.mixup ?? 0) : 0,
      prefetch: Math.max(1, o.prefetch ?? 2),
      startBatch: o.startBatch ?? 0,
      maxRetries: o.maxRetries ?? 100,
      onUnreadable: o.onUnreadable ?? (o.train ? 'replace' : 'skip'),
    };
    if (!(this.opts.mixup >= 0 && this.opts.mixup <= 1))
      throw new UserError(`mixup must be a probability in [0, 1], got ${this.opts.mixup}`);
    if (!((o.gainDb ?? 0) >= 0 && (o.gainDb ?? 0) <= 60))
      throw new UserError(`gain augmentation must be in [0, 60] dB, got ${o.gainDb}`);
    if (!(Number.isInteger(o.timeShift ?? 0) && (o.timeShift ?? 0) >= 0))
      throw new UserError(`time shift must be an integer >= 0 rows, got ${o.timeShift}`);
    this.labelMap = o.labelMap ?? buildLabelMap(dataset);
    const labelIdx = resolveLabels(dataset, this.labelMap);
    this.items = dataset.items.map((it, i) => ({
      index: i,
      id: it.id,
      audioPath: it.audioPath,
      visual: it.visual,
      labels: labelIdx[i],
    }));
    const totalFrames = o.totalFrames ?? 10;
    const frameUse = o.frameUse;
    if (frameUse !== undefined && !(Number.isInteger(frameUse) && frameUse >= 0 && frameUse < totalFrames))
      throw new UserError(`frame ${frameUse} is outside 0..${totalFrames - 1}`);
    const targetLength = o.targetLength ?? 1024;
    if (!(Number.isInteger(targetLength) && targetLength > 0))
      throw new UserError(`target length must be a positive integer, got ${targetLength}`);
    this.config = {
      train: o.train,
      targetLength,
      totalFrames,
      frameUse,
      freqm: o.freqm ?? 0,
      timem: o.timem ?? 0,
      noise: o.noise ?? false,
      ...(o.gainDb ? { gainDb: o.gainDb } : {}),
      ...(o.timeShift ? { timeShift: o.timeShift } : {}),
      labelSmooth: o.labelSmooth ?? 0,
      numLabels: this.labelMap.numLabels,
      imageSize: o.imageSize ?? 224,
      audioMean: o.audioMean ?? AUDIO_NORM.mean,
      audioStd: o.audioStd ?? AUDIO_NORM.std,
      cacheBytes: Math.max(0, Math.floor((o.cacheMB ?? 384) * 1024 * 1024)),
      ...(o.syncSegments ? { syncSegments: true } : {}),
    };
    if (o.syncSegments && !(targetLength <= 1024))
      throw new UserError(
        `a Sync segment is cut from 1024 fbank rows: target length ${targetLength} is too long`,
      );
    if (o.weights) {
      if (o.weights.length !== n)
        throw new UserError(`${dataset.path}: ${o.weights.length} sampling weights for ${n} entries`);
      const cum = new Float64Array(n);
      let s = 0;
      for (let i = 0; i < n; i++) {
        const w = o.weights[i];
        if (!(w >= 0 && Number.isFinite(w)))
          throw new UserError(`sampling weight ${i} is not a non-negative number (${w})`);
        s += w;
        cum[i] = s;
      }
      if (!(s > 0)) throw new UserError('all sampling weights are zero');
      this.cumWeights = cum;
    }
    if (this.numBatches === 0)
      throw new UserError(
        `${dataset.path}: ${n} entries make no full batch of ${o.batchSize} (the last partial batch is dropped); use a smaller batch`,
      );
    const workers = o.workers ?? 2;
    if (!(Number.isInteger(workers) && workers >= 0))
      throw new UserError(`workers must be a non-negative integer, got ${workers}`);
    this.pool = new SamplePool(this.config, workers, Math.max(1, o.inflightPerWorker ?? 2));
  }

  /** Samples per epoch (before dropping the last partial batch). */
  get size(): number {
    return this.items.length;
  }

  get numBatches(): number {
    const n = this.items.length;
    return this.opts.dropLast ? Math.floor(n / this.batchSize) : Math.ceil(n / this.batchSize);
  }

  /** Dataset indices in epoch order (weighted draws, a shuffle, or file order). */
  order(epoch: number): Int32Array {
    const n = this.items.length;
    const out = new Int32Array(n);
    const rng = Rng.derive(this.opts.seed, epoch, TAG_ORDER);
    if (this.cumWeights) {
      const cum = this.cumWeights;
      const total = cum[n - 1];
      for (let i = 0; i < n; i++) {
        const u = rng.uniform() * total;
        // first index with cum > u
        let lo = 0;
        let hi = n - 1;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (cum[mid] > u) hi = mid;
          else lo = mid + 1;
        }
        out[i] = lo;
      }
      return out;
    }
    for (let i = 0; i < n; i++) out[i] = i;
    if (this.opts.shuffle) rng.shuffle(out);
    return out;
  }

  [Symbol.asyncIterator](): AsyncIterator<Batch> {
    return this.batches(this.opts.epoch, this.opts.startBatch);
  }

  /** Batches of one epoch, starting at `startBatch`. */
  async *batches(epoch = this.opts.epoch, startBatch = 0): AsyncGenerator<Batch> {
    const order = this.order(epoch);
    const B = this.batchSize;
    const nb = this.numBatches;
    const n = this.items.length;
    if (!(Number.isInteger(startBatch) && startBatch >= 0))
      throw new UserError(`start batch must be a non-negative integer, got ${startBatch}`);
    const endPos = Math.min(n, nb * B);
    const slots = new Map<number, Promise<Resolved | null>>();
    let nextPos = startBatch * B;
    const fill = (limit: number): void => {
      while (nextPos < endPos && nextPos < limit) {
        const p = this.loadPosition(epoch, nextPos, order[nextPos]);
        p.catch(() => undefined); // awaited below; avoid an unhandled rejection if we stop early
        slots.set(nextPos, p);
        nextPos++;
      }
    };
    for (let b = startBatch; b < nb; b++) {
      const start = b * B;
      const end = Math.min(endPos, start + B);
      fill((b + 1 + this.opts.prefetch) * B);
      const rows: Resolved[] = [];
      for (let p = start; p < end; p++) {
        const r = await slots.get(p)!;
        if (r) rows.push(r); // null: an unreadable item under onUnreadable 'skip'
        slots.delete(p);
      }
      // Queue the next window before handing over control, so decoding overlaps the consumer.
      fill((b + 2 + this.opts.prefetch) * B);
      if (rows.length > 0) yield this.assemble(rows, epoch, b);
    }
  }

  private assemble(rows: Resolved[], epoch: number, batchIndex: number): Batch {
    const { targetLength: T, imageSize: S, numLabels: K } = this.config;
    const bs = rows.length;
    const audio = new Float32Array(bs * T * NUM_MEL_BINS); // [B, T, 128]
    const image = new Float32Array(bs * 3 * S * S); // [B, 3, S, S]
    const labels = new Float32Array(bs * K); // [B, K]
    const lambdas = new Float32Array(bs);
    const ids: string[] = [];
    const indices: number[] = [];
    rows.forEach((r, i) => {
      audio.set(r.result.audio, i * T * NUM_MEL_BINS);
      image.set(r.result.image, i * 3 * S * S);
      labels.set(r.result.labels, i * K);
      lambdas[i] = r.result.lambda ?? NaN;
      ids.push(this.items[r.index].id);
      indices.push(r.index);
    });
    return { audio, image, labels, ids, indices, lambdas, size: bs, epoch, batchIndex };
  }

  private async loadPosition(epoch: number, position: number, index: number): Promise<Resolved | null> {
    const n = this.items.length;
    const seed = this.opts.seed;
    const mixRng = Rng.derive(seed, epoch, position, TAG_MIX);
    const replaceRng = Rng.derive(seed, epoch, position, TAG_REPLACE);
    let primary = index;
    let partner: number | undefined =
      this.opts.mixup > 0 && mixRng.uniform() < this.opts.mixup ? mixRng.int(n) : undefined;
    let lastFailure = '';
    const policy = this.opts.onUnreadable;
    if (policy !== 'replace' && this.bad.has(primary)) {
      if (policy === 'skip') return null;
      const f = this.failures.find((x) => x.index === primary);
      throw new UserError(f ? withPath(f.path, f.message) : `entry ${primary} is unreadable`);
    }
    for (let attempt = 0; ; attempt++) {
      // Known-unreadable items are skipped without a round trip; the draws are the same either way.
      while (this.bad.has(primary) && attempt <= this.opts.maxRetries) {
        primary = replaceRng.int(n);
        attempt++;
      }
      while (partner !== undefined && this.bad.has(partner) && attempt <= this.opts.maxRetries) {
        partner = mixRng.int(n);
        attempt++;
      }
      if (attempt > this.opts.maxRetries || this.bad.size >= n)
        throw new UserError(
          `${this.dataset.path}: gave up after ${attempt} unreadable samples in a row (last: ${lastFailure})`,
        );
      const task: SampleTask = {
        seed,
        epoch,
        position,
        primary: this.items[primary],
        partner: partner === undefined ? undefined : this.items[partner],
      };
      const reply = await this.pool.run(task);
      if (reply.ok) return { result: reply.result, index: primary };
      if (reply.fatal) throw new Error(`loader: sample ${position} failed: ${reply.message}`);
      const failedIndex = reply.which === 'primary' ? primary : partner!;
      this.bad.add(failedIndex);
      lastFailure = `${reply.path}: ${reply.message}`;
      this.report({
        path: reply.path,
        index: failedIndex,
        id: this.items[failedIndex].id,
        message: reply.message,
        epoch,
        position,
      });
      if (reply.which === 'primary' && policy === 'skip') return null;
      if (reply.which === 'primary' && policy === 'error')
        throw new UserError(withPath(reply.path, reply.message));
      if (reply.which === 'primary') primary = replaceRng.int(n);
      else partner = mixRng.int(n);
    }
  }

  private report(f: LoadFailure): void {
    if (this.reportedPaths.has(f.path)) return;
    this.reportedPaths.add(f.path);
    this.failures.push(f);
    if (this.opts.onFailure) this.opts.onFailure(f);
    else {
      const what = this.opts.onUnreadable === 'skip' ? 'left out' : 'replaced by another sample';
      process.stderr.write(
        `cavmae: warning: unreadable sample (entry ${f.index}, id "${f.id}"): ${withPath(f.path, f.message)}; ${what}\n`,
      );
    }
  }

  /** Stops the worker threads. */
  close(): Promise<void> {
    return this.pool.close();
  }
}

export function createLoader(dataset: Dataset, options: LoaderOptions): DataLoader {
  return new DataLoader(dataset, options);
}
