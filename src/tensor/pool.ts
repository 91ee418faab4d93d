/**
 * ActivationPool: the one place where activation, gradient and scratch buffers are allocated.
 *
 * Design contract:
 * - `alloc(n)` returns a Float32Array of exactly n elements whose contents are undefined;
 *   `zeros(n)` returns it cleared. Buffers handed out stay valid until `reset()`.
 * - `reset()` (once per training step, after the optimiser) returns every buffer handed out
 *   since the previous reset to per-size free lists. A step with the same shapes as the
 *   previous one is then served entirely from the free lists: no allocation in steady state.
 *   Any tensor produced before a reset must not be used after it (copy outputs you keep).
 * - `release(buf)` returns one buffer early (scratch space, inference intermediates).
 * - Statistics (`allocatedBytes`, `freshAllocations`) make the steady-state claim testable.
 */
export class ActivationPool {
  private readonly free = new Map<number, Float32Array[]>();
  private live: Float32Array[] = [];
  /** Bytes ever allocated by this pool (live + free). */
  allocatedBytes = 0;
  /** Number of `new Float32Array` calls so far. */
  freshAllocations = 0;

  /**
   * @param track When false (inference without a tape) handed-out buffers are not remembered:
   *   they are garbage-collected when dropped unless `release`d for reuse.
   */
  constructor(readonly track = true) {}

  alloc(n: number): Float32Array {
    const list = this.free.get(n);
    let buf = list?.pop();
    if (!buf) {
      buf = new Float32Array(n);
      this.freshAllocations++;
      this.allocatedBytes += 4 * n;
    }
    if (this.track) this.live.push(buf);
    return buf;
  }

  zeros(n: number): Float32Array {
    return this.alloc(n).fill(0);
  }

  /** Returns one buffer to the free list; it must not be used afterwards. */
  release(buf: Float32Array): void {
    if (this.track) {
      const i = this.live.lastIndexOf(buf);
      if (i < 0) return; // not ours, or already released
      this.live[i] = this.live[this.live.length - 1];
      this.live.pop();
    }
    this.pushFree(buf);
  }

  /** Every buffer handed out since the last reset becomes free again. */
  reset(): void {
    for (const buf of this.live) this.pushFree(buf);
    this.live = [];
  }

  /** Drops every buffer (free and live) so the garbage collector can reclaim them. */
  clear(): void {
    this.free.clear();
    this.live = [];
    this.allocatedBytes = 0;
  }

  private pushFree(buf: Float32Array): void {
    let list = this.free.get(buf.length);
    if (!list) {
      list = [];
      this.free.set(buf.length, list);
    }
    list.push(buf);
  }
}
