/** Cosine similarity of embeddings: L2 normalisation and exact top-k ranking. */
import { UserError } from '../util/errors.js';

export interface RankedMatch {
  index: number;
  score: number;
}

/** Unit-L2 copy of a vector (zero stays zero). */
export function l2Normalize(v: Float32Array): Float32Array {
  let ss = 0;
  for (const x of v) ss += x * x;
  const inv = ss > 0 ? 1 / Math.sqrt(ss) : 0;
  return Float32Array.from(v, (x) => x * inv);
}

/**
 * The k candidates most similar to a query by cosine similarity (exact; ties keep the lower
 * index first). `candidates` is [N, D] row-major or a list of [D] vectors.
 */
export function rankBySimilarity(
  query: Float32Array,
  candidates: Float32Array | readonly Float32Array[],
  k = 10,
): RankedMatch[] {
  const D = query.length;
  const rows: Float32Array[] = [];
  if (candidates instanceof Float32Array) {
    if (candidates.length % D !== 0)
      throw new UserError(
        `candidates hold ${candidates.length} values, not a multiple of the query width ${D}`,
      );
    for (let i = 0; i < candidates.length / D; i++) rows.push(candidates.subarray(i * D, (i + 1) * D));
  } else rows.push(...candidates);
  const q = l2Normalize(query);
  const scored = rows.map((r, index) => {
    if (r.length !== D) throw new UserError(`candidate ${index} has width ${r.length}, the query ${D}`);
    let dot = 0;
    let ss = 0;
    for (let d = 0; d < D; d++) {
      dot += q[d] * r[d];
      ss += r[d] * r[d];
    }
    return { index, score: ss > 0 ? dot / Math.sqrt(ss) : 0 };
  });
  scored.sort((a, b) => b.score - a.score || a.index - b.index);
  return scored.slice(0, Math.max(0, k));
}
