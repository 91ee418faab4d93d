/**
 * Reference row gather/scatter (token selection for masking and its backward) and mean
 * pooling over tokens.
 *
 * Contract: rows are `cols` wide and contiguous; gather overwrites, scatter-add and every
 * backward accumulate; an index outside [0, rows of the target) throws instead of writing out
 * of bounds (sizes of the indexed buffer are taken from its length).
 */
import type { I32, Kernels } from '../api.js';
import { need, scratchF64 } from './scratch.js';

function checkIndex(kernel: string, index: I32, nIndex: number, rows: number): void {
  need(kernel, nIndex, { index });
  for (let i = 0; i < nIndex; i++) {
    const r = index[i];
    if (r < 0 || r >= rows) throw new RangeError(`${kernel}: index[${i}] = ${r} is outside [0, ${rows})`);
  }
}

export const rowKernels: Pick<Kernels, 'gatherRows' | 'scatterAddRows' | 'meanPool' | 'meanPoolBackward'> = {
  gatherRows(out, inp, index, nIndex, cols) {
    need('gatherRows', nIndex * cols, { out });
    checkIndex('gatherRows', index, nIndex, cols === 0 ? Infinity : Math.floor(inp.length / cols));
    for (let i = 0; i < nIndex; i++) {
      const src = index[i] * cols;
      const dst = i * cols;
      for (let c = 0; c < cols; c++) out[dst + c] = inp[src + c];
    }
  },
  scatterAddRows(out, inp, index, nIndex, cols) {
    need('scatterAddRows', nIndex * cols, { inp });
    checkIndex('scatterAddRows', index, nIndex, cols === 0 ? Infinity : Math.floor(out.length / cols));
    for (let i = 0; i < nIndex; i++) {
      const dst = index[i] * cols;
      const src = i * cols;
      for (let c = 0; c < cols; c++) out[dst + c] += inp[src + c];
    }
  },
  meanPool(out, inp, B, T, D) {
    need('meanPool', B * D, { out });
    need('meanPool', B * T * D, { inp });
    const sum = scratchF64(0, D);
    for (let b = 0; b < B; b++) {
      sum.fill(0, 0, D);
      for (let t = 0; t < T; t++) {
        const o = (b * T + t) * D;
        for (let d = 0; d < D; d++) sum[d] += inp[o + d];
      }
      for (let d = 0; d < D; d++) out[b * D + d] = sum[d] / T;
    }
  },
  meanPoolBackward(dinp, dout, B, T, D) {
    need('meanPoolBackward', B * T * D, { dinp });
    need('meanPoolBackward', B * D, { dout });
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const o = (b * T + t) * D;
        for (let d = 0; d < D; d++) dinp[o + d] += dout[b * D + d] / T;
      }
    }
  },
};
