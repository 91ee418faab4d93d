/**
 * The primitive differentiable ops, each with its derivative rule next to its forward:
 * LayerNorm and GELU, element-wise arithmetic and broadcasting, views, copies and gathers,
 * pooling and L2 normalisation. Each op checks shapes, computes with kernels(), and (when the
 * tape needs it) records one closure that accumulates into its inputs' gradients.
 *
 * Conventions: activations are [B, T, D] (or [rows, D]); "rows" means the product of all axes
 * but the last. Views (reshape) share data with their input.
 */
import { kernels } from '../kernels/index.js';
import {
  Tensor,
  ShapeError,
  expectRank,
  expectShape,
  numel,
  sameShape,
  shapeStr,
  type Shape,
} from '../tensor/tensor.js';
import type { Tape } from './tape.js';

// ---------------------------------------------------------------------------------------------
// Normalisation and activation

/** LayerNorm backward from dy into the gradients of x, weight and bias (those that need one). */
export function layerNormBackwardInto(
  tp: Tape,
  x: Tensor,
  w: Tensor,
  b: Tensor,
  dy: Float32Array,
  mean: Float32Array,
  rstd: Float32Array,
): void {
  const C = x.lastDim;
  const rows = x.rows;
  // The kernel produces all three gradients; unneeded ones go to scratch.
  const dx = x.requiresGrad ? tp.gradOf(x) : tp.pool.alloc(x.size);
  const dw = w.requiresGrad ? tp.gradOf(w) : tp.pool.alloc(C);
  const db = b.requiresGrad ? tp.gradOf(b) : tp.pool.alloc(C);
  kernels().layerNormBackward(dx, dw, db, dy, x.data, w.data, mean, rstd, rows, C);
  if (!x.requiresGrad) tp.pool.release(dx);
  if (!w.requiresGrad) tp.pool.release(dw);
  if (!b.requiresGrad) tp.pool.release(db);
}

/** LayerNorm over the last axis (PyTorch default eps 1e-5), elementwise affine. */
export function layerNorm(tp: Tape, x: Tensor, w: Tensor, b: Tensor, eps = 1e-5): Tensor {
  const C = x.lastDim;
  expectShape('layerNorm', 'weight', w, [C]);
  expectShape('layerNorm', 'bias', b, [C]);
  const rows = x.rows;
  const y = tp.empty(x.shape);
  const mean = tp.pool.alloc(rows);
  const rstd = tp.pool.alloc(rows);
  const k = kernels();
  k.layerNormForward(y.data, mean, rstd, x.data, w.data, b.data, rows, C, eps);
  if (tp.needsGrad(x, w, b)) {
    tp.record('layerNorm', y, () => {
      layerNormBackwardInto(tp, x, w, b, y.grad!, mean, rstd);
      tp.pool.release(mean);
      tp.pool.release(rstd);
    });
  } else {
    tp.pool.release(mean);
    tp.pool.release(rstd);
  }
  return y;
}

/** Exact (erf) GELU. */
export function gelu(tp: Tape, x: Tensor): Tensor {
  const y = tp.empty(x.shape);
  const k = kernels();
  k.geluForward(y.data, x.data, x.size);
  if (tp.needsGrad(x)) tp.record('gelu', y, () => k.geluBackward(tp.gradOf(x), x.data, y.grad!, x.size));
  return y;
}

// ---------------------------------------------------------------------------------------------
// Elementwise

/** a + b, same shapes. */
export function add(tp: Tape, a: Tensor, b: Tensor): Tensor {
  if (!sameShape(a.shape, b.shape)) throw new ShapeError(`add: ${shapeStr(a.shape)} + ${shapeStr(b.shape)}`);
  const y = tp.empty(a.shape);
  const k = kernels();
  k.add(y.data, a.data, b.data, a.size);
  if (tp.needsGrad(a, b)) {
    tp.record('add', y, () => {
      if (a.requiresGrad) k.axpy(tp.gradOf(a), y.grad!, 1, a.size);
      if (b.requiresGrad) k.axpy(tp.gradOf(b), y.grad!, 1, b.size);
    });
  }
  return y;
}

/** The number of trailing elements `small` covers when broadcast against `big` (numpy rules, leading 1s). */
function broadcastInner(op: string, big: Shape, small: Shape): number {
  const s = [...small];
  while (s.length > 0 && s[0] === 1) s.shift();
  const tail = big.slice(big.length - s.length);
  if (s.length > big.length || !sameShape(tail, s)) {
    throw new ShapeError(`${op}: ${shapeStr(small)} does not broadcast against ${shapeStr(big)}`);
  }
  return numel(s);
}

/** x + y with y broadcast over the leading axes of x (pos tables [1,T,D], tokens [1,1,D]). */
export function addBroadcast(tp: Tape, x: Tensor, y: Tensor): Tensor {
  const inner = broadcastInner('addBroadcast', x.shape, y.shape);
  const rows = x.size / inner;
  const out = tp.empty(x.shape);
  out.data.set(x.data);
  const k = kernels();
  k.biasAdd(out.data, y.data, rows, inner);
  if (tp.needsGrad(x, y)) {
    tp.record('addBroadcast', out, () => {
      if (x.requiresGrad) k.axpy(tp.gradOf(x), out.grad!, 1, x.size);
      if (y.requiresGrad) k.biasBackward(tp.gradOf(y), out.grad!, rows, inner);
    });
  }
  return out;
}

/** x repeated over new leading axes: [1,1,D] → `shape` = [B,N,D] (the mask token fill). */
export function broadcastTo(tp: Tape, x: Tensor, shape: Shape): Tensor {
  const inner = broadcastInner('broadcastTo', shape, x.shape);
  const out = tp.empty(shape);
  const rows = out.size / inner;
  for (let r = 0; r < rows; r++) out.data.set(x.data, r * inner);
  if (tp.needsGrad(x))
    tp.record('broadcastTo', out, () => kernels().biasBackward(tp.gradOf(x), out.grad!, rows, inner));
  return out;
}

/** Σ wᵢ·tᵢ over same-shaped tensors (loss totals, averaged features). */
export function weightedSum(tp: Tape, terms: readonly (readonly [Tensor, number])[]): Tensor {
  if (terms.length === 0) throw new ShapeError('weightedSum: no terms');
  const shape = terms[0][0].shape;
  for (const [t] of terms) {
    if (!sameShape(t.shape, shape))
      throw new ShapeError(`weightedSum: ${shapeStr(t.shape)} vs ${shapeStr(shape)}`);
  }
  const out = tp.zeros(shape);
  const k = kernels();
  for (const [t, w] of terms) k.axpy(out.data, t.data, w, t.size);
  if (tp.needsGrad(...terms.map(([t]) => t))) {
    tp.record('weightedSum', out, () => {
      for (const [t, w] of terms) if (t.requiresGrad) k.axpy(tp.gradOf(t), out.grad!, w, t.size);
    });
  }
  return out;
}

/** alpha·x. */
export function scale(tp: Tape, x: Tensor, alpha: number): Tensor {
  return weightedSum(tp, [[x, alpha]]);
}

// ---------------------------------------------------------------------------------------------
// Shape and indexing

/** A view with a new shape of the same size (shares data; gradient passed through). */
export function reshape(tp: Tape, x: Tensor, shape: Shape): Tensor {
  if (numel(shape) !== x.size) throw new ShapeError(`reshape: ${shapeStr(x.shape)} → ${shapeStr(shape)}`);
  const y = new Tensor(shape, x.data);
  if (tp.needsGrad(x)) tp.record('reshape', y, () => kernels().axpy(tp.gradOf(x), y.grad!, 1, x.size));
  return y;
}

/** Concatenation along `axis` (default 1, the token axis of [B,T,D]). */
export function concat(tp: Tape, xs: readonly Tensor[], axis = 1): Tensor {
  if (xs.length === 0) throw new ShapeError('concat: no inputs');
  const rank = xs[0].shape.length;
  if (axis < 0 || axis >= rank) throw new ShapeError(`concat: axis ${axis} of rank ${rank}`);
  const outShape = [...xs[0].shape];
  outShape[axis] = 0;
  for (const x of xs) {
    const ok = x.shape.length === rank && x.shape.every((d, i) => i === axis || d === xs[0].shape[i]);
    if (!ok)
      throw new ShapeError(`concat: ${xs.map((t) => shapeStr(t.shape)).join(' + ')} along axis ${axis}`);
    outShape[axis] += x.shape[axis];
  }
  const outer = numel(outShape.slice(0, axis));
  const rowOut = numel(outShape.slice(axis));
  const y = tp.empty(outShape);
  let off = 0;
  const offsets: number[] = [];
  for (const x of xs) {
    const row = x.size / outer;
    offsets.push(off);
    for (let o = 0; o < outer; o++) y.data.set(x.data.subarray(o * row, (o + 1) * row), o * rowOut + off);
    off += row;
  }
  if (tp.needsGrad(...xs)) {
    tp.record('concat', y, () => {
      const k = kernels();
      xs.forEach((x, i) => {
        if (!x.requiresGrad) return;
        const row = x.size / outer;
        const dx = tp.gradOf(x);
        for (let o = 0; o < outer; o++) {
          k.axpy(
            dx.subarray(o * row, (o + 1) * row),
            y.grad!.subarray(o * rowOut + offsets[i], o * rowOut + offsets[i] + row),
            1,
            row,
          );
        }
      });
    });
  }
  return y;
}

/** x[..., start:end, ...] along `axis` (default 1), copied. */
export function slice(tp: Tape, x: Tensor, start: number, end: number, axis = 1): Tensor {
  const rank = x.shape.length;
  if (axis < 0 || axis >= rank || start < 0 || end > x.shape[axis] || start > end) {
    throw new ShapeError(`slice: [${start}:${end}] on axis ${axis} of ${shapeStr(x.shape)}`);
  }
  const outShape = [...x.shape];
  outShape[axis] = end - start;
  const outer = numel(x.shape.slice(0, axis));
  const inner = numel(x.shape.slice(axis + 1));
  const rowIn = x.shape[axis] * inner;
  const rowOut = (end - start) * inner;
  const y = tp.empty(outShape);
  for (let o = 0; o < outer; o++) {
    const src = o * rowIn + start * inner;
    y.data.set(x.data.subarray(src, src + rowOut), o * rowOut);
  }
  if (tp.needsGrad(x)) {
    tp.record('slice', y, () => {
      const k = kernels();
      const dx = tp.gradOf(x);
      for (let o = 0; o < outer; o++) {
        const dst = o * rowIn + start * inner;
        k.axpy(dx.subarray(dst, dst + rowOut), y.grad!.subarray(o * rowOut, (o + 1) * rowOut), 1, rowOut);
      }
    });
  }
  return y;
}

/**
 * Per-sample row gather: x [B,L,D], ids [B,K] (indices into L) → [B,K,D] with
 * out[b,k] = x[b, ids[b,k]] (masking keeps ids_shuffle[:, :K]; unshuffling uses ids_restore).
 */
export function gatherTokens(tp: Tape, x: Tensor, ids: Int32Array, K: number): Tensor {
  expectRank('gatherTokens', 'x', x, 3);
  const [B, L, D] = x.shape;
  if (ids.length !== B * K) throw new ShapeError(`gatherTokens: ${ids.length} indices for [${B},${K}]`);
  const global = new Int32Array(B * K);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < K; j++) {
      const i = ids[b * K + j];
      if (!(i >= 0 && i < L)) throw new ShapeError(`gatherTokens: index ${i} outside [0, ${L})`);
      global[b * K + j] = b * L + i;
    }
  }
  return gatherRows(tp, x, global, [B, K, D]);
}

/** out[i,:] = x[index[i],:] over rows of width x.lastDim; `shape` is the output shape. */
export function gatherRows(tp: Tape, x: Tensor, index: Int32Array, shape: Shape): Tensor {
  const cols = x.lastDim;
  if (numel(shape) !== index.length * cols) {
    throw new ShapeError(`gatherRows: ${index.length} rows of ${cols} do not fill ${shapeStr(shape)}`);
  }
  const y = tp.empty(shape);
  const k = kernels();
  k.gatherRows(y.data, x.data, index, index.length, cols);
  if (tp.needsGrad(x))
    tp.record('gatherRows', y, () => k.scatterAddRows(tp.gradOf(x), y.grad!, index, index.length, cols));
  return y;
}

/**
 * A fixed re-arrangement by chunks: x is read as rows of `chunk` contiguous elements and
 * out row i = x row map[i] (patch extraction: 16-pixel image rows, single audio bins).
 */
export function gatherChunks(tp: Tape, x: Tensor, map: Int32Array, chunk: number, shape: Shape): Tensor {
  if (x.size % chunk !== 0 || numel(shape) !== map.length * chunk) {
    throw new ShapeError(
      `gatherChunks: ${map.length} chunks of ${chunk} from ${shapeStr(x.shape)} into ${shapeStr(shape)}`,
    );
  }
  const y = tp.empty(shape);
  const k = kernels();
  k.gatherRows(y.data, x.data, map, map.length, chunk);
  if (tp.needsGrad(x))
    tp.record('gatherChunks', y, () => k.scatterAddRows(tp.gradOf(x), y.grad!, map, map.length, chunk));
  return y;
}

/** Mean over the token axis: [B,T,D] → [B,D]. */
export function meanTokens(tp: Tape, x: Tensor): Tensor {
  expectRank('meanTokens', 'x', x, 3);
  const [B, T, D] = x.shape;
  const y = tp.empty([B, D]);
  const k = kernels();
  k.meanPool(y.data, x.data, B, T, D);
  if (tp.needsGrad(x)) tp.record('meanTokens', y, () => k.meanPoolBackward(tp.gradOf(x), y.grad!, B, T, D));
  return y;
}

/** Row-wise L2 normalisation as F.normalize: x / max(||x||, eps). */
export function l2Normalize(tp: Tape, x: Tensor, eps = 1e-12): Tensor {
  const rows = x.rows;
  const D = x.lastDim;
  const y = tp.empty(x.shape);
  const norms = tp.pool.alloc(rows);
  const k = kernels();
  k.l2Normalize(y.data, norms, x.data, rows, D, eps);
  if (tp.needsGrad(x)) {
    tp.record('l2Normalize', y, () =>
      k.l2NormalizeBackward(tp.gradOf(x), y.grad!, y.data, norms, rows, D, eps),
    );
  }
  return y;
}
