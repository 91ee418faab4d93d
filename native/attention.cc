// Multi-head self-attention core (timm Attention after the qkv Linear, before proj), as GEMMs
// over strided views of the packed qkv plus a row softmax, one head at a time.
//
// qkv is [B, T, 3C]; head h of q is columns h*hd..(h+1)*hd-1, k is offset by C, v by 2C. As a
// matrix [T, hd] that is row stride 3C: oneDNN reads every head in place, so there is no permute
// copy in either direction, and `out` [B, T, C] is written through row stride C.
//
// Work is cut into pieces run by the kernels' pool, each on one thread with single-threaded
// GEMMs: forward pieces are (sample, head, block of <= 128 query rows), so the block's scores
// stay in the core's L2 between q·kᵀ, the softmax and att·v; backward pieces are (sample, head),
// walking the same row blocks (dk and dv accumulate over them), with the scores' gradient in a
// per-thread [128, T] scratch: backward needs O(threads * 128 * T) extra memory instead of
// O(B * H * T²).
//
// The probabilities att [B, H, T, T] are either kept by the forward for the backward (`att`
// given), or not kept at all (`att` null): the backward then recomputes each head's from q and k
// (bit-identical, one extra q·kᵀ per head, ~2% of a pretraining step) and the forward writes them
// only to per-thread scratch. The peer keeps them (B·H·T² floats per layer, 2 GB of a base
// pretraining step at batch 8).
#include "attention.h"

#include <string.h>

#include "attention_bf16.h"
#include "attention_int8.h"
#include "gemm.h"
#include "kernels.h"
#include "pool.h"
#include "scratch.h"

namespace {

long lmin(long a, long b) { return a < b ? a : b; }

// Query rows per block: all of them up to 128, else equal blocks of <= 128 (multiples of 16), so
// a block's scores and their gradient (2 x 128 x T floats: 725 KB at T = 708) stay in L2.
long row_block(long T) {
  if (T <= 128) return T;
  long parts = (T + 127) / 128;
  long b = ((T + parts - 1) / parts + 15) / 16 * 16;
  return b < T ? b : T;
}

// fp32 -> bf16 copy of n floats into the calling thread's scratch slot `slot`.
uint16_t* to_bf16(const float* src, size_t n, ScratchSlot slot) {
  uint16_t* dst = scratch<uint16_t>(slot, n);
  select_kernels().f32_to_bf16(dst, src, (long)n);
  return dst;
}

// A [rows, cols] matrix view with row stride `ld` (elements).
MatView mat(const void* p, long ld) { return MatView{p, {0, 0, ld, 1}}; }
// Its transpose.
MatView mat_t(const void* p, long ld) { return MatView{p, {0, 0, 1, ld}}; }

struct Fwd {
  float* out;
  float* att;
  const float* qkv;
  const void* src;  // qkv, or its bf16 copy
  long B, T, C, H, hd, rb, nblocks;
  float scale;
  bool bf16;
};

void forward_piece(void* ctx, long piece) {
  const Fwd& f = *static_cast<const Fwd*>(ctx);
  const KernelTable& kt = select_kernels();
  long blk = piece % f.nblocks, bh = piece / f.nblocks;
  long b = bh / f.H, h = bh % f.H;
  long r0 = blk * f.rb, rows = lmin(f.T, r0 + f.rb) - r0;
  size_t es = f.bf16 ? 2 : 4;
  const char* base = static_cast<const char*>(f.src) + ((size_t)b * f.T * 3 * f.C + (size_t)h * f.hd) * es;
  const char* q = base + (size_t)r0 * 3 * f.C * es;
  const char* k = base + (size_t)f.C * es;
  const char* v = base + (size_t)2 * f.C * es;
  // [rows, T]: the caller's buffer when the probabilities are kept for backward, else scratch.
  float* att = f.att ? f.att + ((size_t)bh * f.T + r0) * f.T : scratch<float>(kScratchAttnScores, (size_t)rows * f.T);
  long ld_att[4] = {0, 0, f.T, 1};
  // scores = q · kᵀ  [rows, T]; the scale is applied inside the softmax.
  gemm_single(GemmShape{1, 1, rows, f.T, f.hd}, mat(q, 3 * f.C), mat_t(k, 3 * f.C), att, ld_att, 1.0f, 0.0f, f.bf16);
  kt.softmax_forward(att, att, rows, f.T, f.scale);
  // out rows = att · v  [rows, hd] into [B, T, C]
  const void* p = f.bf16 ? static_cast<const void*>(to_bf16(att, (size_t)rows * f.T, kScratchAttnProb16)) : att;
  float* o = f.out + ((size_t)b * f.T + r0) * f.C + (size_t)h * f.hd;
  long ld_out[4] = {0, 0, f.C, 1};
  gemm_single(GemmShape{1, 1, rows, f.hd, f.T}, mat(p, f.T), mat(v, 3 * f.C), o, ld_out, 1.0f, 0.0f, f.bf16);
}

// bf16 on AVX512-BF16: one piece per (sample, head). k and v are packed once for all of the
// head's row blocks, straight from the fp32 qkv; each block's q is rounded on the way in.
struct FwdBf16 {
  float* out;
  float* att;
  const float* qkv;
  long B, T, C, H, hd, rb;
  float scale;
};

void forward_piece_bf16(void* ctx, long bh) {
  const FwdBf16& f = *static_cast<const FwdBf16*>(ctx);
  const KernelTable& kt = select_kernels();
  long b = bh / f.H, h = bh % f.H, T = f.T, C = f.C, hd = f.hd;
  const float* q = f.qkv + (size_t)b * T * 3 * C + (size_t)h * hd;
  uint32_t* kp = scratch<uint32_t>(kScratchAttnKPacked, (size_t)hd / 2 * attn_t16(T));
  uint32_t* vp = scratch<uint32_t>(kScratchAttnVPacked, (size_t)attn_t2(T) / 2 * hd);
  uint32_t* qb = scratch<uint32_t>(kScratchAttnQRows, (size_t)f.rb * hd / 2);
  uint32_t* pb = scratch<uint32_t>(kScratchAttnProbRows, (size_t)f.rb * attn_t2(T) / 2);
  attn_pack_k_f32(kp, q + C, 3 * C, T, hd);
  attn_pack_v_f32(vp, q + 2 * C, 3 * C, T, hd);
  for (long r0 = 0; r0 < T; r0 += f.rb) {
    long rows = lmin(T, r0 + f.rb) - r0;
    float* att = f.att ? f.att + ((size_t)bh * T + r0) * T : scratch<float>(kScratchAttnScores, (size_t)rows * T);
    attn_round_rows(qb, hd / 2, q + (size_t)r0 * 3 * C, 3 * C, rows, hd);
    attn_scores(att, T, qb, hd / 2, kp, rows, T, hd);
    kt.softmax_forward_bf16(att, reinterpret_cast<uint16_t*>(pb), attn_t2(T), att, rows, T, f.scale);
    attn_pv(f.out + ((size_t)b * T + r0) * C + (size_t)h * hd, C, pb, attn_t2(T) / 2, vp, rows, T, hd);
  }
}

// int8 (inference) on AVX512-VNNI: one piece per (sample, head). k and v are quantised and packed
// once for all of the head's row blocks; each block's q is quantised on the way in.
struct FwdInt8 {
  float* out;
  const float* qkv;
  long B, T, C, H, hd, rb;
  float scale;
};

void forward_piece_int8(void* ctx, long bh) {
  const FwdInt8& f = *static_cast<const FwdInt8*>(ctx);
  const KernelTable& kt = select_kernels();
  long b = bh / f.H, h = bh % f.H, T = f.T, C = f.C, hd = f.hd;
  const long T16 = attn_t16(T), T4 = attn_t4(T);
  // AMX (head size 64): p rows and vp padded to T64 keys, q and p rows to 32 per block.
  const bool amx = hd == 64 && attn_int8_amx();
  const long ldp = amx ? attn_t64(T) : T4, rb = amx ? (f.rb + 31) / 32 * 32 : f.rb;
  const float* q = f.qkv + (size_t)b * T * 3 * C + (size_t)h * hd;
  uint32_t* kp = scratch<uint32_t>(kScratchAttnKPacked, (size_t)hd / 4 * T16);
  uint32_t* vp = scratch<uint32_t>(kScratchAttnVPacked, (size_t)ldp / 4 * hd);
  uint32_t* qd = scratch<uint32_t>(kScratchAttnQRows, (size_t)rb * hd / 4);
  uint8_t* pb = scratch<uint8_t>(kScratchAttnProbRows, (size_t)rb * ldp);
  float* s = scratch<float>(kScratchAttnScores, (size_t)f.rb * T);
  // [sk: T16 | comp: T16 | sv: hd | sq: rb | rowsum: rb], 4 bytes each
  float* aux = scratch<float>(kScratchAttnInt8Scales, (size_t)2 * T16 + hd + 2 * f.rb);
  float* sk = aux;
  int32_t* comp = reinterpret_cast<int32_t*>(aux + T16);
  float* sv = aux + 2 * T16;
  float* sq = sv + hd;
  int32_t* rowsum = reinterpret_cast<int32_t*>(sq + f.rb);
  attn8_pack_k(kp, sk, comp, q + C, 3 * C, T, hd);
  attn8_pack_v(vp, sv, q + 2 * C, 3 * C, T, hd);
  if (ldp > T4) memset(vp + T4 / 4 * hd, 0, (size_t)(ldp - T4) / 4 * hd * sizeof(uint32_t));
  for (long r0 = 0; r0 < T; r0 += f.rb) {
    long rows = lmin(T, r0 + f.rb) - r0;
    attn8_quantize_q(qd, sq, q + (size_t)r0 * 3 * C, 3 * C, rows, hd);
    float* o = f.out + ((size_t)b * T + r0) * C + (size_t)h * hd;
    if (amx) attn8_scores_amx(s, T, qd, sq, kp, sk, comp, rows, T);
    else attn8_scores(s, T, qd, sq, kp, sk, comp, rows, T, hd);
    kt.softmax_rows_u8(s, T, pb, ldp, rowsum, rows, T, f.scale);
    if (amx) attn8_pv_amx(o, C, pb, ldp, rowsum, vp, sv, rows, ldp);
    else attn8_pv(o, C, pb, ldp, rowsum, vp, sv, rows, T, hd);
  }
}

struct Bwd {
  float* dqkv;
  const float* att;  // saved probabilities, or nullptr: recompute them
  long rb;
  const void* x;  // qkv or its bf16 copy
  const void* g;  // dout or its bf16 copy
  long B, T, C, H, hd;
  float scale;
  bool bf16;
};

void backward_piece(void* ctx, long bh) {
  const Bwd& w = *static_cast<const Bwd*>(ctx);
  const KernelTable& kt = select_kernels();
  long b = bh / w.H, h = bh % w.H, T = w.T, C = w.C, hd = w.hd;
  size_t es = w.bf16 ? 2 : 4;
  const char* base = static_cast<const char*>(w.x) + ((size_t)b * T * 3 * C + (size_t)h * hd) * es;
  const char* q = base;
  const char* k = base + (size_t)C * es;
  const char* v = base + (size_t)2 * C * es;
  const char* dout = static_cast<const char*>(w.g) + ((size_t)b * T * C + (size_t)h * hd) * es;
  float* dq = w.dqkv + (size_t)b * T * 3 * C + (size_t)h * hd;
  float* dk = dq + C;
  float* dv = dq + 2 * C;
  long ld_qkv[4] = {0, 0, 3 * C, 1};
  long ld_tt[4] = {0, 0, T, 1};
  float* datt = scratch<float>(kScratchAttnDscores, (size_t)w.rb * T);
  // The forward's bf16 path computed the scores with attention_bf16's kernels: recompute them the
  // same way (k packed from the bf16 copy holds the same values as packed from fp32).
  const bool fast = w.bf16 && attn_bf16_available() && attn_bf16_supports(hd);
  uint32_t* kp = nullptr;
  if (fast && !w.att) {
    kp = scratch<uint32_t>(kScratchAttnKPacked, (size_t)hd / 2 * attn_t16(T));
    attn_pack_k_bf16(kp, reinterpret_cast<const uint16_t*>(k), 3 * C, T, hd);
  }
  // One block of query rows at a time: its probabilities and their gradient stay in cache.
  for (long r0 = 0; r0 < T; r0 += w.rb) {
    long rows = lmin(T, r0 + w.rb) - r0;
    const float* att;
    if (w.att) {
      att = w.att + ((size_t)bh * T + r0) * T;
    } else {
      // Recompute the block's probabilities exactly as the forward did (the same row block,
      // the same single-threaded GEMM shape on the same rounded inputs): bit-identical. Costs
      // one q·kᵀ per block; saves B·H·T² floats per layer.
      float* p = scratch<float>(kScratchAttnScoresRecompute, (size_t)w.rb * T);
      if (kp)
        attn_scores(p, T, reinterpret_cast<const uint32_t*>(q + (size_t)r0 * 3 * C * es), 3 * C / 2, kp, rows, T, hd);
      else
        gemm_single(GemmShape{1, 1, rows, T, hd}, mat(q + (size_t)r0 * 3 * C * es, 3 * C), mat_t(k, 3 * C), p,
                    ld_tt, 1.0f, 0.0f, w.bf16);
      kt.softmax_forward(p, p, rows, T, w.scale);
      att = p;
    }
    const void* p = w.bf16 ? static_cast<const void*>(to_bf16(att, (size_t)rows * T, kScratchAttnProb16)) : att;
    const char* g = dout + (size_t)r0 * C * es;
    // dv += att_blkᵀ · dout_blk  [T, hd], summed over the block's rows
    gemm_single(GemmShape{1, 1, T, hd, rows}, mat_t(p, T), mat(g, C), dv, ld_qkv, 1.0f, 1.0f, w.bf16);
    // datt_blk = dout_blk · vᵀ  [rows, T]
    gemm_single(GemmShape{1, 1, rows, T, hd}, mat(g, C), mat_t(v, 3 * C), datt, ld_tt, 1.0f, 0.0f, w.bf16);
    // d(q·kᵀ) unscaled = att * (datt - rowsum(datt * att)), in place; the scale is the alpha of
    // the next two GEMMs, so in bf16 it is the unscaled gradient that gets rounded (the
    // reference's order).
    kt.softmax_backward(datt, att, datt, rows, T, 1.0f, false);
    const void* d = w.bf16 ? static_cast<const void*>(to_bf16(datt, (size_t)rows * T, kScratchAttnDscores16)) : datt;
    // dq_blk += scale * dlogits_blk · k ; dk += scale * dlogits_blkᵀ · q_blk
    gemm_single(GemmShape{1, 1, rows, hd, T}, mat(d, T), mat(k, 3 * C), dq + (size_t)r0 * 3 * C, ld_qkv, w.scale, 1.0f,
                w.bf16);
    gemm_single(GemmShape{1, 1, T, hd, rows}, mat_t(d, T), mat(q + (size_t)r0 * 3 * C * es, 3 * C), dk, ld_qkv,
                w.scale, 1.0f, w.bf16);
  }
}

}  // namespace

void attention_forward(float* out, float* att, const float* qkv, long B, long T, long C, long H, float scale,
                       bool bf16) {
  if (B == 0 || T == 0 || C == 0) return;
  if (bf16 && attn_bf16_available() && attn_bf16_supports(C / H)) {
    FwdBf16 f{out, att, qkv, B, T, C, H, C / H, row_block(T), scale};
    cavmae_parallel_for(B * H, cavmae_threads(), forward_piece_bf16, &f);
    return;
  }
  const void* src = bf16 ? static_cast<const void*>(to_bf16(qkv, (size_t)B * T * 3 * C, kScratchAttnQkv16)) : qkv;
  long rb = row_block(T);
  Fwd f{out, att, qkv, src, B, T, C, H, C / H, rb, (T + rb - 1) / rb, scale, bf16};
  cavmae_parallel_for(B * H * f.nblocks, cavmae_threads(), forward_piece, &f);
}

void attention_backward(float* dqkv, float* /*scratch*/, const float* dout, const float* qkv, const float* att, long B,
                        long T, long C, long H, float scale, bool bf16) {
  if (B == 0 || T == 0 || C == 0) return;
  const void* x = bf16 ? static_cast<const void*>(to_bf16(qkv, (size_t)B * T * 3 * C, kScratchAttnQkv16)) : qkv;
  const void* g = bf16 ? static_cast<const void*>(to_bf16(dout, (size_t)B * T * C, kScratchAttnDout16)) : dout;
  Bwd w{dqkv, att, row_block(T), x, g, B, T, C, H, C / H, scale, bf16};
  cavmae_parallel_for(B * H, cavmae_threads(), backward_piece, &w);
}

void attention_inference(float* out, const float* qkv, long B, long T, long C, long H, float scale, int precision) {
  if (B == 0 || T == 0 || C == 0) return;
  if (precision == 2 && attn_int8_available() && attn_int8_supports(C / H)) {
    FwdInt8 f{out, qkv, B, T, C, H, C / H, row_block(T), scale};
    cavmae_parallel_for(B * H, cavmae_threads(), forward_piece_int8, &f);
    return;
  }
  // int8 without our int8 attention falls back to bf16 where the CPU multiplies bf16 natively,
  // else to fp32: there bf16 would only round the operands and widen them back, slower than fp32
  // and less exact (AMD Zen 3).
  const bool bf16 = precision == 1 || (precision == 2 && strcmp(gemm_bf16_path(), "onednn") == 0);
  attention_forward(out, nullptr, qkv, B, T, C, H, scale, bf16);
}
