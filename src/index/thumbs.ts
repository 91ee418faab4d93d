/**
 * Thumbnails for indexed items: a centre-cropped JPEG of an image or of a video's middle frame,
 * and the log-mel spectrogram (PNG) for audio. The index stores them (thumbs/<id>.<ext>, store.ts).
 */
import sharp from 'sharp';
import { computeFbank, decodeAudio, NUM_MEL_BINS } from '../audio/index.js';
import { MAX_IMAGE_PIXELS } from '../vision/index.js';
import { runFfmpeg } from '../util/ffmpeg.js';
import { fileError } from '../util/errors.js';
import type { Modality } from './types.js';

export const THUMB_WIDTH = 240;
export const THUMB_HEIGHT = 160;

async function coverJpeg(input: Uint8Array | string): Promise<Buffer> {
  return sharp(input, { limitInputPixels: MAX_IMAGE_PIXELS, failOn: 'truncated' })
    .rotate() // thumbnails follow EXIF orientation, as a viewer would show the picture
    .resize(THUMB_WIDTH, THUMB_HEIGHT, { fit: 'cover', position: 'centre' })
    .jpeg({ quality: 80 })
    .toBuffer();
}

/** Inferno-like colour stops for spectrogram thumbnails (the web page uses the same ramp). */
const RAMP = [
  [0, 0, 4],
  [87, 16, 110],
  [188, 55, 84],
  [249, 142, 9],
  [252, 255, 164],
];

/** Audio shown to the thumbnail: at most the first 30 s. */
const SPECTROGRAM_MAX_SAMPLES = 30 * 16000;

/**
 * The log-mel spectrogram the model sees (Kaldi fbank, 128 bins) as an RGB PNG: time left to
 * right, low frequencies at the bottom, min-max scaled over the 1st..99th percentile.
 */
export async function spectrogramPng(
  samples: Float32Array,
  width = THUMB_WIDTH,
  height = THUMB_HEIGHT,
): Promise<Buffer> {
  const clip = samples.subarray(0, SPECTROGRAM_MAX_SAMPLES);
  const { data, frames } = computeFbank(clip.length >= 400 ? clip : padTo(clip, 400)); // [frames, 128]
  const bins = NUM_MEL_BINS;
  // Average the frames falling into each pixel column: cols [width, bins].
  const cols = new Float32Array(width * bins);
  for (let x = 0; x < width; x++) {
    const a = Math.floor((x * frames) / width);
    const b = Math.max(a + 1, Math.floor(((x + 1) * frames) / width));
    for (let m = 0; m < bins; m++) {
      let acc = 0;
      for (let f = a; f < b; f++) acc += data[Math.min(f, frames - 1) * bins + m];
      cols[x * bins + m] = acc / (b - a);
    }
  }
  const sorted = Float32Array.from(cols).sort();
  const lo = sorted[Math.floor(sorted.length * 0.01)];
  const hi = sorted[Math.floor(sorted.length * 0.99)];
  const px = new Uint8Array(width * height * 3); // [H, W, 3]
  for (let y = 0; y < height; y++) {
    const m = Math.min(bins - 1, Math.floor(((height - 1 - y) * bins) / height)); // low bins at the bottom
    for (let x = 0; x < width; x++) {
      const t =
        Math.max(0, Math.min(1, (cols[x * bins + m] - lo) / Math.max(hi - lo, 1e-6))) * (RAMP.length - 1);
      const i = Math.min(RAMP.length - 2, Math.floor(t));
      const w = t - i;
      for (let c = 0; c < 3; c++)
        px[(y * width + x) * 3 + c] = Math.round(RAMP[i][c] + (RAMP[i + 1][c] - RAMP[i][c]) * w);
    }
  }
  return sharp(px, { raw: { width, height, channels: 3 } })
    .png()
    .toBuffer();
}

function padTo(x: Float32Array, n: number): Float32Array {
  const out = new Float32Array(n);
  out.set(x);
  return out;
}

/** The middle frame of a video (or its first, for very short clips) as a thumbnail JPEG. */
async function videoThumb(path: string, durationSec: number | undefined): Promise<Buffer> {
  const vf = `scale=${THUMB_WIDTH}:${THUMB_HEIGHT}:force_original_aspect_ratio=increase,crop=${THUMB_WIDTH}:${THUMB_HEIGHT}`;
  const grab = async (t: number) =>
    (
      await runFfmpeg(
        [
          '-ss',
          t.toFixed(3),
          '-i',
          path,
          '-map',
          '0:v:0',
          '-frames:v',
          '1',
          '-vf',
          vf,
          '-f',
          'image2pipe',
          '-c:v',
          'mjpeg',
          '-q:v',
          '4',
          'pipe:1',
        ],
        { timeoutMs: 30_000, maxBytes: 8 << 20, what: path },
      )
    ).stdout;
  let jpeg = durationSec && durationSec > 0.2 ? await grab(durationSec / 2) : Buffer.alloc(0);
  if (jpeg.length === 0) jpeg = await grab(0);
  if (jpeg.length === 0) throw fileError(path, 'no frame could be decoded for a thumbnail');
  return jpeg;
}

/** Thumbnail bytes and extension of a media file. */
export async function makeThumbnail(
  path: string,
  modality: Modality,
  durationSec?: number,
): Promise<{ bytes: Buffer; ext: 'jpg' | 'png' }> {
  if (modality === 'image') return { bytes: await coverJpeg(path), ext: 'jpg' };
  if (modality === 'video') return { bytes: await videoThumb(path, durationSec), ext: 'jpg' };
  const { samples } = await decodeAudio(path, { what: path });
  return { bytes: await spectrogramPng(samples), ext: 'png' };
}
