/**
 * Index backends: the embedded folder (store.ts, the default) and LanceDB (lance.ts, a folder or
 * an object-storage URI). Commands name the location; the backend of an existing index is
 * recognised from what is there, a new one is made with `--backend` (default embedded).
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { OptionError, UserError } from '../util/errors.js';
import { MediaIndex, type IndexIdentity, type IndexWriter, type SearchOptions } from './store.js';
import type { ClipVectors, IndexEntry, SearchHit } from './types.js';

export type IndexBackend = 'embedded' | 'lancedb';

/** The file a LanceDB index folder has at its top (lance.ts writes it with its tables). */
export const LANCE_META_TABLE = 'cavmae_meta';

/** True for object-storage and other URIs (s3://bucket/path, gs://, az://, memory://); LanceDB only. */
export function isUri(location: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(location);
}

/** The backend of the index at `location`, or undefined when there is none (yet). */
export function existingBackend(location: string): IndexBackend | undefined {
  if (isUri(location)) return 'lancedb';
  const dir = resolve(location);
  if (existsSync(join(dir, 'meta.json'))) return 'embedded';
  if (existsSync(join(dir, `${LANCE_META_TABLE}.lance`))) return 'lancedb';
  return undefined;
}

/** A writer that can be closed (releases the write lock). */
export interface OpenedIndexWriter extends IndexWriter {
  close(): void | Promise<void>;
}

/** What search and the read-only commands need from either backend. */
export interface SearchableIndex extends Pick<
  IndexWriter,
  'location' | 'model' | 'dim' | 'checkIdentity' | 'get' | 'stats'
> {
  readonly backend: IndexBackend;
  /** A Sync model's clip vectors (strategy, pairs), when the index holds them. */
  readonly clip?: ClipVectors;
  list(): IndexEntry[];
  searchAsync(query: Float32Array, opts: SearchOptions): Promise<SearchHit[]>;
  /** Catches up with commits made since opening (a long-running reader: the server). */
  refresh(): boolean | void | Promise<void>;
  /** An item's thumbnail: a file of the embedded index, the stored bytes of LanceDB. */
  thumbnailOf(entry: IndexEntry): Promise<{ path: string } | { bytes: Uint8Array } | undefined>;
  close(): void | Promise<void>;
}

/** The embedded index as a SearchableIndex (it is one). */
export function searchableEmbedded(idx: MediaIndex): SearchableIndex {
  return idx;
}

function resolveBackend(location: string, backend?: IndexBackend): IndexBackend {
  const existing = existingBackend(location);
  if (backend && existing && backend !== existing)
    throw new OptionError((n) => `${location}: holds a ${existing} index, not ${backend} (${n('backend')})`);
  if (backend === 'embedded' && isUri(location))
    throw new UserError(
      `${location}: the embedded index is a local folder; use --backend lancedb for object storage`,
    );
  return backend ?? existing ?? 'embedded';
}

/** Opens (creating when absent) an index for writing; refuses another model. */
export async function openIndexWriter(
  location: string,
  identity: IndexIdentity,
  backend?: IndexBackend,
): Promise<OpenedIndexWriter> {
  if (resolveBackend(location, backend) === 'embedded') return MediaIndex.openOrCreate(location, identity);
  const { LanceIndex } = await import('./lance.js');
  return LanceIndex.openOrCreate(location, identity);
}

/** Opens an existing index of either backend for reading and searching. */
export async function openIndexReader(location: string): Promise<SearchableIndex> {
  const b = existingBackend(location);
  if (!b)
    throw new UserError(`${resolve(location)}: no media index here (build one with 'cavmae index add')`);
  if (b === 'embedded') return MediaIndex.open(location);
  const { LanceIndex } = await import('./lance.js');
  return LanceIndex.open(location);
}
