/**
 * Video frames at the reference's positions, decoded deterministically with ffmpeg.
 *
 * Contract (see docs/vision.md for the reasoning):
 * - CAV-MAE (`extract_video_frame.py`, 10 frames): total = min(CAP_PROP_FRAME_COUNT, int(fps*10)),
 *   frame_idx = int(i*total/10), then OpenCV seeks to frame_idx-1 and reads one frame. After
 *   `set(CAP_PROP_POS_FRAMES, k)` OpenCV's next read returns frame k (k <= 0: frame 0), so the
 *   picture saved as frame_i is decoded frame max(frame_idx-1, 0). `framePositions` returns these
 *   decoded indices (verified bit-exact on the official sample video: frame_5 = frame 61 of 125).
 * - CAV-MAE Sync (16 frames): np.linspace(0, CAP_PROP_FRAME_COUNT-1, 16, dtype=int), read at
 *   exactly those indices (no off-by-one, no 10 s cap).
 * - CAP_PROP_FRAME_COUNT is the container's frame count, or round(duration*fps) when the
 *   container has none (OpenCV's rule); fps is the stream's average frame rate.
 * - Frames are picked by decode order with ffmpeg's `select` filter (exact, unlike OpenCV's
 *   keyframe seeking) and converted to RGB by swscale, as OpenCV does. Each frame then gets
 *   torchvision `Resize(224)` (bilinear, Pillow) + `CenterCrop(224)`, and is saved as a JPEG with
 *   Pillow's defaults, which reproduces the reference's frame files byte for byte.
 */
import { basename, extname, join } from 'node:path';
import { statSync } from 'node:fs';
import { UserError, fileError } from '../util/errors.js';
import { probeMedia, runFfmpeg, runFfprobe, type MediaInfo } from '../util/ffmpeg.js';
import { writeFileAtomic } from '../io/atomic.js';
import { centerCrop, decodeImage, encodeJpeg, imageToTensor, resizeShorter, type RgbImage } from './image.js';

export type FrameScheme = 'cavmae' | 'sync';

/** Frames per clip of each extractor. */
export const FRAME_COUNTS: Record<FrameScheme, number> = { cavmae: 10, sync: 16 };

/** 16 frames means the CAV-MAE Sync extractor; any other count follows the CAV-MAE one. */
export function defaultScheme(count: number): FrameScheme {
  return count === FRAME_COUNTS.sync ? 'sync' : 'cavmae';
}

/**
 * The reference extractor's `frame_idx` values (before its off-by-one seek): for CAV-MAE
 * int(i*total/count) with total = min(totalFrames, int(fps*10)); for Sync the linspace indices.
 */
export function referenceFrameIndices(
  totalFrames: number,
  fps: number,
  count = 10,
  scheme = defaultScheme(count),
): number[] {
  const out: number[] = [];
  if (scheme === 'sync') {
    // np.linspace(0, stop, num, dtype=int): i*(stop/(num-1)) in float64, last element exactly stop, truncated.
    const stop = totalFrames - 1;
    const step = count > 1 ? stop / (count - 1) : 0;
    for (let i = 0; i < count; i++) out.push(Math.trunc(i === count - 1 && count > 1 ? stop : i * step));
    return out;
  }
  const total = Math.min(Math.trunc(totalFrames), Math.trunc(fps * 10));
  for (let i = 0; i < count; i++) out.push(Math.trunc(i * (total / count)));
  return out;
}

/**
 * The decoded frame index (0-based, in presentation order) that the reference saves as
 * frame_<i>, i = 0..count-1. CAV-MAE: max(frame_idx - 1, 0); Sync: the linspace index.
 */
export function framePositions(
  totalFrames: number,
  fps: number,
  count = 10,
  scheme = defaultScheme(count),
): number[] {
  const idx = referenceFrameIndices(totalFrames, fps, count, scheme);
  return scheme === 'sync' ? idx : idx.map((k) => Math.max(k - 1, 0));
}

/** OpenCV's CAP_PROP_FRAME_COUNT: the container's count, else floor(duration*fps + 0.5). */
export function containerFrameCount(info: MediaInfo): number | undefined {
  if (info.nbFrames !== undefined && info.nbFrames > 0) return Math.trunc(info.nbFrames);
  if (info.durationSec !== undefined && info.fps !== undefined)
    return Math.floor(info.durationSec * info.fps + 0.5);
  return undefined;
}

export interface ExtractOptions {
  /** Frames per clip: 10 (CAV-MAE) or 16 (CAV-MAE Sync). */
  count?: number;
  scheme?: FrameScheme;
  /** Resize(size) + CenterCrop(size) as the extractor does; false returns full-size frames. */
  size?: number | false;
  /** Kill ffmpeg after this long (default 120 s). */
  timeoutMs?: number;
  /** Extract only these frame numbers i (0..count-1); default all. */
  only?: number[];
}

export interface ExtractedFrames {
  /** In the order of `only` sorted ascending (default: frame 0..count-1). */
  frames: RgbImage[];
  /** Decoded frame index of each returned frame. */
  positions: number[];
  totalFrames: number;
  fps: number;
}

const FRAME_LIMIT_BYTES = 1 << 30;

/** Splits ffmpeg's `image2pipe` PPM (P6, maxval 255) stream into frames. */
export function parsePpmStream(buf: Uint8Array, what: string): RgbImage[] {
  const frames: RgbImage[] = [];
  let pos = 0;
  const readToken = (): string => {
    // Skip whitespace and comments, then read one token.
    for (;;) {
      while (pos < buf.length && /\s/.test(String.fromCharCode(buf[pos]))) pos++;
      if (buf[pos] !== 0x23) break;
      while (pos < buf.length && buf[pos] !== 0x0a) pos++;
    }
    const start = pos;
    while (pos < buf.length && pos - start < 16 && !/\s/.test(String.fromCharCode(buf[pos]))) pos++;
    return String.fromCharCode(...buf.subarray(start, pos));
  };
  while (pos < buf.length) {
    const magic = readToken();
    if (magic === '' && pos >= buf.length) break;
    const w = Number(readToken());
    const h = Number(readToken());
    const maxval = Number(readToken());
    if (magic !== 'P6' || !(w > 0 && h > 0 && Number.isInteger(w) && Number.isInteger(h)) || maxval !== 255) {
      throw fileError(what, 'ffmpeg returned malformed frame data');
    }
    pos++; // the single whitespace byte after maxval
    const n = w * h * 3;
    if (pos + n > buf.length) throw fileError(what, 'ffmpeg returned a truncated frame');
    frames.push({ width: w, height: h, data: buf.slice(pos, pos + n) });
    pos += n;
  }
  return frames;
}

async function decodeFramesAt(
  videoPath: string,
  wanted: number[],
  timeoutMs: number,
): Promise<Map<number, RgbImage>> {
  const unique = [...new Set(wanted)].sort((a, b) => a - b);
  // select counts frames in decode output order (n = 0, 1, ...); passthrough keeps ffmpeg from
  // duplicating or dropping frames; -frames:v stops decoding after the last wanted frame.
  const expr = unique.map((k) => `eq(n\\,${k})`).join('+');
  const { stdout } = await runFfmpeg(
    [
      '-i',
      videoPath,
      '-map',
      '0:v:0',
      '-vf',
      `select='${expr}'`,
      '-fps_mode',
      'passthrough',
      '-frames:v',
      String(unique.length),
      '-f',
      'image2pipe',
      '-c:v',
      'ppm',
      '-pix_fmt',
      'rgb24',
      'pipe:1',
    ],
    { timeoutMs, maxBytes: FRAME_LIMIT_BYTES, what: videoPath },
  );
  const frames = parsePpmStream(stdout, videoPath);
  const out = new Map<number, RgbImage>();
  frames.forEach((f, i) => out.set(unique[i], f));
  return out;
}

/** Decodes every frame to count them (only needed when the container's count is too high). */
async function countDecodedFrames(videoPath: string, timeoutMs: number): Promise<number> {
  const { stdout } = await runFfprobe(
    [
      '-count_frames',
      '-select_streams',
      'v:0',
      '-show_entries',
      'stream=nb_read_frames',
      '-of',
      'csv=p=0',
      videoPath,
    ],
    { timeoutMs, maxBytes: 1 << 16, what: videoPath },
  );
  const n = parseInt(stdout.toString().trim(), 10);
  return Number.isFinite(n) ? n : 0;
}

function checkVideoFile(videoPath: string): void {
  let st;
  try {
    st = statSync(videoPath);
  } catch {
    throw fileError(videoPath, 'file not found');
  }
  if (st.isDirectory()) throw fileError(videoPath, 'is a directory, not a video');
  if (!st.isFile()) throw fileError(videoPath, 'not a regular file');
  if (st.size === 0) throw fileError(videoPath, 'file is empty');
}

/** ffmpeg repeats the file name in its own message ("<path>: ffprobe failed: <path>: Invalid data"); say it once. */
export function tidyToolError(e: unknown, path: string): unknown {
  if (!(e instanceof UserError)) return e;
  const repeated = `failed: ${path}: `;
  return e.message.includes(repeated)
    ? new UserError(e.message.replace(repeated, 'failed: '), e.exitCode)
    : e;
}

/**
 * The frames the reference extractor would save for this video, in memory. With the default
 * `size` (224) each frame is the 224x224 picture handed to the JPEG encoder.
 */
export async function extractFrameSet(
  videoPath: string,
  opts: ExtractOptions = {},
): Promise<ExtractedFrames> {
  try {
    return await extractFrameSetUnchecked(videoPath, opts);
  } catch (e) {
    throw tidyToolError(e, videoPath);
  }
}

async function extractFrameSetUnchecked(videoPath: string, opts: ExtractOptions): Promise<ExtractedFrames> {
  const count = opts.count ?? FRAME_COUNTS.cavmae;
  const scheme = opts.scheme ?? defaultScheme(count);
  const size = opts.size ?? 224;
  const timeoutMs = opts.timeoutMs ?? 120_000;
  if (!(Number.isInteger(count) && count > 0 && count <= 1000))
    throw fileError(videoPath, `invalid frame count ${count}`);
  checkVideoFile(videoPath);
  const info = await probeMedia(videoPath, { timeoutMs: Math.min(timeoutMs, 30_000) });
  if (!info.hasVideo) throw fileError(videoPath, 'no video stream');
  const fps = info.fps;
  if (!(fps !== undefined && fps > 0 && Number.isFinite(fps)))
    throw fileError(videoPath, 'cannot determine the frame rate');
  let total = containerFrameCount(info);
  if (total === undefined || total <= 0) total = await countDecodedFrames(videoPath, timeoutMs);
  if (total <= 0) throw fileError(videoPath, 'video has no frames');

  const pick = opts.only ?? [...Array(count).keys()];
  if (pick.some((i) => !(Number.isInteger(i) && i >= 0 && i < count)))
    throw fileError(videoPath, `frame numbers must be in 0..${count - 1}`);
  // All positions are decoded even when only some are wanted: whether the container's count is
  // trustworthy shows only at the last one, and every caller must see the same frames.
  let positions = framePositions(total, fps, count, scheme);
  let decoded = await decodeFramesAt(videoPath, positions, timeoutMs);
  if (positions.some((k) => !decoded.has(k))) {
    // The container over-reports its length (OpenCV would then fail on this video). Use the
    // real count so that the clip still yields frames at the reference's relative positions.
    const actual = await countDecodedFrames(videoPath, timeoutMs);
    if (actual <= 0) throw fileError(videoPath, 'no decodable video frames');
    total = Math.min(total, actual);
    positions = framePositions(total, fps, count, scheme);
    decoded = await decodeFramesAt(videoPath, positions, timeoutMs);
    if (positions.some((k) => !decoded.has(k)))
      throw fileError(videoPath, `could not decode frames ${positions.join(',')}`);
  }
  positions = positions.filter((_, i) => pick.includes(i));
  const frames = positions.map((k) => {
    const f = decoded.get(k)!;
    return size === false ? f : centerCrop(resizeShorter(f, size, 'bilinear'), size);
  });
  return { frames, positions, totalFrames: total, fps };
}

/** In-memory frame extraction: the 224x224 RGB frames the reference would save. */
export async function extractFrames(videoPath: string, opts: ExtractOptions = {}): Promise<RgbImage[]> {
  return (await extractFrameSet(videoPath, opts)).frames;
}

/** The reference's `video_id`: the file name without its last extension. */
export function videoIdOf(videoPath: string): string {
  const name = basename(videoPath);
  const ext = extname(name);
  return ext ? name.slice(0, -ext.length) : name;
}

/** Path of frame i in the reference's layout. */
export function framePath(videoPathDir: string, videoId: string, i: number): string {
  return join(videoPathDir, `frame_${i}`, `${videoId}.jpg`);
}

/**
 * Extracts and writes `<outDir>/frame_<i>/<videoId>.jpg` for i = 0..count-1 (each atomically).
 * Returns the written paths.
 */
export async function writeFrames(
  videoPath: string,
  outDir: string,
  opts: ExtractOptions & { videoId?: string } = {},
): Promise<string[]> {
  const videoId = opts.videoId ?? videoIdOf(videoPath);
  const { frames } = await extractFrameSet(videoPath, { ...opts, size: opts.size ?? 224 });
  const paths: string[] = [];
  for (let i = 0; i < frames.length; i++) {
    const p = framePath(outDir, videoId, i);
    writeFileAtomic(p, await encodeJpeg(frames[i]));
    paths.push(p);
  }
  return paths;
}

/**
 * One frame of a video as the model input [3,224,224], exactly as the reference pipeline would
 * produce it: extract at the reference position, JPEG-encode as the extractor saves it, decode,
 * then the dataset's eval transform. `jpeg: false` skips the JPEG round trip.
 */
export async function loadVideoFrameTensor(
  videoPath: string,
  frameIndex = 5,
  count = 10,
  opts: { jpeg?: boolean; scheme?: FrameScheme; timeoutMs?: number } = {},
): Promise<Float32Array> {
  if (!(Number.isInteger(frameIndex) && frameIndex >= 0 && frameIndex < count)) {
    throw fileError(videoPath, `frame index ${frameIndex} is outside 0..${count - 1}`);
  }
  const { frames } = await extractFrameSet(videoPath, {
    count,
    scheme: opts.scheme,
    timeoutMs: opts.timeoutMs,
    only: [frameIndex],
  });
  let frame = frames[0];
  if (opts.jpeg ?? true) frame = await decodeImage(await encodeJpeg(frame), { what: videoPath });
  return imageToTensor(frame);
}
