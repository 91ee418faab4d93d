// The packed int8 GEMM (see gemm_int8.h): the choice of kernel, the packing, and the AVX512-VNNI
// kernel. Only the code after the pragma below is compiled for AVX512-VNNI; it runs only where
// int8_packed_kernel() is kVnni.
#include "gemm_int8.h"

#include <cpuid.h>
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

namespace {

bool cpu_has_avx_vnni() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) return false;
  return (eax >> 4) & 1;
}

}  // namespace

Int8PackedKernel int8_packed_kernel() {
  static const Int8PackedKernel kind = [] {
    const char* force = getenv("CAVMAE_INT8_GEMM");
    if (force && strcmp(force, "onednn") == 0) return Int8PackedKernel::kNone;
    if (force && strcmp(force, "avx2") == 0) return Int8PackedKernel::kAvx2;
    __builtin_cpu_init();
    const bool vnni512 = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
    const bool table512 = strcmp(select_kernels().isa, "avx512") == 0;
    const bool vnni_forced = force && strcmp(force, "vnni") == 0;
    if (vnni512 && table512 && !vnni_forced && amx_int8_usable()) return Int8PackedKernel::kAmx;
    if (vnni512 && table512) return Int8PackedKernel::kVnni;
    const char* isa = getenv("CAVMAE_NATIVE_ISA");  // the AVX2 kernel table forced (kernels_avx2.cc)
    if (isa && strcmp(isa, "avx2") == 0) return Int8PackedKernel::kAvx2;
    if (!vnni512 && !cpu_has_avx_vnni()) return Int8PackedKernel::kAvx2;
    return Int8PackedKernel::kNone;
  }();
  return kind;
}

void int8_gemm_packed(int32_t* c, long ldc, const uint8_t* a, long lda, const uint8_t* packed, long k, long m,
                      long n0, long n, const Int8Dequant* dq, Int8TileDone done, void* done_ctx) {
  const Int8PackedKernel kind = int8_packed_kernel();
  if (kind == Int8PackedKernel::kAmx && k % 64 == 0)
    int8_gemm_packed_amx(c, ldc, a, lda, packed, k, m, n0, n, dq, done, done_ctx);
  else if (kind == Int8PackedKernel::kAmx || kind == Int8PackedKernel::kVnni)
    int8_gemm_packed_vnni(c, ldc, a, lda, packed, k, m, n0, n, dq, done, done_ctx);
  else
    int8_gemm_packed_avx2(c, ldc, a, lda, packed, k, m, n0, n, dq, done, done_ctx);
}

void int8_pack_weights(uint8_t* out, const int8_t* w, long n, long k) {
  const long nq = k / 4;
  uint32_t* o = reinterpret_cast<uint32_t*>(out);
  for (long p = 0; p < n / 64; p++)
    for (long j = 0; j < 64; j++) {
      const int8_t* row = w + (64 * p + j) * k;
      uint32_t* col = o + p * nq * 64 + j;
      for (long q = 0; q < nq; q++) {
        uint32_t d;
        memcpy(&d, row + 4 * q, 4);
        col[q * 64] = d;
      }
    }
}

#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")

namespace {

// acc += u8 a · s8 b in place (inline assembly: GCC 12 copies the accumulator before every
// _mm512_dpbusd_epi32 of an unrolled tile; attention_int8.cc has the measurement).
inline __m512i dpbusd(__m512i acc, __m512i a, __m512i b) {
  __asm__("vpdpbusd %[b], %[a], %[acc]" : [acc] "+v"(acc) : [a] "v"(a), [b] "v"(b));
  return acc;
}

// R rows x 64 columns: 24 accumulators, 4 weight vectors and one broadcast in 29 of the 32
// registers; per k-quad 4 loads, R broadcasts and 4R vpdpbusd.
template <int R>
void tile(int32_t* c, long ldc, const uint8_t* a, long lda, const uint8_t* panel, long nq, const Int8Dequant* dq,
          long r0, long j0) {
  __m512i acc[R][4];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_si512();
  for (long q = 0; q < nq; q++) {
    __m512i b[4];
    for (int v = 0; v < 4; v++) b[v] = _mm512_loadu_si512(panel + q * 256 + 64 * v);
    for (int r = 0; r < R; r++) {
      int32_t four;
      memcpy(&four, a + r * lda + 4 * q, 4);
      const __m512i x = _mm512_set1_epi32(four);
      for (int v = 0; v < 4; v++) acc[r][v] = dpbusd(acc[r][v], x, b[v]);
    }
  }
  if (!dq) {
    for (int r = 0; r < R; r++)
      for (int v = 0; v < 4; v++) _mm512_storeu_si512(c + r * ldc + 16 * v, acc[r][v]);
    return;
  }
  float* out = reinterpret_cast<float*>(c);
  for (int v = 0; v < 4; v++) {
    const long j = j0 + 16 * v;
    const __m512i comp = _mm512_loadu_si512(dq->col_comp + j);
    const __m512 cs = _mm512_loadu_ps(dq->col_scale + j);
    for (int r = 0; r < R; r++) {
      __m512 x = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][v], comp));
      x = _mm512_mul_ps(_mm512_mul_ps(x, _mm512_set1_ps(dq->row_scale[r0 + r])), cs);
      if (dq->bias) x = _mm512_add_ps(x, _mm512_loadu_ps(dq->bias + j));
      if (dq->add) x = _mm512_add_ps(_mm512_loadu_ps(dq->add + (r0 + r) * dq->ld_add + j), x);
      _mm512_storeu_ps(out + r * ldc + 16 * v, x);
    }
  }
}

}  // namespace

void int8_gemm_packed_vnni(int32_t* c, long ldc, const uint8_t* a, long lda, const uint8_t* packed, long k, long m,
                           long n0, long n, const Int8Dequant* dq, Int8TileDone done, void* done_ctx) {
  const long nq = k / 4;
  // Rows in groups whose activations (group x k bytes) stay in L2 next to one panel (k x 64
  // bytes) while every panel of the piece passes over them: 336 rows at k = 768, 84 at 3072.
  long group = (256 * 1024 / k) / 6 * 6;
  if (group < 6) group = 6;
  for (long g0 = 0; g0 < m; g0 += group) {
    const long g1 = g0 + group < m ? g0 + group : m;
    for (long j = 0; j < n; j += 64) {
      const uint8_t* panel = packed + (n0 + j) / 64 * nq * 256;
      int32_t* cj = c + j;
      long r = g0;
      for (; r + 6 <= g1; r += 6) {
        tile<6>(cj + r * ldc, ldc, a + r * lda, lda, panel, nq, dq, r, j);
        if (done) done(done_ctx, r, 6, j);
      }
      switch (g1 - r) {
        case 1: tile<1>(cj + r * ldc, ldc, a + r * lda, lda, panel, nq, dq, r, j); break;
        case 2: tile<2>(cj + r * ldc, ldc, a + r * lda, lda, panel, nq, dq, r, j); break;
        case 3: tile<3>(cj + r * ldc, ldc, a + r * lda, lda, panel, nq, dq, r, j); break;
        case 4: tile<4>(cj + r * ldc, ldc, a + r * lda, lda, panel, nq, dq, r, j); break;
        case 5: tile<5>(cj + r * ldc, ldc, a + r * lda, lda, panel, nq, dq, r, j); break;
        default: break;
      }
      if (done && r < g1) done(done_ctx, r, g1 - r, j);
    }
  }
}
