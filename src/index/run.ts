/** What `cavmae index ...` and `cavmae search` do, kept out of the command files. */
import { existsSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { OptionError, UserError, fileError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import { addMedia, collectMediaFiles, type AddSummary } from './add.js';
import { existingBackend, isUri, openIndexReader, openIndexWriter, type IndexBackend } from './backend.js';
import { detectMedia } from './media.js';
import type { LanceIndex } from './lance.js';
import { identityOf, mediaId, ID_PATTERN, MediaIndex } from './store.js';
import { SPACES, type Modality } from './types.js';
import type { Engine, SearchMode, SearchResult } from '../serve/engine.js';
import { embedderFromEngine, searchIndex } from '../serve/engine.js';
import { loadEngine } from '../serve/load-engine.js';
import type { QueuedAddSummary } from '../queue/submit.js';

export interface IndexAddOptions {
  inputs: string[];
  model: string;
  index: string;
  batch: number;
  thumbnails: boolean;
  force: boolean;
  progress?: boolean;
  /** Index backend for a new index (an existing one is recognised). */
  backend?: IndexBackend;
  /** redis://HOST:PORT/N: submit jobs of `batch` files to workers instead of embedding here. */
  queue?: string;
  /** Attempts per queued job. */
  attempts?: number;
  /** Compute threads for embedding here (default one per core). */
  threads?: number;
}

/** `cavmae index add`: resumable, with a progress display; Ctrl-C commits what was embedded. */
export async function runIndexAdd(
  o: IndexAddOptions,
  err: NodeJS.WriteStream = process.stderr,
): Promise<AddSummary | QueuedAddSummary> {
  if (!existsSync(o.model)) throw fileError(o.model, 'model file not found');
  const files = collectMediaFiles(o.inputs, { exclude: isUri(o.index) ? [] : [o.index] });
  if (files.length === 0) throw new UserError(`no media files found in ${o.inputs.join(', ')}`);
  if (o.threads !== undefined) (await import('../kernels/index.js')).kernels().setThreads(o.threads);
  const engine = await loadEngine(o.model);
  const ac = new AbortController();
  const onInt = () => {
    err.write(
      o.queue
        ? '\ncavmae: interrupted: what was committed stays; queued jobs stay in Redis (run the same command again to collect them)\n'
        : '\ncavmae: interrupted: committing what was embedded (run the same command again to resume)\n',
    );
    ac.abort();
  };
  process.once('SIGINT', onInt);
  let closeEngine: (() => Promise<void> | void) | undefined = () => engine.close?.();
  try {
    const embedder = embedderFromEngine(engine);
    const index = await openIndexWriter(o.index, { ...identityOf(embedder), modelPath: o.model }, o.backend);
    try {
      if (o.queue) {
        // The submitter only writes: free the model before waiting on the workers.
        await closeEngine();
        closeEngine = undefined;
        const { queuedAdd } = await import('../queue/submit.js');
        let progress: Progress | undefined;
        const summary = await queuedAdd(
          index,
          files,
          { id: embedder.modelId, name: embedder.modelName, dim: embedder.dim, path: resolve(o.model) },
          {
            queue: o.queue,
            jobSize: o.batch,
            thumbnails: o.thumbnails,
            force: o.force,
            attempts: o.attempts,
            signal: ac.signal,
            onProgress: (p) => {
              if (o.progress === false) return;
              progress ??= new Progress({ total: p.total, label: 'index (queue)', stream: err });
              progress.update(p.done, {
                committed: p.committed,
                failed: p.failed,
                waiting: p.waiting,
                active: p.active,
              });
            },
            onNotice: (m) => err.write(`\ncavmae: ${m}\n`),
          },
        );
        progress?.stop();
        return summary;
      }
      const progress =
        o.progress === false ? undefined : new Progress({ total: files.length, label: 'index', stream: err });
      const summary = await addMedia(index, files, embedder, {
        batchSize: o.batch,
        thumbnails: o.thumbnails,
        force: o.force,
        signal: ac.signal,
        onProgress: (p) => progress?.update(p.done, { added: p.added, skipped: p.skipped, failed: p.failed }),
      });
      progress?.stop();
      return summary;
    } finally {
      await index.close();
    }
  } finally {
    process.off('SIGINT', onInt);
    await closeEngine?.();
  }
}

export function formatAddSummary(s: AddSummary, indexDir: string): string {
  const lines = [
    `${indexDir}: ${s.added} added, ${s.skipped} already indexed, ${s.failed.length} failed${s.interrupted ? ' (interrupted)' : ''}; ` +
      `the index holds ${s.index.count} items (${s.index.byModality.video} video, ${s.index.byModality.audio} audio, ${s.index.byModality.image} image)`,
  ];
  const q = (s as Partial<QueuedAddSummary>).queue;
  if (q) {
    lines.push(
      `queue ${q.url}: ${q.jobs} jobs in ${q.seconds.toFixed(1)} s; ${q.redelivered} redelivered (a worker died or stalled), ${q.duplicates} duplicate results skipped, ${q.resubmitted} jobs resubmitted`,
    );
    for (const [w, c] of Object.entries(q.workers))
      lines.push(`  worker ${w}: ${c.jobs} jobs, ${c.files} files, ${(c.ms / 1000).toFixed(1)} s embedding`);
    for (const r of q.refusals) lines.push(`  refused: ${r}`);
  }
  for (const f of s.failed) lines.push(`  failed: ${f.error}`);
  return lines.join('\n');
}

/** Resolves `ids or paths` to index ids. */
export function resolveIds(refs: string[]): string[] {
  return refs.map((r) => (ID_PATTERN.test(r) ? r : mediaId(r)));
}

export interface SearchCommandOptions {
  index: string;
  audio?: string;
  image?: string;
  video?: string;
  k: number;
  model?: string;
  mode: SearchMode;
  approximate: boolean;
}

/** `cavmae search`: embeds the query with the index's model (or --model) and searches. */
export async function runSearch(
  o: SearchCommandOptions,
): Promise<{ query: string; kind: Modality; result: SearchResult }> {
  const given = [o.audio, o.image, o.video].filter((x) => x !== undefined);
  if (given.length !== 1)
    throw new OptionError((n) => `give exactly one of ${n('audio')}, ${n('image')}, ${n('video')}`);
  const query = given[0]!;
  const expected: Modality = o.audio ? 'audio' : o.image ? 'image' : 'video';
  if (!existsSync(query) || !statSync(query).isFile()) throw fileError(query, 'file not found');
  const facts = await detectMedia(query);
  const kindOk =
    expected === facts.modality ||
    (expected === 'audio' && facts.modality === 'video' && facts.hasAudio) ||
    (expected === 'image' && facts.modality === 'video');
  if (!kindOk)
    throw new OptionError(
      (n) =>
        `${query}: is ${facts.modality === 'image' ? 'an image' : facts.modality}, not ${expected === 'image' ? 'an image' : expected} (${n(expected)})`,
    );
  const index = await openIndexReader(o.index);
  const model = o.model ?? index.model.path;
  if (!model)
    throw new OptionError((n) => `${o.index}: the index does not record its model file; pass ${n('model')}`);
  if (!existsSync(model))
    throw new OptionError(
      (n) => `${model}: model file not found (the index was built with it; pass ${n('model')} to use a copy)`,
    );
  let engine: Engine | undefined;
  try {
    engine = await loadEngine(model);
    index.checkIdentity(identityOf(engine.info()));
    // --audio on a video uses its soundtrack only, --image its picture only.
    const emb = await embedderFromEngine(engine).embedFile(query, expected === 'video' ? 'video' : expected);
    const embedding =
      expected === 'audio' ? { audio: emb.audio } : expected === 'image' ? { visual: emb.visual } : emb;
    return {
      query,
      kind: expected,
      result: await searchIndex(index, expected, embedding, {
        k: o.k,
        mode: o.mode,
        approximate: o.approximate,
      }),
    };
  } finally {
    await engine?.close?.();
    await index.close();
  }
}

export function formatSearch(r: { query: string; result: SearchResult }): string {
  const out: string[] = [];
  for (const list of r.result.lists) {
    out.push(`${basename(r.query)}: ${list.from} -> ${list.to}`);
    list.hits.forEach((h, i) =>
      out.push(
        `  ${String(i + 1).padStart(3)}  ${h.score.toFixed(4)}  ${h.entry.modality.padEnd(5)}  ${h.entry.path}`,
      ),
    );
  }
  if (out.length === 0) out.push('no results: the index has no embeddings this query can be compared with');
  return out.join('\n');
}

/** An existing index location (a folder of either backend, or a LanceDB URI). */
export function indexDirOf(p: string): string {
  if (isUri(p)) return p;
  const dir = resolve(p);
  if (!existingBackend(dir)) throw fileError(dir, "no media index here (build one with 'cavmae index add')");
  return dir;
}

/** Runs `fn` on the index at `location` (either backend, opened for writing or not), then closes it. */
async function withIndex<T>(
  location: string,
  writable: boolean,
  fn: (idx: MediaIndex | LanceIndex) => Promise<T>,
): Promise<T> {
  let idx: MediaIndex | LanceIndex;
  if (existingBackend(location) === 'lancedb') {
    const { LanceIndex } = await import('./lance.js');
    idx = await (writable ? LanceIndex.openOrCreate(location) : LanceIndex.open(location));
  } else idx = MediaIndex.open(location, { writable });
  try {
    return await fn(idx);
  } finally {
    idx.close();
  }
}

/** `cavmae index remove` on either backend. */
export async function removeFromIndex(
  location: string,
  refs: string[],
): Promise<{ removed: string[]; unknown: string[]; left: number }> {
  return withIndex(location, true, async (idx) => ({
    ...(await idx.remove(resolveIds(refs))),
    left: idx.count,
  }));
}

/** `cavmae index compact` on either backend: a message saying what was done. */
export async function compactIndex(location: string): Promise<string> {
  return withIndex(location, true, async (idx) => {
    if (idx instanceof MediaIndex) {
      const r = idx.compact();
      return `compacted ${r.before} rows to ${r.after}`;
    }
    await idx.compact();
    return `compacted the LanceDB tables (${idx.count} items)`;
  });
}

/** `cavmae index build-ann` on either backend: one line per space built. */
export async function buildAnnIndex(
  location: string,
  params: { m: number; efConstruction: number },
): Promise<string[]> {
  return withIndex(location, false, async (idx) => {
    const lines: string[] = [];
    const stats = idx.stats();
    for (const space of SPACES) {
      const n = space === 'audio' ? stats.withAudio : stats.withVisual;
      if (n === 0) continue;
      const t0 = Date.now();
      const what =
        idx instanceof MediaIndex
          ? (idx.ann(space, params), 'graph')
          : `LanceDB ${(await idx.buildAnn(space)).kind} index`;
      lines.push(`${space}: ${what} over ${n} items in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    return lines;
  });
}
