/**
 * Grow-only scratch buffers shared by the reference kernels.
 *
 * Contract: a kernel asks for a slot at the start of its call, uses it only until it returns and
 * never hands it out. The TypeScript path is single threaded and the kernels do not call each
 * other while holding a slot, so one buffer per slot is enough; after the first calls at a given
 * size nothing is allocated any more.
 */

const f64Slots: Float64Array[] = [];
const f32Slots: Float32Array[] = [];

/** A Float64Array of at least n elements for slot `slot` (contents undefined). */
export function scratchF64(slot: number, n: number): Float64Array {
  let buf = f64Slots[slot];
  if (buf === undefined || buf.length < n) {
    buf = new Float64Array(Math.max(n, 64));
    f64Slots[slot] = buf;
  }
  return buf;
}

/** A Float32Array of at least n elements for slot `slot` (contents undefined). */
export function scratchF32(slot: number, n: number): Float32Array {
  let buf = f32Slots[slot];
  if (buf === undefined || buf.length < n) {
    buf = new Float32Array(Math.max(n, 64));
    f32Slots[slot] = buf;
  }
  return buf;
}

/**
 * Throws when a buffer is shorter than the kernel's sizes say (a bug in the caller): every buffer
 * of `buffers` (named by its key in the message) needs at least n elements.
 */
export function need(kernel: string, n: number, buffers: Record<string, ArrayLike<number>>): void {
  for (const [what, buf] of Object.entries(buffers)) {
    if (buf.length < n) throw new RangeError(`${kernel}: ${what} has ${buf.length} elements, needs ${n}`);
  }
}
