/**
 * Pillow's convolution resampler (`ImagingResample`, libImaging/Resample.c) for 8-bit images,
 * reproduced bit for bit.
 *
 * Contract: the reference resizes PIL images (torchvision `Resize` on a PIL image calls
 * `Image.resize`), so a port must produce the same uint8 pixels, not merely a similar picture.
 * Pillow resamples separably — horizontal pass first, then vertical — with filter support scaled
 * by the downscale factor (antialiasing), weights normalised per output pixel, converted to
 * 22-bit fixed point, and each pass rounded and clamped to uint8. Every one of those steps
 * changes the last bit, so each is reproduced exactly here (float64 weights, integer sums).
 */

export type ResampleFilter = 'bilinear' | 'bicubic';

interface FilterDef {
  support: number;
  weight(x: number): number;
}

const FILTERS: Record<ResampleFilter, FilterDef> = {
  bilinear: {
    support: 1,
    weight(x) {
      if (x < 0) x = -x;
      return x < 1 ? 1 - x : 0;
    },
  },
  // Keys' cubic with a = -0.5 (Pillow's BICUBIC).
  bicubic: {
    support: 2,
    weight(x) {
      const a = -0.5;
      if (x < 0) x = -x;
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
};

/** Pillow's PRECISION_BITS for the 8-bit path: 32 - 8 - 2. */
const PRECISION_BITS = 22;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

interface Coeffs {
  ksize: number;
  /** Per output pixel: first input index and number of taps. */
  bounds: Int32Array; // [outSize, 2]
  /** Fixed-point weights. */
  weights: Int32Array; // [outSize, ksize]
}

/** `precompute_coeffs` + `normalize_coeffs_8bpc` for the box [in0, in1) of an axis of length inSize. */
function precomputeCoeffs(
  inSize: number,
  in0: number,
  in1: number,
  outSize: number,
  filter: FilterDef,
): Coeffs {
  const scale = (in1 - in0) / outSize;
  const filterScale = scale < 1 ? 1 : scale;
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const k = new Float64Array(ksize);
  const ss = 1 / filterScale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    // C's (int) cast truncates toward zero.
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.weight((x + xmin - center + 0.5) * ss);
      k[x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) {
      const w = ww !== 0 ? k[x] / ww : k[x];
      // normalize_coeffs_8bpc: round half away from zero, then truncate.
      weights[xx * ksize + x] = w < 0 ? Math.trunc(-0.5 + w * ONE) : Math.trunc(0.5 + w * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  return { ksize, bounds, weights };
}

function clip8(sum: number): number {
  // Pillow: clip8_lookups[sum >> PRECISION_BITS]; the sums fit in int32, so >> is exact here.
  const v = sum >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/**
 * Resize an interleaved 8-bit image (HWC, `channels` per pixel) to outW x outH with Pillow's
 * algorithm. Returns a new buffer; an identity size returns a copy, as Pillow does.
 */
export function resampleU8(
  src: Uint8Array,
  width: number,
  height: number,
  channels: number,
  outW: number,
  outH: number,
  filterName: ResampleFilter,
): Uint8Array {
  if (!(outW > 0 && outH > 0 && Number.isInteger(outW) && Number.isInteger(outH))) {
    throw new RangeError(`resample: invalid output size ${outW}x${outH}`);
  }
  if (src.length !== width * height * channels) {
    throw new RangeError(`resample: buffer has ${src.length} bytes, expected ${width}x${height}x${channels}`);
  }
  const filter = FILTERS[filterName];
  const needH = outW !== width;
  const needV = outH !== height;
  if (!needH && !needV) return src.slice();

  const vert = precomputeCoeffs(height, 0, height, outH, filter);
  let cur = src;
  if (needH) {
    const horiz = precomputeCoeffs(width, 0, width, outW, filter);
    // Only the rows the vertical pass reads are resampled (Pillow's ybox_first/ybox_last);
    // with no vertical pass that is every row.
    const yFirst = needV ? vert.bounds[0] : 0;
    const yLast = needV ? vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1] : height;
    const rows = yLast - yFirst;
    const tmp = new Uint8Array(outW * rows * channels); // [rows, outW, C]
    const { ksize, bounds, weights } = horiz;
    for (let y = 0; y < rows; y++) {
      const rowIn = (y + yFirst) * width * channels;
      const rowOut = y * outW * channels;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = bounds[xx * 2];
        const xmax = bounds[xx * 2 + 1];
        const kOff = xx * ksize;
        for (let c = 0; c < channels; c++) {
          let ss = HALF;
          let p = rowIn + xmin * channels + c;
          for (let x = 0; x < xmax; x++, p += channels) ss += src[p] * weights[kOff + x];
          tmp[rowOut + xx * channels + c] = clip8(ss);
        }
      }
    }
    if (needV) for (let i = 0; i < outH; i++) vert.bounds[i * 2] -= yFirst;
    cur = tmp;
  }
  if (!needV) return cur;

  const curW = needH ? outW : width;
  const out = new Uint8Array(curW * outH * channels); // [outH, curW, C]
  const { ksize, bounds, weights } = vert;
  const stride = curW * channels;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2];
    const ymax = bounds[yy * 2 + 1];
    const kOff = yy * ksize;
    const rowOut = yy * stride;
    for (let i = 0; i < stride; i++) {
      let ss = HALF;
      let p = ymin * stride + i;
      for (let y = 0; y < ymax; y++, p += stride) ss += cur[p] * weights[kOff + y];
      out[rowOut + i] = clip8(ss);
    }
  }
  return out;
}
