/**
 * PyTorch `.pth` export: a state dict in the zip format `torch.save` writes (since 1.6), the
 * mirror of the reader in ./pth.ts.
 *
 * Archive layout, as torch 1.13 writes it (torch 2.x reads it unchanged):
 *   <prefix>/data.pkl     pickle protocol 2: collections.OrderedDict() filled by SETITEMS with
 *                         name -> torch._utils._rebuild_tensor_v2(storage, 0, size, stride,
 *                         False, OrderedDict()), storage = persistent id
 *                         ('storage', torch.FloatStorage, '<n>', 'cpu', numel)
 *   <prefix>/byteorder    "little" (torch >= 2.1 writes it; older versions ignore it)
 *   <prefix>/data/<n>     raw little-endian storage bytes, one record per tensor, 64-byte aligned
 *   <prefix>/version      "3\n"
 * Keys keep the caller's order (an OrderedDict: `load_state_dict` does not care, but people
 * diffing key lists do). Tensors are contiguous, each with its own storage.
 */
import { basename, extname } from 'node:path';
import { writeFileAtomic } from './atomic.js';
import { assertLittleEndian } from './bytes.js';
import type { Dtype, TensorData } from './dtypes.js';
import { PickleWriter } from './pickle-write.js';
import { STORAGE_DTYPES } from './pth.js';
import { encodeZip, type ZipMember } from './zip-write.js';
import { UserError } from '../util/errors.js';

/** Our dtype -> torch storage class (the reader's table, reversed). */
const STORAGE_CLASS = Object.fromEntries(
  Object.entries(STORAGE_DTYPES).flatMap(([cls, dtype]) => (dtype ? [[dtype, cls]] : [])),
) as Record<Dtype, string>;

export interface PthTensorInput {
  dtype: Dtype;
  shape: readonly number[];
  data: TensorData;
}

/** Row-major strides of a shape (what a contiguous torch tensor reports). */
export function contiguousStrides(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    out[i] = s;
    s *= shape[i];
  }
  return out;
}

/** The archive's inner folder: the file's stem, as torch names it, restricted to safe characters. */
export function pthArchiveName(path: string): string {
  const stem = basename(path, extname(path)).replace(/[^A-Za-z0-9_.-]/g, '_');
  return stem.length > 0 && stem.length <= 100 ? stem : 'archive';
}

/** Encodes a state dict as torch.save zip chunks. */
export function encodePth(
  tensors: Iterable<[string, PthTensorInput]>,
  opts: { prefix?: string; what?: string } = {},
): Uint8Array[] {
  assertLittleEndian();
  const prefix = opts.prefix ?? 'archive';
  const what = opts.what ?? 'state dict';
  const p = new PickleWriter().proto(2);
  p.global('collections', 'OrderedDict').emptyTuple().reduce();
  p.mark();
  const records: ZipMember[] = [];
  let key = 0;
  for (const [name, t] of tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.length !== numel)
      throw new UserError(
        `${what}: tensor ${name} has ${t.data.length} values for shape [${t.shape.join(', ')}]`,
      );
    const storageKey = String(key++);
    p.string(name);
    p.global('torch._utils', '_rebuild_tensor_v2');
    p.mark(); // the call's arguments
    p.mark()
      .string('storage')
      .global('torch', STORAGE_CLASS[t.dtype])
      .string(storageKey)
      .string('cpu')
      .int(numel)
      .tuple();
    p.persistentId();
    p.int(0); // storage offset
    p.intTuple(t.shape);
    p.intTuple(contiguousStrides(t.shape));
    p.bool(false); // requires_grad
    p.global('collections', 'OrderedDict').emptyTuple().reduce(); // backward hooks
    p.tuple();
    p.reduce();
    records.push({
      name: `${prefix}/data/${storageKey}`,
      data: new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength),
    });
  }
  p.setItems();
  p.stop();
  const enc = new TextEncoder();
  return encodeZip(
    [
      { name: `${prefix}/data.pkl`, data: p.finish() },
      { name: `${prefix}/byteorder`, data: enc.encode('little') },
      ...records,
      { name: `${prefix}/version`, data: enc.encode('3\n') },
    ],
    what,
  );
}

/** Writes a state dict as a torch.save zip file, atomically. */
export function writePth(path: string, tensors: Iterable<[string, PthTensorInput]>): void {
  writeFileAtomic(path, encodePth(tensors, { prefix: pthArchiveName(path), what: path }));
}
