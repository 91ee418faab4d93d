/**
 * Random-access byte sources for the checkpoint parsers.
 *
 * Contract: a parser asks for (offset, length) ranges and the source refuses any range outside
 * the file before allocating anything, so a hostile header can never make us allocate more than
 * the file holds. Two implementations: a file read through one descriptor (the normal path:
 * tensors are read straight into their final buffers, no whole-file copy) and an in-memory
 * buffer (archive members, tests, fuzzing). Every error is a UserError naming `what`.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { fileError, UserError } from '../util/errors.js';

export interface ByteSource {
  /** Name used in error messages (usually the file path). */
  readonly what: string;
  readonly size: number;
  /** A fresh, 8-byte-aligned copy of bytes [offset, offset + length). */
  read(offset: number, length: number, purpose: string): Uint8Array;
  /** Reads exactly dest.byteLength bytes at offset into dest. */
  readInto(offset: number, dest: Uint8Array, purpose: string): void;
  close(): void;
}

function checkRange(
  src: { what: string; size: number },
  offset: number,
  length: number,
  purpose: string,
): void {
  if (
    !Number.isSafeInteger(offset) ||
    !Number.isSafeInteger(length) ||
    offset < 0 ||
    length < 0 ||
    offset + length > src.size
  ) {
    throw fileError(
      src.what,
      `${purpose} lies outside the file (bytes ${offset}..${offset + length} of ${src.size}); the file is truncated or corrupt`,
    );
  }
}

export class BufferSource implements ByteSource {
  readonly size: number;
  constructor(
    private readonly bytes: Uint8Array,
    readonly what: string,
  ) {
    this.size = bytes.byteLength;
  }
  read(offset: number, length: number, purpose: string): Uint8Array {
    checkRange(this, offset, length, purpose);
    const out = new Uint8Array(length);
    out.set(this.bytes.subarray(offset, offset + length));
    return out;
  }
  readInto(offset: number, dest: Uint8Array, purpose: string): void {
    checkRange(this, offset, dest.byteLength, purpose);
    dest.set(this.bytes.subarray(offset, offset + dest.byteLength));
  }
  /** A zero-copy view (for callers that only look at the bytes). */
  view(offset: number, length: number, purpose: string): Uint8Array {
    checkRange(this, offset, length, purpose);
    return this.bytes.subarray(offset, offset + length);
  }
  close(): void {
    /* nothing held */
  }
}

export class FileSource implements ByteSource {
  readonly size: number;
  private fd: number;
  constructor(readonly what: string) {
    try {
      this.fd = openSync(what, 'r');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw fileError(
        what,
        code === 'ENOENT' ? 'no such file' : `cannot open (${code ?? (e as Error).message})`,
      );
    }
    const st = fstatSync(this.fd);
    if (!st.isFile()) {
      closeSync(this.fd);
      throw fileError(what, 'not a regular file');
    }
    this.size = st.size;
  }
  read(offset: number, length: number, purpose: string): Uint8Array {
    checkRange(this, offset, length, purpose);
    const out = new Uint8Array(length);
    this.readInto(offset, out, purpose);
    return out;
  }
  readInto(offset: number, dest: Uint8Array, purpose: string): void {
    checkRange(this, offset, dest.byteLength, purpose);
    let done = 0;
    while (done < dest.byteLength) {
      // readSync takes at most 2 GiB per call.
      const n = readSync(this.fd, dest, done, Math.min(dest.byteLength - done, 1 << 30), offset + done);
      if (n <= 0)
        throw fileError(this.what, `${purpose}: unexpected end of file (the file changed while reading?)`);
      done += n;
    }
  }
  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

/** Runs fn with a source for the file and always closes it. */
export function withFile<T>(path: string, fn: (src: ByteSource) => T): T {
  const src = new FileSource(path);
  try {
    return fn(src);
  } finally {
    src.close();
  }
}

/** The platform must be little-endian: tensor bytes are used in place. */
export function assertLittleEndian(): void {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1)
    throw new UserError('big-endian hosts are not supported');
}
