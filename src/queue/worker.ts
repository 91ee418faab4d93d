/**
 * `cavmae worker --queue redis://HOST:PORT/N`: takes embedding jobs from the queue, embeds each
 * file with the job's model and returns the vectors; the submitting side's writer commits them.
 *
 * Contract:
 * - One job at a time per process (`--threads T` compute threads for it); run several processes
 *   or machines for more throughput.
 * - The model: `--model FILE` when given, else the job's model path (mapped with `--map`). Its
 *   id (sha256 of config + weights) must equal the job's; otherwise the worker refuses: the job
 *   goes back to the queue untouched (no attempt used), the refusal is recorded in Redis for the
 *   submitter to show, and the worker exits with an error naming both models.
 * - A worker that dies mid-job (SIGKILL, lost machine) stops renewing its lock; BullMQ's stalled
 *   check hands the job to another worker after `lockMs`. A worker only returns whole results,
 *   so nothing half-done is ever committed.
 * - SIGINT / SIGTERM (or `signal`) finish the job in progress, then stop.
 */
import { hostname } from 'node:os';
import { Worker, WaitingError, type Job } from 'bullmq';
import { existsSync, statSync } from 'node:fs';
import { kernels } from '../kernels/index.js';
import { failureMessage, prepareMediaFile } from '../index/add.js';
import type { MediaEmbedder } from '../index/types.js';
import type { Engine } from '../serve/engine.js';
import { embedderFromEngine } from '../serve/engine.js';
import { loadEngine } from '../serve/load-engine.js';
import { OptionError, UserError, fileError } from '../util/errors.js';
import { connectionOptions, parseQueueUrl, QUEUE_PREFIX } from './location.js';
import { PathMap } from './paths.js';
import {
  encodeVector,
  PROTOCOL_VERSION,
  validateJobData,
  type EmbedJobData,
  type EmbedJobResult,
  type ResultItem,
} from './protocol.js';

/** Default BullMQ lock: a job whose worker stops renewing it for this long is redelivered. */
export const DEFAULT_LOCK_MS = 30_000;

export interface WorkerOptions {
  queue: string;
  /** Compute threads (default: the kernels' default, one per core). */
  threads?: number;
  /** The model file; default: each job's model path, mapped. */
  model?: string;
  /** Path prefix mappings FROM=TO (submitter's prefix = this machine's). */
  map?: string[];
  /** Worker name in logs and in the index (default host/pid). */
  name?: string;
  /** BullMQ lock duration and stalled-check interval (ms). */
  lockMs?: number;
  /** Stop after this many jobs (benchmarks, tests); default: run until stopped. */
  maxJobs?: number;
  signal?: AbortSignal;
  /** One line per event (job done, refusal, connection trouble); JSON when `json`. */
  log?: (event: WorkerEvent) => void;
}

export type WorkerEvent =
  | { event: 'ready'; worker: string; queue: string; threads: number; model?: string }
  | { event: 'start'; worker: string; job: string; files: number; attempt: number }
  | { event: 'job'; worker: string; job: string; files: number; failed: number; ms: number }
  | { event: 'refused'; worker: string; job: string; message: string }
  | { event: 'error'; worker: string; message: string };

export interface WorkerSummary {
  worker: string;
  jobs: number;
  files: number;
  failed: number;
}

/** Redis hash (per queue) of refusals, worker -> JSON {time, job, message}; the submitter shows them. */
export function refusalsKey(queueName: string): string {
  return `${QUEUE_PREFIX}:${queueName}:refusals`;
}

interface LoadedModel {
  path: string;
  id: string;
  name: string;
  engine: Engine;
  embedder: MediaEmbedder;
}

class Refusal extends Error {}

export async function runWorker(o: WorkerOptions): Promise<WorkerSummary> {
  const loc = parseQueueUrl(o.queue);
  const paths = new PathMap(o.map ?? []);
  const name = o.name ?? `${hostname()}/${process.pid}`;
  const log = o.log ?? (() => {});
  if (o.threads !== undefined) {
    if (!Number.isInteger(o.threads) || o.threads < 1)
      throw new OptionError((n) => `${n('threads')} must be a positive integer, got ${o.threads}`);
    kernels().setThreads(o.threads);
  }
  let model: LoadedModel | undefined;
  const load = async (path: string, wantId?: string): Promise<LoadedModel> => {
    // The cached model, unless the job wants another id (the file may have been replaced since).
    if (model?.path === path && (wantId === undefined || model.id === wantId)) return model;
    await model?.engine.close?.();
    model = undefined;
    const engine = await loadEngine(path);
    const info = engine.info();
    model = { path, id: info.modelId, name: info.modelName, engine, embedder: embedderFromEngine(engine) };
    return model;
  };
  if (o.model) {
    if (!existsSync(o.model)) throw fileError(o.model, 'model file not found');
    await load(o.model);
  }

  const summary: WorkerSummary = { worker: name, jobs: 0, files: 0, failed: 0 };
  let refusal: string | undefined;
  let stopping: Promise<void> | undefined;
  const lockMs = o.lockMs ?? DEFAULT_LOCK_MS;

  const modelFor = async (data: EmbedJobData): Promise<LoadedModel> => {
    const want = `${data.model.name} (${data.model.id.slice(0, 12)})`;
    const refuse = (why: string) => new Refusal(`worker ${name} refuses job for index ${data.index}: ${why}`);
    if (o.model) {
      const m = model!;
      if (m.id !== data.model.id)
        throw refuse(
          `it needs model ${want}, this worker has ${m.name} (${m.id.slice(0, 12)}) from ${o.model}; start the worker with the index's model file`,
        );
      return m;
    }
    const local = paths.local(data.model.path);
    const here = local !== data.model.path ? ` (here ${local})` : '';
    if (!existsSync(local))
      throw refuse(`its model ${data.model.path}${here} is not on this machine; pass --model or --map`);
    let m: LoadedModel;
    try {
      m = await load(local, data.model.id);
    } catch (e) {
      throw refuse(`cannot load its model ${local} (${(e as Error).message})`);
    }
    if (m.id !== data.model.id)
      throw refuse(
        `${local} is model ${m.name} (${m.id.slice(0, 12)}), the job needs ${want} (weights or config differ); copy the index's model file here or pass --model`,
      );
    return m;
  };

  const processor = async (job: Job, token?: string): Promise<EmbedJobResult> => {
    if (refusal) {
      // Stopping after a refusal: a job taken meanwhile goes straight back.
      await job.moveToWait(token);
      throw new WaitingError();
    }
    const data = validateJobData(job.data);
    let m: LoadedModel;
    try {
      m = await modelFor(data);
    } catch (e) {
      if (!(e instanceof Refusal)) throw e;
      refusal = e.message;
      void worker.pause(true); // take no further job (the one in hand goes back below)
      log({ event: 'refused', worker: name, job: String(job.id), message: e.message });
      // Back to the queue for another worker, without using an attempt; then this worker stops.
      await job.log(e.message);
      const client = await worker.client;
      await client.hset(refusalsKey(loc.name), {
        [name]: JSON.stringify({ time: new Date().toISOString(), job: job.id, message: e.message }),
      });
      await job.moveToWait(token);
      setImmediate(() => void stop());
      throw new WaitingError();
    }
    log({
      event: 'start',
      worker: name,
      job: String(job.id),
      files: data.files.length,
      attempt: job.attemptsStarted,
    });
    const t0 = performance.now();
    const items: ResultItem[] = [];
    let failed = 0;
    for (const [i, f] of data.files.entries()) {
      const local = paths.local(f.path);
      try {
        const st = statSync(local, { throwIfNoEntry: false });
        if (!st)
          throw fileError(
            local,
            `file not found on this machine${local === f.path ? '' : ` (submitted as ${f.path})`}; check --map`,
          );
        if (!st.isFile()) throw fileError(local, 'not a regular file');
        if (st.size !== f.size)
          throw fileError(
            local,
            `has ${st.size} bytes here but ${f.size} on the submitting machine (another or a changed file)`,
          );
        const p = await prepareMediaFile(local, m.embedder, { thumbnails: data.thumbnails });
        items.push({
          ok: true,
          modality: p.modality,
          ...(p.embedding.audio ? { audio: encodeVector(p.embedding.audio) } : {}),
          ...(p.embedding.visual ? { visual: encodeVector(p.embedding.visual) } : {}),
          ...(p.thumbnail
            ? { thumb: { ext: p.thumbnail.ext, data: Buffer.from(p.thumbnail.bytes).toString('base64') } }
            : {}),
        });
      } catch (e) {
        failed++;
        items.push({ ok: false, error: failureMessage(e) });
      }
      await job.updateProgress(i + 1);
    }
    const ms = performance.now() - t0;
    summary.jobs++;
    summary.files += data.files.length;
    summary.failed += failed;
    log({
      event: 'job',
      worker: name,
      job: String(job.id),
      files: data.files.length,
      failed,
      ms: Math.round(ms),
    });
    if (o.maxJobs !== undefined && summary.jobs >= o.maxJobs) setImmediate(() => void stop());
    return { v: PROTOCOL_VERSION, worker: name, model: m.id, items, ms };
  };

  const worker = new Worker(loc.name, processor, {
    connection: connectionOptions(loc),
    prefix: QUEUE_PREFIX,
    concurrency: 1,
    lockDuration: lockMs,
    stalledInterval: lockMs,
    maxStalledCount: 3,
    name,
    autorun: false,
  });
  let lastError = '';
  worker.on('error', (e) => {
    // Connection loss and the like: ioredis reconnects by itself; say it once per distinct error.
    const message = (e as Error).message;
    if (message !== lastError) log({ event: 'error', worker: name, message });
    lastError = message;
  });
  worker.on('ready', () => (lastError = ''));
  const stop = (): Promise<void> => {
    stopping ??= worker.close();
    return stopping;
  };
  const onSignal = () => void stop();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  o.signal?.addEventListener('abort', onSignal, { once: true });
  try {
    log({
      event: 'ready',
      worker: name,
      queue: loc.display,
      threads: kernels().getThreads(),
      ...(model ? { model: model.id } : {}),
    });
    await worker.run();
    await stop();
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await model?.engine.close?.();
  }
  if (refusal) throw new UserError(refusal);
  return summary;
}
