/**
 * Reference GEMM: C = alpha * op(A) · op(B) + beta * C, row-major, C [m,n].
 *
 * Contract (see api.ts): op(A) is [m,k] (A stored [k,m] when transA), op(B) is [k,n]
 * (B stored [n,k] when transB); beta = 0 never reads C; bf16 rounds both inputs to bf16
 * (nearest-even) before multiplying. Every dot product is accumulated in float64 and rounded
 * to fp32 once, when C is stored, so this is more accurate than any fp32 GEMM it checks.
 *
 * Loop orders keep the innermost loop on contiguous memory for each layout, and each loaded
 * element of the streamed operand feeds four accumulators (register blocking by 4):
 *   NN  i-p-j : acc[j] += A[i,p] * B[p,j]    (streams rows of B, 4 rows of C at a time)
 *   TN  i-p-j : same, A[p,i] read once per (i,p)
 *   NT  i-j-p : dot(A row i, B row j)        (both rows contiguous, 4 rows of B at a time)
 *   TT  j-p-i : acc[i] += A[p,i] * B[j,p]    (streams rows of A, 4 columns of C at a time)
 */
import type { F32, Kernels } from '../api.js';
import { roundBf16Array } from './bf16.js';
import { need, scratchF32, scratchF64 } from './scratch.js';

const SLOT_ACC = 0; // float64 row/column accumulator
const SLOT_A16 = 0; // bf16-rounded copy of A (f32 slots)
const SLOT_B16 = 1; // bf16-rounded copy of B

/** One GEMM on buffers addressed by element offsets (so batching allocates no views). */
function gemm(
  a: F32,
  aOff: number,
  b: F32,
  bOff: number,
  c: F32,
  cOff: number,
  m: number,
  n: number,
  k: number,
  transA: boolean,
  transB: boolean,
  alpha: number,
  beta: number,
): void {
  if (!transB) {
    // NN and TN: rows of C are float64 accumulators over p of A(i,p) * (row p of B), four rows
    // of C at a time so every element of B loaded is used four times.
    const acc = scratchF64(SLOT_ACC, 4 * n);
    const aRowStep = transA ? 1 : k; // distance from A(i,p) to A(i+1,p)
    const aColStep = transA ? m : 1; // distance from A(i,p) to A(i,p+1)
    let i = 0;
    for (; i + 3 < m; i += 4) {
      acc.fill(0, 0, 4 * n);
      for (let p = 0; p < k; p++) {
        const ap = aOff + i * aRowStep + p * aColStep;
        const a0 = a[ap];
        const a1 = a[ap + aRowStep];
        const a2 = a[ap + 2 * aRowStep];
        const a3 = a[ap + 3 * aRowStep];
        const bRow = bOff + p * n;
        for (let j = 0; j < n; j++) {
          const bpj = b[bRow + j];
          acc[j] += a0 * bpj;
          acc[n + j] += a1 * bpj;
          acc[2 * n + j] += a2 * bpj;
          acc[3 * n + j] += a3 * bpj;
        }
      }
      for (let r = 0; r < 4; r++) store(c, cOff + (i + r) * n, 1, acc, r * n, n, alpha, beta);
    }
    for (; i < m; i++) {
      acc.fill(0, 0, n);
      for (let p = 0; p < k; p++) {
        const a0 = a[aOff + i * aRowStep + p * aColStep];
        const bRow = bOff + p * n;
        for (let j = 0; j < n; j++) acc[j] += a0 * b[bRow + j];
      }
      store(c, cOff + i * n, 1, acc, 0, n, alpha, beta);
    }
  } else if (!transA) {
    // NT: C[i,j] = dot(A row i, B row j), both contiguous; four rows of B per pass over A row i.
    for (let i = 0; i < m; i++) {
      const aRow = aOff + i * k;
      const cRow = cOff + i * n;
      let j = 0;
      for (; j + 3 < n; j += 4) {
        const b0 = bOff + j * k;
        let s0 = 0,
          s1 = 0,
          s2 = 0,
          s3 = 0;
        for (let p = 0; p < k; p++) {
          const aip = a[aRow + p];
          s0 += aip * b[b0 + p];
          s1 += aip * b[b0 + k + p];
          s2 += aip * b[b0 + 2 * k + p];
          s3 += aip * b[b0 + 3 * k + p];
        }
        storeOne(c, cRow + j, s0, alpha, beta);
        storeOne(c, cRow + j + 1, s1, alpha, beta);
        storeOne(c, cRow + j + 2, s2, alpha, beta);
        storeOne(c, cRow + j + 3, s3, alpha, beta);
      }
      for (; j < n; j++) {
        const b0 = bOff + j * k;
        let s0 = 0;
        for (let p = 0; p < k; p++) s0 += a[aRow + p] * b[b0 + p];
        storeOne(c, cRow + j, s0, alpha, beta);
      }
    }
  } else {
    // TT: columns of C are float64 accumulators over p of B(j,p) * (row p of stored A), four
    // columns at a time so every element of A loaded is used four times.
    const acc = scratchF64(SLOT_ACC, 4 * m);
    let j = 0;
    for (; j + 3 < n; j += 4) {
      acc.fill(0, 0, 4 * m);
      for (let p = 0; p < k; p++) {
        const bp = bOff + j * k + p;
        const b0 = b[bp];
        const b1 = b[bp + k];
        const b2 = b[bp + 2 * k];
        const b3 = b[bp + 3 * k];
        const aRow = aOff + p * m;
        for (let i = 0; i < m; i++) {
          const api = a[aRow + i];
          acc[i] += api * b0;
          acc[m + i] += api * b1;
          acc[2 * m + i] += api * b2;
          acc[3 * m + i] += api * b3;
        }
      }
      for (let r = 0; r < 4; r++) store(c, cOff + j + r, n, acc, r * m, m, alpha, beta);
    }
    for (; j < n; j++) {
      acc.fill(0, 0, m);
      for (let p = 0; p < k; p++) {
        const b0 = b[bOff + j * k + p];
        const aRow = aOff + p * m;
        for (let i = 0; i < m; i++) acc[i] += a[aRow + i] * b0;
      }
      store(c, cOff + j, n, acc, 0, m, alpha, beta);
    }
  }
}

/** c[off] = alpha * s (+ beta * old value). */
function storeOne(c: F32, off: number, s: number, alpha: number, beta: number): void {
  c[off] = beta === 0 ? alpha * s : alpha * s + beta * c[off];
}

/** c[off + t*stride] = alpha * acc[accOff + t] (+ beta * old value), t < len. */
function store(
  c: F32,
  off: number,
  stride: number,
  acc: Float64Array,
  accOff: number,
  len: number,
  alpha: number,
  beta: number,
): void {
  if (beta === 0) {
    for (let t = 0; t < len; t++) c[off + t * stride] = alpha * acc[accOff + t];
  } else {
    for (let t = 0; t < len; t++) c[off + t * stride] = alpha * acc[accOff + t] + beta * c[off + t * stride];
  }
}

/** Elements a dense matrix of `rows x cols` needs when matrices start every `stride` elements. */
function batchedLength(batch: number, stride: number, size: number): number {
  return batch === 0 ? 0 : (batch - 1) * stride + size;
}

export const matmulKernels: Pick<Kernels, 'matmul' | 'matmulBatched'> = {
  matmulBatched(a, b, c, batch, m, n, k, transA, transB, strideA, strideB, strideC, alpha, beta, bf16) {
    const lenA = batchedLength(batch, strideA, m * k);
    const lenB = batchedLength(batch, strideB, k * n);
    need('matmul', lenA, { A: a });
    need('matmul', lenB, { B: b });
    need('matmul', batchedLength(batch, strideC, m * n), { C: c });
    if (bf16) {
      // Round copies of the inputs once (strides kept, so the offsets below stay valid).
      const a16 = scratchF32(SLOT_A16, lenA);
      const b16 = scratchF32(SLOT_B16, lenB);
      roundBf16Array(a16, a, lenA);
      roundBf16Array(b16, b, lenB);
      a = a16;
      b = b16;
    }
    for (let i = 0; i < batch; i++) {
      gemm(a, i * strideA, b, i * strideB, c, i * strideC, m, n, k, transA, transB, alpha, beta);
    }
  },
  matmul(a, b, c, m, n, k, transA, transB, alpha, beta, bf16) {
    matmulKernels.matmulBatched(a, b, c, 1, m, n, k, transA, transB, m * k, k * n, m * n, alpha, beta, bf16);
  },
};
