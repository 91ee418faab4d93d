// Multi-head self-attention core (timm Attention after the qkv Linear, before proj), as batched
// GEMMs over strided views of the packed qkv plus a row softmax.
//
// qkv is [B, T, 3C]; head h of q is columns h*hd..(h+1)*hd-1, k is offset by C, v by 2C. As a
// 4-D view [B, H, T, hd] that is strides {T*3C, hd, 3C, 1}: oneDNN reads every head in place, so
// there is no permute copy in either direction, and `out` [B, T, C] is written through the view
// {T*C, hd, C, 1}. At CAV-MAE's sizes (T <= 708, hd = 64) this ran faster than a fused kernel
// (design.md), and the T x T probabilities are needed for backward anyway.
#include "attention.h"

#include "gemm.h"
#include "kernels.h"

namespace {

struct Views {
  long B, T, C, H, hd;
  // [B, H, T, hd] inside qkv (or dqkv): part 0 = q, 1 = k, 2 = v.
  MatView qkv(const void* base, int part, size_t elem) const {
    const char* p = static_cast<const char*>(base) + (size_t)(part * C) * elem;
    return MatView{p, {T * 3 * C, hd, 3 * C, 1}};
  }
  // Transposed [B, H, hd, T] view of the same part.
  MatView qkv_t(const void* base, int part, size_t elem) const {
    const char* p = static_cast<const char*>(base) + (size_t)(part * C) * elem;
    return MatView{p, {T * 3 * C, hd, 1, 3 * C}};
  }
  // [B, H, T, T] dense, and its per-matrix transpose.
  MatView att(const void* base) const { return MatView{base, {H * T * T, T * T, T, 1}}; }
  MatView att_t(const void* base) const { return MatView{base, {H * T * T, T * T, 1, T}}; }
  // [B, H, T, hd] view of a [B, T, C] buffer.
  MatView bthd(const void* base) const { return MatView{base, {T * C, hd, C, 1}}; }
};

// fp32 -> bf16 copy of n floats into scratch slot `slot`.
const uint16_t* to_bf16(const float* src, size_t n, int slot) {
  uint16_t* dst = reinterpret_cast<uint16_t*>(cavmae_scratch(slot, (n + 1) / 2));
  select_kernels().f32_to_bf16(dst, src, (long)n);
  return dst;
}

}  // namespace

void attention_forward(float* out, float* att, const float* qkv, long B, long T, long C, long H, float scale,
                       bool bf16) {
  if (B == 0 || T == 0 || C == 0) return;
  const KernelTable& kt = select_kernels();
  Views v{B, T, C, H, C / H};
  size_t es = bf16 ? 2 : 4;
  const void* src = bf16 ? static_cast<const void*>(to_bf16(qkv, (size_t)B * T * 3 * C, 3)) : qkv;
  // att = q . k^T  [B, H, T, T]; the scale is applied inside the softmax.
  GemmShape s1{B, H, T, T, v.hd};
  gemm_strided(s1, v.qkv(src, 0, es), v.qkv_t(src, 1, es), att, v.att(att).s, 1.0f, 0.0f, bf16);
  kt.softmax_forward(att, att, B * H * T, T, scale);
  // out = att . v  [B, H, T, hd] written as [B, T, C]
  const void* p = bf16 ? static_cast<const void*>(to_bf16(att, (size_t)B * H * T * T, 4)) : att;
  GemmShape s2{B, H, T, v.hd, T};
  gemm_strided(s2, v.att(p), v.qkv(src, 2, es), out, v.bthd(out).s, 1.0f, 0.0f, bf16);
}

void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv, const float* att, long B,
                        long T, long C, long H, float scale, bool bf16) {
  if (B == 0 || T == 0 || C == 0) return;
  const KernelTable& kt = select_kernels();
  Views v{B, T, C, H, C / H};
  long hd = v.hd;
  size_t es = bf16 ? 2 : 4;
  const void* x = bf16 ? static_cast<const void*>(to_bf16(qkv, (size_t)B * T * 3 * C, 3)) : qkv;
  const void* p = bf16 ? static_cast<const void*>(to_bf16(att, (size_t)B * H * T * T, 4)) : att;
  const void* g = bf16 ? static_cast<const void*>(to_bf16(dout, (size_t)B * T * C, 5)) : dout;
  // dv += att^T . dout  [B, H, T, hd]
  gemm_strided(GemmShape{B, H, T, hd, T}, v.att_t(p), v.bthd(g), dqkv + 2 * C, v.qkv(dqkv, 0, 4).s, 1.0f, 1.0f,
               bf16);
  // datt = dout . v^T  [B, H, T, T] into scratch
  gemm_strided(GemmShape{B, H, T, T, hd}, v.bthd(g), v.qkv_t(x, 2, es), scratch, v.att(scratch).s, 1.0f, 0.0f,
               bf16);
  // dprobs -> d(q.k^T / unscaled) = att * (datt - rowsum(datt * att)), in place; the scale is
  // applied as alpha of the next two GEMMs, so in bf16 it is the unscaled gradient that gets
  // rounded (the reference's order).
  kt.softmax_backward(scratch, att, scratch, B * H * T, T, 1.0f, false);
  const void* d = bf16 ? static_cast<const void*>(to_bf16(scratch, (size_t)B * H * T * T, 4)) : scratch;
  // dq += scale * dlogits . k ; dk += scale * dlogits^T . q
  gemm_strided(GemmShape{B, H, T, hd, T}, v.att(d), v.qkv(x, 1, es), dqkv, v.qkv(dqkv, 0, 4).s, scale, 1.0f, bf16);
  gemm_strided(GemmShape{B, H, T, hd, T}, v.att_t(d), v.qkv(x, 0, es), dqkv + C, v.qkv(dqkv, 0, 4).s, scale, 1.0f,
               bf16);
}
