/**
 * CAV-MAE Sync frame-aligned audio segments (docs/reference.md#sync-segments; released dataloader_sync.py
 * map_frame_to_spectrogram): the arithmetic only, no I/O, so the sample builder, the clip
 * builder and tests share one definition.
 *
 * - The clip's fbank is padded (zero rows, before normalisation) or cut to 1024 rows.
 * - Pair i of F = 16: centre = round(i · 1024 / F) (= 64·i; Python's round, half to even),
 *   start = max(0, centre − ⌊L/2⌋), end = start + L; when end > 1024: end = 1024,
 *   start = max(0, 1024 − L). For L = 416: frames 0–3 → 0, 4 → 48, 5 → 112, …, 13–15 → 608.
 * - Frames: np.linspace(0, n − 1, F).astype(int) of the video's n frames (the vision layer's
 *   'sync' scheme); indices repeat when n < F.
 * - Train: one random pair per clip per epoch; eval: the middle pair ⌊F/2⌋ = 8; retrieval: all F.
 */
import { NUM_MEL_BINS } from '../audio/index.js';
import { referenceFrameIndices } from '../vision/frames.js';
import { roundHalfEven } from '../vision/image.js';

/** Rows of the clip spectrogram the segments are cut from (hard-coded in the Sync loader). */
export const SYNC_SPECTROGRAM_ROWS = 1024;
/** (Segment, frame) pairs per clip. */
export const SYNC_PAIRS = 16;

function checkPair(pair: number, pairs: number): void {
  if (!(Number.isInteger(pairs) && pairs >= 1))
    throw new RangeError(`pairs per clip must be a positive integer, got ${pairs}`);
  if (!(Number.isInteger(pair) && pair >= 0 && pair < pairs))
    throw new RangeError(`pair index ${pair} is outside 0..${pairs - 1}`);
}

/** Rows [start, end) of the segment paired with frame `pair` (see the contract). */
export function segmentBounds(
  pair: number,
  segmentLength: number,
  pairs = SYNC_PAIRS,
  rows = SYNC_SPECTROGRAM_ROWS,
): [number, number] {
  checkPair(pair, pairs);
  if (!(Number.isInteger(segmentLength) && segmentLength >= 1 && segmentLength <= rows))
    throw new RangeError(`segment length must be an integer in 1..${rows}, got ${segmentLength}`);
  const centre = roundHalfEven((pair * rows) / pairs);
  let start = Math.max(0, centre - Math.floor(segmentLength / 2));
  let end = start + segmentLength;
  if (end > rows) {
    end = rows;
    start = Math.max(0, end - segmentLength);
  }
  return [start, end];
}

/**
 * The segment of pair `pair` cut from a [rows, 128] spectrogram (already padded/cut to
 * `SYNC_SPECTROGRAM_ROWS`): a new [L, 128] array.
 */
export function cropSegment(
  fbank: Float32Array,
  pair: number,
  segmentLength: number,
  pairs = SYNC_PAIRS,
): Float32Array {
  const rows = fbank.length / NUM_MEL_BINS;
  if (rows !== SYNC_SPECTROGRAM_ROWS)
    throw new RangeError(
      `Sync segments are cut from ${SYNC_SPECTROGRAM_ROWS}-row spectrograms, got ${rows} rows`,
    );
  const [start, end] = segmentBounds(pair, segmentLength, pairs, rows);
  return fbank.slice(start * NUM_MEL_BINS, end * NUM_MEL_BINS);
}

/** Every pair's segment: [pairs, L, 128]. */
export function cropAllSegments(
  fbank: Float32Array,
  segmentLength: number,
  pairs = SYNC_PAIRS,
): Float32Array {
  const out = new Float32Array(pairs * segmentLength * NUM_MEL_BINS);
  for (let k = 0; k < pairs; k++)
    out.set(cropSegment(fbank, k, segmentLength, pairs), k * segmentLength * NUM_MEL_BINS);
  return out;
}

/** Indices of the F frames the Sync extractor saves from a video of n frames. */
export function syncFrameIndices(nFrames: number, pairs = SYNC_PAIRS): number[] {
  if (!(Number.isInteger(nFrames) && nFrames >= 1))
    throw new RangeError(`frame count must be a positive integer, got ${nFrames}`);
  return referenceFrameIndices(nFrames, 0, pairs, 'sync');
}

/** The pair an evaluation sample uses: the middle one, ⌊F/2⌋ (8 of 16). */
export function evalPair(pairs = SYNC_PAIRS): number {
  return Math.floor(pairs / 2);
}
