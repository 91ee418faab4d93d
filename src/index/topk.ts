/**
 * Exact top-k by inner product: scores = Q · Xᵀ computed in column blocks of X with
 * `kernels().matmul`, each block reduced at once by a bounded min-heap per query (partial
 * selection), so the full [nq, nx] score matrix is never held.
 *
 * Contract:
 * - Q is [nq, dim], X is [nx, dim], both dense row-major Float32Array. Scores are float32 as the
 *   GEMM kernel returns them.
 * - Order: higher score first; equal scores by lower global index. This is a total order, so the
 *   result equals a full sort of every accepted candidate by the same rule (tests check it
 *   against brute force).
 * - `accept(index)` filters candidates (removed rows, rows without this embedding). NaN scores
 *   are never selected.
 * - A `TopKCollector` can be fed several X blocks (one per index segment) with a global index
 *   offset, then read once.
 */
import { kernels } from '../kernels/index.js';

/** Column block of X per GEMM call: the score block [nq, block] stays under this many floats. */
const BLOCK_FLOATS = 1 << 22; // 16 MB

export class TopKCollector {
  readonly nq: number;
  readonly k: number;
  /** Per query a min-heap (worst candidate at the root) of at most k entries. */
  private readonly heapScore: Float32Array; // [nq, k]
  private readonly heapIndex: Int32Array; // [nq, k]
  private readonly size: Int32Array; // [nq]

  constructor(nq: number, k: number) {
    if (!(Number.isInteger(nq) && nq >= 0))
      throw new RangeError(`query count must be a non-negative integer, got ${nq}`);
    if (!(Number.isInteger(k) && k >= 1)) throw new RangeError(`k must be a positive integer, got ${k}`);
    this.nq = nq;
    this.k = k;
    this.heapScore = new Float32Array(nq * k);
    this.heapIndex = new Int32Array(nq * k);
    this.size = new Int32Array(nq);
  }

  /** True when candidate (s, i) ranks below (t, j): lower score, or equal score and higher index. */
  private static worse(s: number, i: number, t: number, j: number): boolean {
    return s < t || (s === t && i > j);
  }

  offer(q: number, score: number, index: number): void {
    if (score !== score) return; // NaN
    const k = this.k;
    const base = q * k;
    const hs = this.heapScore;
    const hi = this.heapIndex;
    let n = this.size[q];
    if (n < k) {
      // Sift up.
      let c = n;
      while (c > 0) {
        const p = (c - 1) >> 1;
        if (!TopKCollector.worse(score, index, hs[base + p], hi[base + p])) break;
        hs[base + c] = hs[base + p];
        hi[base + c] = hi[base + p];
        c = p;
      }
      hs[base + c] = score;
      hi[base + c] = index;
      this.size[q] = n + 1;
      return;
    }
    // Full: replace the root only when the candidate is better than the current worst.
    if (!TopKCollector.worse(hs[base], hi[base], score, index)) return;
    n = k;
    let c = 0;
    for (;;) {
      const l = 2 * c + 1;
      if (l >= n) break;
      const r = l + 1;
      let w = l;
      if (r < n && TopKCollector.worse(hs[base + r], hi[base + r], hs[base + l], hi[base + l])) w = r;
      if (!TopKCollector.worse(hs[base + w], hi[base + w], score, index)) break;
      hs[base + c] = hs[base + w];
      hi[base + c] = hi[base + w];
      c = w;
    }
    hs[base + c] = score;
    hi[base + c] = index;
  }

  /**
   * Offers a score block [nq, cols] whose column c is candidate `offset + c`.
   * `accept` (when given) is called with the global index.
   */
  offerBlock(block: Float32Array, cols: number, offset: number, accept?: (index: number) => boolean): void {
    const k = this.k;
    for (let q = 0; q < this.nq; q++) {
      const row = q * cols;
      const base = q * k;
      for (let c = 0; c < cols; c++) {
        const s = block[row + c];
        // Fast reject against the current worst once the heap is full (the common case).
        if (this.size[q] === k && s < this.heapScore[base]) continue;
        if (accept && !accept(offset + c)) continue;
        this.offer(q, s, offset + c);
      }
    }
  }

  /** Sorted results per query: best first. Queries with fewer accepted candidates get fewer. */
  result(): { index: Int32Array; score: Float32Array }[] {
    const out: { index: Int32Array; score: Float32Array }[] = [];
    for (let q = 0; q < this.nq; q++) {
      const n = this.size[q];
      const base = q * this.k;
      const order = [...Array(n).keys()].sort((a, b) => {
        const sa = this.heapScore[base + a];
        const sb = this.heapScore[base + b];
        if (sa !== sb) return sb - sa;
        return this.heapIndex[base + a] - this.heapIndex[base + b];
      });
      const index = new Int32Array(n);
      const score = new Float32Array(n);
      order.forEach((o, i) => {
        index[i] = this.heapIndex[base + o];
        score[i] = this.heapScore[base + o];
      });
      out.push({ index, score });
    }
    return out;
  }
}

/**
 * Scores queries Q [nq, dim] against X [nx, dim] block by block and offers every block to the
 * collector, candidate indices offset by `offset`.
 */
export function collectInnerProduct(
  collector: TopKCollector,
  queries: Float32Array,
  x: Float32Array,
  nx: number,
  dim: number,
  offset = 0,
  accept?: (index: number) => boolean,
  blockRows?: number,
): void {
  const nq = collector.nq;
  if (queries.length < nq * dim)
    throw new RangeError(`queries hold ${queries.length} floats, need ${nq}x${dim}`);
  if (x.length < nx * dim) throw new RangeError(`candidates hold ${x.length} floats, need ${nx}x${dim}`);
  if (nq === 0 || nx === 0) return;
  const block = Math.max(1, Math.min(nx, blockRows ?? Math.max(64, Math.floor(BLOCK_FLOATS / nq))));
  const scores = new Float32Array(nq * block); // [nq, block]
  const K = kernels();
  for (let r0 = 0; r0 < nx; r0 += block) {
    const rows = Math.min(block, nx - r0);
    const xb = x.subarray(r0 * dim, (r0 + rows) * dim); // [rows, dim]
    const sb = scores.subarray(0, nq * rows); // [nq, rows]
    // S = Q · Xbᵀ : m = nq, n = rows, k = dim, B stored [rows, dim] -> transB.
    K.matmul(queries.subarray(0, nq * dim), xb, sb, nq, rows, dim, false, true, 1, 0, false);
    collector.offerBlock(sb, rows, offset + r0, accept);
  }
}

/** One-shot exact top-k of Q [nq, dim] against X [nx, dim]. */
export function topKInnerProduct(
  queries: Float32Array,
  nq: number,
  x: Float32Array,
  nx: number,
  dim: number,
  k: number,
  opts: { accept?: (index: number) => boolean; blockRows?: number } = {},
): { index: Int32Array; score: Float32Array }[] {
  const c = new TopKCollector(nq, k);
  collectInnerProduct(c, queries, x, nx, dim, 0, opts.accept, opts.blockRows);
  return c.result();
}
