/**
 * Every differentiable op of the models, with its derivative rule next to its forward: this
 * file is the derivative table. Each op checks shapes, computes with kernels(), and (when the
 * tape needs it) records one closure that accumulates into its inputs' gradients.
 *
 * Conventions: activations are [B, T, D] (or [rows, D]); "rows" means the product of all axes
 * but the last. Fused ops (linear, layerNorm, attention, the losses) have hand-written
 * backward passes; views (reshape) share data with their input.
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
import {
  EPILOGUE_ADD,
  EPILOGUE_GELU,
  EPILOGUE_NONE,
  fused,
  takesBf16Operands,
  type Epilogue,
} from '../kernels/fused.js';
import { Param } from '../tensor/arena.js';

// ---------------------------------------------------------------------------------------------
// Dense layers

/**
 * The weight as a GEMM operand: in bf16 mode on the native backend, a parameter's bf16 copy
 * (rounded once per step); otherwise its values (the GEMM rounds them itself).
 */
function weightOperand(tp: Tape, w: Tensor): Float32Array | Uint16Array {
  return tp.bf16 && w instanceof Param && takesBf16Operands(kernels()) ? tp.bf16Param(w) : w.data;
}

/**
 * y = x·Wᵀ + b followed by the epilogue, in the tape's precision: fp32, bf16 GEMM inputs, or
 * (inference) int8 with per-output-channel weight scales and per-row activation scales.
 */
function linearInto(
  tp: Tape,
  x: Float32Array,
  w: Tensor,
  b: Tensor | null,
  y: Float32Array,
  rows: number,
  nOut: number,
  nIn: number,
  epilogue: Epilogue,
  aux: Float32Array | null,
): void {
  const f = fused(kernels());
  if (tp.int8 && w instanceof Param) {
    const q = tp.int8Param(w);
    f.gemmInt8(x, q.q, q.scale, q.comp, y, rows, nOut, nIn, b ? b.data : null, epilogue, aux);
    return;
  }
  f.gemmEx(
    x,
    weightOperand(tp, w),
    y,
    rows,
    nOut,
    nIn,
    false,
    true,
    1,
    0,
    tp.bf16,
    b ? b.data : null,
    epilogue,
    aux,
  );
}

function checkLinear(op: string, x: Tensor, w: Tensor, b: Tensor | null): { nIn: number; nOut: number } {
  const nOut = w.shape[0];
  const nIn = x.lastDim;
  if (w.size !== nOut * nIn)
    throw new ShapeError(`${op}: weight ${shapeStr(w.shape)} does not map ${nIn} inputs`);
  if (b) expectShape(op, 'bias', b, [nOut]);
  return { nIn, nOut };
}

/** The backward of y = x·Wᵀ + b given dy [rows, out]. */
function linearBackward(tp: Tape, x: Tensor, w: Tensor, b: Tensor | null, dy: Float32Array): void {
  const { nIn, nOut } = checkLinear('linear', x, w, b);
  const rows = x.rows;
  const k = kernels();
  const f = fused(k);
  // In bf16 on the native backend, dy is rounded once and read by both GEMMs.
  let g: Float32Array | Uint16Array = dy;
  let gBuf: Float32Array | null = null;
  if (tp.bf16 && takesBf16Operands(k) && x.requiresGrad && w.requiresGrad) {
    const n = rows * nOut;
    gBuf = tp.pool.alloc((n + 1) >> 1);
    g = new Uint16Array(gBuf.buffer, gBuf.byteOffset, n);
    k.f32ToBf16(g, dy, n);
  }
  // dx [rows, in] (+)= dy [rows, out] · W [out, in]
  if (x.requiresGrad) {
    const { grad, beta } = tp.gradForWrite(x);
    f.gemmEx(
      g,
      weightOperand(tp, w),
      grad,
      rows,
      nIn,
      nOut,
      false,
      false,
      1,
      beta,
      tp.bf16,
      null,
      EPILOGUE_NONE,
      null,
    );
  }
  // dW [out, in] += dyᵀ [out, rows] · x [rows, in]
  if (w.requiresGrad)
    f.gemmEx(g, x.data, tp.gradOf(w), nOut, nIn, rows, true, false, 1, 1, tp.bf16, null, EPILOGUE_NONE, null);
  if (b && b.requiresGrad) k.biasBackward(tp.gradOf(b), dy, rows, nOut);
  if (gBuf) tp.pool.release(gBuf);
}

/** y = x·Wᵀ + b, x [..., in], W [out, in] (any shape whose first axis is `out`), b [out]. */
export function linear(tp: Tape, x: Tensor, w: Tensor, b: Tensor | null): Tensor {
  const { nIn, nOut } = checkLinear('linear', x, w, b);
  const rows = x.rows;
  const y = tp.empty([...x.shape.slice(0, -1), nOut]);
  // The bias is added to each output tile as it is produced (no separate pass).
  linearInto(tp, x.data, w, b, y.data, rows, nOut, nIn, EPILOGUE_NONE, null);
  if (tp.needsGrad(x, w, b)) tp.record('linear', y, () => linearBackward(tp, x, w, b, y.grad!));
  return y;
}

/**
 * gelu(x·Wᵀ + b) in one pass (the MLP's fc1 + GELU): bias and GELU are applied to each output
 * tile while it is in cache. With gradients, the pre-activation is kept for GELU's backward.
 */
export function linearGelu(tp: Tape, x: Tensor, w: Tensor, b: Tensor | null): Tensor {
  const { nIn, nOut } = checkLinear('linearGelu', x, w, b);
  const rows = x.rows;
  const shape = [...x.shape.slice(0, -1), nOut];
  const y = tp.empty(shape);
  const grad = tp.needsGrad(x, w, b);
  const pre = grad ? tp.pool.alloc(rows * nOut) : null;
  linearInto(tp, x.data, w, b, y.data, rows, nOut, nIn, EPILOGUE_GELU, pre);
  if (grad) {
    tp.record('linearGelu', y, () => {
      const dpre = tp.pool.zeros(rows * nOut);
      kernels().geluBackward(dpre, pre!, y.grad!, rows * nOut);
      linearBackward(tp, x, w, b, dpre);
      tp.pool.release(dpre);
      tp.pool.release(pre!);
    });
  }
  return y;
}

/**
 * residual + (x·Wᵀ + b) in one pass (the attention projection and fc2 with the block's skip
 * connection): bias and residual are added to each output tile while it is in cache.
 */
export function linearAdd(tp: Tape, x: Tensor, w: Tensor, b: Tensor | null, residual: Tensor): Tensor {
  const { nIn, nOut } = checkLinear('linearAdd', x, w, b);
  const rows = x.rows;
  const shape = [...x.shape.slice(0, -1), nOut];
  if (!sameShape(residual.shape, shape))
    throw new ShapeError(`linearAdd: residual ${shapeStr(residual.shape)} for output ${shapeStr(shape)}`);
  const y = tp.empty(shape);
  linearInto(tp, x.data, w, b, y.data, rows, nOut, nIn, EPILOGUE_ADD, residual.data);
  if (tp.needsGrad(x, w, b, residual)) {
    tp.record('linearAdd', y, () => {
      const dy = y.grad!;
      if (residual.requiresGrad) kernels().axpy(tp.gradOf(residual), dy, 1, residual.size);
      if (tp.needsGrad(x, w, b)) linearBackward(tp, x, w, b, dy);
    });
  }
  return y;
}

/**
 * linear(layerNorm(x)) (the block's norm1 + qkv), keeping only x's statistics: the normalised
 * activations are recomputed in backward (one LayerNorm pass, bit-identical) instead of being
 * held from forward to backward. Same values and gradients as layerNorm then linear.
 */
export function layerNormLinear(
  tp: Tape,
  x: Tensor,
  lnW: Tensor,
  lnB: Tensor,
  eps: number,
  w: Tensor,
  b: Tensor | null,
): Tensor {
  const C = x.lastDim;
  expectShape('layerNormLinear', 'LayerNorm weight', lnW, [C]);
  expectShape('layerNormLinear', 'LayerNorm bias', lnB, [C]);
  const { nOut } = checkLinear('layerNormLinear', x, w, b);
  const rows = x.rows;
  const k = kernels();
  const n = tp.pool.alloc(rows * C);
  const mean = tp.pool.alloc(rows);
  const rstd = tp.pool.alloc(rows);
  k.layerNormForward(n, mean, rstd, x.data, lnW.data, lnB.data, rows, C, eps);
  const y = tp.empty([...x.shape.slice(0, -1), nOut]);
  linearInto(tp, n, w, b, y.data, rows, nOut, C, EPILOGUE_NONE, null);
  tp.pool.release(n);
  if (!tp.needsGrad(x, lnW, lnB, w, b)) {
    tp.pool.release(mean);
    tp.pool.release(rstd);
    return y;
  }
  tp.record('layerNormLinear', y, () => {
    const nt = new Tensor(
      x.shape,
      tp.pool.alloc(rows * C),
      x.requiresGrad || lnW.requiresGrad || lnB.requiresGrad,
    );
    k.layerNormForward(nt.data, mean, rstd, x.data, lnW.data, lnB.data, rows, C, eps); // recompute
    linearBackward(tp, nt, w, b, y.grad!);
    if (nt.grad) layerNormBackwardInto(tp, x, lnW, lnB, nt.grad, mean, rstd);
    tp.pool.release(nt.data);
    if (nt.grad) tp.pool.release(nt.grad);
    tp.pool.release(mean);
    tp.pool.release(rstd);
  });
  return y;
}

/**
 * residual + fc2(gelu(fc1(layerNorm(x)))) (the block's norm2 + MLP + skip connection), keeping
 * only x's statistics and fc1's pre-activation: the normalised input and the GELU output are
 * recomputed in backward (bit-identical) instead of being held, 5 of the block's 16 saved
 * activation widths. Same values and gradients as the op sequence.
 */
export function layerNormMlp(
  tp: Tape,
  x: Tensor,
  lnW: Tensor,
  lnB: Tensor,
  eps: number,
  w1: Tensor,
  b1: Tensor | null,
  w2: Tensor,
  b2: Tensor | null,
  residual: Tensor,
): Tensor {
  const C = x.lastDim;
  expectShape('layerNormMlp', 'LayerNorm weight', lnW, [C]);
  expectShape('layerNormMlp', 'LayerNorm bias', lnB, [C]);
  const hid = checkLinear('layerNormMlp', x, w1, b1).nOut;
  const { nOut } = checkLinear('layerNormMlp', new Tensor([1, hid], null), w2, b2);
  const shape = [...x.shape.slice(0, -1), nOut];
  if (!sameShape(residual.shape, shape))
    throw new ShapeError(`layerNormMlp: residual ${shapeStr(residual.shape)} for output ${shapeStr(shape)}`);
  const rows = x.rows;
  const k = kernels();
  const grad = tp.needsGrad(x, lnW, lnB, w1, b1, w2, b2, residual);
  const n = tp.pool.alloc(rows * C);
  const mean = tp.pool.alloc(rows);
  const rstd = tp.pool.alloc(rows);
  k.layerNormForward(n, mean, rstd, x.data, lnW.data, lnB.data, rows, C, eps);
  const pre = grad ? tp.pool.alloc(rows * hid) : null;
  const y = tp.empty(shape);
  if (tp.bf16 && !tp.int8 && takesBf16Operands(k)) {
    // fc2 reads the hidden activations in bf16: fc1's epilogue writes them rounded, tile by
    // tile, and never stores the fp32 values (the backward recomputes them from `pre`).
    const h16 = tp.pool.alloc((rows * hid + 1) >> 1);
    const h = new Uint16Array(h16.buffer, h16.byteOffset, rows * hid);
    fused(k).gemmEx(
      n,
      weightOperand(tp, w1),
      null,
      rows,
      hid,
      C,
      false,
      true,
      1,
      0,
      true,
      b1 ? b1.data : null,
      EPILOGUE_GELU,
      pre,
      h,
    );
    tp.pool.release(n);
    fused(k).gemmEx(
      h,
      weightOperand(tp, w2),
      y.data,
      rows,
      nOut,
      hid,
      false,
      true,
      1,
      0,
      true,
      b2 ? b2.data : null,
      EPILOGUE_ADD,
      residual.data,
    );
    tp.pool.release(h16);
  } else {
    const h = tp.pool.alloc(rows * hid);
    linearInto(tp, n, w1, b1, h, rows, hid, C, EPILOGUE_GELU, pre);
    tp.pool.release(n);
    linearInto(tp, h, w2, b2, y.data, rows, nOut, hid, EPILOGUE_ADD, residual.data);
    tp.pool.release(h);
  }
  if (!grad) {
    tp.pool.release(mean);
    tp.pool.release(rstd);
    return y;
  }
  tp.record('layerNormMlp', y, () => {
    const dy = y.grad!;
    if (residual.requiresGrad) k.axpy(tp.gradOf(residual), dy, 1, residual.size);
    const inputGrad = x.requiresGrad || lnW.requiresGrad || lnB.requiresGrad;
    const nt = new Tensor([rows, C], tp.pool.alloc(rows * C), inputGrad);
    k.layerNormForward(nt.data, mean, rstd, x.data, lnW.data, lnB.data, rows, C, eps); // recompute
    const ht = new Tensor([rows, hid], tp.pool.alloc(rows * hid), true);
    k.geluForward(ht.data, pre!, rows * hid); // recompute (the epilogue's exact GELU)
    linearBackward(tp, ht, w2, b2, dy); // dW2, db2, and dh into ht.grad
    tp.pool.release(ht.data);
    const dpre = tp.pool.zeros(rows * hid);
    k.geluBackward(dpre, pre!, ht.grad!, rows * hid);
    tp.pool.release(ht.grad!);
    tp.pool.release(pre!);
    linearBackward(tp, nt, w1, b1, dpre);
    tp.pool.release(dpre);
    if (nt.grad) layerNormBackwardInto(tp, x, lnW, lnB, nt.grad, mean, rstd);
    tp.pool.release(nt.data);
    if (nt.grad) tp.pool.release(nt.grad);
    tp.pool.release(mean);
    tp.pool.release(rstd);
  });
  return y;
}

/** LayerNorm backward from dy into the gradients of x, weight and bias (those that need one). */
function layerNormBackwardInto(
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
      // The kernel produces all three gradients; unneeded ones go to scratch.
      const dx = x.requiresGrad ? tp.gradOf(x) : tp.pool.alloc(x.size);
      const dw = w.requiresGrad ? tp.gradOf(w) : tp.pool.alloc(C);
      const db = b.requiresGrad ? tp.gradOf(b) : tp.pool.alloc(C);
      k.layerNormBackward(dx, dw, db, y.grad!, x.data, w.data, mean, rstd, rows, C);
      tp.pool.release(mean);
      tp.pool.release(rstd);
      if (!x.requiresGrad) tp.pool.release(dx);
      if (!w.requiresGrad) tp.pool.release(dw);
      if (!b.requiresGrad) tp.pool.release(db);
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

const NO_SCRATCH = new Float32Array(0);

/**
 * Multi-head self-attention core (timm 0.4.5): qkv [B,T,3C] → [B,T,C] (heads concatenated,
 * before the output projection). Saves the probabilities [B,H,T,T] for backward.
 */
export function attention(tp: Tape, qkv: Tensor, heads: number, scale?: number): Tensor {
  expectRank('attention', 'qkv', qkv, 3);
  const [B, T, C3] = qkv.shape;
  const C = C3 / 3;
  if (!Number.isInteger(C) || C % heads !== 0) {
    throw new ShapeError(`attention: qkv width ${C3} is not 3 x (a multiple of ${heads} heads)`);
  }
  const s = scale ?? (C / heads) ** -0.5;
  const y = tp.empty([B, T, C]);
  const k = kernels();
  // The native kernels keep no probabilities (backward recomputes them per head, bit-identical)
  // and need no backward scratch: attention costs O(threads·T²) memory instead of O(B·H·T²)
  // per layer. The TypeScript reference keeps both [B,H,T,T] buffers.
  const native = k.name === 'native';
  const att = native ? NO_SCRATCH : tp.pool.alloc(B * heads * T * T);
  // int8 inference runs the attention GEMMs in bf16 (only the linear layers are int8).
  k.attentionForward(y.data, att, qkv.data, B, T, C, heads, s, tp.bf16 || tp.int8);
  if (tp.needsGrad(qkv)) {
    tp.record('attention', y, () => {
      const scratch = native ? NO_SCRATCH : tp.pool.alloc(B * heads * T * T);
      k.attentionBackward(tp.gradOf(qkv), scratch, y.grad!, qkv.data, att, B, T, C, heads, s, tp.bf16);
      if (!native) {
        tp.pool.release(scratch);
        tp.pool.release(att); // this closure's alone, and it runs once
      }
    });
  } else if (!native) {
    tp.pool.release(att);
  }
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

// ---------------------------------------------------------------------------------------------
// Losses (scalars of shape [1])

/**
 * Masked MSE of the MAE: per patch mean over P of (pred - target)², then Σ(loss·mask)/Σ(mask).
 * pred [B,L,P]; target (a constant, already patch-normalised when norm_pix_loss) [B,L,P];
 * mask [B,L] (1 = removed).
 */
export function maskedMse(tp: Tape, pred: Tensor, target: Float32Array, mask: Float32Array): Tensor {
  expectRank('maskedMse', 'pred', pred, 3);
  const [B, L, P] = pred.shape;
  if (target.length !== pred.size)
    throw new ShapeError(`maskedMse: target of ${target.length} for ${shapeStr(pred.shape)}`);
  if (mask.length !== B * L) throw new ShapeError(`maskedMse: mask of ${mask.length} for [${B},${L}]`);
  let maskSum = 0;
  let total = 0;
  for (let r = 0; r < B * L; r++) {
    const m = mask[r];
    maskSum += m;
    if (m === 0) continue;
    let s = 0;
    for (let p = r * P; p < (r + 1) * P; p++) {
      const d = pred.data[p] - target[p];
      s += d * d;
    }
    total += (s / P) * m;
  }
  const loss = tp.empty([1]);
  loss.data[0] = total / maskSum;
  if (tp.needsGrad(pred)) {
    tp.record('maskedMse', loss, () => {
      const g = loss.grad![0];
      const dpred = tp.gradOf(pred);
      for (let r = 0; r < B * L; r++) {
        const c = (2 * g * mask[r]) / (P * maskSum);
        if (c === 0) continue;
        for (let p = r * P; p < (r + 1) * P; p++) dpred[p] += c * (pred.data[p] - target[p]);
      }
    });
  }
  return loss;
}

export interface ContrastiveOptions {
  /** Temperature τ (CAV-MAE: fixed 0.05). */
  temperature?: number;
  /** Average the video→audio and audio→video directions ("Symc"). */
  bidirectional?: boolean;
  /**
   * Split the batch into this many contiguous groups (torch.chunk sizes, as DataParallel's
   * scatter) and contrast within each group only; loss and accuracy are the group means.
   */
  groups?: number;
}

export interface ContrastiveResult {
  loss: Tensor;
  /** Fraction of correct argmax retrievals (averaged over directions and groups). */
  accuracy: number;
  /** The similarity logits of each group, [n,n] row-major (row = audio, column = video). */
  logits: Float32Array[];
}

/**
 * InfoNCE of CAV-MAE over L2-normalised representations a [B,D] (audio) and v [B,D] (video).
 * S = a·vᵀ/τ; default direction: for every video j a softmax over the audios (dim 0):
 * NCE = -mean_j log_softmax(S, dim=0)[j,j]; accuracy = mean_j [argmax_i S[i,j] == j].
 */
export function infoNce(tp: Tape, a: Tensor, v: Tensor, opts: ContrastiveOptions = {}): ContrastiveResult {
  expectRank('infoNce', 'audio', a, 2);
  expectShape('infoNce', 'video', v, a.shape);
  const [B, D] = a.shape;
  const tau = opts.temperature ?? 0.05;
  const bidirectional = opts.bidirectional ?? false;
  const groups = chunkSizes(B, opts.groups ?? 1);
  const k = kernels();
  const loss = tp.empty([1]);
  const saved: {
    start: number;
    n: number;
    S: Float32Array;
    pCol: Float64Array;
    pRow: Float64Array | null;
  }[] = [];
  let lossSum = 0;
  let accSum = 0;
  let start = 0;
  for (const n of groups) {
    const S = tp.pool.alloc(n * n);
    // S [n,n] = a_g [n,D] · v_gᵀ [D,n] / τ
    k.matmul(
      a.data.subarray(start * D, (start + n) * D),
      v.data.subarray(start * D, (start + n) * D),
      S,
      n,
      n,
      D,
      false,
      true,
      1 / tau,
      0,
      false,
    );
    const pCol = softmaxAxis(S, n, 0);
    let nce = 0;
    let acc = 0;
    for (let j = 0; j < n; j++) {
      nce -= Math.log(pCol[j * n + j]) / n;
      acc += argmaxColumn(S, n, j) === j ? 1 / n : 0;
    }
    let pRow: Float64Array | null = null;
    if (bidirectional) {
      pRow = softmaxAxis(S, n, 1);
      let nce2 = 0;
      let acc2 = 0;
      for (let i = 0; i < n; i++) {
        nce2 -= Math.log(pRow[i * n + i]) / n;
        acc2 += argmaxRow(S, n, i) === i ? 1 / n : 0;
      }
      nce = (nce + nce2) / 2;
      acc = (acc + acc2) / 2;
    }
    lossSum += nce;
    accSum += acc;
    saved.push({ start, n, S, pCol, pRow });
    start += n;
  }
  loss.data[0] = lossSum / groups.length;
  if (tp.needsGrad(a, v)) {
    tp.record('infoNce', loss, () => {
      const g = loss.grad![0] / groups.length;
      for (const { start: s0, n, pCol, pRow } of saved) {
        // dS[i,j] = g/n · (softmax_col_j[i] - δij)   (+ the row direction, each weighted 1/2)
        const w = bidirectional ? 0.5 : 1;
        const dS = tp.pool.alloc(n * n);
        for (let i = 0; i < n; i++) {
          for (let j = 0; j < n; j++) {
            const delta = i === j ? 1 : 0;
            let d = w * (pCol[i * n + j] - delta);
            if (pRow) d += w * (pRow[i * n + j] - delta);
            dS[i * n + j] = (g / n) * d;
          }
        }
        const aG = a.data.subarray(s0 * D, (s0 + n) * D);
        const vG = v.data.subarray(s0 * D, (s0 + n) * D);
        // da [n,D] += dS [n,n] · v [n,D] / τ ;  dv [n,D] += dSᵀ · a / τ
        if (a.requiresGrad)
          k.matmul(
            dS,
            vG,
            tp.gradOf(a).subarray(s0 * D, (s0 + n) * D),
            n,
            D,
            n,
            false,
            false,
            1 / tau,
            1,
            false,
          );
        if (v.requiresGrad)
          k.matmul(
            dS,
            aG,
            tp.gradOf(v).subarray(s0 * D, (s0 + n) * D),
            n,
            D,
            n,
            true,
            false,
            1 / tau,
            1,
            false,
          );
        tp.pool.release(dS);
      }
    });
  }
  return { loss, accuracy: accSum / groups.length, logits: saved.map((s) => s.S) };
}

/** torch.chunk sizes: ceil(B/k) per chunk, the last one smaller (and fewer chunks if B is small). */
export function chunkSizes(B: number, k: number): number[] {
  if (!Number.isInteger(k) || k < 1)
    throw new ShapeError(`contrastive groups must be a positive integer, got ${k}`);
  const size = Math.ceil(B / k);
  const out: number[] = [];
  for (let s = 0; s < B; s += size) out.push(Math.min(size, B - s));
  return out;
}

/** Softmax of an [n,n] matrix along axis 0 (columns) or 1 (rows), in float64. */
function softmaxAxis(S: Float32Array, n: number, axis: 0 | 1): Float64Array {
  const P = new Float64Array(n * n);
  for (let u = 0; u < n; u++) {
    const at = (t: number): number => (axis === 0 ? t * n + u : u * n + t);
    let max = -Infinity;
    for (let t = 0; t < n; t++) max = Math.max(max, S[at(t)]);
    let sum = 0;
    for (let t = 0; t < n; t++) sum += Math.exp(S[at(t)] - max);
    for (let t = 0; t < n; t++) P[at(t)] = Math.exp(S[at(t)] - max) / sum;
  }
  return P;
}

/** First index of the maximum (torch.argmax tie rule). */
function argmaxColumn(S: Float32Array, n: number, j: number): number {
  let best = 0;
  for (let i = 1; i < n; i++) if (S[i * n + j] > S[best * n + j]) best = i;
  return best;
}

function argmaxRow(S: Float32Array, n: number, i: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (S[i * n + j] > S[i * n + best]) best = j;
  return best;
}

/** BCEWithLogitsLoss, mean over all B×K entries. targets [B,K] in [0,1]. */
export function bceWithLogits(tp: Tape, logits: Tensor, targets: Float32Array): Tensor {
  if (targets.length !== logits.size)
    throw new ShapeError(`bceWithLogits: ${targets.length} targets for ${logits}`);
  const n = logits.size;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const x = logits.data[i];
    total += Math.max(x, 0) - x * targets[i] + Math.log1p(Math.exp(-Math.abs(x)));
  }
  const loss = tp.empty([1]);
  loss.data[0] = total / n;
  if (tp.needsGrad(logits)) {
    tp.record('bceWithLogits', loss, () => {
      const g = loss.grad![0] / n;
      const dx = tp.gradOf(logits);
      for (let i = 0; i < n; i++) dx[i] += g * (1 / (1 + Math.exp(-logits.data[i])) - targets[i]);
    });
  }
  return loss;
}

/**
 * CrossEntropyLoss with probability targets (soft, smoothed or mixed labels), mean over the
 * batch: -Σ_k t_k log_softmax(x)_k. logits [B,K], targets [B,K].
 */
export function crossEntropy(tp: Tape, logits: Tensor, targets: Float32Array): Tensor {
  expectRank('crossEntropy', 'logits', logits, 2);
  const [B, K] = logits.shape;
  if (targets.length !== logits.size)
    throw new ShapeError(`crossEntropy: ${targets.length} targets for ${logits}`);
  const prob = new Float64Array(B * K);
  let total = 0;
  for (let b = 0; b < B; b++) {
    const o = b * K;
    let max = -Infinity;
    for (let c = 0; c < K; c++) max = Math.max(max, logits.data[o + c]);
    let sum = 0;
    for (let c = 0; c < K; c++) sum += Math.exp(logits.data[o + c] - max);
    const lse = max + Math.log(sum);
    for (let c = 0; c < K; c++) {
      prob[o + c] = Math.exp(logits.data[o + c] - lse);
      total -= targets[o + c] * (logits.data[o + c] - lse);
    }
  }
  const loss = tp.empty([1]);
  loss.data[0] = total / B;
  if (tp.needsGrad(logits)) {
    tp.record('crossEntropy', loss, () => {
      const g = loss.grad![0] / B;
      const dx = tp.gradOf(logits);
      for (let b = 0; b < B; b++) {
        let tsum = 0;
        for (let c = 0; c < K; c++) tsum += targets[b * K + c];
        for (let c = 0; c < K; c++) dx[b * K + c] += g * (prob[b * K + c] * tsum - targets[b * K + c]);
      }
    });
  }
  return loss;
}
