/**
 * torch.sum of a contiguous float32 row, in PyTorch 1.13's CPU evaluation order (the "cascade
 * sum" of ATen's SumKernel with AVX2 vectors of 8 floats, one thread), so that means computed
 * here round exactly as the reference's `waveform.mean()` and per-frame `mean(dim=1)` do.
 *
 * Why bother: Kaldi fbank subtracts these means before the FFT; a mean that differs in its last
 * bit changes the float32 rounding of every sample of the frame, and log-mel bins whose energy is
 * ~1e-9 of the frame's peak (high bands of band-limited audio) move by up to ~2e-3. With the
 * reference's own rounding they move by ~1e-4 at most (docs/audio.md).
 *
 * Order for a row of n values (W = 8 lanes, 4 interleaved accumulators, every add in float32):
 * - vectors v_j = x[8j .. 8j+7] for j < floor(n/8), seen as rows i of 4 columns (v_{4i+k});
 * - column sums run through a cascade of up to 4 levels: blocks of 2^p rows (p = max(4,
 *   floor(ceil(log2(rows)) / 4))) are summed into level 0, level j-1 is folded into level j after
 *   every block, stopping at the first level whose block counter is not full;
 * - leftover rows go into level 0; levels 1..3 are added to level 0; leftover vectors (fewer
 *   than 4) are added to column 0; columns 1..3 are added to column 0 (lane-wise);
 * - finally, in scalar: 0 + x[8*floor(n/8)] + ... + x[n-1] + lane 0 + ... + lane 7.
 * Rows shorter than 8 values use the scalar form of the same cascade (W = 1).
 * A multi-threaded torch splits sums over more than 32768 values between threads (two-pass
 * reduction); the reference data here were made with one thread.
 */

const f32 = Math.fround;
const LANES = 8;
const ILP = 4;
const LEVELS = 4;

// acc[(level * ILP + column) * LANES + lane]; reused, JavaScript is single-threaded
const acc = new Float64Array(LEVELS * ILP * LANES);

/** c10's CeilLog2: ceil(log2(x)) for x > 2, else 1. */
function ceilLog2(x: number): number {
  return x <= 2 ? 1 : 32 - Math.clz32(x - 1);
}

/**
 * row_sum over `items` items of `width` lanes (item t = x[begin + t*width .. + width)), in
 * torch's order; leaves the per-lane result in acc[0 .. width).
 */
function rowSum(x: ArrayLike<number>, begin: number, items: number, width: number): void {
  acc.fill(0);
  const rows = Math.floor(items / ILP); // multi_row_sum over `rows` rows of ILP columns
  const levelPower = Math.max(4, Math.floor(ceilLog2(rows) / LEVELS));
  const levelStep = 1 << levelPower;
  const levelMask = levelStep - 1;
  const cell = ILP * width; // values per level
  const rowStride = ILP * width;
  let i = 0;
  while (i + levelStep <= rows) {
    for (let j = 0; j < levelStep; j++, i++) {
      const base = begin + i * rowStride;
      for (let c = 0; c < cell; c++) acc[c] = f32(acc[c] + x[base + c]);
    }
    for (let level = 1; level < LEVELS; level++) {
      const hi = level * cell,
        lo = (level - 1) * cell;
      for (let c = 0; c < cell; c++) {
        acc[hi + c] = f32(acc[hi + c] + acc[lo + c]);
        acc[lo + c] = 0;
      }
      if ((i & (levelMask << (level * levelPower))) !== 0) break;
    }
  }
  for (; i < rows; i++) {
    const base = begin + i * rowStride;
    for (let c = 0; c < cell; c++) acc[c] = f32(acc[c] + x[base + c]);
  }
  for (let level = 1; level < LEVELS; level++) {
    for (let c = 0; c < cell; c++) acc[c] = f32(acc[c] + acc[level * cell + c]);
  }
  // leftover items into column 0, then columns 1..3 into column 0
  for (let t = rows * ILP; t < items; t++) {
    const base = begin + t * width;
    for (let l = 0; l < width; l++) acc[l] = f32(acc[l] + x[base + l]);
  }
  for (let k = 1; k < ILP; k++) for (let l = 0; l < width; l++) acc[l] = f32(acc[l] + acc[k * width + l]);
}

/** Sum of x[begin .. begin+n) as float32, in torch 1.13's CPU order (see the file comment). */
export function torchSumF32(x: ArrayLike<number>, begin: number, n: number): number {
  if (n < LANES) {
    rowSum(x, begin, n, 1);
    return acc[0];
  }
  const vectors = Math.floor(n / LANES);
  rowSum(x, begin, vectors, LANES);
  let s = 0;
  for (let k = vectors * LANES; k < n; k++) s = f32(s + x[begin + k]);
  for (let l = 0; l < LANES; l++) s = f32(s + acc[l]);
  return s;
}

/** torch's `x.mean()` of a float32 row: the cascade sum divided by n, rounded to float32. */
export function torchMeanF32(x: ArrayLike<number>, begin: number, n: number): number {
  return f32(torchSumF32(x, begin, n) / n);
}
