/**
 * Reference normalisation kernels: LayerNorm (torch.nn.LayerNorm: biased variance over the
 * last dim, eps inside the square root) and row L2 normalisation
 * (torch.nn.functional.normalize: x / max(||x||, eps)).
 *
 * Contract: statistics and sums in float64 (two-pass variance), one rounding on store; the
 * forward saves what its backward needs (mean, rstd / norms); backward kernels accumulate.
 */
import type { F32 } from '../api.js';
import { need, scratchF64 } from './scratch.js';

export function layerNormForward(
  out: F32,
  mean: F32,
  rstd: F32,
  inp: F32,
  weight: F32,
  bias: F32,
  rows: number,
  cols: number,
  eps: number,
): void {
  const k = 'layerNormForward';
  need(out, rows * cols, k, 'out');
  need(inp, rows * cols, k, 'inp');
  need(mean, rows, k, 'mean');
  need(rstd, rows, k, 'rstd');
  need(weight, cols, k, 'weight');
  need(bias, cols, k, 'bias');
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let s = 0;
    for (let c = 0; c < cols; c++) s += inp[o + c];
    const mu = s / cols;
    let ss = 0;
    for (let c = 0; c < cols; c++) {
      const d = inp[o + c] - mu;
      ss += d * d;
    }
    const rs = 1 / Math.sqrt(ss / cols + eps);
    for (let c = 0; c < cols; c++) out[o + c] = (inp[o + c] - mu) * rs * weight[c] + bias[c];
    mean[r] = mu;
    rstd[r] = rs;
  }
}

export function layerNormBackward(
  dinp: F32,
  dweight: F32,
  dbias: F32,
  dout: F32,
  inp: F32,
  weight: F32,
  mean: F32,
  rstd: F32,
  rows: number,
  cols: number,
): void {
  const k = 'layerNormBackward';
  need(dinp, rows * cols, k, 'dinp');
  need(dout, rows * cols, k, 'dout');
  need(inp, rows * cols, k, 'inp');
  need(dweight, cols, k, 'dweight');
  need(dbias, cols, k, 'dbias');
  need(weight, cols, k, 'weight');
  need(mean, rows, k, 'mean');
  need(rstd, rows, k, 'rstd');
  // dweight/dbias are sums over every row: keep them in float64 until the end.
  const dw = scratchF64(0, cols);
  const db = scratchF64(1, cols);
  dw.fill(0, 0, cols);
  db.fill(0, 0, cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const mu = mean[r];
    const rs = rstd[r];
    // With xhat = (x - mu) * rs and g = weight * dout:
    // dx = rs * (g - mean(g) - xhat * mean(g * xhat)).
    let gMean = 0;
    let gxMean = 0;
    for (let c = 0; c < cols; c++) {
      const xhat = (inp[o + c] - mu) * rs;
      const g = weight[c] * dout[o + c];
      gMean += g;
      gxMean += g * xhat;
    }
    gMean /= cols;
    gxMean /= cols;
    for (let c = 0; c < cols; c++) {
      const xhat = (inp[o + c] - mu) * rs;
      const dy = dout[o + c];
      db[c] += dy;
      dw[c] += xhat * dy;
      dinp[o + c] += (weight[c] * dy - gMean - xhat * gxMean) * rs;
    }
  }
  for (let c = 0; c < cols; c++) {
    dweight[c] += dw[c];
    dbias[c] += db[c];
  }
}

export function l2Normalize(out: F32, norms: F32, inp: F32, rows: number, cols: number, eps: number): void {
  const k = 'l2Normalize';
  need(out, rows * cols, k, 'out');
  need(inp, rows * cols, k, 'inp');
  need(norms, rows, k, 'norms');
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let ss = 0;
    for (let c = 0; c < cols; c++) ss += inp[o + c] * inp[o + c];
    const norm = Math.sqrt(ss);
    const inv = 1 / Math.max(norm, eps);
    for (let c = 0; c < cols; c++) out[o + c] = inp[o + c] * inv;
    norms[r] = norm;
  }
}

export function l2NormalizeBackward(
  dinp: F32,
  dout: F32,
  out: F32,
  norms: F32,
  rows: number,
  cols: number,
  eps: number,
): void {
  const k = 'l2NormalizeBackward';
  need(dinp, rows * cols, k, 'dinp');
  need(dout, rows * cols, k, 'dout');
  need(out, rows * cols, k, 'out');
  need(norms, rows, k, 'norms');
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const norm = norms[r];
    if (norm >= eps) {
      // y = x / ||x||: dx = (dy - y (y·dy)) / ||x||.
      let dot = 0;
      for (let c = 0; c < cols; c++) dot += out[o + c] * dout[o + c];
      const inv = 1 / norm;
      for (let c = 0; c < cols; c++) dinp[o + c] += (dout[o + c] - out[o + c] * dot) * inv;
    } else {
      // The clamp is active: y = x / eps is linear in x (torch's clamp_min passes no gradient).
      const inv = 1 / eps;
      for (let c = 0; c < cols; c++) dinp[o + c] += dout[o + c] * inv;
    }
  }
}
