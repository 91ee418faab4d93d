/**
 * Still images: decode, the reference's eval transform, and JPEG encoding of frames.
 *
 * Contract:
 * - `decodeImage` returns 8-bit RGB (HWC). Decoding is libvips via `sharp`, whose JPEG decoder
 *   (libjpeg-turbo lineage) reproduces Pillow's decode of the fixture JPEG bit for bit. Like
 *   `PIL.Image.convert('RGB')`: alpha is dropped (not composited), grey is replicated, EXIF
 *   orientation and ICC profiles are ignored (the reference never applies them).
 * - `imageToTensor` is torchvision's `Resize(224, BICUBIC)` (shorter side; Pillow's resampler on
 *   uint8, see resample.ts) -> `CenterCrop(224)` -> `ToTensor` -> `Normalize(ImageNet)`, computed
 *   in float32 in the same order as torch so the output matches to the last bit.
 * - Every failure on untrusted input is a `UserError` naming the file and the problem.
 */
import { openSync, closeSync, fstatSync, readSync, constants as fsConstants } from 'node:fs';
import sharp from 'sharp';
import { UserError, fileError } from '../util/errors.js';
import { resampleU8, type ResampleFilter } from './resample.js';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/** 8-bit RGB image, row-major HWC. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array; // [H, W, 3]
}

/** Largest image file read (bytes) and largest decoded image (pixels). */
export const MAX_IMAGE_FILE_BYTES = 256 << 20;
export const MAX_IMAGE_PIXELS = 100_000_000;

// libvips' own thread pool is not needed for small images and would compete with our workers.
sharp.concurrency(1);
sharp.cache(false);

/** Reads a whole file, refusing empty, non-regular and oversized files. */
export function readBoundedFile(path: string, maxBytes: number): Buffer {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer; fstat below rejects it.
    fd = openSync(path, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why =
      err.code === 'ENOENT' ? 'file not found' : err.code === 'EISDIR' ? 'is a directory' : err.message;
    throw fileError(path, why);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw fileError(path, 'is a directory');
    if (!st.isFile()) throw fileError(path, 'not a regular file');
    if (st.size === 0) throw fileError(path, 'file is empty');
    if (st.size > maxBytes)
      throw fileError(path, `file is ${st.size} bytes, more than the ${maxBytes}-byte limit`);
    const buf = Buffer.allocUnsafe(st.size);
    let off = 0;
    while (off < st.size) {
      const n = readSync(fd, buf, off, st.size - off, off);
      if (n === 0) break;
      off += n;
    }
    return off === st.size ? buf : buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

/** Decode JPEG/PNG/WebP (and whatever else libvips reads: GIF, TIFF, AVIF) to 8-bit RGB. */
export async function decodeImage(
  input: string | Uint8Array,
  opts: { what?: string } = {},
): Promise<RgbImage> {
  const what = opts.what ?? (typeof input === 'string' ? input : 'image data');
  const bytes = typeof input === 'string' ? readBoundedFile(input, MAX_IMAGE_FILE_BYTES) : input;
  if (bytes.byteLength === 0) throw fileError(what, 'image is empty');
  let raw: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    raw = await sharp(bytes, {
      // Pillow refuses truncated files and accepts files with benign libjpeg warnings.
      failOn: 'truncated',
      limitInputPixels: MAX_IMAGE_PIXELS,
      ignoreIcc: true,
      autoOrient: false,
    })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (e) {
    throw fileError(what, `cannot decode image (${describeSharpError(e)})`);
  }
  const { width, height, channels } = raw.info;
  const src = raw.data;
  if (src.length !== width * height * channels)
    throw fileError(what, 'decoder returned an inconsistent buffer');
  const n = width * height;
  const out = new Uint8Array(n * 3); // [H, W, 3]
  if (channels === 3) out.set(src);
  else if (channels === 4) {
    for (let p = 0; p < n; p++) {
      out[p * 3] = src[p * 4];
      out[p * 3 + 1] = src[p * 4 + 1];
      out[p * 3 + 2] = src[p * 4 + 2];
    }
  } else if (channels === 1 || channels === 2) {
    for (let p = 0; p < n; p++) {
      const g = src[p * channels];
      out[p * 3] = g;
      out[p * 3 + 1] = g;
      out[p * 3 + 2] = g;
    }
  } else {
    throw fileError(what, `unsupported image with ${channels} channels`);
  }
  return { width, height, data: out };
}

function describeSharpError(e: unknown): string {
  const msg = (e as Error)?.message ?? String(e);
  // libvips messages can span several lines; keep the first informative one.
  const line =
    msg
      .split('\n')
      .map((s) => s.trim())
      .find(Boolean) ?? 'unknown error';
  return line.length > 200 ? `${line.slice(0, 200)}...` : line;
}

/** torchvision `Resize(size)` output size: shorter side -> size, longer side int(size * long / short). */
export function resizedSize(width: number, height: number, size: number): { width: number; height: number } {
  if (width <= height) return { width: size, height: Math.trunc((size * height) / width) };
  return { width: Math.trunc((size * width) / height), height: size };
}

/** torchvision `Resize(size, interpolation)` on a PIL image: shorter side to `size`, Pillow resampling. */
export function resizeShorter(img: RgbImage, size: number, filter: ResampleFilter): RgbImage {
  const { width, height } = resizedSize(img.width, img.height, size);
  return { width, height, data: resampleU8(img.data, img.width, img.height, 3, width, height, filter) };
}

/** Python's round() (half to even), which torchvision's CenterCrop uses. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** torchvision `CenterCrop(size)`; zero-pads first when the image is smaller, as torchvision does. */
export function centerCrop(img: RgbImage, size: number): RgbImage {
  let { width, height, data } = img;
  if (width < size || height < size) {
    // torchvision pads (left, top, right, bottom) = ((size-w)//2, (size-h)//2, (size-w+1)//2, (size-h+1)//2).
    const padL = width < size ? Math.floor((size - width) / 2) : 0;
    const padT = height < size ? Math.floor((size - height) / 2) : 0;
    const nw = Math.max(width, size);
    const nh = Math.max(height, size);
    const padded = new Uint8Array(nw * nh * 3); // [nh, nw, 3]
    for (let y = 0; y < height; y++)
      padded.set(data.subarray(y * width * 3, (y + 1) * width * 3), ((y + padT) * nw + padL) * 3);
    width = nw;
    height = nh;
    data = padded;
    if (width === size && height === size) return { width, height, data };
  }
  const top = roundHalfEven((height - size) / 2);
  const left = roundHalfEven((width - size) / 2);
  const out = new Uint8Array(size * size * 3); // [size, size, 3]
  for (let y = 0; y < size; y++) {
    const from = ((y + top) * width + left) * 3;
    out.set(data.subarray(from, from + size * 3), y * size * 3);
  }
  return { width: size, height: size, data: out };
}

/** ToTensor + Normalize(ImageNet) on a HWC uint8 image -> CHW float32, with torch's float32 rounding. */
export function normalizeToTensor(img: RgbImage): Float32Array {
  const { width, height, data } = img;
  const hw = width * height;
  const out = new Float32Array(3 * hw); // [3, H, W]
  for (let c = 0; c < 3; c++) {
    const mean = Math.fround(IMAGENET_MEAN[c]);
    const std = Math.fround(IMAGENET_STD[c]);
    for (let p = 0; p < hw; p++) {
      // ToTensor: x.float().div(255); Normalize: sub_(mean).div_(std), each step rounded to float32.
      const x = Math.fround(data[p * 3 + c] / 255);
      out[c * hw + p] = Math.fround(x - mean) / std;
    }
  }
  return out;
}

/** The reference's eval image transform: [3, size, size] float32. Only 224 is supported by the model. */
export function imageToTensor(img: RgbImage, opts: { size?: number } = {}): Float32Array {
  const size = opts.size ?? 224;
  if (!(Number.isInteger(size) && size > 0))
    throw new UserError(`image size must be a positive integer, got ${size}`);
  if (!(img.width > 0 && img.height > 0) || img.data.length !== img.width * img.height * 3) {
    throw new UserError(`image buffer does not match its size ${img.width}x${img.height}`);
  }
  return normalizeToTensor(centerCrop(resizeShorter(img, size, 'bicubic'), size));
}

export async function loadImageTensor(
  input: string | Uint8Array,
  opts: { size?: number } = {},
): Promise<Float32Array> {
  return imageToTensor(await decodeImage(input), opts);
}

/**
 * JPEG bytes as torchvision's `save_image` writes them: Pillow's defaults (quality 75, 4:2:0,
 * baseline, standard tables). Huffman optimisation changes only the size, not the pixels.
 */
export async function encodeJpeg(img: RgbImage, quality = 75): Promise<Buffer> {
  const jpeg = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .jpeg({
      quality,
      chromaSubsampling: '4:2:0',
      mozjpeg: false,
      optimiseCoding: false,
      trellisQuantisation: false,
      overshootDeringing: false,
      progressive: false,
    })
    .toBuffer();
  // libvips omits the JFIF APP0 segment that libjpeg (and so Pillow) writes; with it restored the
  // file is byte-identical to the reference's frame JPEGs.
  if (jpeg[2] === 0xff && jpeg[3] === 0xe0) return jpeg;
  return Buffer.concat([jpeg.subarray(0, 2), JFIF_APP0, jpeg.subarray(2)]);
}

/** APP0 "JFIF\0", version 1.01, no density unit, density 1x1, no thumbnail (libjpeg's default). */
const JFIF_APP0 = Buffer.from('ffe000104a46494600010100000100010000', 'hex');
