/**
 * A ZIP writer for torch.save archives: the mirror of the reader in ./zip.ts.
 *
 * Contract:
 * - Every member is stored (method 0), as torch writes them; each member's data starts on a
 *   64-byte boundary (torch aligns records the same way, padding with an extra field, so that
 *   `torch.load(..., mmap=True)` can map tensors in place).
 * - Names are UTF-8 (flag bit 11). CRC-32 and sizes are in the local header (no data
 *   descriptor), so a streaming reader sees them too.
 * - Archives past 4 GiB or 65535 members would need zip64 records; they are refused with a clear
 *   error (a ViT-Base model is ~0.8 GB).
 * - Output is a list of chunks (headers and the callers' own data views, not copied), ready for
 *   `writeFileAtomic`.
 */
import { UserError } from '../util/errors.js';
import { CENTRAL_SIZE, EOCD_SIZE, LOCAL_SIZE, SIG_CENTRAL, SIG_EOCD, SIG_LOCAL, crc32 } from './zip.js';

/** Data alignment of each member (torch's kFieldAlignment). */
export const ZIP_ALIGNMENT = 64;
const FLAG_UTF8 = 0x800;
const MAX_U32 = 0xffffffff;
/** Extra-field id torch uses for its padding ("FB"). */
const PAD_EXTRA_ID = 0x4246;
const VERSION = 20; // 2.0: stored entries, no zip64

export interface ZipMember {
  name: string;
  data: Uint8Array;
}

/**
 * The fields a local header (from offset 4) and a central directory entry (from offset 6) share,
 * version needed to name length; method (stored) and time stay zero.
 */
function putSharedFields(v: DataView, at: number, crc: number, size: number, nameLength: number): void {
  v.setUint16(at, VERSION, true);
  v.setUint16(at + 2, FLAG_UTF8, true);
  v.setUint16(at + 8, 0x21, true); // date 1980-01-01
  v.setUint32(at + 10, crc, true);
  v.setUint32(at + 14, size, true); // compressed
  v.setUint32(at + 18, size, true); // uncompressed
  v.setUint16(at + 22, nameLength, true);
}

/** Encodes members into zip chunks (the caller's data arrays are referenced, not copied). */
export function encodeZip(members: readonly ZipMember[], what = 'zip'): Uint8Array[] {
  if (members.length > 0xffff)
    throw new UserError(`${what}: ${members.length} members need zip64, which is not written`);
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const names = new Set<string>();
  for (const m of members) {
    if (names.has(m.name)) throw new UserError(`${what}: duplicate member ${m.name}`);
    names.add(m.name);
    const name = enc.encode(m.name);
    const crc = crc32(m.data);
    const size = m.data.byteLength;
    // Pad with an extra field so that the data starts on an aligned offset.
    const headerEnd = offset + LOCAL_SIZE + name.length;
    const pad = (ZIP_ALIGNMENT - ((headerEnd + 4) % ZIP_ALIGNMENT)) % ZIP_ALIGNMENT;
    const extra = new Uint8Array(4 + pad);
    const ev = new DataView(extra.buffer);
    ev.setUint16(0, PAD_EXTRA_ID, true);
    ev.setUint16(2, pad, true);
    extra.fill(0x5a, 4); // 'Z', as torch pads
    const local = new Uint8Array(LOCAL_SIZE + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, SIG_LOCAL, true);
    putSharedFields(lv, 4, crc, size, name.length);
    lv.setUint16(28, extra.length, true);
    local.set(name, LOCAL_SIZE);
    chunks.push(local, extra, m.data);

    // No extra field, comment, disk number or attributes: those fields stay zero.
    const cd = new Uint8Array(CENTRAL_SIZE + name.length);
    const cv = new DataView(cd.buffer);
    cv.setUint32(0, SIG_CENTRAL, true);
    cv.setUint16(4, VERSION, true); // made by
    putSharedFields(cv, 6, crc, size, name.length);
    cv.setUint32(42, offset, true);
    cd.set(name, CENTRAL_SIZE);
    central.push(cd);

    offset += local.length + extra.length + size;
    if (offset > MAX_U32)
      throw new UserError(`${what}: more than 4 GiB of data needs zip64, which is not written`);
  }
  const cdOffset = offset;
  const cdSize = central.reduce((s, c) => s + c.length, 0);
  if (cdOffset + cdSize > MAX_U32)
    throw new UserError(`${what}: more than 4 GiB of data needs zip64, which is not written`);
  const eocd = new Uint8Array(EOCD_SIZE);
  const v = new DataView(eocd.buffer);
  v.setUint32(0, SIG_EOCD, true);
  v.setUint16(8, members.length, true);
  v.setUint16(10, members.length, true);
  v.setUint32(12, cdSize, true);
  v.setUint32(16, cdOffset, true);
  return [...chunks, ...central, eocd];
}
