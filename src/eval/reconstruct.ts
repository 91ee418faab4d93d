/**
 * Reconstruction (inpainting) views and the reference's 2x3 panel (docs/reference.md#inpainting, `src/inpaint.py`).
 *
 * Design contract:
 * - Inputs are ONE clip as the model saw it: the normalised spectrogram [T, 128] and image
 *   [3, H, W], and the `forward_inpaint` outputs for it: predictions predA [La, p²] and
 *   predV [Lv, 3p²] (patch order of docs/reference.md#patchify), per-token masks (1 = removed).
 * - Views: original, masked `x·(1−m)`, pasted `x·(1−m) + y·m` for the image and the spectrogram,
 *   with y the unpatchified prediction and m the per-token mask repeated over its patch.
 * - norm_pix_loss models predict per-patch normalised pixels (docs/reference.md#mae-loss), which are not
 *   viewable (docs/reference.md#inpainting). For display only we map them back with the ORIGINAL patch's mean and
 *   unbiased variance: y = pred·sqrt(var + 1e-6) + mean. This borrows the low-frequency content
 *   (brightness, contrast) of the hidden patch, so such a panel overstates what the model knows;
 *   the panel says so in its caption. The MSE is always the model's own loss (normalised units).
 * - Images are un-normalised with ImageNet mean/std, ×255, clipped (as the reference).
 *   Spectrograms are drawn with frequency as height and low frequencies at the bottom
 *   (`origin='lower'`), viridis, one colour scale for all three spectrogram tiles (the original's
 *   min..max), so masked and pasted tiles are comparable.
 * - The panel is an SVG (tiles as embedded PNGs, titles, caption) rasterised by resvg with the
 *   DejaVu font; tiles are scaled with nearest-neighbour so patches stay visible.
 */
import { existsSync } from 'node:fs';
import { Resvg } from '@resvg/resvg-js';
import {
  normalizePatches,
  patchifyAudio,
  patchifyImage,
  unpatchifyAudio,
  unpatchifyImage,
} from '../nn/patch-embed.js';
import { Tensor } from '../tensor/tensor.js';
import { UserError } from '../util/errors.js';
import { IMAGENET_MEAN, IMAGENET_STD, type RgbImage } from '../vision/image.js';
import { MEL_BINS } from '../models/config.js';
import { encodePng } from './localize.js';

/** One clip's reconstruction inputs. Any modality may be absent (one-modality models). */
export interface ReconstructionInput {
  /** Normalised spectrogram [T, 128]. */
  audio?: Float32Array;
  /** Normalised image [3, H, W]. */
  image?: Float32Array;
  /** T (spectrogram frames) and H = W (image size). */
  audioLength?: number;
  imageSize?: number;
  patch?: number;
  /** [La, p²], [Lv, 3p²] predictions. */
  predA?: Float32Array;
  predV?: Float32Array;
  /** [La], [Lv], 1 = removed. */
  maskA?: ArrayLike<number>;
  maskV?: ArrayLike<number>;
  /** The model was trained on per-patch normalised targets (see the contract above). */
  normPixLoss?: boolean;
}

export interface ModalityViews {
  /** Same layout as the input: spectrogram [T, 128], image [3, H, W]. */
  original: Float32Array;
  masked: Float32Array;
  pasted: Float32Array;
  /** The per-pixel mask (1 = removed), same layout. */
  mask: Float32Array;
  /** The unpatchified prediction in input units (de-normalised per patch if norm_pix_loss). */
  prediction: Float32Array;
}

export interface ReconstructionViews {
  audio?: ModalityViews;
  image?: ModalityViews;
  audioLength: number;
  imageSize: number;
}

/** Prediction rows → input units: identity, or per-patch de-normalisation with the original's stats. */
export function denormalizePatches(
  pred: Float32Array,
  original: Float32Array,
  rows: number,
  P: number,
  eps = 1e-6,
): Float32Array {
  const out = new Float32Array(pred.length);
  for (let r = 0; r < rows; r++) {
    const o = r * P;
    let mean = 0;
    for (let i = 0; i < P; i++) mean += original[o + i];
    mean /= P;
    let ss = 0;
    for (let i = 0; i < P; i++) ss += (original[o + i] - mean) ** 2;
    const sd = Math.sqrt(ss / (P - 1) + eps); // unbiased, as normalizePatches
    for (let i = 0; i < P; i++) out[o + i] = pred[o + i] * sd + mean;
  }
  return out;
}

/**
 * Mean over removed tokens of the per-token mean squared error (docs/reference.md#mae-loss), with targets
 * normalised per patch when `normPixLoss`: the quantity `forward_inpaint` returns.
 */
export function maskedPatchMse(
  pred: Float32Array,
  target: Float32Array,
  mask: ArrayLike<number>,
  P: number,
  normPixLoss: boolean,
): number {
  const rows = mask.length;
  if (pred.length !== rows * P || target.length !== rows * P)
    throw new UserError(`maskedPatchMse: ${pred.length}/${target.length} values for ${rows} patches of ${P}`);
  const t = normPixLoss ? normalizePatches(Float32Array.from(target), rows, P) : target;
  let num = 0;
  let den = 0;
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let i = 0; i < P; i++) s += (pred[r * P + i] - t[r * P + i]) ** 2;
    num += (s / P) * mask[r];
    den += mask[r];
  }
  return den > 0 ? num / den : 0;
}

/**
 * One modality's views from patch rows [L, P]: the original's (for norm_pix_loss's per-patch
 * statistics), the predictions and the per-patch mask, unpatchified to the input's layout.
 */
function views(
  what: string,
  original: Float32Array,
  patches: Float32Array,
  pred: Float32Array,
  patchMask: ArrayLike<number>,
  P: number,
  normPixLoss: boolean | undefined,
  unpatchify: (rows: Float32Array) => Float32Array,
): ModalityViews {
  const L = patchMask.length;
  if (pred.length !== L * P)
    throw new UserError(`${what} prediction has ${pred.length} values, expected ${L}x${P}`);
  const prediction = unpatchify(normPixLoss ? denormalizePatches(pred, patches, L, P) : pred);
  const maskRows = new Float32Array(L * P);
  for (let r = 0; r < L; r++) maskRows.fill(patchMask[r], r * P, (r + 1) * P);
  const mask = unpatchify(maskRows);
  const masked = new Float32Array(original.length);
  const pasted = new Float32Array(original.length);
  for (let i = 0; i < original.length; i++) {
    masked[i] = original[i] * (1 - mask[i]);
    pasted[i] = masked[i] + prediction[i] * mask[i];
  }
  return { original, masked, pasted, mask, prediction };
}

/** Original / masked / pasted views of each modality present. */
export function reconstructionViews(x: ReconstructionInput): ReconstructionViews {
  const p = x.patch ?? 16;
  const T = x.audioLength ?? (x.audio ? x.audio.length / MEL_BINS : 0);
  const S = x.imageSize ?? (x.image ? Math.round(Math.sqrt(x.image.length / 3)) : 0);
  const out: ReconstructionViews = { audioLength: T, imageSize: S };
  if (x.audio && x.predA && x.maskA) {
    if (x.audio.length !== T * MEL_BINS)
      throw new UserError(`spectrogram has ${x.audio.length} values, expected ${T}x${MEL_BINS}`);
    const patches = patchifyAudio(new Tensor([1, T, MEL_BINS], x.audio), p); // [La, p²]
    out.audio = views('audio', x.audio, patches, x.predA, x.maskA, p * p, x.normPixLoss, (rows) =>
      unpatchifyAudio(rows, 1, T, MEL_BINS, p),
    );
  }
  if (x.image && x.predV && x.maskV) {
    if (x.image.length !== 3 * S * S)
      throw new UserError(`image has ${x.image.length} values, expected 3x${S}x${S}`);
    const patches = patchifyImage(new Tensor([1, 3, S, S], x.image), p); // [Lv, 3p²]
    out.image = views('visual', x.image, patches, x.predV, x.maskV, 3 * p * p, x.normPixLoss, (rows) =>
      unpatchifyImage(rows, 1, 3, S, S, p),
    );
  }
  return out;
}

/** [3, H, W] ImageNet-normalised → 8-bit RGB (×255, clipped, rounded). */
export function unnormalizeImage(chw: Float32Array, height: number, width: number): RgbImage {
  const hw = height * width;
  if (chw.length !== 3 * hw)
    throw new UserError(`image has ${chw.length} values, expected 3x${height}x${width}`);
  const data = new Uint8Array(hw * 3); // [H, W, 3]
  for (let c = 0; c < 3; c++)
    for (let i = 0; i < hw; i++) {
      const v = (chw[c * hw + i] * IMAGENET_STD[c] + IMAGENET_MEAN[c]) * 255;
      data[i * 3 + c] = Math.min(255, Math.max(0, Math.round(v)));
    }
  return { width, height, data };
}

/** Polynomial fit of matplotlib's viridis (within 4/255 of its table per channel). */
export function viridis(t: number): [number, number, number] {
  const x = Math.min(Math.max(t, 0), 1);
  const c = [
    [0.2777273272234177, 0.005407344544966578, 0.3340998053353061],
    [0.1050930431085774, 1.404613529898575, 1.384590162594685],
    [-0.3308618287255563, 0.214847559468213, 0.09509516302823659],
    [-4.634230498983486, -5.799100973351585, -19.33244095627987],
    [6.228269936347081, 14.17993336680509, 56.69055260068105],
    [4.776384997670288, -13.74514537774601, -65.35303263337234],
    [-5.435455855934631, 4.645852612178535, 26.3124352495832],
  ];
  const rgb: [number, number, number] = [0, 0, 0];
  for (let k = 0; k < 3; k++) {
    let v = 0;
    for (let i = c.length - 1; i >= 0; i--) v = v * x + c[i][k];
    rgb[k] = Math.min(255, Math.max(0, Math.round(v * 255)));
  }
  return rgb;
}

/**
 * Spectrogram [T, F] → image of width T and height F with frequency 0 at the BOTTOM
 * (`imshow(spec.T, origin='lower')`), viridis over [lo, hi].
 */
export function spectrogramImage(spec: Float32Array, T: number, F: number, lo: number, hi: number): RgbImage {
  if (spec.length !== T * F) throw new UserError(`spectrogram has ${spec.length} values, expected ${T}x${F}`);
  const data = new Uint8Array(T * F * 3); // [F, T, 3], row 0 = highest frequency
  const range = hi > lo ? hi - lo : 1;
  for (let f = 0; f < F; f++) {
    const row = F - 1 - f;
    for (let t = 0; t < T; t++) data.set(viridis((spec[t * F + f] - lo) / range), (row * T + t) * 3);
  }
  return { width: T, height: F, data };
}

export interface PanelOptions {
  /** Displayed tile width in px (default 224). */
  tile?: number;
  mseAudio?: number;
  mseVisual?: number;
  maskRatioA?: number;
  maskRatioV?: number;
  maskMode?: string;
  normPixLoss?: boolean;
  title?: string;
}

/** Text for SVG and HTML: the five markup characters as entities. */
export function escapeXml(s: string): string {
  return s.replace(
    /[<>&"']/g,
    (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!,
  );
}

let fontFiles: string[] | undefined;

function resvg(svg: string): Resvg {
  fontFiles ??= [
    '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
    '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf',
  ].filter((f) => existsSync(f));
  return new Resvg(svg, {
    background: 'white',
    font: {
      fontFiles,
      loadSystemFonts: fontFiles.length === 0,
      defaultFontFamily: 'DejaVu Sans',
      sansSerifFamily: 'DejaVu Sans',
    },
  });
}

/** Rasterises an SVG with the DejaVu font (white background). */
export function renderSvg(svg: string): Uint8Array {
  return resvg(svg).render().asPng();
}

/** The drawn width in px of one line of text, measured by the renderer itself (same fonts). */
function textWidth(text: string, fontSize: number, bold = false): number {
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="10000" height="100"><text x="0" y="50" font-size="${fontSize}"` +
    `${bold ? ' font-weight="bold"' : ''}>${escapeXml(text)}</text></svg>`;
  return resvg(svg).getBBox()?.width ?? 0;
}

/** Greedy word wrap of `text` into lines no wider than `width` px. */
function wrapText(text: string, fontSize: number, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    const next = line ? `${line} ${word}` : word;
    if (line && textWidth(next, fontSize) > width) {
      lines.push(line);
      line = word;
    } else line = next;
  }
  if (line) lines.push(line);
  return lines;
}

/** The font size (at most `size`) at which `text` fits in `width` px. */
function fittingFontSize(text: string, size: number, width: number, bold = false): number {
  const w = textWidth(text, size, bold);
  return w > width ? Math.floor(((size * width) / w) * 10) / 10 : size;
}

function fmt(x: number | undefined): string {
  return x === undefined || !Number.isFinite(x) ? 'n/a' : x.toPrecision(4);
}

/**
 * The 2x3 panel PNG: row 1 image original / masked / reconstruction, row 2 the spectrogram's,
 * with titles and a caption giving the per-modality MSE. A missing modality leaves its row out.
 */
export async function composePanel(v: ReconstructionViews, o: PanelOptions = {}): Promise<Uint8Array> {
  const tile = o.tile ?? 224;
  const pad = 12;
  const titleH = 22;
  const headerH = o.title ? 28 : 6;
  const captionLines: string[] = [];
  const rows: { title: string; tiles: RgbImage[]; width: number; height: number }[] = [];
  if (v.image) {
    const S = v.imageSize;
    const im = (x: Float32Array) => unnormalizeImage(x, S, S);
    rows.push({
      title: 'image',
      tiles: [im(v.image.original), im(v.image.masked), im(v.image.pasted)],
      width: tile,
      height: tile,
    });
    captionLines.push(
      `visual MSE (masked patches${o.normPixLoss ? ', normalised pixels' : ''}): ${fmt(o.mseVisual)}` +
        (o.maskRatioV !== undefined ? `; mask ratio ${o.maskRatioV}` : ''),
    );
  }
  if (v.audio) {
    const T = v.audioLength;
    let lo = Infinity;
    let hi = -Infinity;
    for (const x of v.audio.original) {
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    const sp = (x: Float32Array) => spectrogramImage(x, T, MEL_BINS, lo, hi);
    // frequency is height; a long clip is drawn wide and flat, but never flatter than 1:2
    const h = Math.round(tile * Math.min(1, Math.max(0.5, MEL_BINS / T)));
    rows.push({
      title: 'spectrogram',
      tiles: [sp(v.audio.original), sp(v.audio.masked), sp(v.audio.pasted)],
      width: tile,
      height: h,
    });
    captionLines.push(
      `audio MSE (masked patches${o.normPixLoss ? ', normalised' : ''}): ${fmt(o.mseAudio)}` +
        (o.maskRatioA !== undefined ? `; mask ratio ${o.maskRatioA}` : '') +
        (o.maskMode ? `; masking ${o.maskMode}` : ''),
    );
  }
  if (rows.length === 0) throw new UserError('nothing to draw: no modality has a reconstruction');
  if (o.normPixLoss)
    captionLines.push(
      "norm_pix_loss: predictions drawn with each hidden patch's own mean and variance (they are normalised)",
    );
  const names = ['original', 'masked', 'reconstruction'];
  const width = pad + 3 * (tile + pad);
  let y = headerH;
  const parts: string[] = [];
  // Every text fits the picture: titles shrink to their width, caption lines wrap.
  if (o.title)
    parts.push(
      `<text x="${width / 2}" y="20" font-size="${fittingFontSize(o.title, 16, width - 2 * pad, true)}" font-weight="bold" text-anchor="middle">${escapeXml(o.title)}</text>`,
    );
  for (const row of rows) {
    for (let i = 0; i < 3; i++) {
      const x = pad + i * (tile + pad);
      const png = Buffer.from(await encodePng(row.tiles[i])).toString('base64');
      const title = `${row.title}: ${names[i]}`;
      parts.push(
        `<text x="${x + tile / 2}" y="${y + 15}" font-size="${fittingFontSize(title, 13, tile - 4)}" text-anchor="middle">${escapeXml(title)}</text>`,
      );
      parts.push(
        `<image x="${x}" y="${y + titleH}" width="${row.width}" height="${row.height}" preserveAspectRatio="none" image-rendering="optimizeSpeed" href="data:image/png;base64,${png}"/>`,
      );
    }
    y += titleH + row.height + pad;
  }
  for (const line of captionLines.flatMap((l) => wrapText(l, 12, width - 2 * pad))) {
    parts.push(`<text x="${pad}" y="${y + 12}" font-size="12">${escapeXml(line)}</text>`);
    y += 18;
  }
  const height = y + pad;
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${parts.join('')}</svg>`;
  return renderSvg(svg);
}
