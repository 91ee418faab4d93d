/**
 * What kind of media a file or an upload is, judged by its content (magic bytes via
 * `file-type`, then ffprobe for the streams), never by its name or a client's Content-Type.
 */
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { fileTypeFromBuffer } from 'file-type';
import { probeMedia, type MediaInfo } from '../util/ffmpeg.js';
import { fileError } from '../util/errors.js';
import { parseWavHeader } from '../audio/wav.js';
import type { Modality } from './types.js';

/** Bytes read from the start of a file for sniffing (file-type needs at most ~4 KB for our formats). */
export const SNIFF_BYTES = 64 * 1024;

/** Container/codec types we accept, by file-type's extension, and the modality each one means. */
const ACCEPTED = new Map<string, Modality>(
  Object.entries({
    image: ['jpg', 'png', 'webp', 'gif', 'tif', 'avif'],
    audio: ['wav', 'mp3', 'flac', 'ogg', 'opus', 'm4a', 'aac', 'aif'],
    video: ['mp4', 'webm', 'mkv', 'mov', 'avi', 'm4v', 'mpg', '3gp', 'ogv', 'flv'],
  }).flatMap(([modality, exts]) => exts.map((ext) => [ext, modality as Modality])),
);

/**
 * File-name extensions looked at when a folder is walked (content still decides the kind): the
 * accepted types and their other spellings.
 */
export const MEDIA_EXTENSIONS = new Set(
  [...ACCEPTED.keys(), 'jpeg', 'tiff', 'oga', 'aiff', 'mpeg'].map((ext) => `.${ext}`),
);

export interface SniffResult {
  modality: Modality;
  mime: string;
  ext: string;
}

/** The media kind of some leading bytes, or undefined when they are not a type we accept. */
export async function sniffBytes(head: Uint8Array): Promise<SniffResult | undefined> {
  const t = await fileTypeFromBuffer(head.subarray(0, SNIFF_BYTES));
  if (!t) return undefined;
  const modality = ACCEPTED.get(t.ext);
  return modality ? { modality, mime: t.mime, ext: t.ext } : undefined;
}

export function readHead(path: string, n = SNIFF_BYTES): Uint8Array {
  const fd = openSync(path, 'r');
  try {
    const buf = new Uint8Array(n);
    let off = 0;
    while (off < n) {
      const r = readSync(fd, buf, off, n - off, off);
      if (r === 0) break;
      off += r;
    }
    return buf.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

export async function sniffFile(path: string): Promise<SniffResult | undefined> {
  return sniffBytes(readHead(path));
}

export interface MediaFacts extends SniffResult {
  hasAudio: boolean;
  hasVideo: boolean;
  durationSec?: number;
  info?: MediaInfo;
}

/**
 * Sniffs a file and, for audio and video, probes its streams: a "video" container without a
 * video stream is audio; a video without sound has no audio embedding.
 */
export async function detectMedia(path: string, opts: { timeoutMs?: number } = {}): Promise<MediaFacts> {
  const s = await sniffFile(path);
  if (!s) throw fileError(path, 'not a supported image, audio or video file (judged by its content)');
  if (s.modality === 'image') return { ...s, hasAudio: false, hasVideo: false };
  if (s.ext === 'wav') {
    const wav = wavFacts(path);
    if (wav) return { ...s, ...wav };
  }
  const info = await probeMedia(path, { timeoutMs: opts.timeoutMs ?? 30_000 });
  let modality = s.modality;
  if (modality === 'video' && !info.hasVideo) modality = 'audio';
  if (modality === 'audio' && !info.hasAudio) throw fileError(path, 'has no audio stream');
  if (modality === 'video' && !info.hasVideo) throw fileError(path, 'has no video stream');
  return {
    ...s,
    modality,
    hasAudio: info.hasAudio,
    hasVideo: info.hasVideo,
    durationSec: info.durationSec,
    info,
  };
}

/** WAV files up to this size are described from their header, without starting ffprobe. */
const WAV_HEADER_MAX_BYTES = 16 << 20;

/**
 * A WAV we decode ourselves (src/audio/wav.ts) needs no ffprobe: its header says everything
 * (ffprobe costs a process start per file, the largest part of indexing short clips).
 * Undefined when the file is large or its codec is one ffmpeg must decode.
 */
function wavFacts(
  path: string,
): Pick<MediaFacts, 'modality' | 'hasAudio' | 'hasVideo' | 'durationSec'> | undefined {
  if (statSync(path).size > WAV_HEADER_MAX_BYTES) return undefined;
  let h;
  try {
    h = parseWavHeader(readHead(path, WAV_HEADER_MAX_BYTES), path);
  } catch {
    return undefined; // let ffprobe judge (and word the error)
  }
  if (!h.sampleFormat) return undefined;
  if (h.frames === 0) throw fileError(path, 'has no audio samples');
  return { modality: 'audio', hasAudio: true, hasVideo: false, durationSec: h.frames / h.sampleRate };
}
