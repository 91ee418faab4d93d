/**
 * Checkpoints: load a state dict from either format, compare it with a model's keys, save ours.
 *
 * Contract:
 * - `loadStateDict(path)` picks the parser by content (zip signature = torch.save archive,
 *   otherwise a safetensors header), strips a leading `module.` (DataParallel) from every key,
 *   accepts a training checkpoint whose "model" or "state_dict" entry holds the state dict (MAE
 *   checkpoints keep it under "model"), and returns float32 tensors (F16/BF16/F64/I64/I32/U8/BOOL
 *   converted). Bad files give a UserError naming the file and the problem.
 * - `compareKeys` reports missing / unexpected keys and shape mismatches the way PyTorch's
 *   `load_state_dict(strict=False)` does; `formatKeyReport` prints it in PyTorch's words.
 * - `saveCheckpoint(path, tensors, meta)` writes safetensors atomically. Metadata keys (all
 *   values are strings, as the format requires):
 *     "format": "pt"                       (what Python tooling expects)
 *     "cavmae.format_version": "1"
 *     "cavmae.config": JSON of the model config (whatever object the model layer passes)
 *     "cavmae.preprocess": JSON of PreprocessConstants (defaults below, overridable)
 *     plus any `extra` string pairs.
 *   Read them back with `checkpointConfig(metadata)` / `checkpointPreprocess(metadata)`.
 */
import { BufferSource, withFile, type ByteSource } from './bytes.js';
import { toF32Tensors, type F32Tensor, type RawTensor } from './dtypes.js';
import { parsePth } from './pth.js';
import {
  MAX_HEADER_BYTES,
  lazySafetensorsF32,
  parseSafetensors,
  shapeToString,
  writeSafetensors,
  type WritableTensor,
} from './safetensors.js';
import { looksLikeZip } from './zip.js';
import { fileError } from '../util/errors.js';

export const CONFIG_KEY = 'cavmae.config';
export const PREPROCESS_KEY = 'cavmae.preprocess';
export const FORMAT_VERSION_KEY = 'cavmae.format_version';

export interface PreprocessConstants {
  audio: { sampleRate: number; melBins: number; targetLength: number; mean: number; std: number };
  image: { size: number; mean: number[]; std: number[] };
}

/** The reference recipe's constants (docs/reference.md#audio-front-end, #visual-front-end). */
export const DEFAULT_PREPROCESS: PreprocessConstants = {
  audio: { sampleRate: 16000, melBins: 128, targetLength: 1024, mean: -5.081, std: 4.4849 },
  image: { size: 224, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
};

export type CheckpointFormat = 'pth' | 'safetensors';

export interface RawStateDict {
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
  format: CheckpointFormat;
  /** "model" / "state_dict" when a .pth held the state dict inside a training checkpoint. */
  nestedKey?: string;
  /** How many keys lost a leading "module.". */
  strippedModule: number;
}

/** Decides the format from the first bytes; refuses anything that is neither. */
export function detectFormat(src: ByteSource): CheckpointFormat {
  const head = src.read(0, Math.min(9, src.size), 'file signature');
  if (looksLikeZip(head)) return 'pth';
  // The safetensors signature (a plausible header length, then '{') is checked before the
  // legacy-pickle byte: a header length whose low byte is 0x80 is an ordinary safetensors file.
  if (head.length >= 9) {
    const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
    if (n <= BigInt(MAX_HEADER_BYTES) && head[8] === 0x7b /* { */) return 'safetensors';
  }
  if (head.length >= 1 && head[0] === 0x80) return 'pth'; // legacy pickle stream: the .pth parser explains
  throw fileError(src.what, 'not a checkpoint: neither a PyTorch zip archive (.pth) nor a safetensors file');
}

/** Removes a leading "module." from every key (DataParallel checkpoints). */
export function stripModulePrefix<T>(
  tensors: Map<string, T>,
  what: string,
): { tensors: Map<string, T>; stripped: number } {
  const out = new Map<string, T>();
  let stripped = 0;
  for (const [k, v] of tensors) {
    const name = k.startsWith('module.') ? k.slice('module.'.length) : k;
    if (name !== k) stripped++;
    if (out.has(name))
      throw fileError(what, `key "${name}" appears both with and without the "module." prefix`);
    out.set(name, v);
  }
  return { tensors: out, stripped };
}

export function parseStateDictSource(src: ByteSource): RawStateDict {
  const format = detectFormat(src);
  const parsed: { tensors: Map<string, RawTensor>; metadata?: Record<string, string>; nestedKey?: string } =
    format === 'pth' ? parsePth(src) : parseSafetensors(src);
  const s = stripModulePrefix(parsed.tensors, src.what);
  const { metadata = {}, nestedKey } = parsed;
  return { tensors: s.tensors, metadata, format, nestedKey, strippedModule: s.stripped };
}

/** A state dict with every tensor in its stored dtype. */
export function loadRawStateDict(path: string): RawStateDict {
  return withFile(path, parseStateDictSource);
}

/** Same as loadStateDict for bytes in memory (tests, fuzzing). */
export function parseStateDictBytes(bytes: Uint8Array, what: string): RawStateDict {
  return parseStateDictSource(new BufferSource(bytes, what));
}

/** The state dict of a .pth or .safetensors checkpoint as float32, keys without "module.". */
export function loadStateDict(
  path: string,
): Pick<RawStateDict, 'metadata' | 'format'> & { tensors: Map<string, F32Tensor> } {
  const raw = loadRawStateDict(path);
  return { tensors: toF32Tensors(raw.tensors), metadata: raw.metadata, format: raw.format };
}

/**
 * `loadStateDict` for a loader that reads each tensor once, in turn (loadModel): inside `fn`, a
 * safetensors file's tensors are read from the open file when their `data` is accessed (each
 * access reads again, into a buffer valid until the next access: copy it at once; see
 * lazySafetensorsF32), so the file is never held in memory whole; a .pth is loaded as by
 * loadStateDict. The tensors must not be used after `fn` returns.
 */
export function withStateDict<T>(
  path: string,
  fn: (sd: {
    tensors: Map<string, F32Tensor>;
    metadata: Record<string, string>;
    format: CheckpointFormat;
  }) => T,
): T {
  return withFile(path, (src) => {
    if (detectFormat(src) === 'pth') {
      const raw = parseStateDictSource(src);
      return fn({ tensors: toF32Tensors(raw.tensors), metadata: raw.metadata, format: raw.format });
    }
    const st = lazySafetensorsF32(src);
    return fn({
      tensors: stripModulePrefix(st.tensors, path).tensors,
      metadata: st.metadata,
      format: 'safetensors',
    });
  });
}

type ShapeLike = readonly number[] | { readonly shape: readonly number[] };

function shapeOf(v: ShapeLike): readonly number[] {
  return Array.isArray(v) ? (v as readonly number[]) : (v as { shape: readonly number[] }).shape;
}

export interface KeyReport {
  /** Expected by the model, absent from the checkpoint (model order). */
  missing: string[];
  /** In the checkpoint, unknown to the model (checkpoint order). */
  unexpected: string[];
  shapeMismatch: { key: string; expected: number[]; got: number[] }[];
}

/** Compares a model's parameter shapes (expected) with a checkpoint's (got). */
export function compareKeys(
  expected: ReadonlyMap<string, ShapeLike>,
  got: ReadonlyMap<string, ShapeLike>,
): KeyReport {
  const missing: string[] = [];
  const shapeMismatch: KeyReport['shapeMismatch'] = [];
  for (const [k, v] of expected) {
    const g = got.get(k);
    if (g === undefined) {
      missing.push(k);
      continue;
    }
    const a = shapeOf(v);
    const b = shapeOf(g);
    if (a.length !== b.length || a.some((d, i) => d !== b[i]))
      shapeMismatch.push({ key: k, expected: [...a], got: [...b] });
  }
  const unexpected = [...got.keys()].filter((k) => !expected.has(k));
  return { missing, unexpected, shapeMismatch };
}

export function keyReportIsClean(r: KeyReport): boolean {
  return r.missing.length === 0 && r.unexpected.length === 0 && r.shapeMismatch.length === 0;
}

/** PyTorch's wording: `_IncompatibleKeys(missing_keys=[...], unexpected_keys=[...])` and size-mismatch lines. */
export function formatKeyReport(r: KeyReport): string {
  const list = (keys: string[]) => `[${keys.map((k) => `'${k}'`).join(', ')}]`;
  const lines: string[] = [];
  if (r.missing.length === 0 && r.unexpected.length === 0) lines.push('<All keys matched successfully>');
  else
    lines.push(`_IncompatibleKeys(missing_keys=${list(r.missing)}, unexpected_keys=${list(r.unexpected)})`);
  for (const m of r.shapeMismatch) {
    lines.push(
      `size mismatch for ${m.key}: copying a param with shape torch.Size(${shapeToString(m.got)}) from checkpoint, the shape in current model is torch.Size(${shapeToString(m.expected)}).`,
    );
  }
  return lines.join('\n');
}

export interface CheckpointMetadata {
  /** The model config; stored as JSON under "cavmae.config". */
  config?: unknown;
  /** Overrides of DEFAULT_PREPROCESS; stored as JSON under "cavmae.preprocess". */
  preprocess?: {
    audio?: Partial<PreprocessConstants['audio']>;
    image?: Partial<PreprocessConstants['image']>;
  };
  /** Any further string pairs. */
  extra?: Record<string, string>;
}

export function checkpointMetadata(meta: CheckpointMetadata = {}): Record<string, string> {
  const out: Record<string, string> = { format: 'pt', [FORMAT_VERSION_KEY]: '1' };
  if (meta.config !== undefined)
    out[CONFIG_KEY] = typeof meta.config === 'string' ? meta.config : JSON.stringify(meta.config);
  const pre: PreprocessConstants = {
    audio: { ...DEFAULT_PREPROCESS.audio, ...(meta.preprocess?.audio ?? {}) },
    image: { ...DEFAULT_PREPROCESS.image, ...(meta.preprocess?.image ?? {}) },
  };
  out[PREPROCESS_KEY] = JSON.stringify(pre);
  for (const [k, v] of Object.entries(meta.extra ?? {})) out[k] = v;
  return out;
}

/** Writes model weights as safetensors with the config and preprocessing constants (atomic). */
export function saveCheckpoint(
  path: string,
  tensors: ReadonlyMap<string, WritableTensor> | Record<string, WritableTensor>,
  meta: CheckpointMetadata = {},
): void {
  writeSafetensors(path, tensors, checkpointMetadata(meta));
}

function parseJsonField(metadata: Record<string, string>, key: string, what: string): unknown {
  const text = Object.prototype.hasOwnProperty.call(metadata, key) ? metadata[key] : undefined;
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    throw fileError(what, `metadata "${key}" is not valid JSON (${(e as Error).message})`);
  }
}

/** The stored model config (parsed JSON), or undefined when the checkpoint has none. */
export function checkpointConfig(metadata: Record<string, string>, what = 'checkpoint'): unknown {
  return parseJsonField(metadata, CONFIG_KEY, what);
}

/** The stored preprocessing constants, validated, or undefined when absent. */
export function checkpointPreprocess(
  metadata: Record<string, string>,
  what = 'checkpoint',
): PreprocessConstants | undefined {
  const v = parseJsonField(metadata, PREPROCESS_KEY, what) as PreprocessConstants | undefined;
  if (v === undefined) return undefined;
  const num = (x: unknown) => typeof x === 'number' && Number.isFinite(x);
  const triple = (x: unknown) => Array.isArray(x) && x.length === 3 && x.every(num);
  const ok =
    v &&
    typeof v === 'object' &&
    v.audio &&
    v.image &&
    num(v.audio.sampleRate) &&
    num(v.audio.melBins) &&
    num(v.audio.targetLength) &&
    num(v.audio.mean) &&
    num(v.audio.std) &&
    v.audio.std > 0 &&
    num(v.image.size) &&
    triple(v.image.mean) &&
    triple(v.image.std);
  if (!ok) throw fileError(what, `metadata "${PREPROCESS_KEY}" does not hold valid preprocessing constants`);
  return v;
}
