/**
 * Thumbnails for indexed items: a centre-cropped JPEG of an image or of a video's middle frame,
 * and a waveform picture (PNG) for audio. Written atomically to <index>/thumbs/<id>.<ext>.
 */
import { join } from 'node:path';
import sharp from 'sharp';
import { writeFileAtomic } from '../io/atomic.js';
import { decodeAudio } from '../audio/index.js';
import { MAX_IMAGE_PIXELS } from '../vision/index.js';
import { runFfmpeg } from '../util/ffmpeg.js';
import { fileError } from '../util/errors.js';
import type { Modality } from './types.js';

export const THUMB_WIDTH = 240;
export const THUMB_HEIGHT = 160;
const WAVE_BG = [246, 247, 249];
const WAVE_FG = [37, 99, 235];

async function coverJpeg(input: Uint8Array | string): Promise<Buffer> {
  return sharp(input, { limitInputPixels: MAX_IMAGE_PIXELS, failOn: 'truncated' })
    .rotate() // thumbnails follow EXIF orientation, as a viewer would show the picture
    .resize(THUMB_WIDTH, THUMB_HEIGHT, { fit: 'cover', position: 'centre' })
    .jpeg({ quality: 80 })
    .toBuffer();
}

/** A waveform (min/max per pixel column) of 16 kHz samples as an RGB PNG. */
export async function waveformPng(samples: Float32Array, width = THUMB_WIDTH, height = THUMB_HEIGHT): Promise<Buffer> {
  const px = new Uint8Array(width * height * 3); // [H, W, 3]
  for (let i = 0; i < width * height; i++) px.set(WAVE_BG, i * 3);
  let peak = 1e-6;
  for (let i = 0; i < samples.length; i++) peak = Math.max(peak, Math.abs(samples[i]));
  const mid = (height - 1) / 2;
  for (let x = 0; x < width; x++) {
    const a = Math.floor((x * samples.length) / width);
    const b = Math.max(a + 1, Math.floor(((x + 1) * samples.length) / width));
    let lo = 0;
    let hi = 0;
    for (let i = a; i < b && i < samples.length; i++) {
      lo = Math.min(lo, samples[i]);
      hi = Math.max(hi, samples[i]);
    }
    const y0 = Math.round(mid - (hi / peak) * mid * 0.9);
    const y1 = Math.round(mid - (lo / peak) * mid * 0.9);
    for (let y = Math.max(0, y0); y <= Math.min(height - 1, y1); y++) px.set(WAVE_FG, (y * width + x) * 3);
  }
  return sharp(px, { raw: { width, height, channels: 3 } }).png().toBuffer();
}

/** The middle frame of a video (or its first, for very short clips) as a thumbnail JPEG. */
async function videoThumb(path: string, durationSec: number | undefined): Promise<Buffer> {
  const vf = `scale=${THUMB_WIDTH}:${THUMB_HEIGHT}:force_original_aspect_ratio=increase,crop=${THUMB_WIDTH}:${THUMB_HEIGHT}`;
  const grab = async (t: number) =>
    (await runFfmpeg(['-ss', t.toFixed(3), '-i', path, '-map', '0:v:0', '-frames:v', '1', '-vf', vf, '-f', 'image2pipe', '-c:v', 'mjpeg', '-q:v', '4', 'pipe:1'],
      { timeoutMs: 30_000, maxBytes: 8 << 20, what: path })).stdout;
  let jpeg = durationSec && durationSec > 0.2 ? await grab(durationSec / 2) : Buffer.alloc(0);
  if (jpeg.length === 0) jpeg = await grab(0);
  if (jpeg.length === 0) throw fileError(path, 'no frame could be decoded for a thumbnail');
  return jpeg;
}

/** Thumbnail bytes and extension of a media file. */
export async function makeThumbnail(path: string, modality: Modality, durationSec?: number): Promise<{ bytes: Buffer; ext: 'jpg' | 'png' }> {
  if (modality === 'image') return { bytes: await coverJpeg(path), ext: 'jpg' };
  if (modality === 'video') return { bytes: await videoThumb(path, durationSec), ext: 'jpg' };
  const { samples } = await decodeAudio(path, { what: path });
  return { bytes: await waveformPng(samples), ext: 'png' };
}

/** Writes the thumbnail of `id` into the index folder; returns its relative path. */
export async function writeThumbnail(indexDir: string, id: string, path: string, modality: Modality, durationSec?: number): Promise<string> {
  const { bytes, ext } = await makeThumbnail(path, modality, durationSec);
  const rel = `thumbs/${id}.${ext}`;
  writeFileAtomic(join(indexDir, rel), bytes);
  return rel;
}
