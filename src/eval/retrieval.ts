/**
 * Cross-modal retrieval: similarity by GEMM in row blocks, rank of the paired item, R@k and
 * median rank (the CAV-MAE reference's compute_metrics; the clip-level strategies of the Sync
 * release's src/retrieval.py).
 *
 * Contract:
 * - Inputs are row-major Float32Array embeddings, L2-normalised by the caller (the model's
 *   `embed` output is): pooled [N, D] (frames = 1) or per-clip [N, F, D] with every (clip,
 *   frame) row normalised (CAV-MAE Sync). Query i's true match is candidate i.
 * - The similarity matrix is never held whole: row blocks of at most `blockBytes` (default
 *   64 MB) are produced by `kernels().matmul` and reduced to ranks immediately, so 20,000 x
 *   20,000 needs 64 MB, not 1.6 GB.
 * - Rank (0-based) = number of candidates whose similarity is STRICTLY greater than the
 *   paired one. The reference (`compute_metrics`) instead takes every position in the sorted
 *   row whose value EQUALS the paired similarity, so a tie adds extra "hits" and R@k is then a
 *   share of more than N hits. With no ties both rules give the same ranks; with ties the strict
 *   rank is the best position among the tied items (one rank per query). Documented in
 *   docs/evaluation.md; the golden test covers both cases.
 * - R@k = share of queries with rank < k; MR = median(rank) + 1 (numpy median: the mean of the
 *   two middle ranks for even N), as the reference.
 * - Directions: A→V = audio rows as queries, video candidates; V→A the reverse, computed as its
 *   own pass (as the reference recomputes sim(v, a)), so each row's ties are judged on the
 *   values of that pass.
 * - Class-level retrieval (demo): class-match@1 = share of queries whose top-1 candidate (first
 *   maximum) carries the query's label.
 */
import type { F32 } from '../kernels/api.js';
import { kernels } from '../kernels/index.js';
import { UserError } from '../util/errors.js';

/** Clip-to-clip similarity for per-clip [F, D] features (the Sync release's src/retrieval.py). */
export type ClipStrategy = 'diagonal_mean' | 'diagonal_max' | 'mean' | 'max';
export const CLIP_STRATEGIES: readonly ClipStrategy[] = ['diagonal_mean', 'diagonal_max', 'mean', 'max'];

export interface EmbeddingSet {
  /** [n, frames, dim] (frames = 1: pooled [n, dim]). */
  data: Float32Array;
  n: number;
  dim: number;
  frames?: number;
}

export interface SimilarityOptions {
  /** Used when frames > 1; default 'diagonal_mean' (the Sync README default). */
  strategy?: ClipStrategy;
  /** Upper bound of one similarity row block in bytes (default 64 MB). */
  blockBytes?: number;
  /** Round GEMM inputs to bf16 (faster on the native path; ranks may shift on near-ties). */
  bf16?: boolean;
  /** Candidate clips per tile for 'max' / 'diagonal_max' (default 256; tests use small tiles). */
  tileCols?: number;
}

export interface RetrievalMetrics {
  /** Fractions in [0, 1] (the reference's csv stores fractions; its printout multiplies by 100). */
  r1: number;
  r5: number;
  r10: number;
  /** Median rank + 1 (1 = perfect). */
  medianRank: number;
  n: number;
  /** Share of queries whose top-1 candidate has the query's label (when labels are given). */
  classMatchAt1?: number;
}

export interface RankResult {
  /** Strict rank of the paired candidate per query. */
  ranks: Int32Array;
  /** Index of the top-1 candidate (first maximum) per query. */
  top1: Int32Array;
}

/**
 * Calls `fn(row0, rows, block)` with consecutive row blocks of S [nq, nc], block = [rows, nc]
 * (reused between calls: copy what you keep).
 */
export function forEachSimilarityBlock(
  queries: EmbeddingSet,
  candidates: EmbeddingSet,
  opts: SimilarityOptions,
  fn: (row0: number, rows: number, block: Float32Array) => void,
): void {
  const { nq, nc, dim, frames } = checkPair(queries, candidates);
  const strategy = frames > 1 ? (opts.strategy ?? 'diagonal_mean') : 'pooled';
  const bf16 = opts.bf16 ?? false;
  const blockBytes = opts.blockBytes ?? 64 * 1024 * 1024;
  const rowsPerBlock = Math.max(1, Math.min(nq, Math.floor(blockBytes / (4 * nc))));
  const block = new Float32Array(rowsPerBlock * nc);
  const k = kernels();
  // out [m, n] = alpha · a [m, d] · b [n, d]ᵀ: every similarity block below is one of these GEMMs.
  const dots = (a: F32, b: F32, out: F32, m: number, n: number, d: number, alpha = 1): void =>
    k.matmul(a, b, out, m, n, d, false, true, alpha, 0, bf16);
  const Q = queries.data;
  const C = candidates.data;
  const FD = frames * dim;

  if (strategy === 'pooled' || strategy === 'diagonal_mean') {
    // pooled: S = Q·Cᵀ. diagonal_mean: mean_f q_if·c_jf = (1/F) Q'·C'ᵀ with Q' = Q viewed
    // [n, F*D] (zero-copy): one GEMM.
    for (let r0 = 0; r0 < nq; r0 += rowsPerBlock) {
      const rows = Math.min(rowsPerBlock, nq - r0);
      const out = block.subarray(0, rows * nc);
      dots(Q.subarray(r0 * FD, (r0 + rows) * FD), C, out, rows, nc, FD, 1 / frames);
      fn(r0, rows, out);
    }
    return;
  }
  if (strategy === 'mean') {
    // mean over all F x F pairs of q_if·c_jl = (mean_f q_if)·(mean_l c_jl): one GEMM on pooled means.
    const qm = meanOverFrames(Q, nq, frames, dim);
    const cm = meanOverFrames(C, nc, frames, dim);
    for (let r0 = 0; r0 < nq; r0 += rowsPerBlock) {
      const rows = Math.min(rowsPerBlock, nq - r0);
      const out = block.subarray(0, rows * nc);
      dots(qm.subarray(r0 * dim, (r0 + rows) * dim), cm, out, rows, nc, dim);
      fn(r0, rows, out);
    }
    return;
  }
  // max / diagonal_max: tiles of (rows x cols) clips keep the scratch bounded.
  const cols = Math.max(1, Math.min(nc, opts.tileCols ?? 256));
  if (strategy === 'max') {
    // All F x F frame pairs of a (query, candidate) pair: one GEMM [rows*F, D] x [cols*F, D]ᵀ
    // (both operands are contiguous row ranges), then a max over each F x F sub-block.
    const tileRows = Math.max(
      1,
      Math.min(rowsPerBlock, Math.floor(blockBytes / 4 / (4 * frames * frames * cols))),
    );
    const tile = new Float32Array(tileRows * frames * cols * frames);
    for (let r0 = 0; r0 < nq; r0 += rowsPerBlock) {
      const rows = Math.min(rowsPerBlock, nq - r0);
      const out = block.subarray(0, rows * nc);
      for (let t0 = 0; t0 < rows; t0 += tileRows) {
        const tr = Math.min(tileRows, rows - t0);
        const qa = Q.subarray((r0 + t0) * FD, (r0 + t0 + tr) * FD);
        for (let c0 = 0; c0 < nc; c0 += cols) {
          const cc = Math.min(cols, nc - c0);
          const width = cc * frames;
          const t = tile.subarray(0, tr * frames * width);
          dots(qa, C.subarray(c0 * FD, (c0 + cc) * FD), t, tr * frames, width, dim);
          for (let i = 0; i < tr; i++) {
            const orow = (t0 + i) * nc + c0;
            for (let j = 0; j < cc; j++) {
              let m = -Infinity;
              for (let f = 0; f < frames; f++) {
                const base = (i * frames + f) * width + j * frames;
                for (let l = 0; l < frames; l++) {
                  const v = t[base + l];
                  if (v > m) m = v;
                }
              }
              out[orow + j] = m;
            }
          }
        }
      }
      fn(r0, rows, out);
    }
    return;
  }
  // diagonal_max: max over f of q_if·c_jf. Per frame f, gather the f-th rows of the query
  // block and of a candidate tile into dense [rows, D] / [cols, D] copies, one GEMM each, and
  // keep the running max. The gathers cost (rows + cols)·F·D per tile against rows·cols·F·D
  // multiply-adds, so they are negligible.
  const qf = new Float32Array(frames * rowsPerBlock * dim);
  const cf = new Float32Array(frames * cols * dim);
  const tmp = new Float32Array(rowsPerBlock * cols);
  for (let r0 = 0; r0 < nq; r0 += rowsPerBlock) {
    const rows = Math.min(rowsPerBlock, nq - r0);
    const out = block.subarray(0, rows * nc);
    gatherFrameMajor(qf, Q, r0, rows, frames, dim);
    for (let c0 = 0; c0 < nc; c0 += cols) {
      const cc = Math.min(cols, nc - c0);
      gatherFrameMajor(cf, C, c0, cc, frames, dim);
      for (let f = 0; f < frames; f++) {
        const t = tmp.subarray(0, rows * cc);
        const qRows = qf.subarray(f * rows * dim, (f + 1) * rows * dim);
        dots(qRows, cf.subarray(f * cc * dim, (f + 1) * cc * dim), t, rows, cc, dim);
        for (let i = 0; i < rows; i++) {
          const orow = i * nc + c0;
          const trow = i * cc;
          if (f === 0) for (let j = 0; j < cc; j++) out[orow + j] = t[trow + j];
          else for (let j = 0; j < cc; j++) if (t[trow + j] > out[orow + j]) out[orow + j] = t[trow + j];
        }
      }
    }
    fn(r0, rows, out);
  }
}

/** The full similarity matrix [nq, nc] (tests, small sets). */
export function similarityMatrix(
  queries: EmbeddingSet,
  candidates: EmbeddingSet,
  opts: SimilarityOptions = {},
): Float32Array {
  const nc = candidates.n;
  const out = new Float32Array(queries.n * nc);
  forEachSimilarityBlock(queries, candidates, opts, (r0, rows, block) =>
    out.set(block.subarray(0, rows * nc), r0 * nc),
  );
  return out;
}

/** Strict ranks and top-1 indices for queries[i] ↔ candidates[i]. */
export function rankQueries(
  queries: EmbeddingSet,
  candidates: EmbeddingSet,
  opts: SimilarityOptions = {},
): RankResult {
  if (queries.n !== candidates.n)
    throw new UserError(
      `retrieval: ${queries.n} queries but ${candidates.n} candidates; item i must pair with item i`,
    );
  const n = queries.n;
  const ranks = new Int32Array(n);
  const top1 = new Int32Array(n);
  forEachSimilarityBlock(queries, candidates, opts, (r0, rows, block) => {
    for (let r = 0; r < rows; r++) rankRow(block, r * n, n, r0 + r, ranks, top1);
  });
  return { ranks, top1 };
}

/** Strict ranks from an explicit similarity matrix [n, n] (row = query). */
export function ranksFromSimilarity(sim: ArrayLike<number>, n: number): RankResult {
  if (sim.length !== n * n)
    throw new UserError(`retrieval: similarity matrix holds ${sim.length} values, expected ${n}x${n}`);
  const ranks = new Int32Array(n);
  const top1 = new Int32Array(n);
  for (let i = 0; i < n; i++) rankRow(sim, i * n, n, i, ranks, top1);
  return { ranks, top1 };
}

function rankRow(
  s: ArrayLike<number>,
  off: number,
  n: number,
  i: number,
  ranks: Int32Array,
  top1: Int32Array,
): void {
  const d = s[off + i];
  let greater = 0;
  let best = 0;
  let bv = s[off];
  for (let j = 0; j < n; j++) {
    const v = s[off + j];
    if (v > d) greater++;
    if (v > bv) {
      bv = v;
      best = j;
    }
  }
  ranks[i] = greater;
  top1[i] = best;
}

/** R@1/5/10 and median rank + 1 from strict ranks; class-match@1 when labels are given. */
export function recallMetrics(r: RankResult, labels?: ArrayLike<number>): RetrievalMetrics {
  const { ranks, top1 } = r;
  const n = ranks.length;
  if (n === 0) throw new UserError('retrieval: no queries');
  let r1 = 0,
    r5 = 0,
    r10 = 0;
  for (let i = 0; i < n; i++) {
    if (ranks[i] < 1) r1++;
    if (ranks[i] < 5) r5++;
    if (ranks[i] < 10) r10++;
  }
  const sorted = Int32Array.from(ranks).sort();
  const median = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  const out: RetrievalMetrics = { r1: r1 / n, r5: r5 / n, r10: r10 / n, medianRank: median + 1, n };
  if (labels) {
    if (labels.length !== n) throw new UserError(`retrieval: ${labels.length} labels for ${n} items`);
    let hit = 0;
    for (let i = 0; i < n; i++) if (labels[top1[i]] === labels[i]) hit++;
    out.classMatchAt1 = hit / n;
  }
  return out;
}

export interface RetrievalResult {
  audioToVideo: RetrievalMetrics;
  videoToAudio: RetrievalMetrics;
  strategy: ClipStrategy | 'pooled';
}

/** Both directions: A→V (audio queries) and V→A (video queries). */
export function evaluateRetrieval(
  audio: EmbeddingSet,
  video: EmbeddingSet,
  opts: SimilarityOptions & { labels?: ArrayLike<number> } = {},
): RetrievalResult {
  checkPair(audio, video);
  const frames = audio.frames ?? 1;
  return {
    audioToVideo: recallMetrics(rankQueries(audio, video, opts), opts.labels),
    videoToAudio: recallMetrics(rankQueries(video, audio, opts), opts.labels),
    strategy: frames > 1 ? (opts.strategy ?? 'diagonal_mean') : 'pooled',
  };
}

/** Rows scaled to unit L2 norm (a copy; float64 sums); zero rows stay zero. The one normalisation of every retrieval vector. */
export function l2NormalizeRows(x: ArrayLike<number>, rows: number, dim: number): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += x[r * dim + d] * x[r * dim + d];
    const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
    for (let d = 0; d < dim; d++) out[r * dim + d] = x[r * dim + d] * inv;
  }
  return out;
}

function checkPair(
  q: EmbeddingSet,
  c: EmbeddingSet,
): { nq: number; nc: number; dim: number; frames: number } {
  const fq = q.frames ?? 1;
  const fc = c.frames ?? 1;
  for (const [what, e, f] of [
    ['queries', q, fq],
    ['candidates', c, fc],
  ] as const) {
    if (
      !(e.n > 0 && e.dim > 0 && f > 0) ||
      !Number.isInteger(e.n) ||
      !Number.isInteger(e.dim) ||
      !Number.isInteger(f)
    ) {
      throw new UserError(
        `retrieval: ${what} need positive integer sizes (n ${e.n}, frames ${f}, dim ${e.dim})`,
      );
    }
    if (e.data.length !== e.n * f * e.dim)
      throw new UserError(`retrieval: ${what} hold ${e.data.length} values, expected ${e.n}x${f}x${e.dim}`);
    for (let i = 0; i < e.data.length; i++) {
      if (!Number.isFinite(e.data[i]))
        throw new UserError(`retrieval: ${what} item ${Math.floor(i / (f * e.dim))} has a non-finite value`);
    }
  }
  if (q.dim !== c.dim) throw new UserError(`retrieval: embedding widths differ (${q.dim} vs ${c.dim})`);
  if (fq !== fc) throw new UserError(`retrieval: frames per clip differ (${fq} vs ${fc})`);
  return { nq: q.n, nc: c.n, dim: q.dim, frames: fq };
}

function meanOverFrames(x: Float32Array, n: number, frames: number, dim: number): Float32Array {
  const out = new Float32Array(n * dim);
  const acc = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    acc.fill(0);
    for (let f = 0; f < frames; f++) {
      const row = (i * frames + f) * dim;
      for (let d = 0; d < dim; d++) acc[d] += x[row + d];
    }
    for (let d = 0; d < dim; d++) out[i * dim + d] = acc[d] / frames;
  }
  return out;
}

/** dst[f, r, :] = src[(row0 + r), f, :] for r < rows: frame-major dense copies. */
function gatherFrameMajor(
  dst: Float32Array,
  src: Float32Array,
  row0: number,
  rows: number,
  frames: number,
  dim: number,
): void {
  for (let f = 0; f < frames; f++) {
    for (let r = 0; r < rows; r++) {
      const s = ((row0 + r) * frames + f) * dim;
      dst.set(src.subarray(s, s + dim), (f * rows + r) * dim);
    }
  }
}
