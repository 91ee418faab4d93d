/**
 * `index add`: embed a collection of media files into the index, resumably.
 *
 * Contract:
 * - Inputs are files and folders; folders are walked recursively (hidden entries and the index
 *   folder itself skipped) for files with a media extension, in sorted order. Named files are
 *   always tried. The kind of each file is decided by its content (media.ts).
 * - A file already indexed with the same path, mtime and size is skipped, so re-running after an
 *   interruption (Ctrl-C, kill -9, a crash) continues where the last commit ended; a changed
 *   file is re-embedded and replaces its entry.
 * - Items are committed in batches (`batchSize`, default 16): a crash loses at most one batch
 *   of work, never index consistency (store.ts).
 * - A file that fails (unreadable, unsupported, decode error) is reported with its reason and
 *   the run goes on; the summary lists every failure.
 * - `signal` stops the run after the item in progress; what was embedded is committed.
 */
import { readdirSync, statSync } from 'node:fs';
import { extname, join, resolve, sep } from 'node:path';
import { UserError } from '../util/errors.js';
import { detectMedia, MEDIA_EXTENSIONS } from './media.js';
import type { IndexStats, IndexWriter, NewItem, PreparedItem } from './store.js';
import { makeThumbnail } from './thumbs.js';
import type { MediaEmbedder, MediaEmbedding, Modality } from './types.js';

export interface AddProgress {
  done: number;
  total: number;
  added: number;
  skipped: number;
  failed: number;
  /** The file just finished. */
  path?: string;
}

export interface AddOptions {
  /** Items per commit (default 16). */
  batchSize?: number;
  /** Write thumbnails (default true). */
  thumbnails?: boolean;
  /** Re-embed files even when they are indexed and unchanged. */
  force?: boolean;
  onProgress?: (p: AddProgress) => void;
  /** Called for each failed file as it happens. */
  onFailure?: (f: AddFailure) => void;
  signal?: AbortSignal;
}

export interface AddFailure {
  path: string;
  error: string;
}

export interface AddSummary {
  total: number;
  added: number;
  skipped: number;
  failed: AddFailure[];
  /** True when `signal` stopped the run early. */
  interrupted: boolean;
  index: IndexStats;
}

/** Expands files and folders into the list of candidate media files (absolute, sorted, unique). */
export function collectMediaFiles(inputs: readonly string[], opts: { exclude?: string[] } = {}): string[] {
  const exclude = (opts.exclude ?? []).map((p) => resolve(p));
  const excluded = (p: string) => exclude.some((x) => p === x || p.startsWith(x + sep));
  const out = new Set<string>();
  const walk = (dir: string, depth: number) => {
    if (depth > 64) throw new UserError(`${dir}: folders nested too deeply`);
    let names: string[];
    try {
      names = readdirSync(dir).sort();
    } catch (e) {
      throw new UserError(
        `${dir}: cannot list folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`,
      );
    }
    for (const name of names) {
      if (name.startsWith('.')) continue;
      const p = join(dir, name);
      if (excluded(p)) continue;
      let st;
      try {
        st = statSync(p);
      } catch {
        continue; // dangling link
      }
      if (st.isDirectory()) walk(p, depth + 1);
      else if (st.isFile() && MEDIA_EXTENSIONS.has(extname(name).toLowerCase())) out.add(p);
    }
  };
  for (const input of inputs) {
    const p = resolve(input);
    let st;
    try {
      st = statSync(p);
    } catch {
      throw new UserError(`${input}: file or folder not found`);
    }
    if (st.isDirectory()) walk(p, 0);
    else out.add(p);
  }
  return [...out].sort();
}

/** One file as `index add` stores it: its kind by content, the embeddings of the streams it has, a thumbnail. */
export interface PreparedMedia {
  modality: Modality;
  embedding: MediaEmbedding;
  thumbnail?: { bytes: Uint8Array; ext: 'jpg' | 'png' };
}

/**
 * Embeds one file (the per-file work of `index add`, shared with queue workers). Throws a
 * UserError naming the file when it cannot be used; a thumbnail that fails is left out.
 */
export async function prepareMediaFile(
  path: string,
  embedder: MediaEmbedder,
  opts: { thumbnails?: boolean } = {},
): Promise<PreparedMedia> {
  const facts = await detectMedia(path);
  const emb = await embedder.embedFile(path, facts.modality);
  // Only the streams the file really has: a silent video gets no audio embedding even if the
  // model embeds silence.
  const embedding = {
    ...(emb.audio && facts.hasAudio ? { audio: emb.audio } : {}),
    ...(emb.visual && (facts.modality === 'image' || facts.hasVideo) ? { visual: emb.visual } : {}),
  };
  if (!embedding.audio && !embedding.visual) throw new UserError(`${path}: the model returned no embedding`);
  let thumbnail: PreparedMedia['thumbnail'];
  if (opts.thumbnails ?? true) {
    try {
      thumbnail = await makeThumbnail(path, facts.modality, facts.durationSec);
    } catch {
      thumbnail = undefined; // a missing thumbnail does not make the item unsearchable
    }
  }
  return { modality: facts.modality, embedding, ...(thumbnail ? { thumbnail } : {}) };
}

type FileFacts = Pick<NewItem, 'path' | 'mtimeMs' | 'size'>;

/** A file's facts as the index records them; undefined when it is indexed and unchanged (and not `force`). */
export function factsToIndex(index: IndexWriter, path: string, force?: boolean): FileFacts | undefined {
  const st = statSync(path);
  if (!st.isFile()) throw new UserError(`${path}: not a regular file`);
  if (!force && index.isCurrent(path, st.mtimeMs, st.size)) return undefined;
  return { path, mtimeMs: st.mtimeMs, size: st.size };
}

/** A failure's message: a UserError's own words, anything else marked internal. */
export function failureMessage(e: unknown): string {
  return e instanceof UserError ? e.message : `internal error: ${(e as Error)?.message ?? String(e)}`;
}

/** Embeds `files` into `index` (opened for writing) with `embedder`. */
export async function addMedia(
  index: IndexWriter,
  files: readonly string[],
  embedder: MediaEmbedder,
  opts: AddOptions = {},
): Promise<AddSummary> {
  index.checkIdentity({ modelId: embedder.modelId, modelName: embedder.modelName, dim: embedder.dim });
  const batchSize = Math.max(1, opts.batchSize ?? 16);
  const thumbnails = opts.thumbnails ?? true;
  const failed: AddFailure[] = [];
  let added = 0;
  let skipped = 0;
  let done = 0;
  let batch: PreparedItem[] = [];
  const total = files.length;
  const flush = async () => {
    if (batch.length === 0) return;
    await index.commit(batch);
    added += batch.length;
    batch = [];
  };
  let interrupted = false;
  for (const file of files) {
    if (opts.signal?.aborted) {
      interrupted = true;
      break;
    }
    const path = resolve(file);
    try {
      const facts = factsToIndex(index, path, opts.force);
      if (!facts) {
        skipped++;
      } else {
        const m = await prepareMediaFile(path, embedder, { thumbnails });
        batch.push({ ...facts, model: embedder.modelId, ...m });
        if (batch.length >= batchSize) await flush();
      }
    } catch (e) {
      const f = { path, error: failureMessage(e) };
      failed.push(f);
      opts.onFailure?.(f);
    }
    done++;
    opts.onProgress?.({ done, total, added: added + batch.length, skipped, failed: failed.length, path });
  }
  await flush();
  return { total, added, skipped, failed, interrupted, index: index.stats() };
}
