// SIMD wrappers for the two instruction sets the kernels are compiled for.
//
// Contract: the kernels in kernels_impl.h are templates over one of these structs, so the
// same source is compiled twice: kernels_avx2.cc (x86-64-v3, 8 lanes) and kernels_avx512.cc
// (AVX-512, 16 lanes, picked at run time when the CPU has it). Tails are handled with masked
// loads/stores, so every element goes through the same vector code path (and the same
// rounding), whatever its position in the row.
//
// Only intrinsics and static inline functions here: nothing with vague linkage, so the
// AVX-512 translation unit cannot leak an AVX-512 copy of a shared inline function into the
// baseline code (the classic SIGILL-on-older-CPUs trap).
#pragma once
#include <immintrin.h>
#include <stdint.h>

#if defined(CAVMAE_SIMD_AVX512)

struct Simd {
  using F = __m512;
  using I = __m512i;
  static constexpr int W = 16;
  static constexpr const char* name = "avx512";
  static inline F zero() { return _mm512_setzero_ps(); }
  static inline F set1(float x) { return _mm512_set1_ps(x); }
  static inline F load(const float* p) { return _mm512_loadu_ps(p); }
  static inline void store(float* p, F v) { _mm512_storeu_ps(p, v); }
  static inline __mmask16 mask(long n) { return (__mmask16)((1u << n) - 1u); }
  static inline F load_part(const float* p, long n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  // Masked-off lanes are filled with `fill` (e.g. -inf for a max reduction).
  static inline F load_part_fill(const float* p, long n, float fill) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(fill), mask(n), p);
  }
  static inline void store_part(float* p, F v, long n) { _mm512_mask_storeu_ps(p, mask(n), v); }
  // Lanes >= n set to zero.
  static inline F keep(F v, long n) { return _mm512_maskz_mov_ps(mask(n), v); }
  // Lanes >= n set to `fill`.
  static inline F fill_tail(F v, long n, float fill) { return _mm512_mask_mov_ps(_mm512_set1_ps(fill), mask(n), v); }
  static inline F add(F a, F b) { return _mm512_add_ps(a, b); }
  static inline F sub(F a, F b) { return _mm512_sub_ps(a, b); }
  static inline F mul(F a, F b) { return _mm512_mul_ps(a, b); }
  static inline F div(F a, F b) { return _mm512_div_ps(a, b); }
  static inline F fmadd(F a, F b, F c) { return _mm512_fmadd_ps(a, b, c); }
  static inline F fnmadd(F a, F b, F c) { return _mm512_fnmadd_ps(a, b, c); }
  static inline F max(F a, F b) { return _mm512_max_ps(a, b); }
  static inline F min(F a, F b) { return _mm512_min_ps(a, b); }
  static inline F sqrt(F a) { return _mm512_sqrt_ps(a); }
  static inline F abs(F a) { return _mm512_abs_ps(a); }
  static inline F roundn(F a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static inline float hsum(F a) { return _mm512_reduce_add_ps(a); }
  static inline float hmax(F a) { return _mm512_reduce_max_ps(a); }
  // Select b where a < t (elementwise), else c.
  static inline F select_lt(F a, F t, F b, F c) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, t, _CMP_LT_OQ), c, b);
  }
  // b where a is NaN, else c.
  static inline F select_nan(F a, F b, F c) {
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), c, b);
  }
  static inline F copysign(F mag, F sgn) {
    const I m = _mm512_set1_epi32(0x80000000);
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_andnot_si512(m, _mm512_castps_si512(mag)),
                                               _mm512_and_si512(m, _mm512_castps_si512(sgn))));
  }
  // 2^n for integral-valued float n in [-126, 127].
  static inline F pow2i(F n) {
    I e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
  }
  // fp32 -> bf16 round-to-nearest-even on the bit pattern (exact, NaN stays NaN, denormals kept).
  static inline void to_bf16(uint16_t* dst, const float* src, long n) {
    const I one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7fff);
    const I absmask = _mm512_set1_epi32(0x7fffffff), inf = _mm512_set1_epi32(0x7f800000);
    const I quiet = _mm512_set1_epi32(0x00400000);
    I x = _mm512_castps_si512(n == W ? load(src) : load_part(src, n));
    I r = _mm512_add_epi32(x, _mm512_add_epi32(bias, _mm512_and_si512(_mm512_srli_epi32(x, 16), one)));
    __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(x, absmask), inf);
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(x, quiet));
    __m256i h = _mm512_cvtepi32_epi16(_mm512_srli_epi32(r, 16));
    if (n == W) _mm256_storeu_si256((__m256i*)dst, h);
    else _mm256_mask_storeu_epi16(dst, mask(n), h);
  }
  static inline void from_bf16(float* dst, const uint16_t* src, long n) {
    __m256i h = n == W ? _mm256_loadu_si256((const __m256i*)src) : _mm256_maskz_loadu_epi16(mask(n), src);
    F v = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    if (n == W) store(dst, v);
    else store_part(dst, v, n);
  }
};

#else  // AVX2 + FMA (x86-64-v3)

struct Simd {
  using F = __m256;
  using I = __m256i;
  static constexpr int W = 8;
  static constexpr const char* name = "avx2";
  static inline F zero() { return _mm256_setzero_ps(); }
  static inline F set1(float x) { return _mm256_set1_ps(x); }
  static inline F load(const float* p) { return _mm256_loadu_ps(p); }
  static inline void store(float* p, F v) { _mm256_storeu_ps(p, v); }
  static inline I mask(long n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static inline F load_part(const float* p, long n) { return _mm256_maskload_ps(p, mask(n)); }
  static inline F load_part_fill(const float* p, long n, float fill) {
    I m = mask(n);
    return _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static inline void store_part(float* p, F v, long n) { _mm256_maskstore_ps(p, mask(n), v); }
  static inline F keep(F v, long n) { return _mm256_and_ps(v, _mm256_castsi256_ps(mask(n))); }
  static inline F fill_tail(F v, long n, float fill) {
    return _mm256_blendv_ps(_mm256_set1_ps(fill), v, _mm256_castsi256_ps(mask(n)));
  }
  static inline F add(F a, F b) { return _mm256_add_ps(a, b); }
  static inline F sub(F a, F b) { return _mm256_sub_ps(a, b); }
  static inline F mul(F a, F b) { return _mm256_mul_ps(a, b); }
  static inline F div(F a, F b) { return _mm256_div_ps(a, b); }
  static inline F fmadd(F a, F b, F c) { return _mm256_fmadd_ps(a, b, c); }
  static inline F fnmadd(F a, F b, F c) { return _mm256_fnmadd_ps(a, b, c); }
  static inline F max(F a, F b) { return _mm256_max_ps(a, b); }
  static inline F min(F a, F b) { return _mm256_min_ps(a, b); }
  static inline F sqrt(F a) { return _mm256_sqrt_ps(a); }
  static inline F abs(F a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a); }
  static inline F roundn(F a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static inline float hsum(F a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static inline float hmax(F a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static inline F select_lt(F a, F t, F b, F c) { return _mm256_blendv_ps(c, b, _mm256_cmp_ps(a, t, _CMP_LT_OQ)); }
  static inline F select_nan(F a, F b, F c) { return _mm256_blendv_ps(c, b, _mm256_cmp_ps(a, a, _CMP_UNORD_Q)); }
  static inline F copysign(F mag, F sgn) {
    const F m = _mm256_set1_ps(-0.0f);
    return _mm256_or_ps(_mm256_andnot_ps(m, mag), _mm256_and_ps(m, sgn));
  }
  static inline F pow2i(F n) {
    I e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
  }
  static inline void to_bf16(uint16_t* dst, const float* src, long n) {
    const I one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7fff);
    const I absmask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const I quiet = _mm256_set1_epi32(0x00400000);
    I x = _mm256_castps_si256(n == W ? load(src) : load_part(src, n));
    I r = _mm256_add_epi32(x, _mm256_add_epi32(bias, _mm256_and_si256(_mm256_srli_epi32(x, 16), one)));
    I nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, absmask), inf);
    r = _mm256_blendv_epi8(r, _mm256_or_si256(x, quiet), nan);
    r = _mm256_srli_epi32(r, 16);
    // Pack 8 x u32 (each < 65536) into 8 x u16.
    __m128i h = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    if (n == W) {
      _mm_storeu_si128((__m128i*)dst, h);
    } else {
      alignas(16) uint16_t tmp[8];
      _mm_store_si128((__m128i*)tmp, h);
      for (long i = 0; i < n; i++) dst[i] = tmp[i];
    }
  }
  static inline void from_bf16(float* dst, const uint16_t* src, long n) {
    __m128i h;
    if (n == W) {
      h = _mm_loadu_si128((const __m128i*)src);
    } else {
      alignas(16) uint16_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      for (long i = 0; i < n; i++) tmp[i] = src[i];
      h = _mm_load_si128((const __m128i*)tmp);
    }
    F v = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    if (n == W) store(dst, v);
    else store_part(dst, v, n);
  }
};

#endif

// ---- transcendental functions on vectors (same code for both widths) ----

// exp(x), ~1 ulp on the normal range (Cephes expf polynomial); exactly 0 below -87.3,
// +inf above 88.7.
static inline Simd::F vexp(Simd::F x) {
  using S = Simd;
  const S::F hi = S::set1(88.72283905206835f), lo = S::set1(-87.33654475055310f);
  S::F xc = S::min(S::max(x, lo), hi);
  S::F n = S::roundn(S::mul(xc, S::set1(1.44269504088896341f)));
  S::F r = S::fnmadd(n, S::set1(0.693359375f), xc);
  r = S::fnmadd(n, S::set1(-2.12194440e-4f), r);
  S::F p = S::set1(1.9875691500e-4f);
  p = S::fmadd(p, r, S::set1(1.3981999507e-3f));
  p = S::fmadd(p, r, S::set1(8.3334519073e-3f));
  p = S::fmadd(p, r, S::set1(4.1665795894e-2f));
  p = S::fmadd(p, r, S::set1(1.6666665459e-1f));
  p = S::fmadd(p, r, S::set1(5.0000001201e-1f));
  S::F y = S::fmadd(S::mul(p, r), r, S::add(r, S::set1(1.0f)));
  // n may be 128 at the top of the range: scale in two steps so 2^n never overflows the exponent.
  S::F n1 = S::mul(n, S::set1(0.5f));
  n1 = S::roundn(S::sub(n1, S::set1(0.25f)));  // floor(n/2) for integral n
  S::F n2 = S::sub(n, n1);
  y = S::mul(S::mul(y, S::pow2i(n1)), S::pow2i(n2));
  y = S::select_lt(x, lo, S::zero(), y);
  y = S::select_lt(hi, x, S::set1(__builtin_inff()), y);
  return y;
}

// erf(x), max error ~1.5 ulp: x*P(x^2) for |x| <= 1, 1 - exp(-x^2)*R(|x|) for 1 < |x| < 4
// (polynomials fitted for this file; see docs/kernels.md), +-1 beyond.
static inline Simd::F verf(Simd::F x) {
  using S = Simd;
  S::F a = S::abs(x);
  S::F z = S::mul(x, x);
  S::F p = S::set1(-0.0005625396152026951f);
  p = S::fmadd(p, z, S::set1(0.004916023463010788f));
  p = S::fmadd(p, z, S::set1(-0.02670994959771633f));
  p = S::fmadd(p, z, S::set1(0.11280130594968796f));
  p = S::fmadd(p, z, S::set1(-0.37612318992614746f));
  p = S::fmadd(p, z, S::set1(1.1283791065216064f));
  S::F small = S::mul(a, p);
  S::F t = S::mul(S::sub(S::min(a, S::set1(4.0f)), S::set1(2.5f)), S::set1(1.0f / 1.5f));
  S::F q = S::set1(8.63899476826191e-05f);
  q = S::fmadd(q, t, S::set1(-0.0002435072819935158f));
  q = S::fmadd(q, t, S::set1(0.0003925620985683054f));
  q = S::fmadd(q, t, S::set1(-0.0009199995547533035f));
  q = S::fmadd(q, t, S::set1(0.0024046562612056732f));
  q = S::fmadd(q, t, S::set1(-0.005608488339930773f));
  q = S::fmadd(q, t, S::set1(0.012491442263126373f));
  q = S::fmadd(q, t, S::set1(-0.02699868194758892f));
  q = S::fmadd(q, t, S::set1(0.05611006170511246f));
  q = S::fmadd(q, t, S::set1(-0.11152133345603943f));
  q = S::fmadd(q, t, S::set1(0.21080636978149414f));
  S::F e = vexp(S::sub(S::zero(), S::min(z, S::set1(16.0f))));
  S::F large = S::fnmadd(e, q, S::set1(1.0f));
  large = S::select_lt(a, S::set1(4.0f), large, S::set1(1.0f));
  S::F r = S::select_lt(a, S::set1(1.0f), small, large);
  // NaN: a < 1 and a < 4 are both false for NaN, so r = 1; propagate NaN explicitly.
  r = S::copysign(r, x);
  return S::select_nan(x, S::add(x, x), r);
}
