/**
 * `cavmae index add ... --queue redis://HOST:PORT/N`: the submitting side of distributed
 * indexing. It splits the work into jobs (a batch of files each) on a BullMQ queue and is the
 * one writer: it commits the workers' results to the index as they complete.
 *
 * Contract:
 * - Resumable like the single-process add: files already indexed with the same path, mtime and
 *   size are not submitted. Jobs have deterministic ids (run key + files), and a re-run first
 *   collects the results its predecessor left in the queue, so killing the submitter loses
 *   nothing either.
 * - Exactly once: a result is committed, then its job is removed from Redis. A result whose
 *   files are already current in the index (a redelivered job, a writer that died between
 *   commit and removal) is skipped, so no file is indexed twice and no row is written twice.
 * - Workers may die (their jobs are redelivered by BullMQ's stalled check) and Redis may
 *   restart: every Redis call is retried until it answers again, and jobs that Redis lost (a
 *   restart without persistence) are submitted again from the submitter's own list.
 * - A job that fails `attempts` times (a worker crashing on it) marks its files failed with the
 *   reason; the run goes on. A file a worker cannot read fails alone, as in `index add`.
 * - Progress: committed files with rate and ETA, and the queue's waiting/active counts.
 * - `signal` (Ctrl-C) stops waiting: what was committed stays; jobs stay queued and their
 *   results are collected by the next run of the same command.
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { factsToIndex, failureMessage, type AddFailure, type AddSummary } from '../index/add.js';
import type { IndexWriter, PreparedItem } from '../index/store.js';
import { UserError } from '../util/errors.js';
import { connectionOptions, parseQueueUrl, QUEUE_PREFIX } from './location.js';
import {
  decodeJobResult,
  JOB_NAME,
  PROTOCOL_VERSION,
  validateJobData,
  type EmbedJobData,
  type JobFile,
} from './protocol.js';
import { refusalsKey } from './worker.js';

export interface QueuedAddOptions {
  queue: string;
  /** Files per job (default 16). */
  jobSize?: number;
  thumbnails?: boolean;
  force?: boolean;
  /** Attempts per job before its files are reported failed (default 5). */
  attempts?: number;
  /** Writer poll interval (ms, default 200). */
  pollMs?: number;
  /** Seconds to wait for Redis at start before giving up (default 30). */
  connectTimeoutSec?: number;
  signal?: AbortSignal;
  /** Committed files so far, and the queue's counts. */
  onProgress?: (p: {
    done: number;
    total: number;
    committed: number;
    failed: number;
    waiting: number;
    active: number;
  }) => void;
  /** Notices for people: refusals, Redis trouble, resubmissions. */
  onNotice?: (message: string) => void;
}

export interface QueuedAddSummary extends AddSummary {
  queue: {
    url: string;
    run: string;
    jobs: number;
    /** Jobs submitted again because Redis lost them. */
    resubmitted: number;
    /** Results skipped because their files were already committed (redelivered jobs). */
    duplicates: number;
    /** Jobs that ran more than once before completing (a worker died or stalled on them). */
    redelivered: number;
    /**
     * Files per second between the first and the last commit round: the rate once the workers
     * are busy, without start-up (model loading, submission) and the last job's latency.
     */
    steadyFilesPerSec: number;
    /** Time the writer spent committing results (decode, index commit, job removal), ms. */
    writerMs: number;
    /** Files and jobs per worker. */
    workers: Record<string, { jobs: number; files: number; ms: number }>;
    refusals: string[];
    seconds: number;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const STATES_PENDING = ['waiting', 'active', 'delayed', 'paused', 'prioritized', 'waiting-children'] as const;

/** The run key: one index (on this host) with one model. */
export function runKey(indexLocation: string, modelId: string): string {
  return createHash('sha256')
    .update(`${hostname()}\n${indexLocation}\n${modelId}`)
    .digest('hex')
    .slice(0, 16);
}

/** Finished jobs of one run (other runs may share the queue), oldest first, at most `limit`. */
async function jobsOfRun(
  queue: Queue,
  state: 'completed' | 'failed',
  run: string,
  limit = 200,
): Promise<Job[]> {
  const out: Job[] = [];
  const page = 500;
  for (let start = 0; out.length < limit; start += page) {
    const jobs = await queue.getJobs([state], start, start + page - 1, true);
    for (const j of jobs) if (j?.id && (j.data as Partial<EmbedJobData>)?.run === run) out.push(j);
    if (jobs.length < page) break;
  }
  return out.slice(0, limit);
}

/** A file's identity in a job: path, mtime and size. */
const fileKey = (f: JobFile) => `${f.path}\0${f.mtimeMs}\0${f.size}`;

function jobId(run: string, files: readonly JobFile[]): string {
  const h = createHash('sha256');
  for (const f of files) h.update(`${fileKey(f)}\n`);
  return `${run}-${h.digest('hex').slice(0, 20)}`;
}

/**
 * Submits `files` and commits the results into `index` (opened for writing by the caller).
 * `model` is the identity and file of the index's model.
 */
export async function queuedAdd(
  index: IndexWriter,
  files: readonly string[],
  model: { id: string; name: string; dim: number; path: string },
  o: QueuedAddOptions,
): Promise<QueuedAddSummary> {
  const t0 = performance.now();
  const loc = parseQueueUrl(o.queue);
  const notice = o.onNotice ?? (() => {});
  index.checkIdentity({ modelId: model.id, modelName: model.name, dim: model.dim });
  const jobSize = Math.max(1, o.jobSize ?? 16);
  const run = runKey(index.location, model.id);
  const failed: AddFailure[] = [];
  let skipped = 0;

  // What needs embedding, with the facts the index will record.
  const todo: JobFile[] = [];
  for (const file of files) {
    const path = resolve(file);
    try {
      const facts = factsToIndex(index, path, o.force);
      if (facts) todo.push(facts);
      else skipped++;
    } catch (e) {
      failed.push({ path, error: failureMessage(e) });
    }
  }

  const queue = new Queue(loc.name, { connection: connectionOptions(loc), prefix: QUEUE_PREFIX });
  // Our own connection for plain commands (existence checks, the refusals hash).
  const client = new Redis(connectionOptions(loc));
  client.on('error', () => {}); // the queue's handler reports trouble once
  let redisDown = '';
  // Redis trouble is said once per distinct error; ioredis reconnects by itself.
  const trouble = (e: unknown) => {
    const m = (e as Error).message;
    if (m !== redisDown) notice(`Redis at ${loc.display}: ${m}; retrying until it is back`);
    redisDown = m || 'error';
  };
  queue.on('error', trouble);
  const summary: QueuedAddSummary['queue'] = {
    url: loc.display,
    run,
    jobs: 0,
    resubmitted: 0,
    duplicates: 0,
    redelivered: 0,
    steadyFilesPerSec: 0,
    writerMs: 0,
    workers: {},
    refusals: [],
    seconds: 0,
  };
  let added = 0;
  let interrupted = false;
  try {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        queue.waitUntilReady(),
        new Promise((_, reject) => {
          timer = setTimeout(
            () =>
              reject(new UserError(`cannot reach Redis at ${loc.display} (is redis-server running there?)`)),
            (o.connectTimeoutSec ?? 30) * 1000,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }

    // Jobs a previous run of this command left: pending ones keep their files, finished ones
    // are collected below like any other.
    const outstanding = new Map<string, EmbedJobData>();
    const covered = new Set<string>();
    for (const job of await queue.getJobs([...STATES_PENDING, 'completed', 'failed'])) {
      if (!job?.id || (job.data as Partial<EmbedJobData>)?.run !== run) continue;
      if (await job.isFailed()) {
        await job.remove(); // given up on last time: its files are submitted again below
        continue;
      }
      const data = validateJobData(job.data);
      outstanding.set(job.id, data);
      for (const f of data.files) covered.add(fileKey(f));
    }
    const fresh = todo.filter((f) => !covered.has(fileKey(f)));
    const todoPaths = new Set(todo.map((f) => f.path));
    let total = todo.length;
    for (const d of outstanding.values()) for (const f of d.files) if (!todoPaths.has(f.path)) total++;

    const dataOf = (batch: JobFile[]): EmbedJobData => ({
      v: PROTOCOL_VERSION,
      run,
      index: index.location,
      model,
      thumbnails: o.thumbnails ?? true,
      files: batch,
    });
    const jobOpts = (id: string) => ({
      jobId: id,
      attempts: o.attempts ?? 5,
      backoff: { type: 'exponential', delay: 2000 },
      removeOnComplete: false,
      removeOnFail: false,
    });
    const batches: { name: string; data: EmbedJobData; opts: ReturnType<typeof jobOpts> }[] = [];
    for (let i = 0; i < fresh.length; i += jobSize) {
      const batch = fresh.slice(i, i + jobSize);
      const id = jobId(run, batch);
      const data = dataOf(batch);
      outstanding.set(id, data);
      batches.push({ name: JOB_NAME, data, opts: jobOpts(id) });
    }
    for (let i = 0; i < batches.length; i += 500) await queue.addBulk(batches.slice(i, i + 500));
    summary.jobs = outstanding.size;

    // Files done (committed, skipped or failed) and committed; the queue's counts.
    const counts = { done: 0, total, committed: 0, waiting: 0, active: 0 };
    const progress = () => o.onProgress?.({ ...counts, failed: failed.length });
    progress();
    const committedPaths = new Set<string>();
    const seenRefusals = new Set<string>();
    let lastCheck = performance.now();
    let lastCounts = 0;

    /**
     * Commits the results of finished jobs in ONE index commit (one set of fsyncs however many
     * jobs finished since the last round), then removes the jobs: exactly once, see the contract.
     */
    let firstRound: { t: number; done: number } | undefined;
    const collect = async (jobs: Job[]): Promise<void> => {
      const tc = performance.now();
      const batch: PreparedItem[] = [];
      const inBatch = new Set<string>();
      const taken: { job: Job; data: EmbedJobData; committed: number }[] = [];
      for (const job of jobs) {
        const id = String(job.id);
        const data = outstanding.get(id) ?? validateJobData(job.data);
        let decoded;
        try {
          decoded = decodeJobResult(data, job.returnvalue, `job ${id}`);
          if (decoded.result.model !== model.id)
            throw new UserError(
              `job ${id}: embedded by model ${decoded.result.model.slice(0, 12)}, not the index's ${model.id.slice(0, 12)}`,
            );
        } catch (e) {
          if (!(e instanceof UserError)) throw e;
          // A malformed result: its files fail with the reason, the job is dropped.
          for (const f of data.files) failed.push({ path: f.path, error: e.message });
          taken.push({ job, data, committed: 0 });
          continue;
        }
        const { result, items } = decoded;
        let committedHere = 0;
        for (const it of items) {
          const key = it.file.path;
          if (!it.ok) {
            failed.push({ path: key, error: it.error ?? 'failed' });
            continue;
          }
          // Exactly once: a file already committed (by this run or an earlier one) is not written again.
          if (
            inBatch.has(key) ||
            committedPaths.has(key) ||
            (!o.force && index.isCurrent(key, it.file.mtimeMs, it.file.size))
          ) {
            summary.duplicates++;
            continue;
          }
          inBatch.add(key);
          committedHere++;
          batch.push({
            path: key,
            modality: it.modality!,
            mtimeMs: it.file.mtimeMs,
            size: it.file.size,
            embedding: it.embedding!,
            model: result.model,
            worker: result.worker,
            ...(it.thumbnail ? { thumbnail: it.thumbnail } : {}),
          });
        }
        const w = (summary.workers[result.worker] ??= { jobs: 0, files: 0, ms: 0 });
        w.jobs++;
        w.files += data.files.length;
        w.ms += result.ms;
        if (job.attemptsStarted > 1 || job.stalledCounter > 0) summary.redelivered++;
        taken.push({ job, data, committed: committedHere });
      }
      if (batch.length > 0) await index.commit(batch);
      for (const b of batch) committedPaths.add(b.path);
      added += batch.length;
      await Promise.all(taken.map((t) => t.job.remove()));
      for (const t of taken) {
        if (outstanding.delete(String(t.job.id))) {
          counts.done += t.data.files.length;
          counts.committed += t.committed;
        }
      }
      summary.writerMs += performance.now() - tc;
      const now = performance.now();
      firstRound ??= { t: now, done: counts.done };
      if (counts.done > firstRound.done)
        summary.steadyFilesPerSec = ((counts.done - firstRound.done) / (now - firstRound.t)) * 1000;
    };

    while (outstanding.size > 0) {
      if (o.signal?.aborted) {
        interrupted = true;
        break;
      }
      try {
        let busy = false;
        const finished = await jobsOfRun(queue, 'completed', run);
        if (finished.length > 0) {
          busy = true;
          await collect(finished);
          progress();
        }
        for (const job of await jobsOfRun(queue, 'failed', run)) {
          const id = String(job.id);
          const data = outstanding.get(id) ?? validateJobData(job.data);
          const why = `job ${job.id} failed ${job.attemptsMade} times: ${job.failedReason}`;
          for (const f of data.files)
            if (!committedPaths.has(f.path)) failed.push({ path: f.path, error: why });
          if (outstanding.delete(id)) counts.done += data.files.length;
          await job.remove();
          busy = true;
          progress();
        }
        const now = performance.now();
        if (now - lastCounts > 1000) {
          lastCounts = now;
          const c = await queue.getJobCounts('waiting', 'active', 'prioritized');
          counts.waiting = (c.waiting ?? 0) + (c.prioritized ?? 0);
          counts.active = c.active ?? 0;
          for (const [worker, json] of Object.entries(await client.hgetall(refusalsKey(loc.name)))) {
            const message = (JSON.parse(json) as { message?: string }).message ?? json;
            // One line per worker and reason (a worker may refuse again while it stops).
            if (seenRefusals.has(`${worker}\0${message}`)) continue;
            seenRefusals.add(`${worker}\0${message}`);
            if (message.includes(index.location)) {
              summary.refusals.push(message);
              notice(message);
            }
          }
          progress();
        }
        // Jobs Redis no longer has (restarted without its data): submit them again.
        if (now - lastCheck > 5000 || redisDown) {
          lastCheck = now;
          const ids = [...outstanding.keys()];
          const pipe = client.pipeline();
          for (const id of ids) pipe.exists(`${QUEUE_PREFIX}:${loc.name}:${id}`);
          const res = (await pipe.exec()) ?? [];
          const lost = ids.filter((_, i) => res[i]?.[1] === 0);
          if (lost.length > 0) {
            notice(
              `${lost.length} job(s) missing from Redis (restarted without its data?): submitting them again`,
            );
            await queue.addBulk(
              lost.map((id) => ({ name: JOB_NAME, data: outstanding.get(id)!, opts: jobOpts(id) })),
            );
            summary.resubmitted += lost.length;
          }
          redisDown = '';
        }
        if (!busy) await sleep(o.pollMs ?? 200);
      } catch (e) {
        if (e instanceof UserError) throw e;
        trouble(e); // Redis went away mid-call: wait and go on
        await sleep(1000);
      }
    }
    progress();
  } finally {
    await queue.close().catch(() => {});
    client.disconnect();
  }
  summary.seconds = (performance.now() - t0) / 1000;
  return { total: files.length, added, skipped, failed, interrupted, index: index.stats(), queue: summary };
}
