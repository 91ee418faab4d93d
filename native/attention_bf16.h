// bf16 attention micro-kernels on AVX512-BF16 (vdpbf16ps), for attention.cc's bf16 path.
//
// Why not oneDNN here: attention's GEMMs are small (one head, <= 128 query rows, K = 64 for
// q·kᵀ), and a oneDNN primitive call per block costs tens of microseconds of set-up around
// ~40 µs of arithmetic. These kernels work on operands packed once per (sample, head) in the
// layouts vdpbf16ps wants, straight from the fp32 qkv (no separate bf16 copy of it).
//
// Layouts (bf16 values travel as uint32 pairs: element 2i in the low half, 2i+1 in the high):
//   q rows   [rows][hd/2]  pairs along the head dimension (a row-major bf16 row);
//   kp       [hd/2][T16]   pair p of key j at kp[p*T16 + j]; T16 = T rounded up to 16, zero-padded;
//   p rows   [rows][T2/2]  probabilities as bf16 rows, T2 = T rounded up to 2, zero-padded;
//   vp       [T2/2][hd]    vp[q*hd + d] = (v[2q][d], v[2q+1][d]), a missing row 2q+1 is zero.
// Rounding is fp32 -> bf16 round-to-nearest-even on the bit pattern, the same as f32_to_bf16,
// so packing from fp32 gives the same values as packing from the bf16 copy of the same tensor.
// Accumulation is fp32, in a fixed order (over the pairs, first to last), so the probabilities
// the backward recomputes are bit-identical to the forward's.
#pragma once
#include <stdint.h>

// True when the CPU has AVX512-BF16, the AVX-512 kernel table is in use, and
// CAVMAE_ATTENTION=onednn is not set (that forces the oneDNN path, for comparisons).
bool attn_bf16_available();
// The head sizes these kernels take (hd multiple of 16, at most 64).
inline bool attn_bf16_supports(long hd) { return hd > 0 && hd % 16 == 0 && hd <= 64; }

inline long attn_t16(long T) { return (T + 15) / 16 * 16; }
inline long attn_t2(long T) { return (T + 1) / 2 * 2; }

// kp from keys k [T, hd] (row stride ld elements), fp32 or already-rounded bf16.
void attn_pack_k_f32(uint32_t* kp, const float* k, long ld, long T, long hd);
void attn_pack_k_bf16(uint32_t* kp, const uint16_t* k, long ld, long T, long hd);
// vp from values v [T, hd] (row stride ld elements, fp32).
void attn_pack_v_f32(uint32_t* vp, const float* v, long ld, long T, long hd);
// dst [rows][ceil(cols/2)] pairs (row stride ld_dst pairs) = bf16(src [rows, cols]) (row stride
// ld_src), an odd last column padded with zero.
void attn_round_rows(uint32_t* dst, long ld_dst, const float* src, long ld_src, long rows, long cols);
// s [rows, T] (row stride lds) = q · kᵀ, unscaled; q rows have stride ldq pairs.
void attn_scores(float* s, long lds, const uint32_t* q, long ldq, const uint32_t* kp, long rows, long T, long hd);
// o [rows, hd] (row stride ldo) = p · v over T keys; p rows have stride ldp pairs.
void attn_pv(float* o, long ldo, const uint32_t* p, long ldp, const uint32_t* vp, long rows, long T, long hd);
