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
    let pad = (ZIP_ALIGNMENT - ((headerEnd + 4) % ZIP_ALIGNMENT)) % ZIP_ALIGNMENT;
    const extra = new Uint8Array(4 + pad);
    const ev = new DataView(extra.buffer);
    ev.setUint16(0, PAD_EXTRA_ID, true);
    ev.setUint16(2, pad, true);
    extra.fill(0x5a, 4); // 'Z', as torch pads
    pad = extra.length;
    const local = new Uint8Array(LOCAL_SIZE + name.length);
    const lv = new DataView(local.buffer);
    lv.setUint32(0, SIG_LOCAL, true);
    lv.setUint16(4, VERSION, true);
    lv.setUint16(6, FLAG_UTF8, true);
    lv.setUint16(8, 0, true); // stored
    lv.setUint16(10, 0, true); // time
    lv.setUint16(12, 0x21, true); // date 1980-01-01
    lv.setUint32(14, crc, true);
    lv.setUint32(18, size, true);
    lv.setUint32(22, size, true);
    lv.setUint16(26, name.length, true);
    lv.setUint16(28, extra.length, true);
    local.set(name, LOCAL_SIZE);
    chunks.push(local, extra, m.data);

    const cd = new Uint8Array(CENTRAL_SIZE + name.length);
    const cv = new DataView(cd.buffer);
    cv.setUint32(0, SIG_CENTRAL, true);
    cv.setUint16(4, VERSION, true); // made by
    cv.setUint16(6, VERSION, true); // needed
    cv.setUint16(8, FLAG_UTF8, true);
    cv.setUint16(10, 0, true);
    cv.setUint16(12, 0, true);
    cv.setUint16(14, 0x21, true);
    cv.setUint32(16, crc, true);
    cv.setUint32(20, size, true);
    cv.setUint32(24, size, true);
    cv.setUint16(28, name.length, true);
    cv.setUint16(30, 0, true); // no extra in the central directory
    cv.setUint16(32, 0, true); // comment
    cv.setUint16(34, 0, true); // disk
    cv.setUint16(36, 0, true); // internal attributes
    cv.setUint32(38, 0, true); // external attributes
    cv.setUint32(42, offset, true);
    cd.set(name, CENTRAL_SIZE);
    central.push(cd);

    offset += local.length + pad + size;
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
