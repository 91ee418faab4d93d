/**
 * Reference normalisation kernels: LayerNorm (torch.nn.LayerNorm: biased variance over the
 * last dim, eps inside the square root) and row L2 normalisation
 * (torch.nn.functional.normalize: x / max(||x||, eps)).
 *
 * Contract: statistics and sums in float64 (two-pass variance), one rounding on store; the
 * forward saves what its backward needs (mean, rstd / norms); backward kernels accumulate.
 */
import type { Kernels } from '../api.js';
import { need, scratchF64 } from './scratch.js';

export const normKernels: Pick<
  Kernels,
  'layerNormForward' | 'layerNormBackward' | 'l2Normalize' | 'l2NormalizeBackward'
> = {
  layerNormForward(out, mean, rstd, inp, weight, bias, rows, cols, eps) {
    need('layerNormForward', rows * cols, { out, inp });
    need('layerNormForward', rows, { mean, rstd });
    need('layerNormForward', cols, { weight, bias });
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
  },
  layerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd, rows, cols) {
    need('layerNormBackward', rows * cols, { dinp, dout, inp });
    need('layerNormBackward', cols, { dweight, dbias, weight });
    need('layerNormBackward', rows, { mean, rstd });
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
  },
  l2Normalize(out, norms, inp, rows, cols, eps) {
    need('l2Normalize', rows * cols, { out, inp });
    need('l2Normalize', rows, { norms });
    for (let r = 0; r < rows; r++) {
      const o = r * cols;
      let ss = 0;
      for (let c = 0; c < cols; c++) ss += inp[o + c] * inp[o + c];
      const norm = Math.sqrt(ss);
      const inv = 1 / Math.max(norm, eps);
      for (let c = 0; c < cols; c++) out[o + c] = inp[o + c] * inv;
      norms[r] = norm;
    }
  },
  l2NormalizeBackward(dinp, dout, out, norms, rows, cols, eps) {
    need('l2NormalizeBackward', rows * cols, { dinp, dout, out });
    need('l2NormalizeBackward', rows, { norms });
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
  },
};
