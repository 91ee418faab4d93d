/**
 * `cavmae features`: one media file -> the tensors the model would see for it at evaluation.
 *
 * Contract:
 * - The kind is decided from the content, not the extension: WAV and image magic bytes first,
 *   otherwise ffprobe's stream list (a cover picture in an audio file is not a video).
 * - audio or video with a soundtrack -> `audio` [targetLength, 128] (normalised model input) and
 *   `audio_raw` [frames, 128] (log-mel before pad/crop); image -> `image` [3, 224, 224]; video ->
 *   `image` from frame `frame` of `count` at the reference's positions (eval frame: 5 of 10).
 * - The vision module is imported lazily (only when an image is needed).
 */
import { open, stat } from 'node:fs/promises';
import { fileError } from '../util/errors.js';
import { probeMedia } from '../util/ffmpeg.js';
import { decodeAudio } from './decode.js';
import { AUDIO_NORM, computeFbank, NUM_MEL_BINS, normalizeFbank, padOrCrop } from './fbank.js';
import { isWav } from './wav.js';

export type MediaKind = 'audio' | 'image' | 'video';

export interface MediaFeatureOptions {
  targetLength?: number;
  /** Video frame index (default 5) out of `frameCount` (default 10). */
  frame?: number;
  frameCount?: number;
  mean?: number;
  std?: number;
  timeoutMs?: number;
}

export interface FeatureTensor {
  shape: number[];
  data: Float32Array;
}

export interface MediaFeatures {
  kind: MediaKind;
  tensors: Record<string, FeatureTensor>;
  metadata: Record<string, string>;
}

function isImageMagic(b: Uint8Array): boolean {
  const at = (i: number, ...v: number[]) => v.every((x, k) => b[i + k] === x);
  return (
    at(0, 0xff, 0xd8, 0xff) || // JPEG
    at(0, 0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a) || // PNG
    (at(0, 0x52, 0x49, 0x46, 0x46) && at(8, 0x57, 0x45, 0x42, 0x50)) || // RIFF....WEBP
    at(0, 0x47, 0x49, 0x46, 0x38) || // GIF8
    at(0, 0x42, 0x4d) || // BMP
    at(0, 0x49, 0x49, 0x2a, 0x00) || // TIFF little-endian
    at(0, 0x4d, 0x4d, 0x00, 0x2a) // TIFF big-endian
  );
}

/** What the file holds: 'audio', 'image' or 'video' (with or without a soundtrack). */
export async function detectMediaKind(
  path: string,
  timeoutMs?: number,
): Promise<{ kind: MediaKind; hasAudio: boolean }> {
  let st;
  try {
    st = await stat(path);
  } catch {
    throw fileError(path, 'no such file');
  }
  if (st.isDirectory()) throw fileError(path, 'is a directory, not a media file');
  if (!st.isFile()) throw fileError(path, 'not a regular file');
  if (st.size === 0) throw fileError(path, 'empty file (0 bytes)');
  const head = new Uint8Array(16);
  const fh = await open(path, 'r');
  try {
    await fh.read(head, 0, 16, 0);
  } finally {
    await fh.close();
  }
  if (isWav(head)) return { kind: 'audio', hasAudio: true };
  if (isImageMagic(head)) return { kind: 'image', hasAudio: false };
  let info;
  try {
    info = await probeMedia(`file:${path}`, { what: path, ...(timeoutMs ? { timeoutMs } : {}) });
  } catch (e) {
    if (/Invalid data found/i.test((e as Error).message))
      throw fileError(path, 'not a readable audio, image or video file');
    throw e;
  }
  if (info.hasVideo) return { kind: 'video', hasAudio: info.hasAudio };
  if (info.hasAudio) return { kind: 'audio', hasAudio: true };
  throw fileError(path, 'has no audio or video stream');
}

export async function extractMediaFeatures(
  path: string,
  opts: MediaFeatureOptions = {},
): Promise<MediaFeatures> {
  const {
    targetLength = 1024,
    frame = 5,
    frameCount = 10,
    mean = AUDIO_NORM.mean,
    std = AUDIO_NORM.std,
    timeoutMs,
  } = opts;
  const { kind, hasAudio } = await detectMediaKind(path, timeoutMs);
  const tensors: Record<string, FeatureTensor> = {};
  const metadata: Record<string, string> = { source: path, kind };

  if (hasAudio) {
    const { samples } = await decodeAudio(path, { what: path, timeoutMs });
    const { data, frames } = computeFbank(samples, 16000, path);
    const audio = normalizeFbank(padOrCrop(data, frames, targetLength), mean, std);
    tensors.audio = { shape: [targetLength, NUM_MEL_BINS], data: audio };
    tensors.audio_raw = { shape: [frames, NUM_MEL_BINS], data };
    Object.assign(metadata, {
      audio_samples: String(samples.length),
      audio_frames: String(frames),
      target_length: String(targetLength),
      norm_mean: String(mean),
      norm_std: String(std),
    });
  }
  if (kind === 'image' || kind === 'video') {
    const vision = await import('../vision/index.js');
    const image =
      kind === 'image'
        ? await vision.loadImageTensor(path)
        : await vision.loadVideoFrameTensor(path, frame, frameCount, { timeoutMs });
    tensors.image = { shape: [3, 224, 224], data: image };
    if (kind === 'video')
      Object.assign(metadata, { frame_index: String(frame), frame_count: String(frameCount) });
  }
  return { kind, tensors, metadata };
}
