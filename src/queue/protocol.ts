/**
 * What travels through Redis: a job is a batch of files to embed with one model; its result is
 * each file's embeddings (float32 bits, base64), kind and thumbnail, or why it failed.
 *
 * Contract:
 * - Paths and file facts (mtime, size) are the submitter's: the index records what the
 *   submitting machine sees; a worker maps paths to its own (paths.ts) and refuses a file whose
 *   size differs from the submitter's.
 * - A job names its model by id (sha256 of config + weights): a worker holding another model
 *   refuses the job (it goes back to the queue untouched).
 * - Results are validated by the writer before anything is committed (sizes, widths, which
 *   files): Redis content is input, not trusted memory.
 */
import { UserError } from '../util/errors.js';
import type { MediaEmbedding, Modality } from '../index/types.js';
import { MODALITIES } from '../index/types.js';

export const JOB_NAME = 'embed';
export const PROTOCOL_VERSION = 1;
/** Largest thumbnail a result may carry (ours are ~10-30 KB). */
const MAX_THUMB_BYTES = 1 << 20;

export interface JobFile {
  /** Absolute path on the submitting machine. */
  path: string;
  mtimeMs: number;
  size: number;
}

export interface EmbedJobData {
  v: typeof PROTOCOL_VERSION;
  /** Run key: the same index and model give the same key, so a re-run finds its jobs. */
  run: string;
  /** Index location (for messages). */
  index: string;
  model: { id: string; name: string; dim: number; path: string };
  thumbnails: boolean;
  files: JobFile[];
}

export type ResultItem =
  | {
      ok: true;
      modality: Modality;
      audio?: string;
      visual?: string;
      thumb?: { ext: 'jpg' | 'png'; data: string };
    }
  | { ok: false; error: string };

export interface EmbedJobResult {
  v: typeof PROTOCOL_VERSION;
  /** host/pid of the worker. */
  worker: string;
  model: string;
  /** One per job file, same order. */
  items: ResultItem[];
  /** Wall time of the job inside the worker (ms). */
  ms: number;
}

export function encodeVector(v: Float32Array): string {
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
}

export function decodeVector(s: unknown, dim: number, what: string): Float32Array {
  if (typeof s !== 'string') throw new UserError(`${what}: embedding is not a base64 string`);
  const b = Buffer.from(s, 'base64');
  if (b.byteLength !== dim * 4)
    throw new UserError(`${what}: embedding has ${b.byteLength / 4} values, the index holds ${dim}`);
  const out = new Float32Array(dim);
  new Uint8Array(out.buffer).set(b);
  return out;
}

export function validateJobData(d: unknown): EmbedJobData {
  const j = d as Partial<EmbedJobData>;
  const bad = (why: string): never => {
    throw new UserError(`malformed job (${why})`);
  };
  if (!j || typeof j !== 'object') bad('not an object');
  if (j.v !== PROTOCOL_VERSION)
    bad(`protocol version ${String(j.v)}, this worker speaks ${PROTOCOL_VERSION}`);
  if (typeof j.run !== 'string' || typeof j.index !== 'string') bad('run');
  const m = j.model;
  if (
    !m ||
    typeof m.id !== 'string' ||
    typeof m.name !== 'string' ||
    typeof m.path !== 'string' ||
    !Number.isInteger(m.dim)
  )
    bad('model');
  if (!Array.isArray(j.files) || j.files.length === 0 || j.files.length > 100_000) bad('files');
  for (const f of j.files!) {
    if (
      !f ||
      typeof f.path !== 'string' ||
      !f.path.startsWith('/') ||
      typeof f.mtimeMs !== 'number' ||
      typeof f.size !== 'number'
    )
      bad('file entry');
  }
  return j as EmbedJobData;
}

export interface DecodedItem {
  file: JobFile;
  ok: boolean;
  error?: string;
  modality?: Modality;
  embedding?: MediaEmbedding;
  thumbnail?: { bytes: Uint8Array; ext: 'jpg' | 'png' };
}

/** Checks a job's result against its data and decodes the vectors and thumbnails. */
export function decodeJobResult(
  data: EmbedJobData,
  r: unknown,
  what: string,
): { result: EmbedJobResult; items: DecodedItem[] } {
  const res = r as Partial<EmbedJobResult>;
  if (!res || typeof res !== 'object' || res.v !== PROTOCOL_VERSION || !Array.isArray(res.items))
    throw new UserError(`${what}: malformed result`);
  if (res.items.length !== data.files.length)
    throw new UserError(`${what}: ${res.items.length} results for ${data.files.length} files`);
  if (typeof res.worker !== 'string' || typeof res.model !== 'string')
    throw new UserError(`${what}: result does not name its worker and model`);
  const items = res.items.map((it, i): DecodedItem => {
    const file = data.files[i];
    const w = `${what}: ${file.path}`;
    if (!it || typeof it !== 'object') throw new UserError(`${w}: malformed result item`);
    if (!it.ok)
      return { file, ok: false, error: typeof it.error === 'string' ? it.error.slice(0, 2000) : 'failed' };
    if (!MODALITIES.includes(it.modality)) throw new UserError(`${w}: unknown modality`);
    const embedding: MediaEmbedding = {
      ...(it.audio !== undefined ? { audio: decodeVector(it.audio, data.model.dim, w) } : {}),
      ...(it.visual !== undefined ? { visual: decodeVector(it.visual, data.model.dim, w) } : {}),
    };
    let thumbnail: DecodedItem['thumbnail'];
    if (it.thumb) {
      const bytes = Buffer.from(String(it.thumb.data), 'base64');
      if ((it.thumb.ext !== 'jpg' && it.thumb.ext !== 'png') || bytes.byteLength > MAX_THUMB_BYTES)
        throw new UserError(`${w}: bad thumbnail`);
      thumbnail = { bytes, ext: it.thumb.ext };
    }
    return { file, ok: true, modality: it.modality, embedding, ...(thumbnail ? { thumbnail } : {}) };
  });
  return { result: res as EmbedJobResult, items };
}
