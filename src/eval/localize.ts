/**
 * Sound-source localisation from audio-to-patch similarity (docs/reference.md#localisation, the research fork's
 * `localization.py` / `localization2.py`).
 *
 * Design contract:
 * - Inputs are the unmasked `forward_feat` tokens of ONE clip: audio [La, D] laid out as
 *   (frequency row f, time column t) → token f·tCols + t (docs/reference.md#spectrogram-patches), visual [Lv, D] row-major
 *   over the gh × gw patch grid.
 * - The audio query is `mean` (all audio tokens, "audiomean"), `column` (reshape [F, T, D], mean
 *   over F, take one time column, default T/2: "audiocolumn", the fork's default) or
 *   `patchesmean` (the mean visual token; the fork's sanity baseline, it ignores the audio).
 * - Query and every visual token are L2-normalised (eps 1e-12 as F.normalize), dot product →
 *   [gh, gw] map → upsampled (PyTorch `F.interpolate`, `bilinear` with align_corners=False as
 *   localization2.py, or `nearest` as localization.py) → min-max normalised to [0, 1] (a
 *   constant map becomes all zeros rather than NaN).
 * - Pure functions on Float32Arrays: the model call lives in src/api; the PNG overlay uses sharp.
 */
import sharp from 'sharp';
import { UserError } from '../util/errors.js';
import type { RgbImage } from '../vision/image.js';

export type AudioQuery = 'mean' | 'column' | 'patchesmean';
export const AUDIO_QUERIES: readonly AudioQuery[] = ['mean', 'column', 'patchesmean'];
export type UpsampleMode = 'bilinear' | 'nearest';

/** A token grid: rows × cols tokens of width `dim`. */
export interface Grid {
  rows: number;
  cols: number;
}

export interface LocalizeOptions {
  /** Token width D. */
  dim: number;
  /** Audio grid: rows = frequency patches (128/16 = 8), cols = time patches (T/16). */
  audioGrid: Grid;
  /** Visual grid gh × gw. */
  visualGrid: Grid;
  query?: AudioQuery;
  /** Time column for `column` (default floor(cols/2): 32 of 64 in the reference). */
  column?: number;
  /** Output size of the upsampled heat map (default: 16 px per patch, the model's input size). */
  height?: number;
  width?: number;
  upsample?: UpsampleMode;
}

export interface Localization {
  /** Raw cosine similarities, [gh, gw] row-major (not normalised). */
  map: Float32Array;
  gridHeight: number;
  gridWidth: number;
  /** Upsampled and min-max normalised, [height, width] row-major, in [0, 1]. */
  heat: Float32Array;
  height: number;
  width: number;
  /** The L2-normalised query vector [D]. */
  query: Float32Array;
  /** Patch with the highest similarity (first in row-major order on ties). */
  peak: { row: number; col: number; index: number; score: number };
}

const NORM_EPS = 1e-12;

function l2Normalized(v: Float32Array): Float32Array {
  let ss = 0;
  for (let i = 0; i < v.length; i++) ss += v[i] * v[i];
  const inv = 1 / Math.max(Math.sqrt(ss), NORM_EPS);
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i] * inv;
  return out;
}

function checkTokens(name: string, tokens: Float32Array, grid: Grid, dim: number): void {
  if (!(dim > 0) || !(grid.rows > 0) || !(grid.cols > 0) || tokens.length !== grid.rows * grid.cols * dim)
    throw new UserError(
      `${name} tokens: expected ${grid.rows}x${grid.cols}x${dim} values, got ${tokens.length}`,
    );
}

/** The audio query vector [D] (before normalisation) for one clip. */
export function audioQueryVector(
  audioTokens: Float32Array,
  grid: Grid,
  dim: number,
  query: Exclude<AudioQuery, 'patchesmean'> = 'column',
  column?: number,
): Float32Array {
  checkTokens('audio', audioTokens, grid, dim);
  if (query === 'mean') return meanToken(audioTokens, grid.rows * grid.cols, dim);
  const t = column ?? Math.floor(grid.cols / 2);
  if (!Number.isInteger(t) || t < 0 || t >= grid.cols)
    throw new UserError(`audio query column ${t} is outside the ${grid.cols} time columns`);
  // [F, T, D] → mean over F at column t
  const q = new Float64Array(dim);
  for (let f = 0; f < grid.rows; f++) {
    const o = (f * grid.cols + t) * dim;
    for (let d = 0; d < dim; d++) q[d] += audioTokens[o + d];
  }
  return Float32Array.from(q, (v) => v / grid.rows);
}

/** Mean visual token [D] (the `patchesmean` baseline query). */
export function meanToken(tokens: Float32Array, n: number, dim: number): Float32Array {
  const q = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let d = 0; d < dim; d++) q[d] += tokens[i * dim + d];
  return Float32Array.from(q, (v) => v / n);
}

/** Cosine similarity of each of the n tokens [n, D] with the query [D]: [n]. */
export function patchSimilarity(
  query: Float32Array,
  tokens: Float32Array,
  n: number,
  dim: number,
): Float32Array {
  if (query.length !== dim || tokens.length !== n * dim)
    throw new UserError(
      `patchSimilarity: query ${query.length} / tokens ${tokens.length} do not match ${n}x${dim}`,
    );
  const qn = l2Normalized(query);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let dot = 0;
    let ss = 0;
    for (let d = 0; d < dim; d++) {
      const x = tokens[i * dim + d];
      dot += x * qn[d];
      ss += x * x;
    }
    out[i] = dot / Math.max(Math.sqrt(ss), NORM_EPS);
  }
  return out;
}

/**
 * `F.interpolate(x[None, None], size=(H, W), mode, align_corners=False)` of one [h, w] map.
 * Bilinear: source coordinate (dst + 0.5)·(in/out) − 0.5, clamped at 0, neighbours clamped at
 * the edge. Nearest: floor(dst·in/out).
 */
export function upsample2d(
  map: Float32Array,
  h: number,
  w: number,
  H: number,
  W: number,
  mode: UpsampleMode = 'bilinear',
): Float32Array {
  if (map.length !== h * w)
    throw new UserError(`upsample2d: map has ${map.length} values, expected ${h}x${w}`);
  const out = new Float32Array(H * W); // [H, W]
  const sy = h / H;
  const sx = w / W;
  if (mode === 'nearest') {
    for (let y = 0; y < H; y++) {
      const iy = Math.min(Math.floor(y * sy), h - 1);
      for (let x = 0; x < W; x++) out[y * W + x] = map[iy * w + Math.min(Math.floor(x * sx), w - 1)];
    }
    return out;
  }
  for (let y = 0; y < H; y++) {
    const fy = Math.max((y + 0.5) * sy - 0.5, 0);
    const y0 = Math.min(Math.floor(fy), h - 1);
    const y1 = Math.min(y0 + 1, h - 1);
    const ly = fy - y0;
    for (let x = 0; x < W; x++) {
      const fx = Math.max((x + 0.5) * sx - 0.5, 0);
      const x0 = Math.min(Math.floor(fx), w - 1);
      const x1 = Math.min(x0 + 1, w - 1);
      const lx = fx - x0;
      const top = map[y0 * w + x0] * (1 - lx) + map[y0 * w + x1] * lx;
      const bottom = map[y1 * w + x0] * (1 - lx) + map[y1 * w + x1] * lx;
      out[y * W + x] = top * (1 - ly) + bottom * ly;
    }
  }
  return out;
}

/** (x − min) / (max − min) in place; a constant map becomes zeros. */
export function minMaxNormalize(x: Float32Array): Float32Array {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of x) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const range = hi - lo;
  for (let i = 0; i < x.length; i++) x[i] = range > 0 ? (x[i] - lo) / range : 0;
  return x;
}

/** The whole docs/reference.md#localisation pipeline on one clip's tokens. */
export function localizeTokens(
  audioTokens: Float32Array,
  visualTokens: Float32Array,
  o: LocalizeOptions,
): Localization {
  const { dim, visualGrid: vg } = o;
  const Lv = vg.rows * vg.cols;
  checkTokens('visual', visualTokens, vg, dim);
  const query = o.query ?? 'column';
  if (!AUDIO_QUERIES.includes(query))
    throw new UserError(`unknown audio query "${query}" (use ${AUDIO_QUERIES.join(', ')})`);
  const q =
    query === 'patchesmean'
      ? meanToken(visualTokens, Lv, dim)
      : audioQueryVector(audioTokens, o.audioGrid, dim, query, o.column);
  const map = patchSimilarity(q, visualTokens, Lv, dim); // [gh, gw]
  let best = 0;
  for (let i = 1; i < Lv; i++) if (map[i] > map[best]) best = i;
  const height = o.height ?? vg.rows * 16;
  const width = o.width ?? vg.cols * 16;
  const heat = minMaxNormalize(upsample2d(map, vg.rows, vg.cols, height, width, o.upsample ?? 'bilinear'));
  return {
    map,
    gridHeight: vg.rows,
    gridWidth: vg.cols,
    heat,
    height,
    width,
    query: l2Normalized(q),
    peak: { row: Math.floor(best / vg.cols), col: best % vg.cols, index: best, score: map[best] },
  };
}

/**
 * IoU of the thresholded heat map (value > threshold) with a box [x1, y1, x2, y2] in pixels
 * (filled, end-exclusive as the fork's `gt_map[y1:y2, x1:x2] = 1`); union 0 → 0 (docs/reference.md#localisation).
 */
export function heatIoU(
  heat: Float32Array,
  height: number,
  width: number,
  box: readonly number[],
  threshold = 0.5,
): number {
  const [x1, y1, x2, y2] = box.map((v) => Math.trunc(v));
  let inter = 0;
  let union = 0;
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const p = heat[y * width + x] > threshold;
      const g = y >= y1 && y < y2 && x >= x1 && x < x2;
      if (p && g) inter++;
      if (p || g) union++;
    }
  return union === 0 ? 0 : inter / union;
}

/**
 * matplotlib's `jet` colormap, t in [0, 1] → 8-bit RGB: its piecewise-linear segments sampled
 * into a 256-entry table and indexed by floor(t·256), as matplotlib does.
 */
export function jet(t: number): [number, number, number] {
  const x = Math.min(Math.floor(Math.min(Math.max(t, 0), 1) * 256), 255) / 255;
  const ch = (pts: readonly (readonly [number, number])[]) => {
    for (let i = 1; i < pts.length; i++)
      if (x <= pts[i][0]) {
        const [x0, y0] = pts[i - 1];
        const [x1, y1] = pts[i];
        return y0 + ((x - x0) / (x1 - x0)) * (y1 - y0);
      }
    return pts[pts.length - 1][1];
  };
  const r = ch([
    [0, 0],
    [0.35, 0],
    [0.66, 1],
    [0.89, 1],
    [1, 0.5],
  ]);
  const g = ch([
    [0, 0],
    [0.125, 0],
    [0.375, 1],
    [0.64, 1],
    [0.91, 0],
    [1, 0],
  ]);
  const b = ch([
    [0, 0.5],
    [0.11, 1],
    [0.34, 1],
    [0.65, 0],
    [1, 0],
  ]);
  return [Math.round(r * 255), Math.round(g * 255), Math.round(b * 255)];
}

/**
 * The heat map (jet) alpha-blended over an image of the same size: out = (1−α)·image + α·jet(heat).
 */
export function heatOverlay(image: RgbImage, heat: Float32Array, alpha = 0.5): RgbImage {
  const { width, height } = image;
  if (heat.length !== width * height)
    throw new UserError(`heat map has ${heat.length} values but the image is ${width}x${height}`);
  const out = new Uint8Array(width * height * 3); // [H, W, 3]
  for (let i = 0; i < width * height; i++) {
    const c = jet(heat[i]);
    for (let k = 0; k < 3; k++)
      out[i * 3 + k] = Math.round((1 - alpha) * image.data[i * 3 + k] + alpha * c[k]);
  }
  return { width, height, data: out };
}

export async function encodePng(img: RgbImage): Promise<Uint8Array> {
  const png = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .png()
    .toBuffer();
  return new Uint8Array(png.buffer, png.byteOffset, png.byteLength);
}

/** PNG of the overlay. */
export async function heatOverlayPng(image: RgbImage, heat: Float32Array, alpha = 0.5): Promise<Uint8Array> {
  return encodePng(heatOverlay(image, heat, alpha));
}
