// int8 attention's two products on AMX (tdpbusd), for head size 64, over the layouts of
// attention_int8.h, with the VNNI kernels' epilogues (the same float operations in the same order):
// the int32 sums are exact either way, so the outputs are bit-identical.
//   scores: a q tile is 16 rows x 64 bytes (one row of qd is hd = 64 bytes: the whole depth in
//     one tdpbusd), a key tile 16 dwords of kp's rows at a stride of T16 dwords; the two q tiles
//     of a 32-row block stay loaded while the keys pass, so each key tile feeds two tdpbusd.
//   p · v: p rows are the u8 tiles (64 keys deep), vp's rows (64 dims x 4 bytes = 256 bytes) hold
//     four 16-dim tiles side by side at a stride of 256, as the packed GEMM weights do; k runs
//     over the keys padded to a multiple of 64 (zero probabilities and zero values).
#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attention_int8.h"
#include "gemm_int8.h"

bool attn_int8_amx() {
  static const bool ok = [] {
    const char* force = getenv("CAVMAE_ATTENTION");
    return int8_packed_kernel() == Int8PackedKernel::kAmx && !(force && strcmp(force, "vnni") == 0);
  }();
  return ok;
}

#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,amx-tile,amx-int8")

namespace {

inline __mmask16 lanes(long n) { return (__mmask16)((1u << n) - 1u); }

}  // namespace

void attn8_scores_amx(float* s, long lds, const uint32_t* qd, const float* sq, const uint32_t* kp, const float* sk,
                      const int32_t* comp, long rows, long T) {
  static const AmxTileConfig config;
  _tile_loadconfig(&config);
  const long T16 = (T + 15) / 16 * 16;
  alignas(64) int32_t buf[32 * 32];
  for (long r0 = 0; r0 < rows; r0 += 32) {
    const long rn = rows - r0 < 32 ? rows - r0 : 32;
    _tile_loadd(4, qd + r0 * 16, 64);
    if (rn > 16) _tile_loadd(5, qd + (r0 + 16) * 16, 64);
    for (long j0 = 0; j0 < T16; j0 += 32) {
      const bool two = T16 - j0 > 16;
      _tile_loadd(6, kp + j0, T16 * 4);
      _tile_zero(0);
      _tile_dpbusd(0, 4, 6);
      _tile_stored(0, buf, 128);
      if (rn > 16) {
        _tile_zero(2);
        _tile_dpbusd(2, 5, 6);
        _tile_stored(2, buf + 16 * 32, 128);
      }
      if (two) {
        _tile_loadd(7, kp + j0 + 16, T16 * 4);
        _tile_zero(1);
        _tile_dpbusd(1, 4, 7);
        _tile_stored(1, buf + 16, 128);
        if (rn > 16) {
          _tile_zero(3);
          _tile_dpbusd(3, 5, 7);
          _tile_stored(3, buf + 16 * 32 + 16, 128);
        }
      }
      for (int c = 0; c < (two ? 2 : 1); c++) {
        const long j = j0 + 16 * c;
        const long valid = T - j < 16 ? T - j : 16;  // j < T16 so j < T
        const __m512i kc = _mm512_loadu_si512(comp + j);
        const __m512 ks = _mm512_loadu_ps(sk + j);
        for (long r = 0; r < rn; r++) {
          __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_load_si512(buf + r * 32 + 16 * c), kc));
          v = _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(sq[r0 + r])), ks);
          _mm512_mask_storeu_ps(s + (r0 + r) * lds + j, lanes(valid), v);
        }
      }
    }
  }
  _tile_release();
}

void attn8_pv_amx(float* o, long ldo, const uint8_t* p, long ldp, const int32_t* rowsum, const uint32_t* vp,
                  const float* sv, long rows, long T64) {
  static const AmxTileConfig config;
  _tile_loadconfig(&config);
  const long nq = T64 / 4;
  alignas(64) int32_t buf[32 * 64];
  for (long r0 = 0; r0 < rows; r0 += 32) {
    const long rn = rows - r0 < 32 ? rows - r0 : 32;
    const uint8_t* a = p + r0 * ldp;
    for (int h = 0; h < 2; h++) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      const uint32_t* b = vp + 32 * h;
      for (long q = 0; q < nq; q += 16) {
        _tile_loadd(4, a + 4 * q, ldp);
        _tile_loadd(6, b + q * 64, 256);
        _tile_dpbusd(0, 4, 6);
        _tile_loadd(7, b + q * 64 + 16, 256);
        _tile_dpbusd(1, 4, 7);
        if (rn > 16) {
          _tile_loadd(5, a + 16 * ldp + 4 * q, ldp);
          _tile_dpbusd(2, 5, 6);
          _tile_dpbusd(3, 5, 7);
        }
      }
      _tile_stored(0, buf + 32 * h, 256);
      _tile_stored(1, buf + 32 * h + 16, 256);
      if (rn > 16) {
        _tile_stored(2, buf + 16 * 64 + 32 * h, 256);
        _tile_stored(3, buf + 16 * 64 + 32 * h + 16, 256);
      }
    }
    for (long r = 0; r < rn; r++) {
      const __m512 inv = _mm512_set1_ps(1.0f / (float)rowsum[r0 + r]);
      for (int v = 0; v < 4; v++) {
        __m512 x = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_load_si512(buf + r * 64 + 16 * v)), _mm512_loadu_ps(sv + 16 * v));
        _mm512_storeu_ps(o + (r0 + r) * ldo + 16 * v, _mm512_mul_ps(x, inv));
      }
    }
  }
  _tile_release();
}
