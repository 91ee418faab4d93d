/**
 * The embedded on-disk media index: a folder, no server.
 *
 * Layout (format 1):
 *   meta.json                 model identity, dim, generation, committed rows and manifest bytes
 *   g<gen>/manifest.jsonl     append-only journal: {"op":"add",...entry} | {"op":"remove","id"}
 *   g<gen>/audio-<s>.f32      rows [s*segmentRows, ...) of audio embeddings, float32 LE [rows, dim]
 *   g<gen>/visual-<s>.f32     the same for visual embeddings (zeros where an item has none)
 *   thumbs/<id>.jpg|png       thumbnails
 *   ann/<space>.hnsw|json     approximate-search graph cache (see ann.ts)
 *   write.lock                held by the one writer (pid inside)
 *
 * Contract:
 * - Crash safety: a commit appends vector rows and manifest lines past the committed end,
 *   fsyncs them, then replaces meta.json atomically with the new end. meta.json is the only
 *   truth: bytes past its `rows` / `manifestBytes` are a torn tail, ignored by readers and cut
 *   off by the next writer. A SIGKILL at any point leaves the previous commit or the new one.
 * - Every item carries both embeddings when it has them (a video: audio and visual; an image:
 *   visual; an audio file: audio), L2-normalised on insert, so a score is a cosine similarity and
 *   a query of either modality can search either space (cross-modal retrieval).
 * - Ids are 16 hex digits of sha256(absolute path): adding a file again replaces its entry (the
 *   old row becomes dead); `compact()` rewrites live rows into a new generation.
 * - One writer at a time (write.lock, stale locks of dead processes are taken over); any number
 *   of readers, which see whole commits only and can `refresh()`.
 * - Exact search is a blocked GEMM with partial top-k selection (topk.ts); approximate search
 *   uses an HNSW graph (ann.ts) built on demand.
 */
import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { endianness } from 'node:os';
import { join, resolve } from 'node:path';
import { fsyncDir, writeFileAtomic } from '../io/atomic.js';
import type { SearchableIndex } from './backend.js';
import { acquireWriteLock } from './lock.js';
import { UserError, fileError } from '../util/errors.js';
import { AnnIndex, type AnnParams } from './ann.js';
import { TopKCollector, collectInnerProduct } from './topk.js';
import {
  MODALITIES,
  SPACES,
  type ClipVectors,
  type EmbeddingSpace,
  type IndexEntry,
  type MediaEmbedding,
  type Modality,
  type SearchHit,
} from './types.js';

export const INDEX_FORMAT = 'cavmae-media-index';
export const INDEX_VERSION = 1;
/** Rows per segment file: 16384 x 768 floats = 48 MB per file at the base model's width. */
export const DEFAULT_SEGMENT_ROWS = 16384;
const MAX_META_BYTES = 1 << 20;
const MAX_DIM = 65536;
const FLAG_AUDIO = 1;
const FLAG_VISUAL = 2;

export interface IndexMeta {
  format: typeof INDEX_FORMAT;
  version: number;
  /** `path`: the model file the index was built with (absolute), so `search` can find it. */
  model: { id: string; name: string; path?: string };
  dim: number;
  /** A CAV-MAE Sync model's clip vectors (strategy, pairs); absent for CAV-MAE. */
  clip?: ClipVectors;
  segmentRows: number;
  generation: number;
  /** Committed vector rows (live and dead) in this generation. */
  rows: number;
  /** Committed bytes of the manifest. */
  manifestBytes: number;
  /** Live entries. */
  count: number;
  createdAt: string;
  updatedAt: string;
}

export interface IndexIdentity {
  modelId: string;
  modelName: string;
  dim: number;
  /** The model file, recorded when the index is created. */
  modelPath?: string;
  /** A CAV-MAE Sync model's clip vectors (recorded when the index is created). */
  clip?: ClipVectors;
}

/** The identity of an embedder or an engine's model, as an index records and checks it. */
export function identityOf(m: IndexIdentity): IndexIdentity {
  return { modelId: m.modelId, modelName: m.modelName, dim: m.dim, ...(m.clip ? { clip: m.clip } : {}) };
}

/** An item to append: file facts and its embeddings (normalised copies are stored). */
export interface NewItem {
  path: string;
  modality: Modality;
  mtimeMs: number;
  size: number;
  embedding: MediaEmbedding;
  thumb?: string;
  /** The model that made the embedding (default: the index's; another model is refused). */
  model?: string;
  /** Who embedded it (a queue worker's host/pid). */
  worker?: string;
}

/** An item with its thumbnail as bytes (what `index add` and queue workers produce). */
export interface PreparedItem extends Omit<NewItem, 'thumb'> {
  thumbnail?: { bytes: Uint8Array; ext: 'jpg' | 'png' };
}

/**
 * What `addMedia` and the queue's writer commit into: the embedded MediaIndex or the LanceDB
 * store (lance.ts). One writer at a time; `commit` is durable when it returns.
 */
export interface IndexWriter {
  readonly location: string;
  readonly model: { id: string; name: string; path?: string };
  readonly dim: number;
  checkIdentity(identity: IndexIdentity): void;
  isCurrent(path: string, mtimeMs: number, size: number): boolean;
  get(id: string): IndexEntry | undefined;
  commit(items: readonly PreparedItem[]): IndexEntry[] | Promise<IndexEntry[]>;
  stats(): IndexStats;
}

/** Thumbnail file name of an item, relative to the index folder. */
export function thumbName(id: string, ext: 'jpg' | 'png'): string {
  return `thumbs/${id}.${ext}`;
}

export interface SearchOptions {
  /** Which stored embedding to compare against. */
  space: EmbeddingSpace;
  k: number;
  /** Use the HNSW graph (built and cached on first use) instead of exact GEMM search. */
  approximate?: boolean;
  /** HNSW query beam width (approximate only). */
  ef?: number;
  ann?: AnnParams;
}

export interface IndexStats {
  dir: string;
  model: { id: string; name: string; path?: string };
  dim: number;
  count: number;
  rows: number;
  dead: number;
  withAudio: number;
  withVisual: number;
  byModality: Record<Modality, number>;
  generation: number;
}

/** The id of a media file: 16 hex digits of sha256 of its absolute path. */
export function mediaId(path: string): string {
  return createHash('sha256').update(resolve(path)).digest('hex').slice(0, 16);
}

export const ID_PATTERN = /^[0-9a-f]{16}$/;

/**
 * The entry of an item to commit (both backends): path resolved, id, kind and model checked,
 * embeddings checked and normalised, each id once per batch (`seen`).
 */
export function checkedEntry(
  it: Omit<NewItem, 'thumb'>,
  row: number,
  addedAt: string,
  dim: number,
  indexModel: string,
  seen: Set<string>,
): { entry: IndexEntry; audio?: Float32Array; visual?: Float32Array } {
  const path = resolve(it.path);
  const id = mediaId(path);
  if (seen.has(id)) throw new UserError(`${path}: added twice in one batch`);
  seen.add(id);
  if (!MODALITIES.includes(it.modality))
    throw new UserError(`${path}: unknown modality ${String(it.modality)}`);
  const model = it.model ?? indexModel;
  if (model !== indexModel)
    throw new UserError(
      `${path}: embedded by model ${model.slice(0, 12)}, but the index holds model ${indexModel.slice(0, 12)}'s embeddings`,
    );
  const audio = it.embedding.audio ? normalizedCopy(it.embedding.audio, dim, `${path} (audio)`) : undefined;
  const visual = it.embedding.visual
    ? normalizedCopy(it.embedding.visual, dim, `${path} (visual)`)
    : undefined;
  if (!audio && !visual) throw new UserError(`${path}: no embedding to index`);
  const entry: IndexEntry = {
    id,
    row,
    path,
    modality: it.modality,
    hasAudio: !!audio,
    hasVisual: !!visual,
    mtimeMs: it.mtimeMs,
    size: it.size,
    addedAt,
    model,
    ...(it.worker ? { worker: it.worker } : {}),
  };
  return { entry, ...(audio ? { audio } : {}), ...(visual ? { visual } : {}) };
}

/** Refuses an identity other than the index's (another model, or another width). */
export function checkModelIdentity(
  location: string,
  model: { id: string; name: string },
  dim: number,
  identity: IndexIdentity,
  clip?: ClipVectors,
): void {
  if (model.id !== identity.modelId) {
    throw fileError(
      location,
      `was built with model ${model.name} (${model.id.slice(0, 12)}), not ${identity.modelName} (${identity.modelId.slice(0, 12)}); use a new index location`,
    );
  }
  if (dim !== identity.dim)
    throw fileError(location, `holds ${dim}-dimensional embeddings, the model makes ${identity.dim}`);
  // Recorded by indexes of Sync models; an engine that does not say (a queue submitter's stand-in) is not judged.
  if (
    clip &&
    identity.clip &&
    (clip.strategy !== identity.clip.strategy || clip.pairs !== identity.clip.pairs)
  )
    throw fileError(
      location,
      `holds clip vectors of ${clip.pairs} pairs compared by ${clip.strategy}, the model makes ${identity.clip.pairs} pairs compared by ${identity.clip.strategy}`,
    );
}

/** What a new index records of its model (both backends); refuses an impossible width. */
export function identityRecord(identity: IndexIdentity): Pick<IndexMeta, 'model' | 'dim' | 'clip'> {
  if (!(Number.isInteger(identity.dim) && identity.dim >= 1 && identity.dim <= MAX_DIM))
    throw new UserError(`index dimension must be an integer in 1..${MAX_DIM}, got ${identity.dim}`);
  return {
    model: {
      id: identity.modelId,
      name: identity.modelName,
      ...(identity.modelPath ? { path: resolve(identity.modelPath) } : {}),
    },
    dim: identity.dim,
    ...(identity.clip ? { clip: identity.clip } : {}),
  };
}

/** Refuses a search neither backend can answer. */
export function checkSearchOptions(opts: SearchOptions): void {
  if (!SPACES.includes(opts.space))
    throw new UserError(`unknown search space ${String(opts.space)} (audio or visual)`);
  if (!(Number.isInteger(opts.k) && opts.k >= 1))
    throw new UserError(`k must be a positive integer, got ${opts.k}`);
}

/**
 * Exact top-k of candidate vectors [c, dim] (float32 GEMM, the kernel of exact search), best
 * first, ties by row: so approximate search and the LanceDB backend give exact search's scores
 * and order. Returns indexes into `rows`.
 */
export function rescore(
  q: Float32Array,
  vectors: readonly Float32Array[],
  rows: readonly number[],
  k: number,
  dim: number,
): { index: number; score: number }[] {
  const x = new Float32Array(vectors.length * dim); // [c, dim]
  vectors.forEach((v, j) => x.set(v, j * dim));
  const c = new TopKCollector(1, k);
  collectInnerProduct(c, q, x, vectors.length, dim, 0);
  const r = c.result()[0];
  const order = Array.from(r.index, (index, i) => ({ index, score: r.score[i] }));
  return order.sort((a, b) => b.score - a.score || rows[a.index] - rows[b.index]);
}

/** Whether `entries` holds `path` with this mtime and size (an unchanged, indexed file). */
export function isCurrentEntry(
  entries: ReadonlyMap<string, IndexEntry>,
  path: string,
  mtimeMs: number,
  size: number,
): boolean {
  const e = entries.get(mediaId(path));
  return !!e && e.path === resolve(path) && e.mtimeMs === mtimeMs && e.size === size;
}

/** What `stats()` reports (both backends): live and dead rows, items with each embedding and per kind. */
export function indexStats(
  dir: string,
  model: IndexStats['model'],
  dim: number,
  entries: ReadonlyMap<string, IndexEntry>,
  rows: number,
  generation: number,
): IndexStats {
  const byModality: Record<Modality, number> = { audio: 0, image: 0, video: 0 };
  let withAudio = 0;
  let withVisual = 0;
  for (const e of entries.values()) {
    byModality[e.modality]++;
    if (e.hasAudio) withAudio++;
    if (e.hasVisual) withVisual++;
  }
  const count = entries.size;
  return { dir, model, dim, count, rows, dead: rows - count, withAudio, withVisual, byModality, generation };
}

function genDir(dir: string, gen: number): string {
  return join(dir, `g${gen}`);
}

function segFile(dir: string, gen: number, space: EmbeddingSpace, seg: number): string {
  return join(genDir(dir, gen), `${space}-${String(seg).padStart(5, '0')}.f32`);
}

/** Writes bytes at `position` of a file, then fsyncs it. */
function writeSynced(path: string, flags: string, bytes: Uint8Array, position = 0): void {
  const fd = openSync(path, flags);
  try {
    let off = 0;
    while (off < bytes.byteLength) off += writeSync(fd, bytes, off, bytes.byteLength - off, position + off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function readExactly(path: string, bytes: number, what: string): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    throw fileError(path, `missing ${what}`);
  }
  try {
    const size = fstatSync(fd).size;
    if (size < bytes)
      throw fileError(path, `${what} is truncated: ${size} bytes, the index committed ${bytes}`);
    const buf = Buffer.allocUnsafe(bytes);
    let off = 0;
    while (off < bytes) {
      const n = readSync(fd, buf, off, bytes - off, off);
      if (n === 0) throw fileError(path, `${what} ended early`);
      off += n;
    }
    return buf;
  } finally {
    closeSync(fd);
  }
}

/** An L2-normalised copy of an embedding, checked (width, finite, not all zeros). */
export function normalizedCopy(v: Float32Array, dim: number, what: string): Float32Array {
  if (!(v instanceof Float32Array)) throw new UserError(`${what}: embedding must be a Float32Array`);
  if (v.length !== dim)
    throw new UserError(`${what}: embedding has ${v.length} values, the index holds ${dim}`);
  let ss = 0;
  for (let i = 0; i < dim; i++) {
    const x = v[i];
    if (!Number.isFinite(x)) throw new UserError(`${what}: embedding contains a non-finite value`);
    ss += x * x;
  }
  if (!(ss > 0)) throw new UserError(`${what}: embedding is all zeros`);
  const inv = 1 / Math.sqrt(ss);
  const out = new Float32Array(dim);
  for (let i = 0; i < dim; i++) out[i] = v[i] * inv;
  return out;
}

function validateMeta(m: unknown, path: string): IndexMeta {
  const meta = m as Partial<IndexMeta>;
  const bad = (why: string): never => {
    throw fileError(path, `not a valid media index (${why})`);
  };
  if (!meta || typeof meta !== 'object') bad('not a JSON object');
  if (meta.format !== INDEX_FORMAT)
    bad(`format is ${JSON.stringify(meta.format)}, expected "${INDEX_FORMAT}"`);
  if (meta.version !== INDEX_VERSION)
    bad(`version ${meta.version} is not supported (this build reads version ${INDEX_VERSION})`);
  const int = (x: unknown, lo: number, hi: number) =>
    typeof x === 'number' && Number.isInteger(x) && x >= lo && x <= hi;
  if (!int(meta.dim, 1, MAX_DIM)) bad('dim');
  if (!int(meta.segmentRows, 1, 1 << 24)) bad('segmentRows');
  if (!int(meta.generation, 0, 1e9)) bad('generation');
  if (!int(meta.rows, 0, 2 ** 31 - 1)) bad('rows');
  if (!int(meta.manifestBytes, 0, Number.MAX_SAFE_INTEGER)) bad('manifestBytes');
  if (!int(meta.count, 0, meta.rows!)) bad('count');
  if (!meta.model || typeof meta.model.id !== 'string' || typeof meta.model.name !== 'string') bad('model');
  if (meta.model!.path !== undefined && typeof meta.model!.path !== 'string') bad('model.path');
  if (
    meta.clip !== undefined &&
    (typeof meta.clip !== 'object' ||
      meta.clip === null ||
      typeof meta.clip.strategy !== 'string' ||
      !int(meta.clip.pairs, 1, 4096))
  )
    bad('clip');
  return meta as IndexMeta;
}

function validateEntry(e: Partial<IndexEntry>, rows: number, where: string): IndexEntry {
  const ok =
    (e.model === undefined || (typeof e.model === 'string' && e.model.length <= 256)) &&
    (e.worker === undefined || (typeof e.worker === 'string' && e.worker.length <= 512)) &&
    typeof e.id === 'string' &&
    ID_PATTERN.test(e.id) &&
    typeof e.row === 'number' &&
    Number.isInteger(e.row) &&
    e.row >= 0 &&
    e.row < rows &&
    typeof e.path === 'string' &&
    e.path.length > 0 &&
    MODALITIES.includes(e.modality as Modality) &&
    typeof e.hasAudio === 'boolean' &&
    typeof e.hasVisual === 'boolean' &&
    (e.hasAudio || e.hasVisual) &&
    (e.thumb === undefined ||
      (typeof e.thumb === 'string' && /^thumbs\/[0-9a-f]{16}\.(jpg|png)$/.test(e.thumb))) &&
    typeof e.mtimeMs === 'number' &&
    typeof e.size === 'number' &&
    typeof e.addedAt === 'string';
  if (!ok) throw new UserError(`${where}: malformed manifest entry`);
  return {
    id: e.id!,
    row: e.row!,
    path: e.path!,
    modality: e.modality!,
    hasAudio: e.hasAudio!,
    hasVisual: e.hasVisual!,
    ...(e.thumb ? { thumb: e.thumb } : {}),
    mtimeMs: e.mtimeMs!,
    size: e.size!,
    addedAt: e.addedAt!,
    ...(e.model ? { model: e.model } : {}),
    ...(e.worker ? { worker: e.worker } : {}),
  };
}

export class MediaIndex implements IndexWriter, SearchableIndex {
  readonly backend = 'embedded';
  readonly dir: string;
  private meta!: IndexMeta;
  private metaStamp = '';
  private entries = new Map<string, IndexEntry>();
  private byRow = new Map<number, IndexEntry>();
  private rowFlags = new Uint8Array(0);
  /** Per space, per segment: the segment's rows, [segRows(used), dim] (capacity may be larger). */
  private segments: Record<EmbeddingSpace, Float32Array[]> = { audio: [], visual: [] };
  private anns: Partial<Record<EmbeddingSpace, AnnIndex>> = {};
  /** Set while this object holds the write lock. */
  private releaseLock?: () => void;

  private constructor(dir: string) {
    this.dir = resolve(dir);
  }

  // ---------------------------------------------------------------- opening and closing

  /** Creates a new, empty index folder (refuses a folder that already holds one). */
  static create(dir: string, identity: IndexIdentity, opts: { segmentRows?: number } = {}): MediaIndex {
    const abs = resolve(dir);
    if (existsSync(join(abs, 'meta.json'))) throw fileError(abs, 'already holds a media index');
    if (existsSync(abs) && !statSync(abs).isDirectory()) throw fileError(abs, 'exists and is not a folder');
    const recorded = identityRecord(identity);
    if (endianness() !== 'LE')
      throw new UserError('the media index format is little-endian; this machine is big-endian');
    mkdirSync(genDir(abs, 0), { recursive: true });
    writeFileSync(join(genDir(abs, 0), 'manifest.jsonl'), '');
    const now = new Date().toISOString();
    const meta: IndexMeta = {
      format: INDEX_FORMAT,
      version: INDEX_VERSION,
      ...recorded,
      segmentRows: opts.segmentRows ?? DEFAULT_SEGMENT_ROWS,
      generation: 0,
      rows: 0,
      manifestBytes: 0,
      count: 0,
      createdAt: now,
      updatedAt: now,
    };
    writeFileAtomic(join(abs, 'meta.json'), JSON.stringify(meta, null, 2) + '\n');
    return MediaIndex.open(abs, { writable: true });
  }

  /**
   * Opens an index. `writable` takes the write lock and cuts any torn tail left by a crash.
   * Readers take no lock. `identity`: refuse an index of another model.
   */
  static open(dir: string, opts: { writable?: boolean; identity?: IndexIdentity } = {}): MediaIndex {
    const idx = new MediaIndex(dir);
    if (!existsSync(join(idx.dir, 'meta.json')))
      throw fileError(idx.dir, 'no media index here (meta.json is missing)');
    if (opts.writable) idx.releaseLock = acquireWriteLock(idx.dir);
    try {
      idx.load();
      if (opts.writable) idx.repairTail();
      if (opts.identity) idx.checkIdentity(opts.identity);
    } catch (e) {
      idx.close();
      throw e;
    }
    return idx;
  }

  /** Opens the index for writing, creating it when absent; refuses a different model. */
  static openOrCreate(dir: string, identity: IndexIdentity): MediaIndex {
    if (!existsSync(join(resolve(dir), 'meta.json'))) return MediaIndex.create(dir, identity);
    return MediaIndex.open(dir, { writable: true, identity });
  }

  checkIdentity(identity: IndexIdentity): void {
    checkModelIdentity(this.dir, this.meta.model, this.meta.dim, identity, this.meta.clip);
  }

  /** Releases the write lock (if held). The object stays readable. */
  close(): void {
    this.releaseLock?.();
    this.releaseLock = undefined;
  }

  get writable(): boolean {
    return !!this.releaseLock;
  }

  private readMeta(): IndexMeta {
    const path = join(this.dir, 'meta.json');
    const st = statSync(path);
    if (st.size > MAX_META_BYTES) throw fileError(path, 'is too large to be index metadata');
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(path, 'utf8'));
    } catch {
      throw fileError(path, 'is not valid JSON');
    }
    this.metaStamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
    return validateMeta(raw, path);
  }

  /** Reads the committed state: meta, the manifest up to its committed end, the vector rows. */
  private load(): void {
    // A compaction by another process may delete the generation we are reading: retry once.
    for (let attempt = 0; ; attempt++) {
      try {
        this.loadOnce();
        return;
      } catch (e) {
        if (attempt >= 2 || this.releaseLock) throw e;
      }
    }
  }

  private loadOnce(): void {
    const meta = this.readMeta();
    const { dim, rows, generation, segmentRows } = meta;
    const manifestPath = join(genDir(this.dir, generation), 'manifest.jsonl');
    const text = readExactly(manifestPath, meta.manifestBytes, 'manifest').toString('utf8');
    const entries = new Map<string, IndexEntry>();
    const lines = text.split('\n');
    if (lines[lines.length - 1] !== '')
      throw fileError(manifestPath, 'committed manifest does not end with a newline');
    for (let i = 0; i < lines.length - 1; i++) {
      let rec: { op?: string; id?: string };
      try {
        rec = JSON.parse(lines[i]);
      } catch {
        throw fileError(manifestPath, `line ${i + 1} is not valid JSON`);
      }
      if (rec.op === 'add') {
        const e = validateEntry(rec as Partial<IndexEntry>, rows, `${manifestPath}:${i + 1}`);
        entries.set(e.id, e);
      } else if (rec.op === 'remove' && typeof rec.id === 'string') {
        entries.delete(rec.id);
      } else {
        throw fileError(manifestPath, `line ${i + 1}: unknown record`);
      }
    }
    if (entries.size !== meta.count)
      throw fileError(manifestPath, `holds ${entries.size} live entries, meta.json says ${meta.count}`);
    const flags = new Uint8Array(rows);
    for (const e of entries.values()) {
      if (flags[e.row]) throw fileError(manifestPath, `two live entries share row ${e.row}`);
      flags[e.row] = (e.hasAudio ? FLAG_AUDIO : 0) | (e.hasVisual ? FLAG_VISUAL : 0);
    }
    const segments: Record<EmbeddingSpace, Float32Array[]> = { audio: [], visual: [] };
    const nseg = Math.ceil(rows / segmentRows);
    for (const space of SPACES) {
      for (let s = 0; s < nseg; s++) {
        const segRows = Math.min(segmentRows, rows - s * segmentRows);
        const buf = readExactly(
          segFile(this.dir, generation, space, s),
          segRows * dim * 4,
          `${space} vectors`,
        );
        const v = new Float32Array(segRows * dim); // [segRows, dim]
        new Uint8Array(v.buffer).set(buf);
        segments[space].push(v);
      }
    }
    this.meta = meta;
    this.entries = entries;
    this.byRow = new Map([...entries.values()].map((e) => [e.row, e]));
    this.rowFlags = flags;
    this.segments = segments;
    this.anns = {};
  }

  /** Writer only: cut bytes past the committed end and drop other generations' leftovers. */
  private repairTail(): void {
    const { generation, rows, dim, segmentRows, manifestBytes } = this.meta;
    const gdir = genDir(this.dir, generation);
    const truncate = (path: string, bytes: number) => {
      const fd = openSync(path, 'r+');
      try {
        if (fstatSync(fd).size > bytes) {
          ftruncateSync(fd, bytes);
          fsyncSync(fd);
        }
      } finally {
        closeSync(fd);
      }
    };
    truncate(join(gdir, 'manifest.jsonl'), manifestBytes);
    const nseg = Math.ceil(rows / segmentRows);
    for (const name of readdirSync(gdir)) {
      const m = /^(audio|visual)-(\d{5})\.f32$/.exec(name);
      if (!m) continue;
      const s = Number(m[2]);
      if (s >= nseg) rmSync(join(gdir, name), { force: true });
      else truncate(join(gdir, name), Math.min(segmentRows, rows - s * segmentRows) * dim * 4);
    }
    for (const name of readdirSync(this.dir)) {
      const m = /^g(\d+)$/.exec(name);
      if (m && Number(m[1]) !== generation) rmSync(join(this.dir, name), { recursive: true, force: true });
      if (/^\.meta\.json\..*\.tmp$/.test(name)) rmSync(join(this.dir, name), { force: true });
    }
  }

  /** Re-reads the index when another process committed since; true when something changed. */
  refresh(): boolean {
    let st;
    try {
      st = statSync(join(this.dir, 'meta.json'));
    } catch {
      return false;
    }
    if (`${st.ino}:${st.mtimeMs}:${st.size}` === this.metaStamp) return false;
    const before = this.meta;
    this.load();
    return (
      before.generation !== this.meta.generation ||
      before.rows !== this.meta.rows ||
      before.manifestBytes !== this.meta.manifestBytes
    );
  }

  // ---------------------------------------------------------------- reading

  get dim(): number {
    return this.meta.dim;
  }
  /** The folder (IndexWriter's name for it). */
  get location(): string {
    return this.dir;
  }
  get rows(): number {
    return this.meta.rows;
  }
  get generation(): number {
    return this.meta.generation;
  }
  get count(): number {
    return this.entries.size;
  }
  get model(): { id: string; name: string; path?: string } {
    return { ...this.meta.model };
  }
  /** A Sync model's clip vectors (strategy, pairs), when the index holds them. */
  get clip(): ClipVectors | undefined {
    return this.meta.clip && { ...this.meta.clip };
  }
  get metadata(): IndexMeta {
    return { ...this.meta, model: { ...this.meta.model } };
  }

  get(id: string): IndexEntry | undefined {
    return this.entries.get(id);
  }

  /** Live entries in row order. */
  list(): IndexEntry[] {
    return [...this.entries.values()].sort((a, b) => a.row - b.row);
  }

  /** The stored (normalised) embedding of a row, a zero-copy view [dim]. */
  vector(space: EmbeddingSpace, row: number): Float32Array {
    const { segmentRows, dim } = this.meta;
    const s = Math.floor(row / segmentRows);
    const r = row - s * segmentRows;
    return this.segments[space][s].subarray(r * dim, (r + 1) * dim);
  }

  /** Whether a row is live and has this embedding. */
  has(space: EmbeddingSpace, row: number): boolean {
    return (this.rowFlags[row] & (space === 'audio' ? FLAG_AUDIO : FLAG_VISUAL)) !== 0;
  }

  /** An entry is up to date when its file still has the recorded mtime and size. */
  isCurrent(path: string, mtimeMs: number, size: number): boolean {
    return isCurrentEntry(this.entries, path, mtimeMs, size);
  }

  stats(): IndexStats {
    return indexStats(this.dir, this.model, this.dim, this.entries, this.rows, this.generation);
  }

  // ---------------------------------------------------------------- writing

  private requireWriter(): void {
    if (!this.releaseLock) throw new UserError(`${this.dir}: index is open read-only`);
  }

  /** Appends items as one commit; returns their entries. An existing id is replaced. */
  add(items: readonly NewItem[]): IndexEntry[] {
    this.requireWriter();
    if (items.length === 0) return [];
    const { dim, segmentRows, generation } = this.meta;
    const row0 = this.meta.rows;
    const now = new Date().toISOString();
    const newEntries: IndexEntry[] = [];
    const vecs: Record<EmbeddingSpace, Float32Array> = {
      audio: new Float32Array(items.length * dim), // [n, dim], zeros where absent
      visual: new Float32Array(items.length * dim),
    };
    const seen = new Set<string>();
    items.forEach((it, i) => {
      if (it.thumb !== undefined && !/^thumbs\/[0-9a-f]{16}\.(jpg|png)$/.test(it.thumb))
        throw new UserError(`${it.path}: bad thumbnail path ${it.thumb}`);
      const { entry, audio, visual } = checkedEntry(it, row0 + i, now, dim, this.meta.model.id, seen);
      if (audio) vecs.audio.set(audio, i * dim);
      if (visual) vecs.visual.set(visual, i * dim);
      newEntries.push({ ...entry, ...(it.thumb ? { thumb: it.thumb } : {}) });
    });

    // 1. Vector rows past the committed end, per segment file, fsynced.
    const gdir = genDir(this.dir, generation);
    let created = false;
    for (const space of SPACES) {
      let i = 0;
      while (i < items.length) {
        const row = row0 + i;
        const s = Math.floor(row / segmentRows);
        const inSeg = row - s * segmentRows;
        const n = Math.min(items.length - i, segmentRows - inSeg);
        const path = segFile(this.dir, generation, space, s);
        const exists = existsSync(path);
        if (!exists) created = true;
        const chunk = vecs[space].subarray(i * dim, (i + n) * dim);
        const bytes = new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
        writeSynced(path, exists ? 'r+' : 'w+', bytes, inSeg * dim * 4);
        i += n;
      }
    }
    if (created) fsyncDir(gdir);

    // 2. Manifest lines past the committed end, fsynced.
    let count = this.entries.size;
    for (const e of newEntries) if (!this.entries.has(e.id)) count++;
    const text = newEntries.map((e) => JSON.stringify({ op: 'add', ...e })).join('\n') + '\n';
    const manifestBytes = this.appendManifest(text);

    // 3. The commit point.
    this.commitMeta({ rows: row0 + items.length, manifestBytes, count });

    // 4. Memory follows the committed state.
    this.growRows(row0 + items.length);
    for (const space of SPACES) {
      for (let i = 0; i < items.length; i++)
        this.vector(space, row0 + i).set(vecs[space].subarray(i * dim, (i + 1) * dim));
    }
    for (const e of newEntries) {
      const old = this.entries.get(e.id);
      if (old) {
        this.rowFlags[old.row] = 0;
        this.byRow.delete(old.row);
      }
      this.entries.set(e.id, e);
      this.byRow.set(e.row, e);
      this.rowFlags[e.row] = (e.hasAudio ? FLAG_AUDIO : 0) | (e.hasVisual ? FLAG_VISUAL : 0);
    }
    return newEntries;
  }

  /** Writes the items' thumbnails (atomically, before the commit that refers to them), then adds them. */
  commit(items: readonly PreparedItem[]): IndexEntry[] {
    this.requireWriter();
    const newItems: NewItem[] = items.map(({ thumbnail, ...it }) => {
      if (!thumbnail) return it;
      const thumb = thumbName(mediaId(it.path), thumbnail.ext);
      writeFileAtomic(join(this.dir, thumb), thumbnail.bytes);
      return { ...it, thumb };
    });
    return this.add(newItems);
  }

  /** Removes entries by id (unknown ids are reported back, not an error). */
  remove(ids: readonly string[]): { removed: string[]; unknown: string[] } {
    this.requireWriter();
    const removed = [...new Set(ids)].filter((id) => this.entries.has(id));
    const unknown = ids.filter((id) => !this.entries.has(id));
    if (removed.length === 0) return { removed, unknown };
    const text = removed.map((id) => JSON.stringify({ op: 'remove', id })).join('\n') + '\n';
    const manifestBytes = this.appendManifest(text);
    this.commitMeta({ rows: this.meta.rows, manifestBytes, count: this.entries.size - removed.length });
    for (const id of removed) {
      const e = this.entries.get(id)!;
      this.rowFlags[e.row] = 0;
      this.byRow.delete(e.row);
      this.entries.delete(id);
    }
    return { removed, unknown };
  }

  /**
   * Rewrites the live rows into generation g+1 (new row numbers, no dead rows), switches
   * meta.json to it atomically, then deletes the old generation and orphaned thumbnails.
   */
  compact(): { before: number; after: number } {
    this.requireWriter();
    const { dim, segmentRows, generation } = this.meta;
    const before = this.meta.rows;
    const next = generation + 1;
    const ndir = genDir(this.dir, next);
    rmSync(ndir, { recursive: true, force: true });
    mkdirSync(ndir, { recursive: true });
    const live = this.list();
    const n = live.length;
    for (const space of SPACES) {
      for (let s = 0; s * segmentRows < n; s++) {
        const rowsHere = Math.min(segmentRows, n - s * segmentRows);
        const buf = new Float32Array(rowsHere * dim); // [rowsHere, dim]
        for (let i = 0; i < rowsHere; i++)
          buf.set(this.vector(space, live[s * segmentRows + i].row), i * dim);
        writeSynced(segFile(this.dir, next, space, s), 'w', new Uint8Array(buf.buffer));
      }
    }
    const renumbered = live.map((e, i) => ({ ...e, row: i }));
    const text = renumbered.map((e) => JSON.stringify({ op: 'add', ...e }) + '\n').join('');
    writeSynced(join(ndir, 'manifest.jsonl'), 'w', Buffer.from(text, 'utf8'));
    fsyncDir(ndir);
    fsyncDir(this.dir);
    this.commitMeta({ generation: next, rows: n, manifestBytes: Buffer.byteLength(text, 'utf8'), count: n });
    rmSync(genDir(this.dir, generation), { recursive: true, force: true });
    rmSync(join(this.dir, 'ann'), { recursive: true, force: true });
    const keep = new Set(renumbered.map((e) => e.thumb).filter(Boolean));
    const thumbs = join(this.dir, 'thumbs');
    if (existsSync(thumbs)) {
      for (const name of readdirSync(thumbs))
        if (!keep.has(`thumbs/${name}`)) rmSync(join(thumbs, name), { force: true });
    }
    this.load();
    return { before, after: n };
  }

  private appendManifest(text: string): number {
    const path = join(genDir(this.dir, this.meta.generation), 'manifest.jsonl');
    const bytes = Buffer.from(text, 'utf8');
    writeSynced(path, 'r+', bytes, this.meta.manifestBytes);
    return this.meta.manifestBytes + bytes.length;
  }

  private commitMeta(
    update: Partial<Pick<IndexMeta, 'rows' | 'manifestBytes' | 'count' | 'generation'>>,
  ): void {
    const meta: IndexMeta = { ...this.meta, ...update, updatedAt: new Date().toISOString() };
    const path = join(this.dir, 'meta.json');
    writeFileAtomic(path, JSON.stringify(meta, null, 2) + '\n');
    const st = statSync(path);
    this.metaStamp = `${st.ino}:${st.mtimeMs}:${st.size}`;
    this.meta = meta;
  }

  /** Grows the in-memory row flags and segment buffers (capacity doubling) to `rows`. */
  private growRows(rows: number): void {
    const { segmentRows, dim } = this.meta;
    if (this.rowFlags.length < rows) {
      const f = new Uint8Array(Math.max(rows, this.rowFlags.length * 2));
      f.set(this.rowFlags);
      this.rowFlags = f;
    }
    const nseg = Math.ceil(rows / segmentRows);
    for (const space of SPACES) {
      const segs = this.segments[space];
      for (let s = 0; s < nseg; s++) {
        const need = Math.min(segmentRows, rows - s * segmentRows) * dim;
        const cur = segs[s];
        if (cur && cur.length >= need) continue;
        const cap = Math.min(segmentRows * dim, Math.max(need, (cur?.length ?? 0) * 2, 64 * dim));
        const grown = new Float32Array(cap);
        if (cur) grown.set(cur);
        segs[s] = grown;
      }
    }
  }

  // ---------------------------------------------------------------- search

  /** Top-k of each query row (queries [nq, dim], normalised here) against one space. */
  searchBatch(queries: Float32Array, nq: number, opts: SearchOptions): SearchHit[][] {
    const { dim, segmentRows } = this.meta;
    const { space } = opts;
    checkSearchOptions(opts);
    if (queries.length !== nq * dim)
      throw new UserError(`query has ${queries.length / Math.max(nq, 1)} values, the index holds ${dim}`);
    const q = new Float32Array(nq * dim); // [nq, dim]
    for (let i = 0; i < nq; i++)
      q.set(normalizedCopy(queries.subarray(i * dim, (i + 1) * dim), dim, 'query'), i * dim);
    if (opts.approximate) return this.searchApproximate(q, nq, opts);
    const collector = new TopKCollector(nq, opts.k);
    const rows = this.meta.rows;
    const flag = space === 'audio' ? FLAG_AUDIO : FLAG_VISUAL;
    const flags = this.rowFlags;
    const accept = (row: number) => (flags[row] & flag) !== 0;
    for (let s = 0; s * segmentRows < rows; s++) {
      const segRows = Math.min(segmentRows, rows - s * segmentRows);
      collectInnerProduct(collector, q, this.segments[space][s], segRows, dim, s * segmentRows, accept);
    }
    return collector.result().map((r) => this.toHits(r.index, r.score));
  }

  search(query: Float32Array, opts: SearchOptions): SearchHit[] {
    return this.searchBatch(query, 1, opts)[0];
  }

  /** `search` for callers of either backend (SearchableIndex). */
  async searchAsync(query: Float32Array, opts: SearchOptions): Promise<SearchHit[]> {
    return this.search(query, opts);
  }

  /** An item's thumbnail file (SearchableIndex). */
  async thumbnailOf(e: IndexEntry): Promise<{ path: string } | undefined> {
    return e.thumb ? { path: join(this.dir, e.thumb) } : undefined;
  }

  private toHits(rows: ArrayLike<number>, scores: ArrayLike<number>): SearchHit[] {
    return Array.from(rows, (row, i) => {
      const entry = this.byRow.get(row)!;
      return { id: entry.id, score: scores[i], entry };
    });
  }

  /** The HNSW graph of a space: cached in memory, loaded from disk, extended or (re)built. */
  ann(space: EmbeddingSpace, params: AnnParams = {}): AnnIndex {
    let ann = this.anns[space];
    const annDir = join(this.dir, 'ann');
    if (!ann) ann = AnnIndex.load(annDir, this, space);
    let changed = false;
    if (!ann) {
      ann = AnnIndex.build(this, space, params);
      changed = true;
    } else if (ann.coveredRows < this.rows) {
      ann.extend(this);
      changed = true;
    }
    if (changed) {
      try {
        ann.save(annDir);
      } catch {
        /* the graph is a cache: a read-only folder only costs a rebuild next time */
      }
    }
    this.anns[space] = ann;
    return ann;
  }

  private searchApproximate(q: Float32Array, nq: number, opts: SearchOptions): SearchHit[][] {
    const { dim } = this.meta;
    const ann = this.ann(opts.space, opts.ann);
    const out: SearchHit[][] = [];
    for (let i = 0; i < nq; i++) {
      const query = q.subarray(i * dim, (i + 1) * dim);
      const cand = ann.candidates(this, query, opts.k, opts.ef);
      const vectors = cand.map((row) => this.vector(opts.space, row));
      const best = rescore(query, vectors, cand, opts.k, dim);
      out.push(
        this.toHits(
          best.map((b) => cand[b.index]),
          best.map((b) => b.score),
        ),
      );
    }
    return out;
  }
}
