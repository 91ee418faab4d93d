/**
 * Test-only writers for hand-made (often hostile) pickles, zip archives and .pth files.
 * They emit bytes the way Python's pickle (protocol 2) and torch.save do, so a test can change
 * exactly one thing (a global, an offset, a size) and check the reader's answer.
 */
import { crc32, deflateRawSync } from 'node:zlib';

export class PickleWriter {
  private out: number[] = [];
  private memo = 0;

  private u32(n: number): this {
    this.out.push(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
    return this;
  }
  raw(...bytes: number[]): this {
    for (const b of bytes) this.out.push(b);
    return this;
  }
  repeat(byte: number, n: number): this {
    for (let i = 0; i < n; i++) this.out.push(byte);
    return this;
  }
  proto(n = 2): this {
    return this.raw(0x80, n);
  }
  global(module: string, name: string): this {
    this.raw(0x63, ...Buffer.from(`${module}\n${name}\n`, 'latin1'));
    return this;
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.raw(0x58)
      .u32(b.length)
      .raw(...b);
  }
  int(n: number): this {
    if (n >= 0 && n < 256) return this.raw(0x4b, n);
    if (n >= 0 && n < 65536) return this.raw(0x4d, n & 0xff, n >> 8);
    if (n >= -(2 ** 31) && n < 2 ** 31) return this.raw(0x4a).u32(n >>> 0);
    // LONG1, little-endian two's complement
    let v = BigInt(n);
    const bytes: number[] = [];
    for (let i = 0; i < 8; i++) {
      bytes.push(Number(v & 0xffn));
      v >>= 8n;
    }
    return this.raw(0x8a, 8, ...bytes);
  }
  mark(): this {
    return this.raw(0x28);
  }
  tuple(): this {
    return this.raw(0x74);
  }
  emptyTuple(): this {
    return this.raw(0x29);
  }
  emptyDict(): this {
    return this.raw(0x7d);
  }
  setitems(): this {
    return this.raw(0x75);
  }
  reduce(): this {
    return this.raw(0x52);
  }
  persid(): this {
    return this.raw(0x51);
  }
  bool(b: boolean): this {
    return this.raw(b ? 0x88 : 0x89);
  }
  put(): this {
    return this.raw(0x72).u32(this.memo++);
  }
  stop(): this {
    return this.raw(0x2e);
  }
  intTuple(items: number[]): this {
    this.mark();
    for (const i of items) this.int(i);
    return this.tuple();
  }
  bytes(): Uint8Array {
    return Uint8Array.from(this.out);
  }
}

export interface FakeTensor {
  storageType?: string; // e.g. FloatStorage
  key: string;
  numel: number; // storage elements
  offset?: number;
  size: number[];
  stride?: number[];
  data: Uint8Array; // storage record
}

function contiguousStride(size: number[]): number[] {
  const s = new Array<number>(size.length);
  let acc = 1;
  for (let i = size.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= size[i];
  }
  return s;
}

/** The data.pkl torch.save writes for an OrderedDict of tensors. */
export function stateDictPickle(
  tensors: Record<string, FakeTensor>,
  opts: { rebuild?: [string, string] } = {},
): Uint8Array {
  const w = new PickleWriter().proto(2).global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  const [rm, rn] = opts.rebuild ?? ['torch._utils', '_rebuild_tensor_v2'];
  for (const [name, t] of Object.entries(tensors)) {
    w.str(name).global(rm, rn).mark();
    w.mark()
      .str('storage')
      .global('torch', t.storageType ?? 'FloatStorage')
      .str(t.key)
      .str('cpu')
      .int(t.numel)
      .tuple()
      .persid();
    w.int(t.offset ?? 0)
      .intTuple(t.size)
      .intTuple(t.stride ?? contiguousStride(t.size))
      .bool(false);
    w.global('collections', 'OrderedDict').emptyTuple().reduce();
    w.tuple().reduce();
  }
  return w.setitems().stop().bytes();
}

/** A zip laid out like torch.save's: stored entries (deflated when asked), no zip64. */
export function makeZip(entries: { name: string; data: Uint8Array; deflate?: boolean }[]): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name, 'utf8');
    const crc = crc32(e.data) >>> 0;
    const body = e.deflate ? deflateRawSync(e.data) : e.data;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(e.deflate ? 8 : 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(e.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    parts.push(local, name, body);
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(e.deflate ? 8 : 0, 10);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(body.length, 20);
    c.writeUInt32LE(e.data.length, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt32LE(offset, 42);
    central.push(c, name);
    offset += 30 + name.length + body.length;
  }
  const cdSize = central.reduce((a, b) => a + b.length, 0);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cdSize, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, ...central, eocd]);
}

/** A torch.save-style archive around a data.pkl and storage records. */
export function makePth(
  pickle: Uint8Array,
  records: Record<string, Uint8Array> = {},
  prefix = 'archive',
): Uint8Array {
  return makeZip([
    { name: `${prefix}/data.pkl`, data: pickle },
    ...Object.entries(records).map(([k, data]) => ({ name: `${prefix}/data/${k}`, data })),
    { name: `${prefix}/version`, data: Buffer.from('3\n') },
  ]);
}

export function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

/** A .pth holding the given tensors (one storage record per distinct key). */
export function makeStateDictPth(
  tensors: Record<string, FakeTensor>,
  opts: { rebuild?: [string, string]; prefix?: string } = {},
): Uint8Array {
  const records: Record<string, Uint8Array> = {};
  for (const t of Object.values(tensors)) records[t.key] = t.data;
  return makePth(stateDictPickle(tensors, opts), records, opts.prefix);
}
