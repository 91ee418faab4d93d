/**
 * Minimal ZIP reader for torch.save archives.
 *
 * Contract: reads the end-of-central-directory record (zip64 records too, when the archive uses
 * them), then the central directory; every offset, size and count is checked against the file
 * before use. Entries are stored (method 0, what torch writes) or deflated (method 8, via
 * node:zlib, with the output bounded by the declared size). CRC-32 of every entry read is
 * verified. Refused with a clear UserError: multi-disk archives, encryption, other compression
 * methods, duplicate names, inconsistent local headers, zip64 fields we were not told to expect.
 * Nothing is read beyond what a caller asks for: `read(name)` loads one member.
 */
import * as zlib from 'node:zlib';
import type { ByteSource } from './bytes.js';
import { fileError } from '../util/errors.js';

// Record signatures and fixed sizes (shared with the writer, ./zip-write.ts).
export const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
export const SIG_CENTRAL = 0x02014b50;
export const SIG_LOCAL = 0x04034b50;
export const EOCD_SIZE = 22;
export const CENTRAL_SIZE = 46;
export const LOCAL_SIZE = 30;
const MAX_ENTRIES = 1_000_000;
// Deflate cannot expand data by more than ~1032x; a larger claim is a zip bomb or corruption.
const MAX_DEFLATE_RATIO = 1032;

export interface ZipEntry {
  name: string;
  method: number;
  crc32: number;
  compressedSize: number;
  uncompressedSize: number;
  localHeaderOffset: number;
}

export const ZIP_MAGIC = [0x50, 0x4b, 0x03, 0x04];

export function looksLikeZip(head: Uint8Array): boolean {
  return head.length >= 4 && ZIP_MAGIC.every((b, i) => head[i] === b);
}

function u16(b: Uint8Array, o: number): number {
  return b[o] | (b[o + 1] << 8);
}
function u32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}
function u64(b: Uint8Array, o: number, what: string, field: string): number {
  const v = u32(b, o) + u32(b, o + 4) * 2 ** 32;
  if (!Number.isSafeInteger(v)) throw fileError(what, `zip: ${field} ${v} is out of range`);
  return v;
}

const crcTable = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (zip polynomial); uses node:zlib's native one where this Node has it. */
export function crc32(data: Uint8Array): number {
  const native = (zlib as unknown as { crc32?: (d: Uint8Array) => number }).crc32;
  if (typeof native === 'function') return native(data) >>> 0;
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = crcTable[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export class ZipArchive {
  readonly entries = new Map<string, ZipEntry>();
  private readonly centralStart: number;

  constructor(private readonly src: ByteSource) {
    const what = src.what;
    const bad = (problem: string) => fileError(what, `zip: ${problem}`);
    if (src.size < EOCD_SIZE) throw bad(`${src.size} bytes is too short for a zip archive`);
    // The EOCD record sits at the end, followed by a comment of at most 65535 bytes.
    const tailLen = Math.min(src.size, EOCD_SIZE + 0xffff);
    const tailStart = src.size - tailLen;
    const tail = src.read(tailStart, tailLen, 'zip end of central directory');
    let eocd = -1;
    for (let i = tailLen - EOCD_SIZE; i >= 0; i--) {
      if (u32(tail, i) === SIG_EOCD && i + EOCD_SIZE + u16(tail, i + 20) <= tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) throw bad('end-of-central-directory record not found (truncated or not a zip archive)');
    const eocdAbs = tailStart + eocd;
    const diskNo = u16(tail, eocd + 4);
    const cdDisk = u16(tail, eocd + 6);
    let entriesOnDisk = u16(tail, eocd + 8);
    let entryCount = u16(tail, eocd + 10);
    let cdSize = u32(tail, eocd + 12);
    let cdOffset = u32(tail, eocd + 16);
    let cdLimit = eocdAbs; // the central directory must end before the record that describes it

    const zip64 =
      entryCount === 0xffff ||
      entriesOnDisk === 0xffff ||
      cdSize === 0xffffffff ||
      cdOffset === 0xffffffff ||
      diskNo === 0xffff ||
      cdDisk === 0xffff;
    if (zip64) {
      if (eocdAbs < 20) throw bad('zip64 end-of-central-directory locator missing');
      const loc = src.read(eocdAbs - 20, 20, 'zip64 locator');
      if (u32(loc, 0) !== SIG_ZIP64_LOCATOR)
        throw bad('the archive declares zip64 sizes but has no zip64 locator');
      if (u32(loc, 4) !== 0 || u32(loc, 16) > 1) throw bad('multi-disk zip64 archives are not supported');
      const recOffset = u64(loc, 8, what, 'zip64 record offset');
      if (recOffset + 56 > eocdAbs - 20) throw bad(`zip64 record offset ${recOffset} is outside the archive`);
      const rec = src.read(recOffset, 56, 'zip64 end of central directory');
      if (u32(rec, 0) !== SIG_ZIP64_EOCD)
        throw bad(`no zip64 end-of-central-directory record at offset ${recOffset}`);
      if (u32(rec, 16) !== 0 || u32(rec, 20) !== 0) throw bad('multi-disk zip64 archives are not supported');
      entriesOnDisk = u64(rec, 24, what, 'zip64 entry count');
      entryCount = u64(rec, 32, what, 'zip64 entry count');
      cdSize = u64(rec, 40, what, 'zip64 central directory size');
      cdOffset = u64(rec, 48, what, 'zip64 central directory offset');
      cdLimit = recOffset;
    } else if (diskNo !== 0 || cdDisk !== 0) {
      throw bad('multi-disk archives are not supported');
    }
    if (entriesOnDisk !== entryCount) throw bad('multi-disk archives are not supported');
    if (entryCount > MAX_ENTRIES) throw bad(`${entryCount} entries is more than the ${MAX_ENTRIES} allowed`);
    if (cdOffset + cdSize > cdLimit)
      throw bad(
        `central directory (offset ${cdOffset}, ${cdSize} bytes) runs past its end record (truncated or corrupt)`,
      );
    if (entryCount * CENTRAL_SIZE > cdSize)
      throw bad(`central directory of ${cdSize} bytes cannot hold ${entryCount} entries`);
    this.centralStart = cdOffset;

    const cd = src.read(cdOffset, cdSize, 'zip central directory');
    let p = 0;
    for (let i = 0; i < entryCount; i++) {
      if (p + CENTRAL_SIZE > cdSize || u32(cd, p) !== SIG_CENTRAL)
        throw bad(`central directory entry ${i} is malformed (at offset ${cdOffset + p})`);
      const flags = u16(cd, p + 8);
      const method = u16(cd, p + 10);
      const crc = u32(cd, p + 16);
      let compressedSize = u32(cd, p + 20);
      let uncompressedSize = u32(cd, p + 24);
      const nameLen = u16(cd, p + 28);
      const extraLen = u16(cd, p + 30);
      const commentLen = u16(cd, p + 32);
      const diskStart = u16(cd, p + 34);
      let localHeaderOffset = u32(cd, p + 42);
      const end = p + CENTRAL_SIZE + nameLen + extraLen + commentLen;
      if (end > cdSize) throw bad(`central directory entry ${i} runs past the directory`);
      const nameBytes = cd.subarray(p + CENTRAL_SIZE, p + CENTRAL_SIZE + nameLen);
      const name = flags & 0x800 ? decodeUtf8(nameBytes, what) : Buffer.from(nameBytes).toString('latin1');
      const label = `zip entry "${name}"`;
      if (flags & 0x1) throw fileError(what, `${label} is encrypted`);
      if (method !== 0 && method !== 8)
        throw fileError(
          what,
          `${label} uses compression method ${method}; only stored (0) and deflate (8) are supported`,
        );

      // zip64 extended information: present exactly for the fields saturated at 0xffffffff.
      const needU = uncompressedSize === 0xffffffff;
      const needC = compressedSize === 0xffffffff;
      const needO = localHeaderOffset === 0xffffffff;
      if (needU || needC || needO || diskStart === 0xffff) {
        const extra = cd.subarray(p + CENTRAL_SIZE + nameLen, p + CENTRAL_SIZE + nameLen + extraLen);
        let q = 0;
        let found = false;
        while (q + 4 <= extra.length) {
          const id = u16(extra, q);
          const size = u16(extra, q + 2);
          if (q + 4 + size > extra.length) break;
          if (id === 0x0001) {
            let r = q + 4;
            const take = (field: string) => {
              if (r + 8 > q + 4 + size)
                throw fileError(what, `${label}: zip64 extra field too short for ${field}`);
              const v = u64(extra, r, what, `${label} ${field}`);
              r += 8;
              return v;
            };
            if (needU) uncompressedSize = take('uncompressed size');
            if (needC) compressedSize = take('compressed size');
            if (needO) localHeaderOffset = take('local header offset');
            found = true;
            break;
          }
          q += 4 + size;
        }
        if (!found) throw fileError(what, `${label} has saturated sizes but no zip64 extra field`);
        if (diskStart === 0xffff) throw bad('multi-disk archives are not supported');
      }
      if (localHeaderOffset + LOCAL_SIZE > cdOffset)
        throw fileError(
          what,
          `${label}: local header offset ${localHeaderOffset} is outside the archive data`,
        );
      if (localHeaderOffset + LOCAL_SIZE + compressedSize > cdOffset)
        throw fileError(
          what,
          `${label}: ${compressedSize} bytes at offset ${localHeaderOffset} run past the archive data (truncated or corrupt)`,
        );
      if (method === 0 && compressedSize !== uncompressedSize)
        throw fileError(
          what,
          `${label}: stored entry has compressed size ${compressedSize} != uncompressed size ${uncompressedSize}`,
        );
      if (method === 8 && uncompressedSize > compressedSize * MAX_DEFLATE_RATIO + 1024) {
        throw fileError(
          what,
          `${label}: declared size ${uncompressedSize} is impossible for ${compressedSize} deflated bytes`,
        );
      }
      if (this.entries.has(name)) throw bad(`duplicate entry "${name}"`);
      this.entries.set(name, {
        name,
        method,
        crc32: crc,
        compressedSize,
        uncompressedSize,
        localHeaderOffset,
      });
      p = end;
    }
  }

  get what(): string {
    return this.src.what;
  }

  private entryError(name: string, problem: string): Error {
    return fileError(this.src.what, `zip entry "${name}": ${problem}`);
  }

  /** Absolute offset of an entry's data, after checking its local header against the directory. */
  private dataOffset(e: ZipEntry): number {
    const lh = this.src.read(e.localHeaderOffset, LOCAL_SIZE, `local header of zip entry "${e.name}"`);
    if (u32(lh, 0) !== SIG_LOCAL)
      throw this.entryError(e.name, `no local header at offset ${e.localHeaderOffset} (corrupt)`);
    const method = u16(lh, 8);
    if (method !== e.method)
      throw this.entryError(
        e.name,
        `local header method ${method} disagrees with the central directory (${e.method})`,
      );
    const start = e.localHeaderOffset + LOCAL_SIZE + u16(lh, 26) + u16(lh, 28);
    if (start + e.compressedSize > this.centralStart)
      throw this.entryError(e.name, `data runs past the archive data (truncated or corrupt)`);
    return start;
  }

  /** The uncompressed bytes of one member (a fresh, 8-byte-aligned buffer), CRC-checked. */
  read(name: string): Uint8Array {
    const e = this.entries.get(name);
    if (!e) throw fileError(this.src.what, `zip: missing entry "${name}"`);
    const start = this.dataOffset(e);
    let data = this.src.read(start, e.compressedSize, `data of zip entry "${name}"`);
    if (e.method === 8) {
      let out: Uint8Array;
      try {
        out = zlib.inflateRawSync(data, { maxOutputLength: Math.max(1, e.uncompressedSize) });
      } catch (err) {
        throw this.entryError(
          name,
          `deflate data is corrupt or larger than declared (${(err as Error).message})`,
        );
      }
      if (out.byteLength !== e.uncompressedSize)
        throw this.entryError(name, `inflated to ${out.byteLength} bytes, declared ${e.uncompressedSize}`);
      // zlib may hand back a pooled, unaligned Buffer; tensors need an aligned one.
      data = new Uint8Array(out.byteLength);
      data.set(out);
    }
    const crc = crc32(data);
    if (crc !== e.crc32)
      throw this.entryError(
        name,
        `CRC-32 mismatch (stored ${e.crc32.toString(16)}, computed ${crc.toString(16)}); the file is corrupt`,
      );
    return data;
  }
}

function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw fileError(what, 'zip: an entry name is not valid UTF-8');
  }
}
