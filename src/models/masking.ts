/**
 * MAE token masking exactly as the reference (docs/reference.md#masking).
 *
 * Unstructured: len_keep = int(L·(1-r)); ids_shuffle = argsort(noise) ascending (small = keep);
 * ids_restore = argsort(ids_shuffle); the kept tokens are ids_shuffle[:, :len_keep] IN SHUFFLED
 * ORDER; mask (1 = removed) = [0]*len_keep + [1]*(L-len_keep) unshuffled by ids_restore.
 *
 * Structured (audio only): the noise viewed as [N, f, t] (token f·t_count + t) gets 1.1 in the
 * chosen time columns and/or frequency rows, then the same argsort. Our argsort is stable (ties
 * by index); PyTorch's CPU argsort is not, which only matters in 'tf' mode where a few of the
 * 1.1-valued tokens are kept (388 > 384 at r = 0.75): pass `idsShuffle` to replay PyTorch there.
 *
 * Replay: callers pass the uniform noise (and, for structured modes, the rows and columns) the
 * reference drew; otherwise a seeded Rng draws them.
 */
import { Rng } from '../tensor/rng.js';
import { ShapeError } from '../tensor/tensor.js';

export type MaskMode = 'unstructured' | 'time' | 'freq' | 'tf';
export const MASK_MODES: readonly MaskMode[] = ['unstructured', 'time', 'freq', 'tf'];

export interface Masking {
  B: number;
  /** Tokens per sample. */
  L: number;
  /** Visible tokens per sample: int(L·(1 - ratio)). */
  lenKeep: number;
  /** [B, L] argsort of the noise. */
  idsShuffle: Int32Array;
  /** [B, L] argsort of idsShuffle (position of each token in the shuffled order). */
  idsRestore: Int32Array;
  /** [B, lenKeep] = idsShuffle[:, :lenKeep]. */
  idsKeep: Int32Array;
  /** [B, L], 1 = removed, 0 = kept. */
  mask: Float32Array;
}

/** int(L·(1 - ratio)) with Python's float semantics. */
export function lenKeep(L: number, ratio: number): number {
  if (!(ratio >= 0 && ratio < 1)) throw new ShapeError(`mask ratio must be in [0, 1), got ${ratio}`);
  return Math.trunc(L * (1 - ratio));
}

/** Stable ascending argsort of each row of a [B, L] array. */
export function argsortRows(values: ArrayLike<number>, B: number, L: number): Int32Array {
  const out = new Int32Array(B * L);
  const idx = new Array<number>(L);
  for (let b = 0; b < B; b++) {
    const o = b * L;
    for (let i = 0; i < L; i++) idx[i] = i;
    idx.sort((i, j) => values[o + i] - values[o + j] || i - j);
    for (let i = 0; i < L; i++) out[o + i] = idx[i];
  }
  return out;
}

/** The masking given the permutation (ids_shuffle) per sample. */
export function maskingFromShuffle(idsShuffle: Int32Array, B: number, L: number, keep: number): Masking {
  if (idsShuffle.length !== B * L)
    throw new ShapeError(`ids_shuffle has ${idsShuffle.length} entries, expected ${B}x${L}`);
  const idsRestore = new Int32Array(B * L);
  const idsKeep = new Int32Array(B * keep);
  const mask = new Float32Array(B * L);
  for (let b = 0; b < B; b++) {
    const o = b * L;
    const seen = new Uint8Array(L);
    for (let j = 0; j < L; j++) {
      const id = idsShuffle[o + j];
      if (!(id >= 0 && id < L) || seen[id])
        throw new ShapeError(`ids_shuffle row ${b} is not a permutation of 0..${L - 1}`);
      seen[id] = 1;
      idsRestore[o + id] = j;
      mask[o + id] = j < keep ? 0 : 1;
      if (j < keep) idsKeep[b * keep + j] = id;
    }
  }
  return { B, L, lenKeep: keep, idsShuffle, idsRestore, idsKeep, mask };
}

/** Unstructured masking from uniform noise [B, L]. */
export function maskingFromNoise(noise: ArrayLike<number>, B: number, L: number, ratio: number): Masking {
  if (noise.length !== B * L)
    throw new ShapeError(`mask noise has ${noise.length} values, expected ${B}x${L}`);
  return maskingFromShuffle(argsortRows(noise, B, L), B, L, lenKeep(L, ratio));
}

/** Draws U[0,1) noise [B, L] (float32 values, as torch.rand). */
export function drawNoise(rng: Rng, B: number, L: number): Float32Array {
  return rng.fillUniform(new Float32Array(B * L));
}

export interface StructuredChoice {
  /** Per sample, the time columns set to 1.1 (modes 'time', 'tf'). */
  cols?: readonly (readonly number[])[];
  /** Per sample, the frequency rows set to 1.1 (modes 'freq', 'tf'). */
  rows?: readonly (readonly number[])[];
}

/** How many columns / rows each structured mode removes (the reference's int(...) expressions). */
export function structuredCounts(
  mode: MaskMode,
  f: number,
  t: number,
  ratio: number,
): { cols: number; rows: number } {
  switch (mode) {
    case 'time':
      return { cols: Math.trunc(t * ratio), rows: 0 };
    case 'freq':
      return { cols: 0, rows: Math.trunc(f * ratio) };
    case 'tf':
      return { cols: Math.trunc(t * ratio * 0.7), rows: Math.trunc(f * ratio * 0.7) };
    default:
      return { cols: 0, rows: 0 };
  }
}

/**
 * Structured noise: a copy of `noise` [B, f·t] with the chosen columns/rows set to 1.1. Missing
 * choices are drawn with `rng` (distinct values, like random.sample).
 */
export function structuredNoise(
  noise: ArrayLike<number>,
  B: number,
  f: number,
  t: number,
  mode: MaskMode,
  ratio: number,
  choice: StructuredChoice = {},
  rng?: Rng,
): Float32Array {
  const L = f * t;
  if (noise.length !== B * L)
    throw new ShapeError(`mask noise has ${noise.length} values, expected ${B}x${L}`);
  const out = Float32Array.from(noise);
  const counts = structuredCounts(mode, f, t, ratio);
  const pick = (
    given: readonly (readonly number[])[] | undefined,
    b: number,
    n: number,
    range: number,
    what: string,
  ): readonly number[] => {
    if (n === 0) return [];
    const list = given?.[b] ?? (rng ? rng.sample(range, n) : undefined);
    if (!list)
      throw new ShapeError(
        `structured masking '${mode}': no ${what} given for sample ${b} and no random generator`,
      );
    if (list.length !== n)
      throw new ShapeError(
        `structured masking '${mode}': sample ${b} needs ${n} ${what}, got ${list.length}`,
      );
    if (new Set(list).size !== n || list.some((v) => !(Number.isInteger(v) && v >= 0 && v < range))) {
      throw new ShapeError(
        `structured masking '${mode}': ${what} of sample ${b} must be ${n} distinct integers in [0, ${range})`,
      );
    }
    return list;
  };
  // The reference draws all columns first, then all rows (matters only for its RNG stream).
  const cols = Array.from({ length: B }, (_, b) => pick(choice.cols, b, counts.cols, t, 'time columns'));
  const rows = Array.from({ length: B }, (_, b) => pick(choice.rows, b, counts.rows, f, 'frequency rows'));
  const big = Math.fround(1.1);
  for (let b = 0; b < B; b++) {
    for (const c of cols[b]) for (let r = 0; r < f; r++) out[b * L + r * t + c] = big;
    for (const r of rows[b]) for (let c = 0; c < t; c++) out[b * L + r * t + c] = big;
  }
  return out;
}

export interface MaskingRequest {
  B: number;
  L: number;
  ratio: number;
  mode?: MaskMode;
  /** Grid of the tokens for structured modes: f rows (frequency) × t columns (time). */
  grid?: { f: number; t: number };
  noise?: ArrayLike<number>;
  structured?: StructuredChoice;
  /** An explicit permutation overrides everything else (exact replay, 'tf' ties). */
  idsShuffle?: Int32Array;
  rng?: Rng;
}

/** One entry point for every masking mode. */
export function makeMasking(req: MaskingRequest): Masking {
  const { B, L, ratio } = req;
  const mode = req.mode ?? 'unstructured';
  const keep = lenKeep(L, ratio);
  if (req.idsShuffle) return maskingFromShuffle(req.idsShuffle, B, L, keep);
  let noise = req.noise;
  if (!noise) {
    if (!req.rng) throw new ShapeError('masking needs noise or a random generator');
    noise = drawNoise(req.rng, B, L);
  }
  if (mode === 'unstructured') return maskingFromNoise(noise, B, L, ratio);
  if (!req.grid || req.grid.f * req.grid.t !== L)
    throw new ShapeError(`structured masking '${mode}' needs the f x t token grid of the ${L} tokens`);
  const s = structuredNoise(noise, B, req.grid.f, req.grid.t, mode, ratio, req.structured, req.rng);
  return maskingFromShuffle(argsortRows(s, B, L), B, L, keep);
}
