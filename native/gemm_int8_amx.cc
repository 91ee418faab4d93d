// The packed int8 GEMM (gemm_int8.h) on AMX (tdpbusd: a 16x16 int32 tile += a 16x64 u8 tile times
// a 64x16 s8 tile, 16384 multiply-adds per instruction against 1024 of a 512-bit vpdpbusd). It
// reads the packed weights as they are: one k-quad of a 64-channel panel is 256 bytes, four
// 64-byte runs of 16 channels, so a B tile (16 k-quads x 16 channels, 4 bytes each) is 16 rows of
// 64 bytes at a stride of 256, the layout tdpbusd wants without any repacking. The sums are exact
// int32, as the VNNI kernel's, so the results are bit-identical.
//
// Used where int8_packed_kernel() is kAmx and k is a multiple of 64 (one tile's depth); other
// shapes take the VNNI kernel, which every AMX CPU has.
#include <cpuid.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <vector>

#include "gemm_int8.h"

namespace {

constexpr long kArchReqXcompPerm = 0x1023;  // asm/prctl.h
constexpr long kXfeatureXtiledata = 18;

// CPUID leaf 7's edx: bit 22 AMX-BF16, 24 AMX-TILE, 25 AMX-INT8.
unsigned leaf7_edx() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) ? edx : 0;
}

}  // namespace

bool amx_int8_usable() {
  static const bool ok = [] {
    const unsigned edx = leaf7_edx();
    if (!((edx >> 24) & 1) || !((edx >> 25) & 1)) return false;
    unsigned lo = 0, hi = 0;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if (((lo >> 17) & 3) != 3) return false;  // the OS does not manage the tile state
    // Linux enables the 8 KB tile data per process on request (oneDNN asks the same).
    return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
  }();
  return ok;
}

bool amx_bf16_usable() { return ((leaf7_edx() >> 22) & 1) && amx_int8_usable(); }

#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,amx-tile,amx-int8,amx-bf16")

namespace {

// One k-chunk of a 16 * RT row x 32 channel block: the 2 x 2 (or 1 x 2) int32 tiles in tmm0-3,
// two 16-row slices of A (64 k each) in tmm4-5, two 16-channel slices of the panel (16 k-quads
// each) in tmm6-7, so each A and B tile load feeds two tdpbusd. The sums start at zero or from c
// (int32, row stride 64) and go back there; a and b point at the chunk's first k-quad.
template <int RT>
void block_chunk(int32_t* c, bool first, const uint8_t* a, long lda, const uint8_t* b, long quads) {
  if (first) {
    _tile_zero(0);
    _tile_zero(1);
    if (RT == 2) {
      _tile_zero(2);
      _tile_zero(3);
    }
  } else {
    _tile_loadd(0, c, 256);
    _tile_loadd(1, c + 16, 256);
    if (RT == 2) {
      _tile_loadd(2, c + 16 * 64, 256);
      _tile_loadd(3, c + 16 * 64 + 16, 256);
    }
  }
  for (long q = 0; q < quads; q += 16) {
    // Each load right before its first use (tiles are not renamed: a load waits for the last
    // reader of its tile), and the next step's activations fetched into L1 meanwhile.
    _tile_loadd(4, a + 4 * q, lda);
    _tile_loadd(6, b + 256 * q, 256);
    _tile_dpbusd(0, 4, 6);
    _tile_loadd(7, b + 256 * q + 64, 256);
    _tile_dpbusd(1, 4, 7);
    if (RT == 2) {
      _tile_loadd(5, a + 16 * lda + 4 * q, lda);
      _tile_dpbusd(2, 5, 6);
      _tile_dpbusd(3, 5, 7);
    }
    if (q + 32 < quads)
      for (int r = 0; r < 16 * RT; r++) _mm_prefetch(reinterpret_cast<const char*>(a + r * lda + 4 * q + 128), _MM_HINT_T0);
  }
  _tile_stored(0, c, 256);
  _tile_stored(1, c + 16, 256);
  if (RT == 2) {
    _tile_stored(2, c + 16 * 64, 256);
    _tile_stored(3, c + 16 * 64 + 16, 256);
  }
}

// Rows [r0, r0 + rows) x 64 channels at j0 of the sums in buf (row stride 64) to c: int32 as
// they are, or dequantised as the VNNI kernel does (the same operations in the same order), a row
// at a time so the stores fill whole lines of c.
void finish(int32_t* c, long ldc, const int32_t* buf, long rows, const Int8Dequant* dq, long r0, long j0) {
  if (!dq) {
    for (long r = 0; r < rows; r++) memcpy(c + r * ldc, buf + 64 * r, 64 * sizeof(int32_t));
    return;
  }
  const float* row_scale = dq->row_scale + r0;
  const float* bias = dq->bias ? dq->bias + j0 : nullptr;
  const float* add = dq->add ? dq->add + r0 * dq->ld_add + j0 : nullptr;
  const long ld_add = dq->ld_add;
  __m512i comp[4];
  __m512 cs[4];
  for (int v = 0; v < 4; v++) {
    comp[v] = _mm512_loadu_si512(dq->col_comp + j0 + 16 * v);
    cs[v] = _mm512_loadu_ps(dq->col_scale + j0 + 16 * v);
  }
  float* out = reinterpret_cast<float*>(c);
  for (long r = 0; r < rows; r++) {
    const __m512 rs = _mm512_set1_ps(row_scale[r]);
    for (int v = 0; v < 4; v++) {
      const __m512i acc = _mm512_loadu_si512(buf + 64 * r + 16 * v);
      __m512 x = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc, comp[v]));
      x = _mm512_mul_ps(_mm512_mul_ps(x, rs), cs[v]);
      if (bias) x = _mm512_add_ps(x, _mm512_loadu_ps(bias + 16 * v));
      if (add) x = _mm512_add_ps(_mm512_loadu_ps(add + r * ld_add + 16 * v), x);
      _mm512_storeu_ps(out + r * ldc + 16 * v, x);
    }
  }
}

// Rows per group (a multiple of 32, default 128) and k-quads per chunk (a multiple of 16, default
// 192); CAVMAE_AMX_BLOCK=ROWSxQUADS overrides (read once, for tuning).
long tuning(int which) {
  const char* e = getenv("CAVMAE_AMX_BLOCK");
  const char* x = e ? strchr(e, 'x') : nullptr;
  const long group = e ? atol(e) / 32 * 32 : 0, quads = x ? atol(x + 1) / 16 * 16 : 0;
  if (which == 0) return group >= 32 ? group : 128;
  return quads >= 16 ? quads : 192;
}

}  // namespace

void int8_gemm_packed_amx(int32_t* c, long ldc, const uint8_t* a, long lda, const uint8_t* packed, long k, long m,
                          long n0, long n, const Int8Dequant* dq, Int8TileDone done, void* done_ctx) {
  const long nq = k / 4;
  // The tile configuration is per thread and oneDNN's AMX kernels load their own: set it on
  // every call.
  static const AmxTileConfig config;
  _tile_loadconfig(&config);
  // Loop order: per 32-channel half of a panel and per k-chunk of 768, every 32-row block of a
  // row group; the chunk of the half-panel (24 KB) then stays in L1 while the blocks' activations
  // stream from L2, and the int32 sums of the group wait in sums (group x 64) until both halves
  // are done and the 64-column tiles are finished.
  static const long kGroup = tuning(0), kChunkQuads = tuning(1);
  thread_local std::vector<int32_t> sums;
  if ((long)sums.size() < kGroup * 64) sums.resize(kGroup * 64);
  // A tail that is not a multiple of 16 rows is read from a zero-padded copy (a tile always
  // loads 16 rows).
  thread_local std::vector<uint8_t> tail;
  for (long g0 = 0; g0 < m; g0 += kGroup) {
    const long g1 = g0 + kGroup < m ? g0 + kGroup : m;
    const long full_end = g0 + (g1 - g0) / 32 * 32;
    const long rest = g1 - full_end;
    const uint8_t* rest_a = a + full_end * lda;
    long rest_lda = lda;
    if (rest % 16 != 0) {
      const long padded = (rest + 15) / 16 * 16;
      if ((long)tail.size() < padded * k) tail.resize(padded * k);
      for (long r = 0; r < padded; r++) {
        if (r < rest) memcpy(tail.data() + r * k, a + (full_end + r) * lda, k);
        else memset(tail.data() + r * k, 0, k);
      }
      rest_a = tail.data();
      rest_lda = k;
    }
    for (long j = 0; j < n; j += 64) {
      const uint8_t* panel = packed + (n0 + j) / 64 * nq * 256;
      for (int h = 0; h < 2; h++)
        for (long q0 = 0; q0 < nq; q0 += kChunkQuads) {
          const long quads = nq - q0 < kChunkQuads ? nq - q0 : kChunkQuads;
          const uint8_t* b = panel + 128 * h + 256 * q0;
          for (long r = g0; r < full_end; r += 32)
            block_chunk<2>(sums.data() + (r - g0) * 64 + 32 * h, q0 == 0, a + r * lda + 4 * q0, lda, b, quads);
          int32_t* rest_sums = sums.data() + (full_end - g0) * 64 + 32 * h;
          if (rest > 16) block_chunk<2>(rest_sums, q0 == 0, rest_a + 4 * q0, rest_lda, b, quads);
          else if (rest > 0) block_chunk<1>(rest_sums, q0 == 0, rest_a + 4 * q0, rest_lda, b, quads);
        }
      for (long r = g0; r < g1; r += 32) {
        const long rows = g1 - r < 32 ? g1 - r : 32;
        finish(c + r * ldc + j, ldc, sums.data() + (r - g0) * 64, rows, dq, r, j);
        if (done) done(done_ctx, r, rows, j);
      }
    }
  }
  _tile_release();
}

// The hardware probes' AMX chains (probe.h kinds 4 and 5): four independent 16 x 16 tiles
// accumulating register-only products (the operand tiles zero: the speed does not depend on the
// values), iters rounds of four tdpbusd (16 x 16 x 64 products, 2 ops each) or tdpbf16ps
// (16 x 16 x 32); returns the ops done.
template <bool kBf16>
double peak_amx(long iters) {
  static const AmxTileConfig config;
  _tile_loadconfig(&config);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_zero(4);
  _tile_zero(5);
  _tile_zero(6);
  _tile_zero(7);
  for (long i = 0; i < iters; i++) {
    if constexpr (kBf16) {
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    } else {
      _tile_dpbusd(0, 4, 6);
      _tile_dpbusd(1, 4, 7);
      _tile_dpbusd(2, 5, 6);
      _tile_dpbusd(3, 5, 7);
    }
  }
  alignas(64) int32_t sink[256];
  _tile_stored(0, sink, 64);
  _tile_release();
  volatile int32_t keep = sink[0];
  (void)keep;
  return 4.0 * 16 * 16 * (kBf16 ? 32 : 64) * 2 * (double)iters;
}

double peak_amx_int8(long iters) { return peak_amx<false>(iters); }
double peak_amx_bf16(long iters) { return peak_amx<true>(iters); }
