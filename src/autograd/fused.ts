/**
 * The GEMM-based ops with hand-written backward passes: linear layers whose bias, GELU or
 * residual add run in the GEMM's tile epilogue, LayerNorm fused with the GEMM that reads its
 * output (keeping only the statistics for backward), and the attention core. Each checks
 * shapes, computes with kernels() in the tape's precision (fp32, bf16 GEMM inputs, or int8
 * inference), and records one closure that accumulates into its inputs' gradients.
 */
import { kernels } from '../kernels/index.js';
import { Tensor, ShapeError, expectRank, expectShape, sameShape, shapeStr } from '../tensor/tensor.js';
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
import { layerNormBackwardInto } from './primitives.js';

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
  x: Float32Array | Uint16Array,
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
    if (!(x instanceof Float32Array)) throw new TypeError('linear: an int8 GEMM quantises fp32 rows');
    const q = tp.int8Param(w);
    f.gemmInt8(
      x,
      q.q,
      q.scale,
      q.comp,
      y,
      rows,
      nOut,
      nIn,
      b ? b.data : null,
      epilogue,
      aux,
      null,
      null,
      null,
      null,
      q.packed,
    );
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

/**
 * Whether producers write this tape's GEMM operands in bf16 directly (LayerNorm, the recomputed
 * GELU): bf16 training or inference on the native backend. The values are those the GEMM's own
 * rounding of the fp32 rows gives, so results are bit-identical; one fp32 pass less each.
 */
function writesBf16Operands(tp: Tape): boolean {
  return tp.bf16 && !tp.int8 && takesBf16Operands(kernels());
}

/** n bf16 values in a pool buffer (release `buf`). */
function bf16Buffer(tp: Tape, n: number): { u16: Uint16Array; buf: Float32Array } {
  const buf = tp.pool.alloc((n + 1) >> 1);
  return { u16: new Uint16Array(buf.buffer, buf.byteOffset, n), buf };
}

/**
 * The backward of y = x·Wᵀ + b given dy [rows, out]. xOperand: x's values for the weight
 * gradient when x.data does not hold them (a bf16 copy written by its producer).
 */
function linearBackward(
  tp: Tape,
  x: Tensor,
  w: Tensor,
  b: Tensor | null,
  dy: Float32Array,
  xOperand: Float32Array | Uint16Array = x.data,
): void {
  const { nIn, nOut } = checkLinear('linear', x, w, b);
  const rows = x.rows;
  const k = kernels();
  const f = fused(k);
  // In bf16 on the native backend, dy is rounded once and read by both GEMMs.
  let g: Float32Array | Uint16Array = dy;
  let gBuf: Float32Array | null = null;
  if (tp.bf16 && takesBf16Operands(k) && x.requiresGrad && w.requiresGrad) {
    const g16 = bf16Buffer(tp, rows * nOut);
    g = g16.u16;
    gBuf = g16.buf;
    k.f32ToBf16(g, dy, rows * nOut);
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
    f.gemmEx(
      g,
      xOperand,
      tp.gradOf(w),
      nOut,
      nIn,
      rows,
      true,
      false,
      1,
      1,
      tp.bf16,
      null,
      EPILOGUE_NONE,
      null,
    );
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

/** Rows quantised for an int8 GEMM (u8 = q + 128, per-row scales), in pool buffers. */
interface Int8Rows {
  q: Uint8Array;
  scale: Float32Array;
  buf: Float32Array;
}

function int8Rows(tp: Tape, rows: number, cols: number): Int8Rows {
  const buf = tp.pool.alloc((rows * cols + 3) >> 2);
  return { q: new Uint8Array(buf.buffer, buf.byteOffset, rows * cols), scale: tp.pool.alloc(rows), buf };
}

function releaseInt8Rows(tp: Tape, r: Int8Rows): void {
  tp.pool.release(r.buf);
  tp.pool.release(r.scale);
}

/**
 * A fused op's LayerNorm output recomputed for its backward (bit-identical to the forward's):
 * `nt` receives its gradient; `operand` holds its values for the weight gradient, in bf16
 * straight from the LayerNorm when the tape's GEMMs read bf16 (then nt holds no values).
 * Release `bf16` (if any) after the weight gradient, then finishLayerNormBackward.
 */
function recomputeLayerNorm(
  tp: Tape,
  x: Tensor,
  lnW: Tensor,
  lnB: Tensor,
  mean: Float32Array,
  rstd: Float32Array,
  eps: number,
): { nt: Tensor; operand: Float32Array | Uint16Array; bf16: Float32Array | null } {
  const [rows, C] = [x.rows, x.lastDim];
  const inputGrad = x.requiresGrad || lnW.requiresGrad || lnB.requiresGrad;
  if (writesBf16Operands(tp)) {
    const n16 = bf16Buffer(tp, rows * C);
    fused(kernels()).layerNormForwardBf16(n16.u16, mean, rstd, x.data, lnW.data, lnB.data, rows, C, eps);
    return { nt: new Tensor(x.shape, null, inputGrad), operand: n16.u16, bf16: n16.buf };
  }
  const nt = new Tensor(x.shape, tp.pool.alloc(rows * C), inputGrad);
  kernels().layerNormForward(nt.data, mean, rstd, x.data, lnW.data, lnB.data, rows, C, eps);
  return { nt, operand: nt.data, bf16: null };
}

/**
 * The end of a fused op's backward through its recomputed LayerNorm output `nt`: the LayerNorm
 * gradients from nt.grad (when one arrived), then nt and the saved statistics go back to the pool.
 */
function finishLayerNormBackward(
  tp: Tape,
  x: Tensor,
  lnW: Tensor,
  lnB: Tensor,
  nt: Tensor,
  mean: Float32Array,
  rstd: Float32Array,
): void {
  if (nt.grad) layerNormBackwardInto(tp, x, lnW, lnB, nt.grad, mean, rstd);
  if (nt.data.length) tp.pool.release(nt.data); // empty when its values went to bf16 only
  if (nt.grad) tp.pool.release(nt.grad);
  tp.pool.release(mean);
  tp.pool.release(rstd);
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
  const mean = tp.pool.alloc(rows);
  const rstd = tp.pool.alloc(rows);
  const y = tp.empty([...x.shape.slice(0, -1), nOut]);
  if (tp.int8 && w instanceof Param) {
    // int8 inference: LayerNorm leaves its rows already quantised for the GEMM.
    const f = fused(k);
    const a = int8Rows(tp, rows, C);
    f.layerNormForwardInt8(a.q, a.scale, mean, rstd, x.data, lnW.data, lnB.data, rows, C, eps);
    const p = tp.int8Param(w);
    f.gemmInt8(
      null,
      p.q,
      p.scale,
      p.comp,
      y.data,
      rows,
      nOut,
      C,
      b ? b.data : null,
      EPILOGUE_NONE,
      null,
      a.q,
      a.scale,
      null,
      null,
      p.packed,
    );
    releaseInt8Rows(tp, a);
  } else if (writesBf16Operands(tp)) {
    const n16 = bf16Buffer(tp, rows * C);
    fused(k).layerNormForwardBf16(n16.u16, mean, rstd, x.data, lnW.data, lnB.data, rows, C, eps);
    linearInto(tp, n16.u16, w, b, y.data, rows, nOut, C, EPILOGUE_NONE, null);
    tp.pool.release(n16.buf);
  } else {
    const n = tp.pool.alloc(rows * C);
    k.layerNormForward(n, mean, rstd, x.data, lnW.data, lnB.data, rows, C, eps);
    linearInto(tp, n, w, b, y.data, rows, nOut, C, EPILOGUE_NONE, null);
    tp.pool.release(n);
  }
  if (!tp.needsGrad(x, lnW, lnB, w, b)) {
    tp.pool.release(mean);
    tp.pool.release(rstd);
    return y;
  }
  tp.record('layerNormLinear', y, () => {
    const { nt, operand, bf16 } = recomputeLayerNorm(tp, x, lnW, lnB, mean, rstd, eps);
    linearBackward(tp, nt, w, b, y.grad!, operand);
    if (bf16) tp.pool.release(bf16);
    finishLayerNormBackward(tp, x, lnW, lnB, nt, mean, rstd);
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
  const mean = tp.pool.alloc(rows);
  const rstd = tp.pool.alloc(rows);
  const pre = grad ? tp.pool.alloc(rows * hid) : null;
  const y = tp.empty(shape);
  if (tp.int8 && w1 instanceof Param && w2 instanceof Param) {
    // int8 inference: LayerNorm leaves its rows quantised for fc1, and fc1's epilogue (GELU)
    // quantises whole rows of the hidden activations for fc2: no fp32 copy of either.
    const f = fused(k);
    const a = int8Rows(tp, rows, C);
    f.layerNormForwardInt8(a.q, a.scale, mean, rstd, x.data, lnW.data, lnB.data, rows, C, eps);
    const h = int8Rows(tp, rows, hid);
    const p1 = tp.int8Param(w1);
    f.gemmInt8(
      null,
      p1.q,
      p1.scale,
      p1.comp,
      null,
      rows,
      hid,
      C,
      b1 ? b1.data : null,
      EPILOGUE_GELU,
      pre,
      a.q,
      a.scale,
      h.q,
      h.scale,
      p1.packed,
    );
    releaseInt8Rows(tp, a);
    const p2 = tp.int8Param(w2);
    f.gemmInt8(
      null,
      p2.q,
      p2.scale,
      p2.comp,
      y.data,
      rows,
      nOut,
      hid,
      b2 ? b2.data : null,
      EPILOGUE_ADD,
      residual.data,
      h.q,
      h.scale,
      null,
      null,
      p2.packed,
    );
    releaseInt8Rows(tp, h);
  } else if (writesBf16Operands(tp)) {
    // LayerNorm writes fc1's operand in bf16 (no fp32 pass). fc2 reads the hidden activations in
    // bf16: fc1's epilogue writes them rounded, tile by tile, and never stores the fp32 values
    // (the backward recomputes them from `pre`).
    const n16 = bf16Buffer(tp, rows * C);
    fused(k).layerNormForwardBf16(n16.u16, mean, rstd, x.data, lnW.data, lnB.data, rows, C, eps);
    const h = bf16Buffer(tp, rows * hid);
    fused(k).gemmEx(
      n16.u16,
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
      h.u16,
    );
    tp.pool.release(n16.buf);
    fused(k).gemmEx(
      h.u16,
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
    tp.pool.release(h.buf);
  } else {
    const n = tp.pool.alloc(rows * C);
    k.layerNormForward(n, mean, rstd, x.data, lnW.data, lnB.data, rows, C, eps);
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
    const { nt, operand, bf16 } = recomputeLayerNorm(tp, x, lnW, lnB, mean, rstd, eps);
    // The GELU output recomputed (the epilogue's exact GELU), straight to bf16 when fc2's weight
    // gradient reads bf16; then dW2, db2, and dh into ht.grad.
    const h16 = writesBf16Operands(tp) ? bf16Buffer(tp, rows * hid) : null;
    const ht = new Tensor([rows, hid], h16 ? null : tp.pool.alloc(rows * hid), true);
    if (h16) fused(k).geluForwardBf16(h16.u16, pre!, rows * hid);
    else k.geluForward(ht.data, pre!, rows * hid);
    linearBackward(tp, ht, w2, b2, dy, h16 ? h16.u16 : ht.data);
    tp.pool.release(h16 ? h16.buf : ht.data);
    const dpre = tp.pool.zeros(rows * hid);
    k.geluBackward(dpre, pre!, ht.grad!, rows * hid);
    tp.pool.release(ht.grad!);
    tp.pool.release(pre!);
    linearBackward(tp, nt, w1, b1, dpre, operand);
    tp.pool.release(dpre);
    if (bf16) tp.pool.release(bf16);
    finishLayerNormBackward(tp, x, lnW, lnB, nt, mean, rstd);
  });
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
  if (!tp.needsGrad(qkv)) {
    // Inference: nothing is kept for a backward; int8 tapes run attention in int8 (VNNI).
    const precision = tp.int8 ? 2 : tp.bf16 ? 1 : 0;
    fused(k).attentionInference(y.data, qkv.data, B, T, C, heads, s, precision);
    return y;
  }
  // The native kernels keep no probabilities (backward recomputes them per head, bit-identical)
  // and need no backward scratch: attention costs O(threads·T²) memory instead of O(B·H·T²)
  // per layer. The TypeScript reference keeps both [B,H,T,T] buffers.
  const native = k.name === 'native';
  const att = native ? NO_SCRATCH : tp.pool.alloc(B * heads * T * T);
  k.attentionForward(y.data, att, qkv.data, B, T, C, heads, s, tp.bf16);
  tp.record('attention', y, () => {
    const scratch = native ? NO_SCRATCH : tp.pool.alloc(B * heads * T * T);
    k.attentionBackward(tp.gradOf(qkv), scratch, y.grad!, qkv.data, att, B, T, C, heads, s, tp.bf16);
    if (!native) {
      tp.pool.release(scratch);
      tp.pool.release(att); // this closure's alone, and it runs once
    }
  });
  return y;
}
