/**
 * A pickle (protocol 2) writer for exactly what a PyTorch state dict needs: the mirror of the
 * restricted reader in ./pickle.ts.
 *
 * Contract:
 * - Emits only the opcodes the reader accepts (PROTO, GLOBAL, MARK, EMPTY_TUPLE, TUPLE*, REDUCE,
 *   BINUNICODE, BININT*, LONG1, NEWTRUE/NEWFALSE, BINPERSID, SETITEMS, STOP), so every stream it
 *   writes reads back through `unpickle` with the same allow-list torch files need.
 * - No memo (BINPUT) is written: nothing is shared, and Python's unpickler does not need one.
 * - The caller composes values as a sequence of calls, in the order Python's pickler would
 *   produce them (arguments pushed, then the call).
 */
import { UserError } from '../util/errors.js';
import { OP } from './pickle.js';

const enc = new TextEncoder();

export class PickleWriter {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(4096);
  private pos = 0;

  private ensure(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    this.chunks.push(this.cur.subarray(0, this.pos));
    this.cur = new Uint8Array(Math.max(4096, n));
    this.pos = 0;
  }

  private byte(b: number): this {
    this.ensure(1);
    this.cur[this.pos++] = b;
    return this;
  }

  private bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.cur.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  private u32(v: number): this {
    this.ensure(4);
    new DataView(this.cur.buffer, this.cur.byteOffset).setUint32(this.pos, v, true);
    this.pos += 4;
    return this;
  }

  /** PROTO n: starts the stream. */
  proto(version = 2): this {
    return this.byte(OP.PROTO).byte(version);
  }

  /** GLOBAL "module\nname\n" (protocol 2 has no STACK_GLOBAL). */
  global(module: string, name: string): this {
    if (/[\n]/.test(module + name)) throw new UserError(`pickle: bad global name ${module}.${name}`);
    return this.byte(OP.GLOBAL).bytes(enc.encode(`${module}\n${name}\n`));
  }

  mark(): this {
    return this.byte(OP.MARK);
  }

  emptyTuple(): this {
    return this.byte(OP.EMPTY_TUPLE);
  }

  /** TUPLE: pops everything since the last MARK. */
  tuple(): this {
    return this.byte(OP.TUPLE);
  }

  /** A tuple of small non-negative integers (sizes, strides), as Python's pickler writes it. */
  intTuple(values: readonly number[]): this {
    if (values.length === 0) return this.emptyTuple();
    if (values.length <= 3) {
      for (const v of values) this.int(v);
      return this.byte(OP.TUPLE1 + values.length - 1);
    }
    this.mark();
    for (const v of values) this.int(v);
    return this.tuple();
  }

  /** REDUCE: calls the callable below the argument tuple. */
  reduce(): this {
    return this.byte(OP.REDUCE);
  }

  string(s: string): this {
    const b = enc.encode(s);
    return this.byte(OP.BINUNICODE).u32(b.length).bytes(b);
  }

  /** An integer: BININT1 / BININT2 / BININT when it fits, else LONG1 (little-endian two's complement). */
  int(v: number): this {
    if (!Number.isSafeInteger(v)) throw new UserError(`pickle: ${v} is not a safe integer`);
    if (v >= 0 && v < 256) return this.byte(OP.BININT1).byte(v);
    if (v >= 0 && v < 65536)
      return this.byte(OP.BININT2)
        .byte(v & 0xff)
        .byte(v >>> 8);
    if (v >= -(2 ** 31) && v < 2 ** 31) return this.byte(OP.BININT).u32(v >>> 0);
    // LONG1: minimal two's-complement little-endian bytes.
    const out: number[] = [];
    let x = BigInt(v);
    for (;;) {
      const b = Number(x & 0xffn);
      out.push(b);
      x >>= 8n;
      if ((x === 0n && (b & 0x80) === 0) || (x === -1n && (b & 0x80) !== 0)) break;
    }
    return this.byte(OP.LONG1).byte(out.length).bytes(Uint8Array.from(out));
  }

  bool(v: boolean): this {
    return this.byte(v ? OP.NEWTRUE : OP.NEWFALSE);
  }

  /** BINPERSID: the persistent id (a tuple) on the stack becomes the loader's object. */
  persistentId(): this {
    return this.byte(OP.BINPERSID);
  }

  /** SETITEMS: key/value pairs since the last MARK go into the dict below the mark. */
  setItems(): this {
    return this.byte(OP.SETITEMS);
  }

  stop(): this {
    return this.byte(OP.STOP);
  }

  /** The stream written so far. */
  finish(): Uint8Array {
    const out = Buffer.concat([...this.chunks, this.cur.subarray(0, this.pos)]);
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  }
}
