/**
 * Multipart uploads, received into a per-request temporary folder with every size bounded
 * while streaming (busboy), then judged by content: magic bytes for the kind, ffprobe for the
 * streams and the duration. Names and client Content-Types are never trusted.
 */
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import busboy from 'busboy';
import { sniffFile } from '../index/media.js';
import { probeMedia } from '../util/ffmpeg.js';
import type { MediaKind } from './engine.js';
import { HttpError } from './http.js';
import { WorkQueue } from './queue.js';

export interface UploadLimits {
  /** Largest file in bytes. */
  maxFileBytes: number;
  /** Most files per request. */
  maxFiles: number;
  /** Longest audio or video in seconds. */
  maxDurationSec: number;
}

export interface UploadedFile {
  /** Form field name: file, audio, image or video. */
  field: string;
  /** Client file name, sanitised (display only). */
  name: string;
  path: string;
  size: number;
  kind: MediaKind;
  mime: string;
  hasAudio: boolean;
  hasVideo: boolean;
  durationSec?: number;
}

/** The most a request may send: every file at its limit, plus 1 MB of form and headers. */
export function maxRequestBytes(limits: UploadLimits): number {
  return limits.maxFileBytes * limits.maxFiles + (1 << 20);
}

export const FILE_FIELDS = ['file', 'audio', 'image', 'video'] as const;

/** At most this many ffprobe processes at once, whatever the number of requests (no one refused). */
const probeGate = new WorkQueue(4, Number.MAX_SAFE_INTEGER);

function cleanName(name: string | undefined): string {
  const base = (name ?? '').split(/[\\/]/).pop() ?? '';
  // Control characters and quotes out; bounded length (shown in the page and in messages).
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is removed
  const s = base.replace(/[\u0000-\u001f\u007f"<>]/g, '').slice(0, 120);
  return s || 'upload';
}

/** Receives the multipart body of `req` into `dir`; rejects with an HttpError on any problem. */
export function receiveMultipart(
  req: IncomingMessage,
  dir: string,
  limits: UploadLimits,
): Promise<{
  files: Omit<UploadedFile, 'kind' | 'mime' | 'hasAudio' | 'hasVideo'>[];
  fields: Record<string, string>;
}> {
  return new Promise((resolve, reject) => {
    const ctype = req.headers['content-type'] ?? '';
    if (!/^multipart\/form-data/i.test(ctype)) {
      reject(
        new HttpError(
          415,
          'unsupported_content_type',
          `expected multipart/form-data, got ${JSON.stringify(ctype.slice(0, 60)) || 'no Content-Type'}`,
        ),
      );
      return;
    }
    let bb: busboy.Busboy;
    try {
      bb = busboy({
        headers: req.headers,
        limits: {
          fileSize: limits.maxFileBytes,
          files: limits.maxFiles,
          fields: 8,
          fieldSize: 1024,
          parts: limits.maxFiles + 8,
          headerPairs: 32,
        },
      });
    } catch (e) {
      reject(new HttpError(400, 'malformed_multipart', `cannot parse the upload: ${(e as Error).message}`));
      return;
    }
    mkdirSync(dir, { recursive: true });
    const files: { field: string; name: string; path: string; size: number }[] = [];
    const fields: Record<string, string> = {};
    const writes: Promise<void>[] = [];
    let failure: HttpError | undefined;
    let settled = false;
    const fail = (e: HttpError) => {
      failure ??= e;
      if (settled) return;
      settled = true;
      req.unpipe(bb);
      // Drain, so that the client finishes sending and then reads the error, but never more
      // than the limits allow in total: past that the connection is cut.
      let drained = 0;
      const cap = maxRequestBytes(limits);
      req.on('data', (c: Buffer) => {
        drained += c.length;
        if (drained > cap) req.socket.destroy();
      });
      req.resume();
      reject(failure);
    };
    bb.on('file', (field, stream, info) => {
      if (failure) {
        stream.resume();
        return;
      }
      if (!(FILE_FIELDS as readonly string[]).includes(field)) {
        stream.resume();
        fail(
          new HttpError(
            400,
            'unknown_field',
            `unknown file field ${JSON.stringify(field.slice(0, 40))} (use ${FILE_FIELDS.join(', ')})`,
          ),
        );
        return;
      }
      const path = join(dir, `upload-${files.length}`);
      const rec = { field, name: cleanName(info.filename), path, size: 0 };
      files.push(rec);
      const out = createWriteStream(path);
      stream.on('error', (e: Error) => {
        fail(new HttpError(400, 'malformed_multipart', `cannot parse the upload: ${e.message}`));
        out.destroy();
      });
      stream.on('data', (c: Buffer) => (rec.size += c.length));
      stream.on('limit', () => {
        fail(
          new HttpError(
            413,
            'size_limit',
            `${rec.name}: file is larger than the ${Math.round(limits.maxFileBytes / 1048576)} MB limit`,
          ),
        );
        stream.unpipe(out);
        stream.resume();
        out.destroy();
      });
      writes.push(
        new Promise<void>((ok) => {
          out.on('close', () => ok());
          out.on('error', (e) => {
            fail(new HttpError(500, 'storage_error', `cannot store the upload: ${e.message}`));
            ok();
          });
        }),
      );
      stream.pipe(out);
    });
    bb.on('field', (name, value, info) => {
      if (info.valueTruncated)
        fail(
          new HttpError(400, 'field_too_long', `form field ${JSON.stringify(name.slice(0, 40))} is too long`),
        );
      else fields[name] = value;
    });
    bb.on('filesLimit', () =>
      fail(new HttpError(413, 'too_many_files', `at most ${limits.maxFiles} files per request`)),
    );
    bb.on('fieldsLimit', () => fail(new HttpError(400, 'too_many_fields', 'too many form fields')));
    bb.on('partsLimit', () => fail(new HttpError(400, 'too_many_parts', 'too many form parts')));
    bb.on('error', (e: Error) =>
      fail(new HttpError(400, 'malformed_multipart', `cannot parse the upload: ${e.message}`)),
    );
    bb.on('close', () => {
      Promise.all(writes).then(
        () => {
          if (failure || settled) return;
          settled = true;
          resolve({ files, fields });
        },
        () => {},
      );
    });
    req.on('aborted', () => fail(new HttpError(400, 'aborted', 'the upload was interrupted')));
    req.on('error', () => fail(new HttpError(400, 'aborted', 'the upload was interrupted')));
    req.pipe(bb);
  });
}

/** Sniffs and probes one received file. */
export async function inspectUpload(
  f: { field: string; name: string; path: string; size: number },
  limits: UploadLimits,
): Promise<UploadedFile> {
  if (f.size === 0) throw new HttpError(400, 'empty_file', `${f.name}: the file is empty`);
  const s = await sniffFile(f.path);
  if (!s)
    throw new HttpError(
      415,
      'unsupported_media',
      `${f.name}: not a supported image, audio or video file (judged by its content)`,
    );
  if (s.modality === 'image') return { ...f, kind: 'image', mime: s.mime, hasAudio: false, hasVideo: false };
  let info;
  try {
    info = await probeGate.admit().run(() => probeMedia(f.path, { timeoutMs: 20_000, what: f.name }));
  } catch (e) {
    throw new HttpError(
      422,
      'undecodable',
      `${f.name}: cannot read the media (${(e as Error).message.replace(f.path, f.name)})`,
    );
  }
  let kind: MediaKind = s.modality;
  if (kind === 'video' && !info.hasVideo) kind = 'audio';
  if (kind === 'audio' && !info.hasAudio)
    throw new HttpError(422, 'undecodable', `${f.name}: no audio stream`);
  const d = info.durationSec;
  if (d !== undefined && d > limits.maxDurationSec) {
    throw new HttpError(
      413,
      'duration_limit',
      `${f.name}: ${d.toFixed(1)} s is longer than the ${limits.maxDurationSec} s limit`,
    );
  }
  return {
    ...f,
    kind,
    mime: s.mime,
    hasAudio: info.hasAudio,
    hasVideo: info.hasVideo,
    ...(d !== undefined ? { durationSec: d } : {}),
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
