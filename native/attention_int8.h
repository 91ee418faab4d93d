// int8 attention micro-kernels on AVX512-VNNI (vpdpbusd), for attention.cc's inference path.
//
// Scheme (per sample and head; the TypeScript reference in src/kernels/fused.ts computes the same):
//   q rows:  per row i, symmetric: sq[i] = max|q_i| / 127, qq = rne(q_i * 127/max) in [-127, 127],
//            stored as u8 qq + 128;
//   k rows:  per key j the same, s8: sk[j], kq_j; comp[j] = 128 * sum_d kq_j[d] (removes the +128);
//   scores:  s[i][j] = (float)(sum_d (qq+128) kq - comp[j]) * sq[i] * sk[j]   (exact int32 sums);
//   probs:   e = exp(scale * s - max_j(scale * s)) in (0, 1], max exactly 1, as u8 pq = rne(255 e);
//            rowsum[i] = sum_j pq (an exact integer);
//   v:       per head dimension d over all keys, symmetric s8: sv[d] = max_j |v[j][d]| / 127;
//   out:     o[i][d] = (float)(sum_j pq vq) * sv[d] * (1 / rowsum[i]).
// The probabilities are normalised by the sum of their own quantised values, so the weights used
// sum to exactly 1; a key whose e is below 1/510 of the row's largest gets weight 0.
//
// Layouts (4 bytes per uint32, element 4p+t in byte t):
//   q rows [rows][hd/4]  dwords of 4 consecutive head dimensions (u8);
//   kp     [hd/4][T16]   dword p of key j at kp[p*T16 + j] (s8); keys T..T16-1 are zero;
//   p rows [rows][T4]    bytes, T4 = T rounded up to 4, zero-padded;
//   vp     [T4/4][hd]    vp[q*hd + d] = (v[4q][d], v[4q+1][d], v[4q+2][d], v[4q+3][d]) (s8), missing keys 0.
#pragma once
#include <stdint.h>

// True when the CPU has AVX512-VNNI, the AVX-512 kernel table is in use, and CAVMAE_ATTENTION is
// not set to 'onednn' or 'bf16' (those force the bf16 paths, for comparisons).
bool attn_int8_available();
// The head sizes these kernels take (hd multiple of 16, at most 64).
inline bool attn_int8_supports(long hd) { return hd > 0 && hd % 16 == 0 && hd <= 64; }

inline long attn_t4(long T) { return (T + 3) / 4 * 4; }

// kp, sk[T16], comp[T16] from keys k [T, hd] (row stride ld elements).
void attn8_pack_k(uint32_t* kp, float* sk, int32_t* comp, const float* k, long ld, long T, long hd);
// vp and sv[hd] from values v [T, hd] (row stride ld elements).
void attn8_pack_v(uint32_t* vp, float* sv, const float* v, long ld, long T, long hd);
// q rows (u8 + 128) and sq[rows] from q [rows, hd] (row stride ld elements).
void attn8_quantize_q(uint32_t* qd, float* sq, const float* q, long ld, long rows, long hd);
// s [rows, T] (row stride lds) = the dequantised scores (unscaled).
void attn8_scores(float* s, long lds, const uint32_t* qd, const float* sq, const uint32_t* kp, const float* sk,
                  const int32_t* comp, long rows, long T, long hd);
// o [rows, hd] (row stride ldo) = (p · vq) * sv / rowsum; p rows have stride ldp bytes.
void attn8_pv(float* o, long ldo, const uint8_t* p, long ldp, const int32_t* rowsum, const uint32_t* vp,
              const float* sv, long rows, long T, long hd);

// The same two products on AMX for hd = 64 (attention_int8_amx.cc), where the packed int8 GEMM
// runs AMX (int8_packed_kernel() is kAmx; CAVMAE_INT8_GEMM=vnni keeps VNNI for both,
// CAVMAE_ATTENTION=vnni for the attention alone): attn_int8_amx(). They read
// 16 rows per tile: qd and p need rows rounded up to 32 (the extra rows' outputs are not
// written). attn8_pv_amx takes p rows of ldp >= T64 bytes and vp of T64 / 4 rows, both
// zero-padded from T to T64 = T rounded up to 64.
bool attn_int8_amx();
inline long attn_t64(long T) { return (T + 63) / 64 * 64; }
void attn8_scores_amx(float* s, long lds, const uint32_t* qd, const float* sq, const uint32_t* kp, const float* sk,
                      const int32_t* comp, long rows, long T);
void attn8_pv_amx(float* o, long ldo, const uint8_t* p, long ldp, const int32_t* rowsum, const uint32_t* vp,
                  const float* sv, long rows, long T64);
