/**
 * Approximate nearest-neighbour search over one embedding space of the media index, with HNSW
 * from `hnswlib-node` (the hnswlib C++ library by the algorithm's authors).
 *
 * Contract:
 * - Labels are index rows; the graph holds every row that had this embedding when it was added.
 *   Rows removed later are filtered out at query time, rows appended later are added to the
 *   loaded graph incrementally, and a new generation (after compaction renumbers rows) rebuilds.
 * - Inner-product space on L2-normalised vectors (= cosine). Candidates are re-scored with the
 *   index's own float32 dot product, so an approximate hit has exactly the score exact search
 *   would give it; only the candidate set is approximate.
 * - The graph is a cache in `<index>/ann/<space>.hnsw` (+ `.json` describing what it covers),
 *   replaced atomically; losing it only costs a rebuild.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { writeFileAtomic } from '../io/atomic.js';
import { UserError } from '../util/errors.js';
import type { EmbeddingSpace } from './types.js';

// hnswlib-node is CommonJS with a native addon; load it lazily so that exact search never needs it.
type Hnsw = import('hnswlib-node').HierarchicalNSW;
let hnswModule: typeof import('hnswlib-node') | undefined;
function hnswlib(): typeof import('hnswlib-node') {
  if (!hnswModule) {
    try {
      hnswModule = createRequire(import.meta.url)('hnswlib-node') as typeof import('hnswlib-node');
    } catch (e) {
      throw new UserError(
        `approximate search needs the hnswlib-node addon, which did not load (${(e as Error).message}); reinstall (npm install cavmae, or npm ci in a clone) so that hnswlib-node builds, or use exact search`,
      );
    }
  }
  return hnswModule;
}

export interface AnnParams {
  /** Graph degree (hnswlib M); default 16. */
  m?: number;
  /** Build-time beam width; default 200. */
  efConstruction?: number;
  /** Query-time beam width; default max(200, 10k) (recall@10 >= 0.9 on uniform random data, see docs/index.md). */
  ef?: number;
  /** hnswlib's level-generator seed; default 100 (hnswlib's own default). */
  seed?: number;
}

export const ANN_DEFAULTS = { m: 16, efConstruction: 200, seed: 100 } as const;

/** What the ANN layer reads from the index. */
export interface AnnSource {
  readonly dim: number;
  readonly rows: number;
  readonly generation: number;
  /** The stored (normalised) vector of a row, a view [dim]. */
  vector(space: EmbeddingSpace, row: number): Float32Array;
  /** Whether a row is live and has this embedding. */
  has(space: EmbeddingSpace, row: number): boolean;
}

interface AnnMeta {
  generation: number;
  rows: number;
  dim: number;
  m: number;
  efConstruction: number;
  seed: number;
}

export class AnnIndex {
  private constructor(
    readonly space: EmbeddingSpace,
    private readonly graph: Hnsw,
    private meta: AnnMeta,
  ) {}

  /** Rows [0, coveredRows) have been offered to the graph. */
  get coveredRows(): number {
    return this.meta.rows;
  }

  /** Builds a graph over every row of `space` present in the source. */
  static build(src: AnnSource, space: EmbeddingSpace, params: AnnParams = {}): AnnIndex {
    const { HierarchicalNSW } = hnswlib();
    const m = params.m ?? ANN_DEFAULTS.m;
    const efConstruction = params.efConstruction ?? ANN_DEFAULTS.efConstruction;
    const seed = params.seed ?? ANN_DEFAULTS.seed;
    const graph = new HierarchicalNSW('ip', src.dim);
    let n = 0;
    for (let r = 0; r < src.rows; r++) if (src.has(space, r)) n++;
    graph.initIndex({ maxElements: Math.max(16, n), m, efConstruction, randomSeed: seed });
    const ann = new AnnIndex(space, graph, {
      generation: src.generation,
      rows: 0,
      dim: src.dim,
      m,
      efConstruction,
      seed,
    });
    ann.extend(src);
    return ann;
  }

  /** Adds rows appended since the graph was built or saved. */
  extend(src: AnnSource): number {
    let added = 0;
    const wanted: number[] = [];
    for (let r = this.meta.rows; r < src.rows; r++) if (src.has(this.space, r)) wanted.push(r);
    if (wanted.length > 0) {
      const need = this.graph.getCurrentCount() + wanted.length;
      if (need > this.graph.getMaxElements())
        this.graph.resizeIndex(Math.max(need, Math.ceil(this.graph.getMaxElements() * 1.5)));
      for (const r of wanted) {
        this.graph.addPoint(Array.from(src.vector(this.space, r)), r);
        added++;
      }
    }
    this.meta = { ...this.meta, rows: src.rows };
    return added;
  }

  /**
   * Candidate rows for one query (best first by the graph's own distance); `k` is clamped to
   * the number of live rows. Rows failing `has` (removed since the build) are filtered out.
   */
  candidates(src: AnnSource, query: Float32Array, k: number, ef?: number): number[] {
    const count = this.graph.getCurrentCount();
    if (count === 0 || k <= 0) return [];
    this.graph.setEf(Math.max(ef ?? Math.max(200, 10 * k), k));
    let live = 0;
    for (let r = 0; r < this.meta.rows; r++) if (src.has(this.space, r)) live++;
    const kk = Math.min(k, live);
    if (kk === 0) return [];
    const filter = live < count ? (label: number) => src.has(this.space, label) : undefined;
    const res = this.graph.searchKnn(Array.from(query), kk, filter);
    return res.neighbors;
  }

  /** Writes `<dir>/<space>.hnsw` and its description atomically. */
  save(dir: string): void {
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${this.space}.hnsw`);
    const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
    try {
      this.graph.writeIndexSync(tmp);
      // Description first removed, then graph replaced, then description written: a crash in
      // between leaves a graph without a description, which is simply rebuilt.
      rmSync(join(dir, `${this.space}.json`), { force: true });
      renameSync(tmp, file);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw e;
    }
    writeFileAtomic(join(dir, `${this.space}.json`), JSON.stringify(this.meta) + '\n');
  }

  /** Loads a saved graph when it belongs to this generation and dimension; otherwise undefined. */
  static load(dir: string, src: AnnSource, space: EmbeddingSpace): AnnIndex | undefined {
    const file = join(dir, `${space}.hnsw`);
    const metaFile = join(dir, `${space}.json`);
    if (!existsSync(file) || !existsSync(metaFile)) return undefined;
    let meta: AnnMeta;
    try {
      meta = JSON.parse(readFileSync(metaFile, 'utf8')) as AnnMeta;
    } catch {
      return undefined;
    }
    if (meta.generation !== src.generation || meta.dim !== src.dim || !(meta.rows <= src.rows))
      return undefined;
    const { HierarchicalNSW } = hnswlib();
    const graph = new HierarchicalNSW('ip', src.dim);
    try {
      graph.readIndexSync(file);
    } catch {
      return undefined; // a damaged cache is rebuilt
    }
    return new AnnIndex(space, graph, meta);
  }
}
