// bf16 attention micro-kernels (see attention_bf16.h). This file alone is compiled for
// AVX512-BF16 (the pragma below); attention.cc calls it only when attn_bf16_available().
#include "attention_bf16.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

bool attn_bf16_available() {
  static const bool ok = [] {
    const char* force = getenv("CAVMAE_ATTENTION");
    if (force && strcmp(force, "onednn") == 0) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") && strcmp(select_kernels().isa, "avx512") == 0;
  }();
  return ok;
}

#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")

namespace {

inline __mmask16 lanes(long n) { return (__mmask16)((1u << n) - 1u); }

// bf16 bits of 16 floats in the low halves of 32-bit lanes: round to nearest even on the bit
// pattern, NaN kept NaN (quietened) — exactly Simd::to_bf16.
inline __m512i round_bf16(__m512 v) {
  const __m512i x = _mm512_castps_si512(v);
  const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
  __m512i r = _mm512_add_epi32(x, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(x, 16), one)));
  const __mmask16 nan =
      _mm512_cmpgt_epi32_mask(_mm512_and_si512(x, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(x, _mm512_set1_epi32(0x00400000)));
  return _mm512_srli_epi32(r, 16);
}

// 16 pairs (lo, hi) from two vectors of rounded bf16 bits.
inline __m512i pair(__m512i lo, __m512i hi) { return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)); }

inline __m512 dp(__m512 acc, __m512i a, __m512i b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }

// The tiles' loops over R, NC and NV carry `#pragma GCC unroll`: without it GCC 12 kept the
// accumulator array on the stack outside the inner loop (a 6 x 4 tile zeroed 24 stack slots,
// then copied them to registers, and spilled and reloaded all 24 before its stores: ~70 extra
// memory operations around the 16 iterations of a head size 32 tile). Same instructions in the
// same order otherwise, so the results are unchanged.

// One tile of s = q · kᵀ: R query rows x NC vectors of 16 keys; `last` valid keys in the last vector.
template <int R, int NC>
void scores_tile(float* s, long lds, const uint32_t* q, long ldq, const uint32_t* kp, long T16, long np, long last) {
  __m512 acc[R][NC];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int c = 0; c < NC; c++) acc[r][c] = _mm512_setzero_ps();
  for (long p = 0; p < np; p++) {
    __m512i b[NC];
#pragma GCC unroll 8
    for (int c = 0; c < NC; c++) b[c] = _mm512_loadu_si512(kp + p * T16 + 16 * c);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const __m512i a = _mm512_set1_epi32((int)q[r * ldq + p]);
#pragma GCC unroll 8
      for (int c = 0; c < NC; c++) acc[r][c] = dp(acc[r][c], a, b[c]);
    }
  }
  const __mmask16 lm = lanes(last);
#pragma GCC unroll 8
  for (int r = 0; r < R; r++) {
#pragma GCC unroll 8
    for (int c = 0; c < NC; c++) _mm512_mask_storeu_ps(s + r * lds + 16 * c, c == NC - 1 ? lm : (__mmask16)0xffff, acc[r][c]);
  }
}

template <int R>
void scores_rows(float* s, long lds, const uint32_t* q, long ldq, const uint32_t* kp, long T, long np) {
  const long T16 = attn_t16(T);
  long j = 0;
  for (; j + 64 <= T; j += 64) scores_tile<R, 4>(s + j, lds, q, ldq, kp + j, T16, np, 16);
  const long rest = T - j;  // 0..63 keys left: ceil(rest/16) vectors, the last one partial
  if (rest == 0) return;
  const long nc = (rest + 15) / 16, last = rest - 16 * (nc - 1);
  switch (nc) {
    case 1: scores_tile<R, 1>(s + j, lds, q, ldq, kp + j, T16, np, last); break;
    case 2: scores_tile<R, 2>(s + j, lds, q, ldq, kp + j, T16, np, last); break;
    case 3: scores_tile<R, 3>(s + j, lds, q, ldq, kp + j, T16, np, last); break;
    default: scores_tile<R, 4>(s + j, lds, q, ldq, kp + j, T16, np, last); break;
  }
}

// One tile of o = p · v: R rows x NV vectors of 16 head dimensions, over nq key pairs.
template <int R, int NV>
void pv_tile(float* o, long ldo, const uint32_t* p, long ldp, const uint32_t* vp, long nq) {
  constexpr long hd = 16 * NV;
  __m512 acc[R][NV];
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
  for (long q = 0; q < nq; q++) {
    __m512i b[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_si512(vp + q * hd + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < R; r++) {
      const __m512i a = _mm512_set1_epi32((int)p[r * ldp + q]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; v++) acc[r][v] = dp(acc[r][v], a, b[v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; r++)
#pragma GCC unroll 8
    for (int v = 0; v < NV; v++) _mm512_storeu_ps(o + r * ldo + 16 * v, acc[r][v]);
}

template <int NV>
void pv_rows(float* o, long ldo, const uint32_t* p, long ldp, const uint32_t* vp, long rows, long nq) {
  long r = 0;
  for (; r + 6 <= rows; r += 6) pv_tile<6, NV>(o + r * ldo, ldo, p + r * ldp, ldp, vp, nq);
  switch (rows - r) {
    case 1: pv_tile<1, NV>(o + r * ldo, ldo, p + r * ldp, ldp, vp, nq); break;
    case 2: pv_tile<2, NV>(o + r * ldo, ldo, p + r * ldp, ldp, vp, nq); break;
    case 3: pv_tile<3, NV>(o + r * ldo, ldo, p + r * ldp, ldp, vp, nq); break;
    case 4: pv_tile<4, NV>(o + r * ldo, ldo, p + r * ldp, ldp, vp, nq); break;
    case 5: pv_tile<5, NV>(o + r * ldo, ldo, p + r * ldp, ldp, vp, nq); break;
    default: break;
  }
}

}  // namespace

void attn_pack_k_f32(uint32_t* kp, const float* k, long ld, long T, long hd) {
  const long T16 = attn_t16(T);
  // Key j's pair p is k[j*ld + 2p], k[j*ld + 2p + 1]: gather 16 keys' values at a time.
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32((int)ld));
  for (long j = 0; j < T16; j += 16) {
    const __mmask16 m = j + 16 <= T ? (__mmask16)0xffff : lanes(T > j ? T - j : 0);
    const float* row = k + j * ld;
    for (long p = 0; p < hd / 2; p++) {
      __m512 lo = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, row + 2 * p, 4);
      __m512 hi = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, row + 2 * p + 1, 4);
      _mm512_storeu_si512(kp + p * T16 + j, pair(round_bf16(lo), round_bf16(hi)));
    }
  }
}

void attn_pack_k_bf16(uint32_t* kp, const uint16_t* k, long ld, long T, long hd) {
  const long T16 = attn_t16(T);
  // ld is even here (3C), so each pair is one aligned 32-bit word: gather words 2*ld bytes apart.
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32((int)(2 * ld)));
  for (long j = 0; j < T16; j += 16) {
    const __mmask16 m = j + 16 <= T ? (__mmask16)0xffff : lanes(T > j ? T - j : 0);
    const uint16_t* row = k + j * ld;
    for (long p = 0; p < hd / 2; p++)
      _mm512_storeu_si512(kp + p * T16 + j, _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, idx, row + 2 * p, 1));
  }
}

void attn_pack_v_f32(uint32_t* vp, const float* v, long ld, long T, long hd) {
  const long nq = attn_t2(T) / 2;
  for (long q = 0; q < nq; q++) {
    const float* a = v + 2 * q * ld;
    const bool has_b = 2 * q + 1 < T;
    for (long d = 0; d < hd; d += 16) {
      __m512i lo = round_bf16(_mm512_loadu_ps(a + d));
      __m512i hi = has_b ? round_bf16(_mm512_loadu_ps(a + ld + d)) : _mm512_setzero_si512();
      _mm512_storeu_si512(vp + q * hd + d, pair(lo, hi));
    }
  }
}

void attn_round_rows(uint32_t* dst, long ld_dst, const float* src, long ld_src, long rows, long cols) {
  for (long r = 0; r < rows; r++) {
    const float* x = src + r * ld_src;
    uint16_t* y = reinterpret_cast<uint16_t*>(dst + r * ld_dst);
    long c = 0;
    for (; c + 16 <= cols; c += 16)
      _mm256_storeu_si256((__m256i*)(y + c), _mm512_cvtepi32_epi16(round_bf16(_mm512_loadu_ps(x + c))));
    if (c < cols) {
      // The tail, plus the zero that pads an odd row to whole pairs.
      const long n = cols - c, padded = n + (cols & 1);
      const __m512i b = round_bf16(_mm512_maskz_loadu_ps(lanes(n), x + c));
      _mm256_mask_storeu_epi16(y + c, lanes(padded), _mm512_cvtepi32_epi16(_mm512_maskz_mov_epi32(lanes(n), b)));
    }
  }
}

void attn_scores(float* s, long lds, const uint32_t* q, long ldq, const uint32_t* kp, long rows, long T, long hd) {
  const long np = hd / 2;
  long r = 0;
  for (; r + 6 <= rows; r += 6) scores_rows<6>(s + r * lds, lds, q + r * ldq, ldq, kp, T, np);
  switch (rows - r) {
    case 1: scores_rows<1>(s + r * lds, lds, q + r * ldq, ldq, kp, T, np); break;
    case 2: scores_rows<2>(s + r * lds, lds, q + r * ldq, ldq, kp, T, np); break;
    case 3: scores_rows<3>(s + r * lds, lds, q + r * ldq, ldq, kp, T, np); break;
    case 4: scores_rows<4>(s + r * lds, lds, q + r * ldq, ldq, kp, T, np); break;
    case 5: scores_rows<5>(s + r * lds, lds, q + r * ldq, ldq, kp, T, np); break;
    default: break;
  }
}

void attn_pv(float* o, long ldo, const uint32_t* p, long ldp, const uint32_t* vp, long rows, long T, long hd) {
  const long nq = attn_t2(T) / 2;
  switch (hd / 16) {
    case 1: pv_rows<1>(o, ldo, p, ldp, vp, rows, nq); break;
    case 2: pv_rows<2>(o, ldo, p, ldp, vp, rows, nq); break;
    case 3: pv_rows<3>(o, ldo, p, ldp, vp, rows, nq); break;
    default: pv_rows<4>(o, ldo, p, ldp, vp, rows, nq); break;
  }
}
