// The packed int8 GEMM (gemm_int8.h) on AVX2 without VNNI, exact: int32 sums of u8 x s8 products.
//
// Why vpmaddwd: AVX2's byte multiply, vpmaddubsw, adds each pair of u8 x s8 products into a
// saturating int16 (255 * 128 * 2 > 32767), which is why oneDNN's int8 GEMM is wrong without VNNI.
// vpmaddwd multiplies int16 by int16 and adds pairs into int32: with u8 zero-extended and s8
// sign-extended a pair sum is at most 65280 in magnitude, so nothing saturates, and the vpaddd
// that accumulates wraps exactly like vpdpbusd's int32 sums. 16 products per instruction
// (vpdpbusd: 64), plus one vpaddd each; Zen 3 issues two of each per cycle.
//
// Both operands are widened to int16 once per row group, the way a GEMM packs its operands:
// - the group's activation rows, [rows][k] int16;
// - one K chunk of one 64-column panel at a time, [chunk / 4][16 vectors][4 columns][4 k]
//   int16, read by every row tile of the group while it is in L1. Vector 2g + h holds columns
//   8g + {0, 1, 4, 5} (h = 0) or 8g + {2, 3, 6, 7} (h = 1), so that one vphaddd of the two
//   accumulators of a row leaves columns 8g..8g+7 in order (vphaddd adds within 128-bit lanes).
// A step multiplies a vector (4 columns x 4 k) by a broadcast of one row's 4 activations
// (vpbroadcastq) into 4 columns x 2 half-sums; the halves are added once, when the tile ends.
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_int8.h"
#include "scratch.h"

namespace {

// Rows per tile and vectors (4 columns each) per column block: R x V accumulators, the broadcast,
// a product and V weight vectors loaded once per step (AVX2 has 16 registers).
constexpr int kRows = 6;
constexpr int kVecs = 2;
// K per chunk: the widened chunk of a panel, kChunk * 128 bytes, stays in L1 while the group's
// row tiles pass over it.
constexpr long kChunk = 192;

inline int16_t* aligned64(int16_t* p) {
  return reinterpret_cast<int16_t*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
}

// Quads [q0, q1) of a packed panel widened into the chunk layout above.
void widen_panel_chunk(int16_t* dst, const uint8_t* panel, long q0, long q1) {
  const __m256i order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
  for (long q = q0; q < q1; q++) {
    const uint8_t* src = panel + q * 256;
    int16_t* d = dst + (q - q0) * 256;
    for (int g = 0; g < 8; g++) {
      const __m256i x =
          _mm256_permutevar8x32_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 32 * g)), order);
      _mm256_store_si256(reinterpret_cast<__m256i*>(d + 32 * g), _mm256_cvtepi8_epi16(_mm256_castsi256_si128(x)));
      _mm256_store_si256(reinterpret_cast<__m256i*>(d + 32 * g + 16),
                         _mm256_cvtepi8_epi16(_mm256_extracti128_si256(x, 1)));
    }
  }
}

void widen_rows(int16_t* dst, long ldd, const uint8_t* a, long lda, long rows, long k) {
  for (long r = 0; r < rows; r++) {
    const uint8_t* s = a + r * lda;
    int16_t* d = dst + r * ldd;
    long e = 0;
    for (; e + 16 <= k; e += 16)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + e),
                          _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + e))));
    for (; e < k; e++) d[e] = s[e];
  }
}

// acc += the row's 4 activations at a (broadcast) times the weight vectors w.
inline void row_step(__m256i& acc0, __m256i& acc1, const int16_t* a, __m256i w0, __m256i w1) {
  const __m256i x = _mm256_set1_epi64x(*reinterpret_cast<const int64_t*>(a));
  acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(x, w0));
  acc1 = _mm256_add_epi32(acc1, _mm256_madd_epi16(x, w1));
}

#define CAVMAE_ROW(addr, acc0, acc1)          \
  "vpbroadcastq " addr ", %%ymm14\n\t"        \
  "vpmaddwd %%ymm12, %%ymm14, %%ymm15\n\t"     \
  "vpaddd %%ymm15, " acc0 ", " acc0 "\n\t"     \
  "vpmaddwd %%ymm13, %%ymm14, %%ymm14\n\t"     \
  "vpaddd %%ymm14, " acc1 ", " acc1 "\n\t"

// One step: the quad's 2 weight vectors at boff0(b) and boff1(b), the 6 rows' activations at aoff(a...).
#define CAVMAE_STEP(aoff, boff0, boff1)                          \
  "vmovdqa " boff0 "(%[b]), %%ymm12\n\t"                        \
  "vmovdqa " boff1 "(%[b]), %%ymm13\n\t"                        \
  CAVMAE_ROW(aoff "(%[a])", "%%ymm0", "%%ymm1")                   \
  CAVMAE_ROW(aoff "(%[a],%[ld])", "%%ymm2", "%%ymm3")             \
  CAVMAE_ROW(aoff "(%[a],%[ld],2)", "%%ymm4", "%%ymm5")           \
  CAVMAE_ROW(aoff "(%[a3])", "%%ymm6", "%%ymm7")                  \
  CAVMAE_ROW(aoff "(%[a3],%[ld])", "%%ymm8", "%%ymm9")            \
  CAVMAE_ROW(aoff "(%[a3],%[ld],2)", "%%ymm10", "%%ymm11")

// The full tile's k loop (nq >= 1 steps) in inline assembly: 12 accumulators (ymm0-11), 2 weight
// vectors, the broadcast and a product fill the 16 registers exactly. With intrinsics GCC 12
// hoisted the six broadcasts of a step and kept half the accumulators on the stack.
inline void steps6(__m256i acc[6][2], const int16_t* a, long lda, const int16_t* b, long nq) {
  const long ld = lda * 2;
  const int16_t* a3_unused;
  __asm__ volatile(
      "vmovdqu 0(%[acc]), %%ymm0\n\t"
      "vmovdqu 32(%[acc]), %%ymm1\n\t"
      "vmovdqu 64(%[acc]), %%ymm2\n\t"
      "vmovdqu 96(%[acc]), %%ymm3\n\t"
      "vmovdqu 128(%[acc]), %%ymm4\n\t"
      "vmovdqu 160(%[acc]), %%ymm5\n\t"
      "vmovdqu 192(%[acc]), %%ymm6\n\t"
      "vmovdqu 224(%[acc]), %%ymm7\n\t"
      "vmovdqu 256(%[acc]), %%ymm8\n\t"
      "vmovdqu 288(%[acc]), %%ymm9\n\t"
      "vmovdqu 320(%[acc]), %%ymm10\n\t"
      "vmovdqu 352(%[acc]), %%ymm11\n\t"
      "lea (%[a],%[ld],2), %[a3]\n\t"
      "add %[ld], %[a3]\n\t"
      // An odd step first, then two steps per iteration (fewer loop instructions per product).
      "test $1, %[n]\n\t"
      "jz 2f\n\t"
      CAVMAE_STEP("", "0", "32")
      "add $8, %[a]\n\t"
      "add $8, %[a3]\n\t"
      "add $512, %[b]\n\t"
      "dec %[n]\n\t"
      "jz 3f\n\t"
      "2:\n\t"
      CAVMAE_STEP("", "0", "32")
      CAVMAE_STEP("8", "512", "544")
      "add $16, %[a]\n\t"
      "add $16, %[a3]\n\t"
      "add $1024, %[b]\n\t"
      "sub $2, %[n]\n\t"
      "jnz 2b\n\t"
      "3:\n\t"
      "vmovdqu %%ymm0, 0(%[acc])\n\t"
      "vmovdqu %%ymm1, 32(%[acc])\n\t"
      "vmovdqu %%ymm2, 64(%[acc])\n\t"
      "vmovdqu %%ymm3, 96(%[acc])\n\t"
      "vmovdqu %%ymm4, 128(%[acc])\n\t"
      "vmovdqu %%ymm5, 160(%[acc])\n\t"
      "vmovdqu %%ymm6, 192(%[acc])\n\t"
      "vmovdqu %%ymm7, 224(%[acc])\n\t"
      "vmovdqu %%ymm8, 256(%[acc])\n\t"
      "vmovdqu %%ymm9, 288(%[acc])\n\t"
      "vmovdqu %%ymm10, 320(%[acc])\n\t"
      "vmovdqu %%ymm11, 352(%[acc])"
      : [a] "+r"(a), [a3] "=&r"(a3_unused), [b] "+r"(b), [n] "+r"(nq)
      : [ld] "r"(ld), [acc] "r"(acc)
      : "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}
#undef CAVMAE_STEP
#undef CAVMAE_ROW

// One chunk of R rows x 4V columns. c: the tile's first element (row r0 of the call, column j
// of the call); partial: c holds the int32 sums of the chunks before; last: the sums are final
// (then dequantised if dq). b: the chunk's first vector of this column block.
template <int R>
inline void block(int32_t* c, long ldc, const int16_t* a, long lda, const int16_t* b, long nq, bool partial,
                  bool last, const Int8Dequant* dq, long r0, long j) {
  __m256i acc[R][kVecs];
  if (partial) {
    // acc[2g] lanes hold columns (0, 1 | 4, 5) as pairs of halves, acc[2g + 1] (2, 3 | 6, 7):
    // the sums so far go into the first half of their column, zero into the second.
    const __m256i zero = _mm256_setzero_si256();
    for (int r = 0; r < R; r++)
      for (int g = 0; g < kVecs / 2; g++) {
        const __m256i p = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + r * ldc + 8 * g));
        acc[r][2 * g] = _mm256_unpacklo_epi32(p, zero);
        acc[r][2 * g + 1] = _mm256_unpackhi_epi32(p, zero);
      }
  } else {
    for (int r = 0; r < R; r++)
      for (int v = 0; v < kVecs; v++) acc[r][v] = _mm256_setzero_si256();
  }
  if (R == 6) {
    steps6(reinterpret_cast<__m256i(*)[2]>(acc), a, lda, b, nq);
  } else {
    for (long q = 0; q < nq; q++) {
      __m256i w[kVecs];
      for (int v = 0; v < kVecs; v++) w[v] = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + q * 256 + 16 * v));
      for (int r = 0; r < R; r++) row_step(acc[r][0], acc[r][1], a + r * lda + 4 * q, w[0], w[1]);
    }
  }
  if (!last || !dq) {
    for (int r = 0; r < R; r++)
      for (int g = 0; g < kVecs / 2; g++)
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + r * ldc + 8 * g),
                            _mm256_hadd_epi32(acc[r][2 * g], acc[r][2 * g + 1]));
    return;
  }
  // The VNNI tile's epilogue, operation for operation (gemm_int8.h).
  float* out = reinterpret_cast<float*>(c);
  for (int g = 0; g < kVecs / 2; g++) {
    const long jj = j + 8 * g;
    const __m256i comp = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dq->col_comp + jj));
    const __m256 cs = _mm256_loadu_ps(dq->col_scale + jj);
    for (int r = 0; r < R; r++) {
      const __m256i sum = _mm256_hadd_epi32(acc[r][2 * g], acc[r][2 * g + 1]);
      __m256 x = _mm256_cvtepi32_ps(_mm256_sub_epi32(sum, comp));
      x = _mm256_mul_ps(_mm256_mul_ps(x, _mm256_set1_ps(dq->row_scale[r0 + r])), cs);
      if (dq->bias) x = _mm256_add_ps(x, _mm256_loadu_ps(dq->bias + jj));
      if (dq->add) x = _mm256_add_ps(_mm256_loadu_ps(dq->add + (r0 + r) * dq->ld_add + jj), x);
      _mm256_storeu_ps(out + r * ldc + 8 * g, x);
    }
  }
}

// R rows x the panel's 64 columns over one chunk.
template <int R>
void tile(int32_t* c, long ldc, const int16_t* a, long lda, const int16_t* chunk, long nq, bool partial, bool last,
          const Int8Dequant* dq, long r0, long j) {
  for (int s = 0; s < 16 / kVecs; s++)
    block<R>(c + 4 * kVecs * s, ldc, a, lda, chunk + 16 * kVecs * s, nq, partial, last, dq, r0, j + 4 * kVecs * s);
}

void row_tile(long rows, int32_t* c, long ldc, const int16_t* a, long lda, const int16_t* chunk, long nq,
              bool partial, bool last, const Int8Dequant* dq, long r0, long j) {
  static_assert(kRows == 6, "a case per row count up to kRows");
  switch (rows) {
    case 1: return tile<1>(c, ldc, a, lda, chunk, nq, partial, last, dq, r0, j);
    case 2: return tile<2>(c, ldc, a, lda, chunk, nq, partial, last, dq, r0, j);
    case 3: return tile<3>(c, ldc, a, lda, chunk, nq, partial, last, dq, r0, j);
    case 4: return tile<4>(c, ldc, a, lda, chunk, nq, partial, last, dq, r0, j);
    case 5: return tile<5>(c, ldc, a, lda, chunk, nq, partial, last, dq, r0, j);
    default: return tile<6>(c, ldc, a, lda, chunk, nq, partial, last, dq, r0, j);
  }
}

}  // namespace

void int8_gemm_packed_avx2(int32_t* c, long ldc, const uint8_t* a, long lda, const uint8_t* packed, long k, long m,
                           long n0, long n, const Int8Dequant* dq, Int8TileDone done, void* done_ctx) {
  const long nq = k / 4;
  // Row groups whose widened rows (2k bytes each) stay in L2 while every panel of the call passes
  // over them: at most 192 KB, in equal groups of whole tiles.
  long most = (192 * 1024 / (2 * k)) / kRows * kRows;
  if (most < kRows) most = kRows;
  const long groups = (m + most - 1) / most;
  long group = ((m + groups - 1) / groups + kRows - 1) / kRows * kRows;
  const long rows_max = group < m ? group : m;
  const long lda16 = (k + 15) / 16 * 16;
  int16_t* a16 = aligned64(scratch<int16_t>(kScratchInt8Rows16, (size_t)(rows_max * lda16 + 32)));
  int16_t* chunk = aligned64(scratch<int16_t>(kScratchInt8Panel16, (size_t)(kChunk * 64 + 32)));
  for (long g0 = 0; g0 < m; g0 += group) {
    const long g1 = g0 + group < m ? g0 + group : m;
    widen_rows(a16, lda16, a + g0 * lda, lda, g1 - g0, k);
    for (long j = 0; j < n; j += 64) {
      const uint8_t* panel = packed + (n0 + j) / 64 * nq * 256;
      for (long q0 = 0; q0 < nq; q0 += kChunk / 4) {
        const long q1 = q0 + kChunk / 4 < nq ? q0 + kChunk / 4 : nq;
        const bool partial = q0 > 0, last = q1 == nq;
        widen_panel_chunk(chunk, panel, q0, q1);
        for (long r = g0; r < g1; r += kRows) {
          const long rows = g1 - r < kRows ? g1 - r : kRows;
          row_tile(rows, c + r * ldc + j, ldc, a16 + (r - g0) * lda16 + 4 * q0, lda16, chunk, q1 - q0, partial, last, dq,
                      r, j);
          if (last && done) done(done_ctx, r, rows, j);
        }
      }
    }
  }
}
