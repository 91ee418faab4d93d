/**
 * Reference multi-head self-attention core over a packed qkv (timm 0.4.5 `Attention`).
 *
 * Layout: qkv [B,T,3C]; q = cols 0..C-1, k = C..2C-1, v = 2C..3C-1; head h owns cols
 * h*hd..(h+1)*hd-1 of each (hd = C/H). Forward:
 *   att[b,h,t,:] = softmax(scale * q[b,t,h]·k[b,:,h]ᵀ)     [B,H,T,T], saved for backward
 *   out[b,t,h*hd+d] = Σ_s att[b,h,t,s] v[b,s,h*hd+d]       [B,T,C]
 * bf16 = true models the native bf16 GEMMs: the two operands of every product (q and k;
 * att and v; and in backward dout, v, att, the softmax gradient, q and k) are rounded to bf16
 * first, sums stay in float64 here; softmax and the saved att stay fp32.
 *
 * Contract: per (batch, head) the q, k, v slices are copied into contiguous float64 scratch, so
 * every inner loop runs over contiguous memory; the backward works one query row at a time, so
 * it needs only O(T·hd) scratch and leaves the caller's [B,H,T,T] scratch untouched.
 */
import type { F32, Kernels } from '../api.js';
import { roundBf16 } from './bf16.js';
import { need, scratchF64 } from './scratch.js';

function checkShapes(kernel: string, B: number, T: number, C: number, H: number): number {
  if (H <= 0 || C % H !== 0) throw new RangeError(`${kernel}: C = ${C} is not divisible by H = ${H}`);
  return C / H;
}

/** dst[t*hd + d] = src[(b*T + t)*3C + col0 + d] (bf16-rounded when asked), t < T, d < hd. */
function loadHead(
  dst: Float64Array,
  src: F32,
  b: number,
  T: number,
  rowStride: number,
  col0: number,
  hd: number,
  bf16: boolean,
): void {
  for (let t = 0; t < T; t++) {
    const o = (b * T + t) * rowStride + col0;
    for (let d = 0; d < hd; d++) dst[t * hd + d] = bf16 ? roundBf16(src[o + d]) : src[o + d];
  }
}

export const attentionKernels: Pick<Kernels, 'attentionForward' | 'attentionBackward'> = {
  attentionForward(out, att, qkv, B, T, C, H, scale, bf16) {
    const hd = checkShapes('attentionForward', B, T, C, H);
    need('attentionForward', B * T * C, { out });
    need('attentionForward', B * H * T * T, { att });
    need('attentionForward', B * T * 3 * C, { qkv });
    const q = scratchF64(0, T * hd); // [T, hd]
    const k = scratchF64(1, T * hd); // [T, hd]
    const v = scratchF64(2, T * hd); // [T, hd]
    const row = scratchF64(3, T); // scores of one query
    const acc = scratchF64(4, hd); // one output row of one head
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        loadHead(q, qkv, b, T, 3 * C, h * hd, hd, bf16);
        loadHead(k, qkv, b, T, 3 * C, C + h * hd, hd, bf16);
        loadHead(v, qkv, b, T, 3 * C, 2 * C + h * hd, hd, bf16);
        const attBH = (b * H + h) * T * T;
        for (let t = 0; t < T; t++) {
          let max = -Infinity;
          for (let s = 0; s < T; s++) {
            let dot = 0;
            for (let d = 0; d < hd; d++) dot += q[t * hd + d] * k[s * hd + d];
            row[s] = scale * dot;
            max = Math.max(max, row[s]);
          }
          let sum = 0;
          for (let s = 0; s < T; s++) {
            row[s] = Math.exp(row[s] - max);
            sum += row[s];
          }
          const inv = 1 / sum;
          const attRow = attBH + t * T;
          for (let s = 0; s < T; s++) att[attRow + s] = row[s] * inv;
          // out = att · v, from the stored fp32 probabilities (what backward will see).
          acc.fill(0, 0, hd);
          for (let s = 0; s < T; s++) {
            const a = bf16 ? roundBf16(att[attRow + s]) : att[attRow + s];
            for (let d = 0; d < hd; d++) acc[d] += a * v[s * hd + d];
          }
          const o = (b * T + t) * C + h * hd;
          for (let d = 0; d < hd; d++) out[o + d] = acc[d];
        }
      }
    }
  },
  attentionBackward(dqkv, scratch, dout, qkv, att, B, T, C, H, scale, bf16) {
    const hd = checkShapes('attentionBackward', B, T, C, H);
    need('attentionBackward', B * T * 3 * C, { dqkv, qkv });
    need('attentionBackward', B * H * T * T, { scratch, att });
    need('attentionBackward', B * T * C, { dout });
    const q = scratchF64(0, T * hd); // [T, hd]
    const k = scratchF64(1, T * hd);
    const v = scratchF64(2, T * hd);
    const dO = scratchF64(3, T * hd); // dout of this head [T, hd]
    const dq = scratchF64(4, T * hd);
    const dk = scratchF64(5, T * hd);
    const dv = scratchF64(6, T * hd);
    const dAtt = scratchF64(7, T); // d loss / d att[t,:], then d loss / d (scale·q·kᵀ)[t,:]
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        loadHead(q, qkv, b, T, 3 * C, h * hd, hd, bf16);
        loadHead(k, qkv, b, T, 3 * C, C + h * hd, hd, bf16);
        loadHead(v, qkv, b, T, 3 * C, 2 * C + h * hd, hd, bf16);
        loadHead(dO, dout, b, T, C, h * hd, hd, bf16);
        dq.fill(0, 0, T * hd);
        dk.fill(0, 0, T * hd);
        dv.fill(0, 0, T * hd);
        const attBH = (b * H + h) * T * T;
        for (let t = 0; t < T; t++) {
          const attRow = attBH + t * T;
          // dAtt[s] = dO[t]·v[s]; dv[s] += att[t,s] dO[t].
          let rowDot = 0;
          for (let s = 0; s < T; s++) {
            let dot = 0;
            for (let d = 0; d < hd; d++) dot += dO[t * hd + d] * v[s * hd + d];
            dAtt[s] = dot;
            const p = att[attRow + s];
            rowDot += p * dot;
            const pb = bf16 ? roundBf16(p) : p;
            for (let d = 0; d < hd; d++) dv[s * hd + d] += pb * dO[t * hd + d];
          }
          // Softmax backward, then the scores' gradient: dq[t] += scale Σ_s g[s] k[s], dk[s] += scale g[s] q[t].
          for (let s = 0; s < T; s++) {
            let g = att[attRow + s] * (dAtt[s] - rowDot);
            if (bf16) g = roundBf16(g);
            g *= scale;
            for (let d = 0; d < hd; d++) {
              dq[t * hd + d] += g * k[s * hd + d];
              dk[s * hd + d] += g * q[t * hd + d];
            }
          }
        }
        for (let t = 0; t < T; t++) {
          const o = (b * T + t) * 3 * C + h * hd;
          for (let d = 0; d < hd; d++) {
            dqkv[o + d] += dq[t * hd + d];
            dqkv[o + C + d] += dk[t * hd + d];
            dqkv[o + 2 * C + d] += dv[t * hd + d];
          }
        }
      }
    }
  },
};
