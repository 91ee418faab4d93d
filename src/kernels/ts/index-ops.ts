/**
 * Reference row gather/scatter (token selection for masking and its backward) and mean
 * pooling over tokens.
 *
 * Contract: rows are `cols` wide and contiguous; gather overwrites, scatter-add and every
 * backward accumulate; an index outside [0, rows of the target) throws instead of writing out
 * of bounds (sizes of the indexed buffer are taken from its length).
 */
import type { F32, I32 } from '../api.js';
import { need, scratchF64 } from './scratch.js';

function checkIndex(kernel: string, index: I32, nIndex: number, rows: number): void {
  need(index, nIndex, kernel, 'index');
  for (let i = 0; i < nIndex; i++) {
    const r = index[i];
    if (r < 0 || r >= rows) throw new RangeError(`${kernel}: index[${i}] = ${r} is outside [0, ${rows})`);
  }
}

export function gatherRows(out: F32, inp: F32, index: I32, nIndex: number, cols: number): void {
  const kn = 'gatherRows';
  need(out, nIndex * cols, kn, 'out');
  checkIndex(kn, index, nIndex, cols === 0 ? Infinity : Math.floor(inp.length / cols));
  for (let i = 0; i < nIndex; i++) {
    const src = index[i] * cols;
    const dst = i * cols;
    for (let c = 0; c < cols; c++) out[dst + c] = inp[src + c];
  }
}

export function scatterAddRows(out: F32, inp: F32, index: I32, nIndex: number, cols: number): void {
  const kn = 'scatterAddRows';
  need(inp, nIndex * cols, kn, 'inp');
  checkIndex(kn, index, nIndex, cols === 0 ? Infinity : Math.floor(out.length / cols));
  for (let i = 0; i < nIndex; i++) {
    const dst = index[i] * cols;
    const src = i * cols;
    for (let c = 0; c < cols; c++) out[dst + c] += inp[src + c];
  }
}

export function meanPool(out: F32, inp: F32, B: number, T: number, D: number): void {
  need(out, B * D, 'meanPool', 'out');
  need(inp, B * T * D, 'meanPool', 'inp');
  const sum = scratchF64(0, D);
  for (let b = 0; b < B; b++) {
    sum.fill(0, 0, D);
    for (let t = 0; t < T; t++) {
      const o = (b * T + t) * D;
      for (let d = 0; d < D; d++) sum[d] += inp[o + d];
    }
    for (let d = 0; d < D; d++) out[b * D + d] = sum[d] / T;
  }
}

export function meanPoolBackward(dinp: F32, dout: F32, B: number, T: number, D: number): void {
  need(dinp, B * T * D, 'meanPoolBackward', 'dinp');
  need(dout, B * D, 'meanPoolBackward', 'dout');
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const o = (b * T + t) * D;
      for (let d = 0; d < D; d++) dinp[o + d] += dout[b * D + d] / T;
    }
  }
}
