/**
 * safetensors: our native checkpoint and tensor-exchange format.
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON
 * `{"__metadata__": {str: str}, name: {dtype, shape, data_offsets: [begin, end]}}` (offsets
 * relative to the data section), then the raw little-endian tensor bytes.
 *
 * Reader contract (the file is untrusted): N <= 100 MB and 8 + N <= file size before anything
 * is allocated; the JSON parse is guarded; every tensor has a known dtype, a shape of
 * non-negative safe integers whose element count times the item size equals its byte span; the
 * spans, sorted by offset, tile the data section exactly (no gaps, no overlap, nothing past the
 * end), as the reference implementation requires; metadata values are strings. Tensors are
 * returned in data-offset order (= the order the writer laid them out; files from the Python
 * library are sorted by name). Every failure is a UserError "<file>: <problem>".
 *
 * Writer contract: header padded with spaces to a multiple of 8 bytes (as the reference does),
 * tensors laid out by decreasing item size and otherwise in the caller's order, so every tensor
 * is aligned to its item size; written atomically.
 */
import { writeFileAtomic } from './atomic.js';
import { assertLittleEndian, BufferSource, withFile, type ByteSource } from './bytes.js';
import {
  allocTyped,
  dtypeOfArray,
  isDtype,
  ITEM_SIZE,
  toF32Tensors,
  toFloat32,
  type Dtype,
  type F32Tensor,
  type RawTensor,
  type TensorData,
} from './dtypes.js';
import { fileError } from '../util/errors.js';

export const MAX_HEADER_BYTES = 100_000_000;
const MAX_RANK = 64;
// dtypes the format defines that we do not read; named in errors so the message is precise.
const OTHER_SAFETENSORS_DTYPES = new Set([
  'I8',
  'I16',
  'U16',
  'U32',
  'U64',
  'F8_E4M3',
  'F8_E5M2',
  'F8_E8M0',
  'F4',
  'F6_E2M3',
  'F6_E3M2',
  'C64',
]);

export type SafetensorsTensor = RawTensor;

/** A whole file: its tensors in data-offset order and its metadata. */
/** A safetensors file's tensors by name (read whole, or lazily: T) and its metadata. */
export interface SafetensorsContents<T> {
  tensors: Map<string, T>;
  metadata: Record<string, string>;
}
export type SafetensorsFile = SafetensorsContents<SafetensorsTensor>;

export interface SafetensorsEntry {
  name: string;
  dtype: Dtype;
  shape: number[];
  /** Byte offsets relative to the start of the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** Absolute file offset of the data section. */
  dataStart: number;
}

/** Sets a property without ever touching Object.prototype (a key may be "__proto__"). */
function defineKey<T>(obj: Record<string, T>, key: string, value: T): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

export function shapeToString(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Parses and validates the header; reads no tensor data. */
export function readSafetensorsHeader(src: ByteSource): SafetensorsHeader {
  const what = src.what;
  if (src.size < 8)
    throw fileError(
      what,
      `not a safetensors file: ${src.size} bytes is shorter than the 8-byte header length`,
    );
  const lenBytes = src.read(0, 8, 'header length');
  const headerLen = new DataView(lenBytes.buffer).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw fileError(
      what,
      `safetensors header length ${headerLen} exceeds the 100 MB limit (not a safetensors file, or corrupt)`,
    );
  }
  const n = Number(headerLen);
  if (8 + n > src.size)
    throw fileError(
      what,
      `safetensors header length ${n} runs past the end of the ${src.size}-byte file (truncated or not a safetensors file)`,
    );
  if (n < 2) throw fileError(what, `safetensors header length ${n} is too small to hold a JSON object`);
  const raw = src.read(8, n, 'safetensors header');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw fileError(what, 'safetensors header is not valid UTF-8 (not a safetensors file, or corrupt)');
  }
  if (text[0] !== '{')
    throw fileError(what, 'safetensors header does not start with "{" (not a safetensors file, or corrupt)');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw fileError(what, `safetensors header is not valid JSON (${(e as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json))
    throw fileError(what, 'safetensors header is not a JSON object');

  const dataStart = 8 + n;
  const dataLen = src.size - dataStart;
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, info] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (info === null || typeof info !== 'object' || Array.isArray(info))
        throw fileError(what, '__metadata__ is not a JSON object');
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== 'string') throw fileError(what, `__metadata__ value of "${k}" is not a string`);
        defineKey(metadata, k, v);
      }
      continue;
    }
    entries.push(parseEntry(what, name, info, dataLen));
  }

  // The spans must tile the data section exactly, as the reference loader checks.
  const sorted = entries.slice().sort((a, b) => a.begin - b.begin || a.end - b.end);
  let expected = 0;
  for (const e of sorted) {
    if (e.begin !== expected) {
      throw fileError(
        what,
        `tensor "${e.name}" data_offsets [${e.begin}, ${e.end}] ${e.begin < expected ? 'overlap the previous tensor' : 'leave a gap after the previous tensor'} (expected to start at ${expected})`,
      );
    }
    expected = e.end;
  }
  if (expected !== dataLen)
    throw fileError(
      what,
      `the data section holds ${dataLen} bytes but the tensors cover ${expected} (truncated or corrupt)`,
    );
  return { entries: sorted, metadata, dataStart };
}

function parseEntry(what: string, name: string, info: unknown, dataLen: number): SafetensorsEntry {
  const bad = (problem: string) => fileError(what, `tensor "${name}": ${problem}`);
  if (info === null || typeof info !== 'object' || Array.isArray(info))
    throw bad('header entry is not an object');
  const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
  if (!isDtype(dtype)) {
    if (typeof dtype === 'string' && OTHER_SAFETENSORS_DTYPES.has(dtype))
      throw bad(`dtype ${dtype} is not supported (supported: ${Object.keys(ITEM_SIZE).join(', ')})`);
    throw bad(`unknown dtype ${JSON.stringify(dtype)}`);
  }
  if (!Array.isArray(shape) || shape.length > MAX_RANK)
    throw bad(`shape is not an array of at most ${MAX_RANK} dimensions`);
  for (const d of shape)
    if (!Number.isSafeInteger(d) || (d as number) < 0)
      throw bad(`shape ${JSON.stringify(shape)} has an entry that is not a non-negative integer`);
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)
  ) {
    throw bad(`data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`);
  }
  const [begin, end] = offsets as number[];
  if (begin > end) throw bad(`data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataLen)
    throw bad(
      `data_offsets [${begin}, ${end}] run past the end of the ${dataLen}-byte data section (truncated or corrupt)`,
    );
  const dims = (shape as number[]).map((d) => (d === 0 ? 0 : d)); // normalise -0
  const span = end - begin;
  const itemSize = ITEM_SIZE[dtype];
  // Element count, stopping as soon as it exceeds what the span could hold (no overflow games).
  let count = dims.includes(0) ? 0 : 1;
  if (count) {
    for (const d of dims) {
      count *= d;
      if (count * itemSize > span)
        throw bad(
          `shape ${shapeToString(dims)} of ${dtype} needs more than the ${span} bytes its data_offsets give`,
        );
    }
  }
  if (count * itemSize !== span)
    throw bad(
      `shape ${shapeToString(dims)} of ${dtype} needs ${count * itemSize} bytes but its data_offsets give ${span}`,
    );
  return { name, dtype, shape: dims, begin, end };
}

export function parseSafetensors(src: ByteSource): SafetensorsFile {
  assertLittleEndian();
  const header = readSafetensorsHeader(src);
  const tensors = new Map<string, SafetensorsTensor>();
  for (const e of header.entries)
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data: readEntry(src, header, e) });
  return { tensors, metadata: header.metadata };
}

/** One tensor's data, read from the source into `data` (default: a fresh buffer of its dtype). */
function readEntry(
  src: ByteSource,
  header: SafetensorsHeader,
  e: SafetensorsEntry,
  data: TensorData = allocTyped(e.dtype, (e.end - e.begin) / ITEM_SIZE[e.dtype]),
): TensorData {
  src.readInto(
    header.dataStart + e.begin,
    new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    `data of tensor "${e.name}"`,
  );
  return data;
}

/**
 * The tensors of a safetensors source as float32, read lazily: each `data` access reads the
 * tensor from the source (which must stay open), so a loader that copies tensors one at a time
 * holds one of them at a time, not the whole file (CavMae.load of the base model: ~0.76 GB less
 * at the peak). F32 tensors are read into one scratch buffer shared by all accesses (no garbage
 * per tensor): a `data` array is valid only until the next access, copy what you keep. Shapes
 * and the header checks come first, as eager.
 */
export function lazySafetensorsF32(src: ByteSource): SafetensorsContents<F32Tensor> {
  const header = readSafetensorsHeader(src);
  assertLittleEndian();
  const tensors = new Map<string, F32Tensor>();
  let scratch = new Float32Array(0);
  const read = (e: SafetensorsEntry): Float32Array => {
    if (e.dtype !== 'F32') return toFloat32(e.dtype, readEntry(src, header, e));
    const n = (e.end - e.begin) / 4;
    if (scratch.length < n) scratch = new Float32Array(n);
    return readEntry(src, header, e, scratch.subarray(0, n)) as Float32Array;
  };
  for (const e of header.entries)
    tensors.set(e.name, {
      shape: e.shape,
      get data(): Float32Array {
        return read(e);
      },
    });
  return { tensors, metadata: header.metadata };
}

export function readSafetensors(path: string): SafetensorsFile {
  return withFile(path, parseSafetensors);
}

/** Parses a safetensors file already in memory (archive members, tests). */
export function parseSafetensorsBytes(bytes: Uint8Array, what: string): SafetensorsFile {
  return parseSafetensors(new BufferSource(bytes, what));
}

/** Every tensor converted to float32 (F32 data is used as read, without a copy). */
export function readSafetensorsF32(path: string): Map<string, F32Tensor> {
  return toF32Tensors(readSafetensors(path).tensors);
}

export type WriteDtype = Dtype;

export interface WritableTensor {
  dtype?: WriteDtype;
  shape: readonly number[];
  data: ArrayBufferView;
}

/** The file as a list of chunks (8-byte length, padded header, tensor bytes); no data is copied. */
export function encodeSafetensors(
  tensors: Record<string, WritableTensor> | ReadonlyMap<string, WritableTensor>,
  metadata?: Record<string, string>,
  what = 'safetensors output',
): Uint8Array[] {
  assertLittleEndian();
  const list: [string, WritableTensor][] =
    tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const planned = list.map(([name, t], index) => {
    if (name === '__metadata__') throw fileError(what, 'a tensor may not be named __metadata__');
    const dtype = t.dtype ?? dtypeOfArray(t.data);
    if (!dtype || !isDtype(dtype))
      throw new Error(
        `${what}: tensor "${name}": cannot infer the dtype of ${t.data.constructor.name}; pass dtype`,
      );
    for (const d of t.shape)
      if (!Number.isSafeInteger(d) || d < 0)
        throw new Error(`${what}: tensor "${name}": bad shape ${shapeToString(t.shape)}`);
    const bytes = t.shape.reduce((a, b) => a * b, 1) * ITEM_SIZE[dtype];
    if (bytes !== t.data.byteLength)
      throw new Error(
        `${what}: tensor "${name}": shape ${shapeToString(t.shape)} of ${dtype} needs ${bytes} bytes, data has ${t.data.byteLength}`,
      );
    return { name, dtype, shape: [...t.shape], data: t.data, index };
  });
  // Larger items first keeps every tensor aligned to its item size (the header is padded to 8).
  planned.sort((a, b) => ITEM_SIZE[b.dtype] - ITEM_SIZE[a.dtype] || a.index - b.index);

  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string') throw new Error(`${what}: metadata value of "${k}" is not a string`);
    defineKey(header, '__metadata__', metadata);
  }
  let offset = 0;
  for (const t of planned) {
    defineKey(header, t.name, {
      dtype: t.dtype,
      shape: t.shape,
      data_offsets: [offset, offset + t.data.byteLength],
    });
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const jsonBytes = new Uint8Array(Math.ceil(json.byteLength / 8) * 8).fill(0x20); // padded with spaces
  jsonBytes.set(json);
  if (jsonBytes.byteLength > MAX_HEADER_BYTES)
    throw fileError(what, `header would be ${jsonBytes.byteLength} bytes, over the 100 MB limit`);
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(jsonBytes.byteLength), true);
  return [
    len,
    jsonBytes,
    ...planned.map((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)),
  ];
}

/** Writes a safetensors file atomically (temporary file + fsync + rename). */
export function writeSafetensors(
  path: string,
  tensors: Record<string, WritableTensor> | ReadonlyMap<string, WritableTensor>,
  metadata?: Record<string, string>,
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata, path));
}
