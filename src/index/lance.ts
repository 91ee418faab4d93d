/**
 * The media index on LanceDB (`--backend lancedb`): a folder, or an object-storage URI
 * (s3://, gs://, az://) with the credentials LanceDB reads from the environment.
 *
 * Tables (LanceDB, Lance format):
 *   cavmae_meta    key -> value: one "meta" row, JSON {format, version, model, dim, createdAt}
 *   cavmae_items   one row per committed item: id, seq, path, modality, streams, file facts,
 *                  thumbnail (name and bytes), model and worker that embedded it
 *   cavmae_audio   id, seq, vector [dim] (L2-normalised float32): items with an audio embedding
 *   cavmae_visual  the same for visual embeddings
 *
 * Contract (the same items, ids, thumbnails and search answers as the embedded index):
 * - A commit appends vectors first, then the items rows (the commit point), then deletes rows
 *   its items replace. `seq` grows by one per item; the live row of an id is its highest seq, a
 *   vector counts only when its (id, seq) is live. So a crash anywhere leaves whole commits;
 *   the next writer deletes the leftovers.
 * - Exact search: LanceDB scans the vectors (flat, dot product) for candidates, which are then
 *   re-scored with the same float32 kernel and order (score, then seq) as the embedded index,
 *   so both backends return identical ids and scores. Approximate search uses LanceDB's vector
 *   index (`buildAnn`: IVF_PQ, or IVF_FLAT for small tables) the same way.
 * - One writer: a local folder takes the same write.lock as the embedded index; object storage
 *   relies on the user running one writer (LanceDB's own commits are atomic per table).
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Connection, Table } from '@lancedb/lancedb';
import { UserError, fileError } from '../util/errors.js';
import {
  isUri,
  LANCE_META_TABLE,
  type IndexBackend,
  type OpenedIndexWriter,
  type SearchableIndex,
} from './backend.js';
import { acquireWriteLock } from './lock.js';
import {
  checkModelIdentity,
  checkSearchOptions,
  checkedEntry,
  indexStats,
  identityRecord,
  isCurrentEntry,
  normalizedCopy,
  rescore,
  thumbName,
  type IndexIdentity,
  type IndexMeta,
  type IndexStats,
  type PreparedItem,
  type SearchOptions,
} from './store.js';
import {
  hasSpace,
  MODALITIES,
  SPACES,
  type ClipVectors,
  type EmbeddingSpace,
  type IndexEntry,
  type Modality,
  type SearchHit,
} from './types.js';

export const LANCE_FORMAT = 'cavmae-media-index-lancedb';
export const LANCE_VERSION = 1;
const ITEMS = 'cavmae_items';
const VECTORS: Record<EmbeddingSpace, string> = { audio: 'cavmae_audio', visual: 'cavmae_visual' };
/** Extra candidates fetched beyond k, so that re-scoring cannot miss a near tie. */
const CANDIDATE_MARGIN = 32;

type LanceModule = typeof import('@lancedb/lancedb');
type ArrowModule = typeof import('apache-arrow');
let modules: { lancedb: LanceModule; arrow: ArrowModule } | undefined;

async function load(): Promise<{ lancedb: LanceModule; arrow: ArrowModule }> {
  if (!modules) {
    // LanceDB's Rust log says "No existing dataset ... it will be created" for every new table.
    process.env.LANCEDB_LOG ??= 'error';
    try {
      modules = { lancedb: await import('@lancedb/lancedb'), arrow: await import('apache-arrow') };
    } catch (e) {
      throw new UserError(
        `the LanceDB backend needs @lancedb/lancedb, which did not load (${(e as Error).message}); run 'npm ci'`,
      );
    }
  }
  return modules;
}

/** The embedded index's identity fields, under this backend's own format name. */
interface LanceMeta extends Pick<IndexMeta, 'model' | 'dim' | 'clip' | 'createdAt'> {
  format: string;
  version: number;
}

/** SQL string literal (ids are 16 hex digits; anything else is escaped anyway). */
function lit(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

function inList(ids: Iterable<string>): string {
  return [...ids].map(lit).join(', ');
}

/** An Arrow vector cell (FixedSizeList<Float32>) as a Float32Array. */
function vectorOf(v: unknown): Float32Array {
  const arr = (v as { toArray?: () => unknown }).toArray?.() ?? v;
  return arr instanceof Float32Array ? arr : Float32Array.from(arr as Iterable<number>);
}

function num(v: unknown): number {
  return typeof v === 'bigint' ? Number(v) : (v as number);
}

export class LanceIndex implements OpenedIndexWriter, SearchableIndex {
  readonly backend: IndexBackend = 'lancedb';
  private meta!: LanceMeta;
  private entries = new Map<string, IndexEntry>();
  private nextSeq = 0;
  private release?: () => void;
  private tables!: { items: Table; audio: Table; visual: Table; meta: Table };

  private constructor(
    readonly location: string,
    private readonly db: Connection,
  ) {}

  // ---------------------------------------------------------------- opening

  private static async connect(location: string): Promise<{ loc: string; db: Connection }> {
    const { lancedb } = await load();
    const loc = isUri(location) ? location : resolve(location);
    try {
      return { loc, db: await lancedb.connect(loc) };
    } catch (e) {
      throw fileError(loc, `cannot open the LanceDB database (${(e as Error).message})`);
    }
  }

  /** Opens an existing LanceDB index for reading (no lock). */
  static async open(location: string): Promise<LanceIndex> {
    const { loc, db } = await LanceIndex.connect(location);
    const idx = new LanceIndex(loc, db);
    if (!(await db.tableNames()).includes(LANCE_META_TABLE))
      throw fileError(loc, 'no media index here (no cavmae_meta table)');
    await idx.loadAll();
    return idx;
  }

  /**
   * Opens for writing, creating the tables when absent; refuses another model. Without an
   * identity the index must exist (remove, compact).
   */
  static async openOrCreate(location: string, identity?: IndexIdentity): Promise<LanceIndex> {
    const { arrow } = await load();
    const local = !isUri(location);
    if (local) mkdirSync(resolve(location), { recursive: true });
    const { loc, db } = await LanceIndex.connect(location);
    const idx = new LanceIndex(loc, db);
    if (local) idx.release = acquireWriteLock(loc);
    try {
      if (!(await db.tableNames()).includes(LANCE_META_TABLE)) {
        if (!identity) throw fileError(loc, 'no media index here (no cavmae_meta table)');
        const recorded = identityRecord(identity);
        const { Schema, Field, Utf8, Int64, Float64, Bool, Binary, FixedSizeList, Float32 } = arrow;
        const vec = () =>
          new Schema([
            new Field('id', new Utf8(), false),
            new Field('seq', new Int64(), false),
            new Field(
              'vector',
              new FixedSizeList(recorded.dim, new Field('item', new Float32(), true)),
              false,
            ),
          ]);
        await db.createEmptyTable(VECTORS.audio, vec(), { mode: 'overwrite' });
        await db.createEmptyTable(VECTORS.visual, vec(), { mode: 'overwrite' });
        await db.createEmptyTable(
          ITEMS,
          new Schema([
            new Field('id', new Utf8(), false),
            new Field('seq', new Int64(), false),
            new Field('path', new Utf8(), false),
            new Field('modality', new Utf8(), false),
            new Field('has_audio', new Bool(), false),
            new Field('has_visual', new Bool(), false),
            new Field('thumb', new Utf8(), true),
            new Field('thumb_data', new Binary(), true),
            new Field('mtime_ms', new Float64(), false),
            new Field('size', new Float64(), false),
            new Field('added_at', new Utf8(), false),
            new Field('model', new Utf8(), false),
            new Field('worker', new Utf8(), true),
          ]),
          { mode: 'overwrite' },
        );
        const meta: LanceMeta = {
          format: LANCE_FORMAT,
          version: LANCE_VERSION,
          ...recorded,
          createdAt: new Date().toISOString(),
        };
        // The meta table last: its presence marks a complete, usable index.
        await db.createTable(LANCE_META_TABLE, [{ key: 'meta', value: JSON.stringify(meta) }], {
          mode: 'overwrite',
        });
      }
      await idx.loadAll();
      if (identity) idx.checkIdentity(identity);
      await idx.repair();
    } catch (e) {
      idx.close();
      throw e;
    }
    return idx;
  }

  private async loadAll(): Promise<void> {
    const db = this.db;
    this.tables = {
      meta: await db.openTable(LANCE_META_TABLE),
      items: await db.openTable(ITEMS),
      audio: await db.openTable(VECTORS.audio),
      visual: await db.openTable(VECTORS.visual),
    };
    const rows = await this.tables.meta.query().where("key = 'meta'").toArray();
    let meta: Partial<LanceMeta> = {};
    try {
      meta = JSON.parse(String(rows[0]?.value ?? ''));
    } catch {
      /* reported below */
    }
    if (meta.format !== LANCE_FORMAT)
      throw fileError(
        this.location,
        `not a cavmae LanceDB index (meta format ${JSON.stringify(meta.format)})`,
      );
    if (meta.version !== LANCE_VERSION)
      throw fileError(
        this.location,
        `LanceDB index version ${meta.version} is not supported (this build reads ${LANCE_VERSION})`,
      );
    this.meta = meta as LanceMeta;
    await this.loadEntries();
  }

  /** The live entry of every id: its highest-seq items row. */
  private async loadEntries(): Promise<void> {
    // Every column but the thumbnails' bytes (`thumbnail` reads them one at a time).
    const columns = (await this.tables.items.schema()).fields.map((f) => f.name);
    const rows = await this.tables.items
      .query()
      .select(columns.filter((c) => c !== 'thumb_data'))
      .toArray();
    const entries = new Map<string, IndexEntry>();
    let next = 0;
    for (const r of rows) {
      const seq = num(r.seq);
      next = Math.max(next, seq + 1);
      const prev = entries.get(r.id);
      if (prev && prev.row > seq) continue;
      if (!MODALITIES.includes(r.modality as Modality))
        throw fileError(this.location, `item ${r.id}: unknown modality ${r.modality}`);
      entries.set(r.id, {
        id: r.id,
        row: seq,
        path: r.path,
        modality: r.modality,
        hasAudio: r.has_audio,
        hasVisual: r.has_visual,
        ...(r.thumb ? { thumb: r.thumb } : {}),
        mtimeMs: r.mtime_ms,
        size: r.size,
        addedAt: r.added_at,
        model: r.model,
        ...(r.worker ? { worker: r.worker } : {}),
      });
    }
    // Vectors may be ahead of items (a commit cut short): never reuse their seq numbers.
    for (const space of SPACES) {
      for (const r of await this.tables[space].query().select(['seq']).toArray())
        next = Math.max(next, num(r.seq) + 1);
    }
    this.entries = entries;
    this.nextSeq = next;
  }

  /** Whether (id, seq) is an entry's live row, and has `space`'s embedding when a space is named. */
  private isLive(id: string, seq: number, space?: EmbeddingSpace): boolean {
    const e = this.entries.get(id);
    return !!e && e.row === seq && (!space || hasSpace(e, space));
  }

  /** Deletes rows no live entry refers to (left by a crash or by a replaced item). */
  private async repair(): Promise<void> {
    const { items, audio, visual } = this.tables;
    for (const [table, space] of [[items], [audio, 'audio'], [visual, 'visual']] as const) {
      const rows = await table.query().select(['id', 'seq']).toArray();
      const stale = rows.filter((r) => !this.isLive(r.id, num(r.seq), space));
      if (stale.length > 0) await table.delete(`seq IN (${stale.map((r) => num(r.seq)).join(', ')})`);
    }
  }

  close(): void {
    this.release?.();
    this.release = undefined;
    if (this.db.isOpen()) this.db.close();
  }

  // ---------------------------------------------------------------- reading

  get dim(): number {
    return this.meta.dim;
  }
  get model(): { id: string; name: string; path?: string } {
    return { ...this.meta.model };
  }
  /** A Sync model's clip vectors (strategy, pairs), when the index holds them. */
  get clip(): ClipVectors | undefined {
    return this.meta.clip && { ...this.meta.clip };
  }
  get count(): number {
    return this.entries.size;
  }

  checkIdentity(identity: IndexIdentity): void {
    checkModelIdentity(this.location, this.meta.model, this.meta.dim, identity, this.meta.clip);
  }

  get(id: string): IndexEntry | undefined {
    return this.entries.get(id);
  }

  /** Live entries in commit order. */
  list(): IndexEntry[] {
    return [...this.entries.values()].sort((a, b) => a.row - b.row);
  }

  isCurrent(path: string, mtimeMs: number, size: number): boolean {
    return isCurrentEntry(this.entries, path, mtimeMs, size);
  }

  stats(): IndexStats {
    return indexStats(this.location, this.model, this.dim, this.entries, this.nextSeq, 0);
  }

  /** Reloads the entries when the items table has a new version (commits by a writer). */
  async refresh(): Promise<void> {
    const version = await this.tables.items.version();
    if (version === this.itemsVersion) return;
    await this.loadEntries();
    this.itemsVersion = version;
  }
  private itemsVersion?: number;

  /** An item's stored thumbnail bytes (SearchableIndex). */
  async thumbnailOf(e: IndexEntry): Promise<{ bytes: Uint8Array } | undefined> {
    return this.thumbnail(e.id);
  }

  /** The stored thumbnail of an item. */
  async thumbnail(id: string): Promise<{ bytes: Uint8Array; ext: 'jpg' | 'png' } | undefined> {
    const thumb = this.entries.get(id)?.thumb;
    const data = thumb && ((await this.cell(this.tables.items, id, 'thumb_data')) as Uint8Array | null);
    return data ? { bytes: data, ext: thumb.endsWith('.png') ? 'png' : 'jpg' } : undefined;
  }

  /** The stored (normalised) vector of an item, when it has one. */
  async vector(space: EmbeddingSpace, id: string): Promise<Float32Array | undefined> {
    const v = await this.cell(this.tables[space], id, 'vector');
    return v ? Float32Array.from(vectorOf(v)) : undefined;
  }

  /** One column of an item's live row in a table; undefined when there is none. */
  private async cell(table: Table, id: string, column: string): Promise<unknown> {
    const e = this.entries.get(id);
    if (!e) return undefined;
    const rows = await table
      .query()
      .where(`id = ${lit(id)} AND seq = ${e.row}`)
      .select([column])
      .toArray();
    return rows[0]?.[column];
  }

  // ---------------------------------------------------------------- writing

  async commit(items: readonly PreparedItem[]): Promise<IndexEntry[]> {
    if (!this.release && !isUri(this.location))
      throw new UserError(`${this.location}: index is open read-only`);
    if (items.length === 0) return [];
    const dim = this.meta.dim;
    const now = new Date().toISOString();
    const vectors: Record<EmbeddingSpace, { id: string; seq: bigint; vector: number[] }[]> = {
      audio: [],
      visual: [],
    };
    const rows: Record<string, unknown>[] = [];
    const entries: IndexEntry[] = [];
    const seen = new Set<string>();
    for (const it of items) {
      const seq = this.nextSeq + entries.length;
      const { entry: e, audio, visual } = checkedEntry(it, seq, now, dim, this.meta.model.id, seen);
      const thumb = it.thumbnail ? thumbName(e.id, it.thumbnail.ext) : undefined;
      const entry: IndexEntry = { ...e, ...(thumb ? { thumb } : {}) };
      if (audio) vectors.audio.push({ id: e.id, seq: BigInt(seq), vector: Array.from(audio) });
      if (visual) vectors.visual.push({ id: e.id, seq: BigInt(seq), vector: Array.from(visual) });
      entries.push(entry);
      rows.push({
        id: e.id,
        seq: BigInt(seq),
        path: e.path,
        modality: e.modality,
        has_audio: e.hasAudio,
        has_visual: e.hasVisual,
        thumb: thumb ?? null,
        thumb_data: it.thumbnail ? Buffer.from(it.thumbnail.bytes) : null,
        mtime_ms: e.mtimeMs,
        size: e.size,
        added_at: now,
        model: e.model,
        worker: e.worker ?? null,
      });
    }
    // 1. vectors, 2. items (the commit point), 3. what they replace.
    for (const space of SPACES) if (vectors[space].length > 0) await this.tables[space].add(vectors[space]);
    await this.tables.items.add(rows);
    const first = this.nextSeq;
    this.nextSeq += entries.length;
    const replaced = entries.filter((e) => this.entries.has(e.id)).map((e) => e.id);
    for (const e of entries) this.entries.set(e.id, e);
    if (replaced.length > 0) {
      const where = `id IN (${inList(replaced)}) AND seq < ${first}`;
      await this.tables.items.delete(where);
      for (const space of SPACES) await this.tables[space].delete(where);
    }
    return entries;
  }

  /** Removes entries by id (unknown ids are reported back, not an error). */
  async remove(ids: readonly string[]): Promise<{ removed: string[]; unknown: string[] }> {
    const removed = [...new Set(ids)].filter((id) => this.entries.has(id));
    const unknown = ids.filter((id) => !this.entries.has(id));
    if (removed.length === 0) return { removed, unknown };
    const where = `id IN (${inList(removed)})`;
    await this.tables.items.delete(where); // the commit point: vectors without items are dead
    for (const id of removed) this.entries.delete(id);
    for (const space of SPACES) await this.tables[space].delete(where);
    return { removed, unknown };
  }

  /** Compacts LanceDB's files and drops old versions (LanceDB's optimize). */
  async compact(): Promise<void> {
    for (const t of [this.tables.items, this.tables.audio, this.tables.visual])
      await t.optimize({ cleanupOlderThan: new Date() });
  }

  /**
   * Builds LanceDB's vector index on a space: IVF_PQ (dot product) for large tables, IVF_FLAT
   * below `pqMinRows` (PQ needs enough rows to train its codebooks).
   */
  async buildAnn(
    space: EmbeddingSpace,
    opts: { partitions?: number; subVectors?: number; pqMinRows?: number } = {},
  ): Promise<{ rows: number; kind: string }> {
    const { lancedb } = await load();
    const t = this.tables[space];
    const rows = await t.countRows();
    if (rows === 0) return { rows, kind: 'none' };
    const partitions = opts.partitions ?? Math.max(1, Math.min(4096, Math.round(Math.sqrt(rows))));
    const dim = this.meta.dim;
    let config;
    let kind;
    if (rows >= (opts.pqMinRows ?? 5000)) {
      let sub = opts.subVectors ?? Math.max(1, Math.floor(dim / 16));
      while (dim % sub !== 0) sub--;
      config = lancedb.Index.ivfPq({ distanceType: 'dot', numPartitions: partitions, numSubVectors: sub });
      kind = `IVF_PQ (${partitions} partitions, ${sub} sub-vectors)`;
    } else {
      config = lancedb.Index.ivfFlat({ distanceType: 'dot', numPartitions: partitions });
      kind = `IVF_FLAT (${partitions} partitions)`;
    }
    await t.createIndex('vector', { config, replace: true });
    return { rows, kind };
  }

  // ---------------------------------------------------------------- search

  /** Top-k items of one space for a query; see the contract for how scores are made. */
  async searchAsync(query: Float32Array, opts: SearchOptions): Promise<SearchHit[]> {
    const dim = this.meta.dim;
    checkSearchOptions(opts);
    const q = normalizedCopy(query, dim, 'query');
    const available = [...this.entries.values()].filter((e) => hasSpace(e, opts.space)).length;
    const want = Math.min(opts.k, available);
    if (want === 0) return [];
    const table = this.tables[opts.space];
    let limit = opts.k + CANDIDATE_MARGIN;
    for (;;) {
      let vq = table
        .vectorSearch(q)
        .column('vector')
        .distanceType('dot')
        .limit(limit)
        .select(['id', 'seq', 'vector', '_distance']);
      if (opts.approximate) vq = vq.nprobes(Math.max(20, opts.ef ?? 20)).refineFactor(10);
      else vq = vq.bypassVectorIndex();
      const rows = await vq.toArray();
      const cand = rows.filter((r) => this.isLive(r.id, num(r.seq), opts.space));
      if (cand.length >= want + Math.min(CANDIDATE_MARGIN, available - want) || rows.length < limit) {
        // seq is the embedded index's row order.
        const vectors = cand.map((r) => vectorOf(r.vector));
        const best = rescore(
          q,
          vectors,
          cand.map((r) => num(r.seq)),
          opts.k,
          dim,
        );
        return best.map(({ index, score }) => {
          const entry = this.entries.get(cand[index].id)!;
          return { id: entry.id, score, entry };
        });
      }
      limit *= 2;
    }
  }
}
