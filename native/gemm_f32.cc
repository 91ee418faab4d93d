// The packed fp32 GEMM (see gemm_f32.h): the choice, the packing and the AVX-512 tiles. Only the
// code after the pragma is compiled for AVX-512; it runs only where f32_packed_gemm_runs().
#include "gemm_f32.h"

#include <cpuid.h>
#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

bool f32_packed_gemm_runs() {
  static const bool runs = [] {
    const char* force = getenv("CAVMAE_F32_GEMM");
    if (force && strcmp(force, "onednn") == 0) return false;
    if (strcmp(select_kernels().isa, "avx512") != 0) return false;
    if (force && strcmp(force, "packed") == 0) return true;
    // Measured faster than oneDNN on AMD family 26 (Zen 5) only so far; other AVX-512 CPUs keep
    // oneDNN until measured (CAVMAE_F32_GEMM=packed to try).
    __builtin_cpu_init();
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
    const unsigned base = (eax >> 8) & 0xf, family = base + (base == 0xf ? (eax >> 20) & 0xff : 0);
    return __builtin_cpu_is("amd") && family == 26;
  }();
  return runs;
}

#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq")

namespace {

// In place: r[i] = column i of the 16 x 16 block whose rows were r[0..15].
inline void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; i++) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; i++) {
    const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
    const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
    r[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
    r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
    r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
    r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
  }
  for (int i = 0; i < 2; i++)
    for (int c = 0; c < 4; c++) {
      t[8 * i + c] = _mm512_shuffle_f32x4(r[8 * i + c], r[8 * i + 4 + c], 0x88);
      t[8 * i + 4 + c] = _mm512_shuffle_f32x4(r[8 * i + c], r[8 * i + 4 + c], 0xdd);
    }
  for (int c = 0; c < 8; c++) {
    r[c] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0x88);
    r[c + 8] = _mm512_shuffle_f32x4(t[c], t[8 + c], 0xdd);
  }
}

}  // namespace

void f32_pack_panels(float* out, const float* b, long sb_k, long sb_n, long k, long n, long p0, long p1) {
  for (long p = p0; p < p1; p++) {
    const long j0 = p * kF32PanelWidth, w = n - j0 < kF32PanelWidth ? n - j0 : kF32PanelWidth;
    float* o = out + j0 * k;
    if (sb_n == 1) {
      for (long q = 0; q < k; q++) memcpy(o + q * w, b + q * sb_k + j0, w * sizeof(float));
    } else if (sb_k == 1) {
      // Bᵀ rows (the weights W [n, k] of x · Wᵀ): 16 x 16 blocks transposed in registers.
      long q0 = 0;
      for (; q0 + 16 <= k; q0 += 16)
        for (long jb = 0; jb < w; jb += 16) {
          __m512 r[16];
          for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(b + (j0 + jb + i) * sb_n + q0);
          transpose16(r);
          for (int i = 0; i < 16; i++) _mm512_storeu_ps(o + (q0 + i) * w + jb, r[i]);
        }
      for (long j = 0; j < w; j++)
        for (long q = q0; q < k; q++) o[q * w + j] = b[(j0 + j) * sb_n + q];
    } else {
      for (long j = 0; j < w; j++)
        for (long q = 0; q < k; q++) o[q * w + j] = b[q * sb_k + (j0 + j) * sb_n];
    }
  }
}

namespace {

// R rows x 16V columns: for V = 3, R = 8, 24 accumulators, three B vectors and a broadcast in 28
// of the 32 registers; per k, V loads, R broadcasts and R·V FMAs.
template <int R, int V>
void tile(float* c, long ldc, const float* a, long lda, const float* panel, long k, const F32TileEpilogue* epi) {
  __m512 acc[R][V];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < V; v++) acc[r][v] = _mm512_setzero_ps();
  for (long q = 0; q < k; q++) {
    __m512 b[V];
    for (int v = 0; v < V; v++) b[v] = _mm512_loadu_ps(panel + q * 16 * V + 16 * v);
    for (int r = 0; r < R; r++) {
      const __m512 x = _mm512_set1_ps(a[r * lda + q]);
      for (int v = 0; v < V; v++) acc[r][v] = _mm512_fmadd_ps(x, b[v], acc[r][v]);
    }
  }
  if (epi && epi->bias)
    for (int v = 0; v < V; v++) {
      const __m512 bias = _mm512_loadu_ps(epi->bias + 16 * v);
      for (int r = 0; r < R; r++) acc[r][v] = _mm512_add_ps(acc[r][v], bias);
    }
  if (epi && epi->add)
    for (int r = 0; r < R; r++)
      for (int v = 0; v < V; v++)
        acc[r][v] = _mm512_add_ps(_mm512_loadu_ps(epi->add + r * epi->ld_add + 16 * v), acc[r][v]);
  for (int r = 0; r < R; r++)
    for (int v = 0; v < V; v++) _mm512_storeu_ps(c + r * ldc + 16 * v, acc[r][v]);
}

typedef void (*TileFn)(float*, long, const float*, long, const float*, long, const F32TileEpilogue*);

template <int V>
constexpr TileFn kTiles[9] = {nullptr,    tile<1, V>, tile<2, V>, tile<3, V>, tile<4, V>,
                              tile<5, V>, tile<6, V>, tile<7, V>, tile<8, V>};

TileFn tile_for(long rows, long width) {
  switch (width) {
    case 16: return kTiles<1>[rows];
    case 32: return kTiles<2>[rows];
    default: return kTiles<3>[rows];
  }
}

}  // namespace

void f32_gemm_packed(float* c, long ldc, const float* a, long lda, const float* packed, long k, long m, long n0,
                     long n, const F32TileEpilogue* epi, F32TileDone done, void* done_ctx) {
  // Rows in groups whose A (group x k floats, 256 KB) stays in L2 next to one panel (k x 48
  // floats) while every panel of the piece passes over them: 80 rows at k = 768, 16 at 3072.
  long group = (256 * 1024 / 4 / k) / 8 * 8;
  if (group < 8) group = 8;
  for (long g0 = 0; g0 < m; g0 += group) {
    const long g1 = g0 + group < m ? g0 + group : m;
    for (long j = 0; j < n; j += kF32PanelWidth) {
      const long w = n - j < kF32PanelWidth ? n - j : kF32PanelWidth;  // narrower: the last panel
      const float* panel = packed + (n0 + j) * k;
      F32TileEpilogue te{};
      for (long r = g0; r < g1; r += 8) {
        const long rows = g1 - r < 8 ? g1 - r : 8;
        const F32TileEpilogue* tep = nullptr;
        if (epi && (epi->bias || epi->add)) {
          te.bias = epi->bias ? epi->bias + j : nullptr;
          te.add = epi->add ? epi->add + r * epi->ld_add + j : nullptr;
          te.ld_add = epi->ld_add;
          tep = &te;
        }
        tile_for(rows, w)(c + r * ldc + j, ldc, a + r * lda, lda, panel, k, tep);
        if (done) done(done_ctx, r, rows, j, w);
      }
    }
  }
}
