// int8 attention micro-kernels (see attention_int8.h). This file alone is compiled for
// AVX512-VNNI (the pragma below); attention.cc calls it only when attn_int8_available().
#include "attention_int8.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

bool attn_int8_available() {
  static const bool ok = [] {
    const char* force = getenv("CAVMAE_ATTENTION");
    if (force && (strcmp(force, "onednn") == 0 || strcmp(force, "bf16") == 0)) return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
           strcmp(select_kernels().isa, "avx512") == 0;
  }();
  return ok;
}

#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
// GCC 12 warns about the _mm512_undefined_ps() inside its own _mm512_cvtepi32_ps (a false
// positive of the intrinsic's header, GCC bug 105593).
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace {

inline __mmask16 lanes(long n) { return (__mmask16)((1u << n) - 1u); }

// acc += u8 a · s8 b (vpdpbusd) in place. Inline assembly because GCC 12 copies the accumulator
// before every _mm512_dpbusd_epi32 of an unrolled tile (a register move per instruction, which
// halved the tiles' speed; measured with perf).
inline __m512i dpbusd(__m512i acc, __m512i a, __m512i b) {
  __asm__("vpdpbusd %[b], %[a], %[acc]" : [acc] "+v"(acc) : [a] "v"(a), [b] "v"(b));
  return acc;
}

// Symmetric quantisation of 16 values with the multiplier inv (127 / max|x|): rne, clamped to
// [-127, 127], as int32 lanes (the same float operations as kernels_impl.h's quantize_row).
inline __m512i quant16(__m512 x, __m512 inv) {
  const __m512 lo = _mm512_set1_ps(-127.0f), hi = _mm512_set1_ps(127.0f);
  __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(x, inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  return _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(r, lo), hi));
}

// Rows of q, k and v are 3C floats apart in qkv, each in a page of its own, so the hardware
// prefetchers (which stay within a page) do not see them coming: at batch 8 the first load of
// each row was 85% of attn8_pack_k's time (perf). Rows are fetched this many ahead instead.
constexpr long kPrefetchRows = 8;

inline void prefetch_row(const float* x, long n) {
  for (long c = 0; c < n; c += 16) _mm_prefetch(reinterpret_cast<const char*>(x + c), _MM_HINT_T0);
}

// max |x| over n = hd (a multiple of 16) values.
inline float absmax(const float* x, long n) {
  __m512 m = _mm512_setzero_ps();
  for (long c = 0; c < n; c += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + c)));
  return _mm512_reduce_max_ps(m);
}

// One row of hd values to bytes (int8 + offset) in `dst`; returns the scale max/127.
inline float quantize_row(uint8_t* dst, const float* x, long hd, int offset, int32_t* sum = nullptr) {
  const float m = absmax(x, hd);
  const __m512 inv = _mm512_set1_ps(m > 0 ? 127.0f / m : 0.0f);
  const __m512i off = _mm512_set1_epi32(offset);
  __m512i total = _mm512_setzero_si512();
  for (long c = 0; c < hd; c += 16) {
    const __m512i q = quant16(_mm512_loadu_ps(x + c), inv);
    total = _mm512_add_epi32(total, q);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + c), _mm512_cvtepi32_epi8(_mm512_add_epi32(q, off)));
  }
  if (sum) *sum = _mm512_reduce_add_epi32(total);  // of the values, before the offset
  return m / 127.0f;
}

// One tile of scores: R query rows x NC vectors of 16 keys, `last` valid keys in the last vector.
template <int R, int NC>
void scores_tile(float* s, long lds, const uint32_t* q, long ldq, const float* sq, const uint32_t* kp,
                 const float* sk, const int32_t* comp, long T16, long np, long last) {
  __m512i acc[R][NC];
  for (int r = 0; r < R; r++)
    for (int c = 0; c < NC; c++) acc[r][c] = _mm512_setzero_si512();
  for (long p = 0; p < np; p++) {
    __m512i b[NC];
    for (int c = 0; c < NC; c++) b[c] = _mm512_loadu_si512(kp + p * T16 + 16 * c);
    for (int r = 0; r < R; r++) {
      const __m512i a = _mm512_set1_epi32((int)q[r * ldq + p]);
      for (int c = 0; c < NC; c++) acc[r][c] = dpbusd(acc[r][c], a, b[c]);
    }
  }
  for (int c = 0; c < NC; c++) {
    const __m512i kc = _mm512_loadu_si512(comp + 16 * c);
    const __m512 ks = _mm512_loadu_ps(sk + 16 * c);
    for (int r = 0; r < R; r++) {
      __m512 v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][c], kc));
      v = _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(sq[r])), ks);
      if (c < NC - 1)
        _mm512_storeu_ps(s + r * lds + 16 * c, v);
      else
        _mm512_mask_storeu_ps(s + r * lds + 16 * c, lanes(last), v);
    }
  }
}

template <int R>
void scores_rows(float* s, long lds, const uint32_t* q, long ldq, const float* sq, const uint32_t* kp,
                 const float* sk, const int32_t* comp, long T, long np) {
  const long T16 = (T + 15) / 16 * 16;
  long j = 0;
  for (; j + 64 <= T; j += 64) scores_tile<R, 4>(s + j, lds, q, ldq, sq, kp + j, sk + j, comp + j, T16, np, 16);
  const long rest = T - j;
  if (rest == 0) return;
  const long nc = (rest + 15) / 16, last = rest - 16 * (nc - 1);
  switch (nc) {
    case 1: scores_tile<R, 1>(s + j, lds, q, ldq, sq, kp + j, sk + j, comp + j, T16, np, last); break;
    case 2: scores_tile<R, 2>(s + j, lds, q, ldq, sq, kp + j, sk + j, comp + j, T16, np, last); break;
    case 3: scores_tile<R, 3>(s + j, lds, q, ldq, sq, kp + j, sk + j, comp + j, T16, np, last); break;
    default: scores_tile<R, 4>(s + j, lds, q, ldq, sq, kp + j, sk + j, comp + j, T16, np, last); break;
  }
}

// One tile of o = p · v: R rows x NV vectors of 16 head dimensions, over nq groups of 4 keys.
template <int R, int NV>
void pv_tile(float* o, long ldo, const uint8_t* p, long ldp, const int32_t* rowsum, const uint32_t* vp,
             const float* sv, long nq) {
  constexpr long hd = 16 * NV;
  __m512i acc[R][NV];
  for (int r = 0; r < R; r++)
    for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_si512();
  for (long q = 0; q < nq; q++) {
    __m512i b[NV];
    for (int v = 0; v < NV; v++) b[v] = _mm512_loadu_si512(vp + q * hd + 16 * v);
    for (int r = 0; r < R; r++) {
      uint32_t four;
      memcpy(&four, p + r * ldp + 4 * q, 4);
      const __m512i a = _mm512_set1_epi32((int)four);
      for (int v = 0; v < NV; v++) acc[r][v] = dpbusd(acc[r][v], a, b[v]);
    }
  }
  for (int r = 0; r < R; r++) {
    const __m512 inv = _mm512_set1_ps(1.0f / (float)rowsum[r]);
    for (int v = 0; v < NV; v++) {
      __m512 x = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][v]), _mm512_loadu_ps(sv + 16 * v));
      _mm512_storeu_ps(o + r * ldo + 16 * v, _mm512_mul_ps(x, inv));
    }
  }
}

template <int NV>
void pv_rows(float* o, long ldo, const uint8_t* p, long ldp, const int32_t* rowsum, const uint32_t* vp,
             const float* sv, long rows, long nq) {
  long r = 0;
  for (; r + 6 <= rows; r += 6) pv_tile<6, NV>(o + r * ldo, ldo, p + r * ldp, ldp, rowsum + r, vp, sv, nq);
  switch (rows - r) {
    case 1: pv_tile<1, NV>(o + r * ldo, ldo, p + r * ldp, ldp, rowsum + r, vp, sv, nq); break;
    case 2: pv_tile<2, NV>(o + r * ldo, ldo, p + r * ldp, ldp, rowsum + r, vp, sv, nq); break;
    case 3: pv_tile<3, NV>(o + r * ldo, ldo, p + r * ldp, ldp, rowsum + r, vp, sv, nq); break;
    case 4: pv_tile<4, NV>(o + r * ldo, ldo, p + r * ldp, ldp, rowsum + r, vp, sv, nq); break;
    case 5: pv_tile<5, NV>(o + r * ldo, ldo, p + r * ldp, ldp, rowsum + r, vp, sv, nq); break;
    default: break;
  }
}

}  // namespace

void attn8_pack_k(uint32_t* kp, float* sk, int32_t* comp, const float* k, long ld, long T, long hd) {
  const long T16 = (T + 15) / 16 * 16, np = hd / 4;
  alignas(64) uint8_t row[64];
  for (long j = 0; j < T; j++) {
    if (j + kPrefetchRows < T) prefetch_row(k + (j + kPrefetchRows) * ld, hd);
    int32_t sum;
    sk[j] = quantize_row(row, k + j * ld, hd, 0, &sum);
    comp[j] = 128 * sum;
    const uint32_t* words = reinterpret_cast<const uint32_t*>(row);
    for (long p = 0; p < np; p++) kp[p * T16 + j] = words[p];
  }
  for (long j = T; j < T16; j++) {
    sk[j] = 0.0f;
    comp[j] = 0;
    for (long p = 0; p < np; p++) kp[p * T16 + j] = 0;
  }
}

void attn8_pack_v(uint32_t* vp, float* sv, const float* v, long ld, long T, long hd) {
  const long nq = attn_t4(T) / 4;
  for (long d = 0; d < hd; d += 16) {
    __m512 m = _mm512_setzero_ps();
    for (long j = 0; j < T; j++) {
      // The first pass over v brings its rows in (the later ones find them in L2).
      if (d == 0 && j + kPrefetchRows < T) prefetch_row(v + (j + kPrefetchRows) * ld, hd);
      m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(v + j * ld + d)));
    }
    alignas(64) float mx[16];
    _mm512_store_ps(mx, m);
    alignas(64) float inv[16];
    for (int t = 0; t < 16; t++) {
      sv[d + t] = mx[t] / 127.0f;
      inv[t] = mx[t] > 0 ? 127.0f / mx[t] : 0.0f;
    }
    const __m512 vinv = _mm512_load_ps(inv);
    const __m512i byte = _mm512_set1_epi32(0xff);
    for (long q = 0; q < nq; q++) {
      __m512i word = _mm512_setzero_si512();
      for (int t = 0; t < 4; t++) {
        const long j = 4 * q + t;
        if (j >= T) break;
        const __m512i x = _mm512_and_si512(quant16(_mm512_loadu_ps(v + j * ld + d), vinv), byte);
        word = _mm512_or_si512(word, _mm512_slli_epi32(x, 8 * t));
      }
      _mm512_storeu_si512(vp + q * hd + d, word);
    }
  }
}

void attn8_quantize_q(uint32_t* qd, float* sq, const float* q, long ld, long rows, long hd) {
  for (long r = 0; r < rows; r++) {
    if (r + kPrefetchRows < rows) prefetch_row(q + (r + kPrefetchRows) * ld, hd);
    sq[r] = quantize_row(reinterpret_cast<uint8_t*>(qd + r * (hd / 4)), q + r * ld, hd, 128);
  }
}

void attn8_scores(float* s, long lds, const uint32_t* qd, const float* sq, const uint32_t* kp, const float* sk,
                  const int32_t* comp, long rows, long T, long hd) {
  const long np = hd / 4, ldq = hd / 4;
  long r = 0;
  for (; r + 6 <= rows; r += 6) scores_rows<6>(s + r * lds, lds, qd + r * ldq, ldq, sq + r, kp, sk, comp, T, np);
  switch (rows - r) {
    case 1: scores_rows<1>(s + r * lds, lds, qd + r * ldq, ldq, sq + r, kp, sk, comp, T, np); break;
    case 2: scores_rows<2>(s + r * lds, lds, qd + r * ldq, ldq, sq + r, kp, sk, comp, T, np); break;
    case 3: scores_rows<3>(s + r * lds, lds, qd + r * ldq, ldq, sq + r, kp, sk, comp, T, np); break;
    case 4: scores_rows<4>(s + r * lds, lds, qd + r * ldq, ldq, sq + r, kp, sk, comp, T, np); break;
    case 5: scores_rows<5>(s + r * lds, lds, qd + r * ldq, ldq, sq + r, kp, sk, comp, T, np); break;
    default: break;
  }
}

void attn8_pv(float* o, long ldo, const uint8_t* p, long ldp, const int32_t* rowsum, const uint32_t* vp,
              const float* sv, long rows, long T, long hd) {
  const long nq = attn_t4(T) / 4;
  switch (hd / 16) {
    case 1: pv_rows<1>(o, ldo, p, ldp, rowsum, vp, sv, rows, nq); break;
    case 2: pv_rows<2>(o, ldo, p, ldp, rowsum, vp, sv, rows, nq); break;
    case 3: pv_rows<3>(o, ldo, p, ldp, rowsum, vp, sv, rows, nq); break;
    default: pv_rows<4>(o, ldo, p, ldp, rowsum, vp, sv, rows, nq); break;
  }
}
