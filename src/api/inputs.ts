/**
 * Inputs of the library API and how each becomes the model's input, exactly as the evaluation
 * data pipeline (src/data/sample.ts) prepares it, so inference sees what training saw.
 *
 * Design contract:
 * - A media input is a file path or the file's bytes (Buffer / Uint8Array). Its kind (audio,
 *   image, video) is judged by content (src/index/media.ts), never by the name. Video bytes are
 *   spooled to a private temporary file for ffmpeg and removed afterwards.
 * - Audio: decode → 16 kHz mono → Kaldi fbank → pad/crop to the model's `audio_length` →
 *   normalise with the checkpoint's (mean, std) (docs/reference.md#fbank, #pad-and-crop, #normalisation-and-augmentation, no augmentation). A Float32Array
 *   is a raw log-mel fbank [frames, 128] (`computeFbank` output) and goes through pad/crop and
 *   normalisation; `{ fbank, normalized: true }` is the model-ready [audio_length, 128] tensor.
 * - Image: torchvision Resize(S, bicubic) of the shorter side → CenterCrop(S) → ToTensor →
 *   Normalize(ImageNet), with S the model's `img_size`, directly (not via 224), as the loader
 *   does for every img_size. An `RgbImage` (decoded pixels) takes the same path; a Float32Array
 *   is the model-ready [3, S, S] tensor.
 * - Video frame i of 10 (default 5, the reference's middle frame): the extractor's frame
 *   (reference position, Resize(224, bilinear) + CenterCrop(224)); for S = 224 round-tripped
 *   through the extractor's JPEG as the reference's frame files are, for other S resized to S
 *   from the 224 frame. The soundtrack is the audio.
 * - Display pictures (localisation overlays) are the same centre crop at a display size
 *   (default 224): the region the model saw, at a size people can look at.
 */
import { statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeFbank, decodeAudio, normalizeFbank, padOrCrop } from '../audio/index.js';
import { detectMedia, sniffBytes } from '../index/media.js';
import type { Modality } from '../index/types.js';
import { UserError, fileError } from '../util/errors.js';
import { probeMedia } from '../util/ffmpeg.js';
import {
  centerCrop,
  decodeImage,
  encodeJpeg,
  extractFrameSet,
  IMAGENET_MEAN,
  IMAGENET_STD,
  normalizeToTensor,
  resampleU8,
  resizeShorter,
  type RgbImage,
} from '../vision/index.js';

export const MEL_BINS = 128;
/** Frames per clip of the CAV-MAE extractor; the evaluation frame is the middle one. */
export const CLIP_FRAMES = 10;
export const MIDDLE_FRAME = 5;
/** Size of display pictures (overlays): the reference pipeline's frame size. */
export const DISPLAY_SIZE = 224;
/** Largest media file read into memory through the API. */
export const MAX_MEDIA_BYTES = 2 * 1024 ** 3;

/** A media file: its path or its bytes. */
export type MediaSource = string | Uint8Array;

/** An fbank tensor: raw log-mel [frames, 128], or (normalized) the model's [audio_length, 128]. */
export interface FbankInput {
  fbank: Float32Array;
  normalized?: boolean;
}

/** Audio: a file (audio or video with sound), a raw fbank [frames, 128], or an FbankInput. */
export type AudioInput = MediaSource | Float32Array | FbankInput;
/** Image: a file (image, or a video: its frame), decoded pixels, or the model's [3, S, S] tensor. */
export type ImageInput = MediaSource | RgbImage | Float32Array;

/** How a model wants its inputs (from its config and checkpoint metadata). */
export interface Preprocessing {
  /** Spectrogram rows T. */
  audioLength: number;
  /** Image side S. */
  imageSize: number;
  audioMean: number;
  audioStd: number;
  /** Per-channel normalisation of the images (ImageNet unless the checkpoint says otherwise). */
  imageMean: readonly number[];
  imageStd: readonly number[];
}

/** A media file resolved to a readable form. */
export interface OpenedMedia {
  kind: Modality;
  hasAudio: boolean;
  hasVideo: boolean;
  /** Name for messages. */
  what: string;
  /** A path ffmpeg can read (the original, or a private temporary copy of the bytes). */
  path?: string;
  bytes?: Uint8Array;
}

export function isFbankInput(x: unknown): x is FbankInput {
  return (
    typeof x === 'object' &&
    x !== null &&
    !ArrayBuffer.isView(x) &&
    (x as FbankInput).fbank instanceof Float32Array
  );
}

export function isRgbImage(x: unknown): x is RgbImage {
  return (
    typeof x === 'object' &&
    x !== null &&
    !ArrayBuffer.isView(x) &&
    typeof (x as RgbImage).width === 'number' &&
    typeof (x as RgbImage).height === 'number' &&
    (x as RgbImage).data instanceof Uint8Array
  );
}

export function isMediaSource(x: unknown): x is MediaSource {
  return typeof x === 'string' || (x instanceof Uint8Array && !(x instanceof Float32Array));
}

/**
 * Resolves a path or bytes to its kind and a readable form, runs `fn`, and removes any
 * temporary file. `what` names the input in errors.
 */
export async function withMedia<T>(
  src: MediaSource,
  fn: (m: OpenedMedia) => Promise<T>,
  what?: string,
): Promise<T> {
  if (typeof src === 'string') {
    let st;
    try {
      st = statSync(src);
    } catch {
      throw fileError(src, 'file not found');
    }
    if (!st.isFile())
      throw fileError(src, st.isDirectory() ? 'is a directory, not a media file' : 'not a regular file');
    if (st.size === 0) throw fileError(src, 'file is empty');
    const facts = await detectMedia(src);
    return fn({
      kind: facts.modality,
      hasAudio: facts.hasAudio,
      hasVideo: facts.hasVideo,
      what: what ?? src,
      path: src,
    });
  }
  const name = what ?? 'input';
  if (src.byteLength === 0) throw new UserError(`${name}: empty input`);
  if (src.byteLength > MAX_MEDIA_BYTES)
    throw new UserError(`${name}: ${src.byteLength} bytes is more than the ${MAX_MEDIA_BYTES}-byte limit`);
  const sniff = await sniffBytes(src);
  if (!sniff)
    throw new UserError(`${name}: not a supported image, audio or video file (judged by its content)`);
  if (sniff.modality === 'image')
    return fn({ kind: 'image', hasAudio: false, hasVideo: false, what: name, bytes: src });
  // ffmpeg reads containers from a file (seeking); keep the bytes in a private folder meanwhile.
  const dir = await mkdtemp(join(tmpdir(), 'cavmae-api-'));
  const path = join(dir, `input.${sniff.ext}`);
  try {
    await writeFile(path, src, { mode: 0o600 });
    const info = await probeMedia(path, { timeoutMs: 30_000 }).catch((e: unknown) => {
      throw new UserError(`${name}: ${(e as Error).message.split(path).join(name)}`);
    });
    let kind: Modality = sniff.modality;
    if (kind === 'video' && !info.hasVideo) kind = 'audio';
    if (kind === 'audio' && !info.hasAudio) throw new UserError(`${name}: has no audio stream`);
    return await fn({ kind, hasAudio: info.hasAudio, hasVideo: info.hasVideo, what: name, path, bytes: src });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Raw log-mel [frames, 128] → the model's normalised [T, 128]. */
export function fbankToModelInput(raw: Float32Array, p: Preprocessing, what = 'fbank'): Float32Array {
  if (raw.length === 0 || raw.length % MEL_BINS !== 0)
    throw new UserError(`${what}: an fbank must be [frames, ${MEL_BINS}], got ${raw.length} values`);
  return normalizeFbank(padOrCrop(raw, raw.length / MEL_BINS, p.audioLength), p.audioMean, p.audioStd);
}

export interface PreparedAudio {
  /** [T, 128] normalised model input. */
  audio: Float32Array;
  /** Frames of the raw fbank before pad/crop (undefined for a model-ready tensor). */
  frames?: number;
}

/** The model's audio input from a decoded media file. */
export async function audioFromMedia(m: OpenedMedia, p: Preprocessing): Promise<PreparedAudio> {
  if (m.kind === 'image') throw new UserError(`${m.what}: is an image, not audio`);
  if (!m.hasAudio) throw new UserError(`${m.what}: has no audio stream`);
  const { samples } = await decodeAudio(m.path ?? m.bytes!, { what: m.what });
  if (samples.length < 400)
    throw new UserError(
      `${m.what}: audio too short for one fbank frame (${samples.length} samples at 16 kHz)`,
    );
  const { data, frames } = computeFbank(samples, 16000, m.what);
  return { audio: fbankToModelInput(data, p, m.what), frames };
}

/** The model's audio input [T, 128] from any AudioInput. */
export async function prepareAudio(
  input: AudioInput,
  p: Preprocessing,
  what?: string,
): Promise<PreparedAudio> {
  if (input instanceof Float32Array) {
    return { audio: fbankToModelInput(input, p, what ?? 'fbank'), frames: input.length / MEL_BINS };
  }
  if (isFbankInput(input)) {
    if (!input.normalized)
      return {
        audio: fbankToModelInput(input.fbank, p, what ?? 'fbank'),
        frames: input.fbank.length / MEL_BINS,
      };
    if (input.fbank.length !== p.audioLength * MEL_BINS)
      throw new UserError(
        `${what ?? 'fbank'}: a normalized fbank must be [${p.audioLength}, ${MEL_BINS}] (the model's audio_length), got ${input.fbank.length} values`,
      );
    return { audio: input.fbank };
  }
  if (isMediaSource(input)) return withMedia(input, (m) => audioFromMedia(m, p), what);
  throw new UserError(`${what ?? 'audio'}: expected a file path, bytes, or a Float32Array fbank`);
}

/** ImageNet-normalised [3, S, S] → the checkpoint's normalisation (a no-op for ImageNet). */
function renormalize(t: Float32Array, p: Preprocessing): Float32Array {
  const same = [0, 1, 2].every(
    (c) => p.imageMean[c] === IMAGENET_MEAN[c] && p.imageStd[c] === IMAGENET_STD[c],
  );
  if (same) return t;
  const hw = t.length / 3;
  for (let c = 0; c < 3; c++)
    for (let i = 0; i < hw; i++) {
      const x = t[c * hw + i] * IMAGENET_STD[c] + IMAGENET_MEAN[c]; // [0, 1] pixel
      t[c * hw + i] = (x - p.imageMean[c]) / p.imageStd[c];
    }
  return t;
}

/** Decoded pixels → the model's [3, S, S] (Resize(S, bicubic) + CenterCrop(S) + normalise). */
export function pixelsToModelInput(img: RgbImage, p: Preprocessing): Float32Array {
  return renormalize(
    normalizeToTensor(centerCrop(resizeShorter(img, p.imageSize, 'bicubic'), p.imageSize)),
    p,
  );
}

/** The centre crop the model sees, at `size` px (bicubic, as the image transform). */
export function displayCrop(img: RgbImage, size: number): RgbImage {
  return centerCrop(resizeShorter(img, size, 'bicubic'), size);
}

/** A square RGB picture resized to `size` (bicubic). */
export function resizeSquare(img: RgbImage, size: number): RgbImage {
  if (img.width === size && img.height === size) return img;
  return {
    width: size,
    height: size,
    data: resampleU8(img.data, img.width, img.height, 3, size, size, 'bicubic'),
  };
}

/** [3, S, S] model tensor → 8-bit RGB (the checkpoint's normalisation undone, clipped). */
export function modelInputToPixels(t: Float32Array, size: number, p: Preprocessing): RgbImage {
  const hw = size * size;
  const data = new Uint8Array(hw * 3); // [S, S, 3]
  for (let c = 0; c < 3; c++)
    for (let i = 0; i < hw; i++)
      data[i * 3 + c] = Math.min(
        255,
        Math.max(0, Math.round((t[c * hw + i] * p.imageStd[c] + p.imageMean[c]) * 255)),
      );
  return { width: size, height: size, data };
}

export interface PreparedImage {
  /** [3, S, S] model input. */
  image: Float32Array;
  /** The picture the model saw (centre crop) at the display size. */
  display: RgbImage;
  /** Frame number (of 10; of F for a Sync model) when the image came from a video. */
  frame?: number;
}

/**
 * The 224×224 frames the reference extractor saves for frames `indices` (of `count`: 10 for
 * CAV-MAE, a Sync model's F with its linspace scheme) of a video, turned into model inputs as
 * the loader does.
 */
export async function videoFrames(
  m: OpenedMedia,
  indices: readonly number[],
  p: Preprocessing,
  displaySize = DISPLAY_SIZE,
  count = CLIP_FRAMES,
): Promise<PreparedImage[]> {
  if (!m.hasVideo || !m.path) throw new UserError(`${m.what}: has no video stream`);
  for (const i of indices)
    if (!(Number.isInteger(i) && i >= 0 && i < count))
      throw new UserError(`${m.what}: frame numbers must be in 0..${count - 1}, got ${i}`);
  const sorted = [...new Set(indices)].sort((a, b) => a - b);
  const set = await extractFrameSet(m.path, { count, only: sorted }).catch((e: unknown) => {
    throw e instanceof UserError && m.path && m.what !== m.path
      ? new UserError(e.message.split(m.path).join(m.what))
      : e;
  });
  const byIndex = new Map<number, RgbImage>();
  sorted.forEach((i, k) => byIndex.set(i, set.frames[k]));
  const out: PreparedImage[] = [];
  for (const i of indices) {
    const frame = byIndex.get(i)!; // 224x224, what the extractor hands to the JPEG encoder
    let image: Float32Array;
    if (p.imageSize === 224) {
      // The reference reads the saved JPEG frame: same bytes, same decode.
      image = renormalize(normalizeToTensor(await decodeImage(await encodeJpeg(frame), { what: m.what })), p);
    } else {
      image = pixelsToModelInput(frame, p);
    }
    out.push({ image, display: resizeSquare(frame, displaySize), frame: i });
  }
  return out;
}

/** The model's image input from any ImageInput (a video gives frame `frame`, default 5). */
export async function prepareImage(
  input: ImageInput,
  p: Preprocessing,
  opts: { what?: string; frame?: number; displaySize?: number } = {},
): Promise<PreparedImage> {
  const D = opts.displaySize ?? DISPLAY_SIZE;
  const S = p.imageSize;
  if (input instanceof Float32Array) {
    if (input.length !== 3 * S * S)
      throw new UserError(
        `${opts.what ?? 'image'}: an image tensor must be [3, ${S}, ${S}] (the model's img_size), got ${input.length} values`,
      );
    return { image: input, display: resizeSquare(modelInputToPixels(input, S, p), D) };
  }
  if (isRgbImage(input)) {
    if (!(input.width > 0 && input.height > 0) || input.data.length !== input.width * input.height * 3)
      throw new UserError(
        `${opts.what ?? 'image'}: pixel buffer does not match ${input.width}x${input.height}x3`,
      );
    return { image: pixelsToModelInput(input, p), display: displayCrop(input, D) };
  }
  if (!isMediaSource(input))
    throw new UserError(
      `${opts.what ?? 'image'}: expected a file path, bytes, decoded pixels or a Float32Array tensor`,
    );
  return withMedia(input, (m) => imageFromMedia(m, p, opts.frame, D), opts.what);
}

/** The model's image input from an opened media file (image, or a video's frame). */
export async function imageFromMedia(
  m: OpenedMedia,
  p: Preprocessing,
  frame = MIDDLE_FRAME,
  displaySize = DISPLAY_SIZE,
): Promise<PreparedImage> {
  if (m.kind === 'audio') throw new UserError(`${m.what}: is audio, not an image or video`);
  if (m.kind === 'video') return (await videoFrames(m, [frame], p, displaySize))[0];
  const img = await decodeImage(m.bytes ?? m.path!, { what: m.what });
  return { image: pixelsToModelInput(img, p), display: displayCrop(img, displaySize) };
}

/** Throws a clear error when a media file is not of an accepted kind. */
export function expectKind(m: OpenedMedia, kinds: readonly Modality[], role: string): void {
  const article = { audio: 'audio', image: 'an image', video: 'a video' } as const;
  if (!kinds.includes(m.kind))
    throw fileError(
      m.what,
      `is ${article[m.kind]}; ${role} needs ${kinds.map((k) => article[k]).join(' or ')}`,
    );
}
