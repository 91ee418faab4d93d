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
// GCC 12's AVX-512 headers trip -Wuninitialized on their own `__Y = __Y` idiom once inlined
// (GCC bug 105593, fixed in GCC 13); the warning is about the header, not our code.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
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
  static inline float hmin(F a) { return _mm512_reduce_min_ps(a); }
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
  // (float)(a[i] - b[i]) for n <= W int32 pairs (int8 GEMM dequantisation).
  static inline F cvt_diff_i32(const int32_t* a, const int32_t* b, long n) {
    I x = n == W ? _mm512_loadu_si512(a) : _mm512_maskz_loadu_epi32(mask(n), a);
    I y = n == W ? _mm512_loadu_si512(b) : _mm512_maskz_loadu_epi32(mask(n), b);
    return _mm512_cvtepi32_ps(_mm512_sub_epi32(x, y));
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
  // (float)(a[i] - b[i]) for n <= W int32 pairs (int8 GEMM dequantisation).
  static inline F cvt_diff_i32(const int32_t* a, const int32_t* b, long n) {
    I x = _mm256_maskload_epi32(a, mask(n));
    I y = _mm256_maskload_epi32(b, mask(n));
    return _mm256_cvtepi32_ps(_mm256_sub_epi32(x, y));
  }
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
  static inline float hmin(F a) {
    __m128 s = _mm_min_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_min_ps(s, _mm_movehl_ps(s, s));
    s = _mm_min_ss(s, _mm_movehdup_ps(s));
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

// ---- transcendental functions on vectors ----

#if defined(CAVMAE_SIMD_AVX512)

// exp(x), ~1 ulp (Cephes expf polynomial); vscalefps applies 2^n with correct overflow to
// +inf and gradual underflow to 0, so no range fix-ups are needed. NaN propagates (the min/max
// operand order returns x when it is NaN).
static inline Simd::F vexp(Simd::F x) {
  using S = Simd;
  S::F xc = S::max(S::set1(-103.972084f), S::min(S::set1(88.7228394f), x));
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
  return _mm512_scalef_ps(y, n);
}

// erf(x) on |x| < 4 as 16 degree-5 polynomials over intervals of width 1/4, coefficients picked
// per lane with vpermps (no exp needed); |error| <= 6e-8 (fitted for this file, see
// docs/kernels.md); +-1 beyond 4 (erf(4) rounds to 1 in fp32).
alignas(64) static const float kErfTable16[6][16] = {
    {1.403162032e-01f, 4.041168988e-01f, 6.232408881e-01f, 7.840750813e-01f, 8.883882165e-01f, 9.481700659e-01f, 9.784437418e-01f, 9.919900298e-01f, 9.973459840e-01f, 9.992170334e-01f, 9.997946024e-01f, 9.999521375e-01f, 9.999901056e-01f, 9.999982119e-01f, 9.999997020e-01f, 9.999999404e-01f},
    {2.777213156e-01f, 2.450882047e-01f, 1.908748895e-01f, 1.311862618e-01f, 7.956849039e-02f, 4.258994386e-02f, 2.011806332e-02f, 8.386456408e-03f, 3.085204866e-03f, 1.001619501e-03f, 2.869688615e-04f, 7.255712262e-05f, 1.618969873e-05f, 3.187945822e-06f, 5.539833978e-07f, 8.495644721e-08f},
    {-8.678597398e-03f, -2.297659032e-02f, -2.982384712e-02f, -2.869690582e-02f, -2.237877063e-02f, -1.464048214e-02f, -8.173087612e-03f, -3.931187093e-03f, -1.638999907e-03f, -5.946849706e-04f, -1.883039804e-04f, -5.214058183e-05f, -1.264427465e-05f, -2.688552286e-06f, -5.017009812e-07f, -8.222207981e-08f},
    {-5.604973063e-03f, -3.669922240e-03f, -8.699186146e-04f, 1.451869495e-03f, 2.538285684e-03f, 2.467781305e-03f, 1.794405165e-03f, 1.053783461e-03f, 5.162157468e-04f, 2.145392064e-04f, 7.641065167e-05f, 2.347536247e-05f, 6.249417311e-06f, 1.446265628e-06f, 2.916711708e-07f, 5.135551717e-08f},
    {2.663215855e-04f, 6.461477024e-04f, 6.855222164e-04f, 4.380968167e-04f, 1.106830969e-04f, -1.171211916e-04f, -1.928955753e-04f, -1.646994497e-04f, -1.031364372e-04f, -5.158572458e-05f, -2.135522845e-05f, -7.455227660e-06f, -2.219619546e-06f, -5.677458716e-07f, -1.254049380e-07f, -2.400957833e-08f},
    {1.011015556e-04f, 4.426381929e-05f, -2.640141429e-05f, -6.514568668e-05f, -5.963007425e-05f, -2.992569898e-05f, -2.249269528e-06f, 1.106252148e-05f, 1.215255088e-05f, 8.164627616e-06f, 4.137123142e-06f, 1.687214194e-06f, 5.705683748e-07f, 1.626755903e-07f, 3.951133110e-08f, 8.232855286e-09f}
};

static inline Simd::F verf(Simd::F x) {
  using S = Simd;
  S::F u = S::abs(x);
  S::F u4 = S::mul(u, S::set1(4.0f));
  S::F fi = _mm512_roundscale_ps(S::min(u4, S::set1(15.0f)), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512i idx = _mm512_cvttps_epi32(fi);
  S::F s = S::sub(S::sub(u4, fi), S::set1(0.5f));
  S::F p = _mm512_permutexvar_ps(idx, _mm512_load_ps(kErfTable16[5]));
  for (int j = 4; j >= 0; j--) p = S::fmadd(p, s, _mm512_permutexvar_ps(idx, _mm512_load_ps(kErfTable16[j])));
  S::F r = S::select_lt(u, S::set1(4.0f), p, S::set1(1.0f));
  return S::select_nan(x, S::add(x, x), S::copysign(r, x));
}

// GELU on |x| < 6.4 from 16 degree-5 polynomials over intervals of width 0.4 (fitted by least
// squares at Chebyshev nodes, see docs/kernels.md), coefficients picked per lane with vpermps:
//   P(u) = erf(u/sqrt2)/2:               gelu(x) = x/2 + |x| P(|x|)            (|error of P| <= 3.1e-8)
//   Q(u) = erf(u/sqrt2)/2 + u phi(u):    gelu'(x) = 1/2 + sign(x) Q(|x|)       (|error of Q| <= 8.5e-8)
// Beyond 6.4 both have reached 1/2 in fp32 (the last interval, evaluated at its end, gives it).
// One table lookup replaces erf's x/sqrt2 scaling, the (1 + erf) and the copysign, and the
// backward needs no exp: ~19 vector operations per 16 elements instead of ~27 (forward) / ~45.
alignas(64) static const float kGeluP[6][16] = {
    {7.925970852e-02f, 2.257468700e-01f, 3.413447440e-01f, 4.192433357e-01f, 4.640696943e-01f, 4.860965610e-01f, 4.953388274e-01f, 4.986501038e-01f, 4.996630847e-01f, 4.999276400e-01f, 4.999866486e-01f, 4.999978840e-01f, 4.999997020e-01f, 4.999999702e-01f, 5.000000000e-01f, 5.000000000e-01f},
    {1.564170718e-01f, 1.332898438e-01f, 9.678829461e-02f, 5.989098921e-02f, 3.158006445e-02f, 1.418983657e-02f, 5.433186889e-03f, 1.772739110e-03f, 4.928876879e-04f, 1.167788505e-04f, 2.357728044e-05f, 4.056361831e-06f, 5.946939723e-07f, 7.429586901e-08f, 7.909531696e-09f, 7.175507966e-10f},
    {-6.256456487e-03f, -1.599432342e-02f, -1.935736835e-02f, -1.676950604e-02f, -1.136901788e-02f, -6.243683398e-03f, -2.825306728e-03f, -1.063628006e-03f, -3.351360792e-04f, -8.873430488e-05f, -1.979741683e-05f, -3.729467835e-06f, -5.940996743e-07f, -8.012072783e-08f, -9.155722402e-09f, -8.871777757e-10f},
    {-4.004186019e-03f, -2.274808940e-03f, -6.828877019e-08f, 1.533147995e-03f, 1.886371989e-03f, 1.453061355e-03f, 8.345586248e-04f, 3.781919950e-04f, 1.387962111e-04f, 4.185083890e-05f, 1.046032321e-05f, 2.180019237e-06f, 3.804038045e-07f, 5.574553796e-08f, 6.876147651e-09f, 7.151782500e-10f},
    {2.445081773e-04f, 5.581233418e-04f, 5.131156067e-04f, 2.328656410e-04f, -3.429992648e-05f, -1.515173062e-04f, -1.411166886e-04f, -8.525855810e-05f, -3.854744500e-05f, -1.372493989e-05f, -3.945316621e-06f, -9.287758189e-07f, -1.806930641e-07f, -2.923231435e-08f, -3.950077154e-09f, -4.473064974e-10f},
    {9.141982446e-05f, 2.753700755e-05f, -4.074894969e-05f, -6.235074397e-05f, -3.995106817e-05f, -8.090521078e-06f, 9.263806533e-06f, 1.128479198e-05f, 7.081489912e-06f, 3.132371830e-06f, 1.061280045e-06f, 2.855393291e-07f, 6.220972182e-08f, 1.110745274e-08f, 1.638358005e-09f, 2.007762984e-10f},
};
alignas(64) static const float kGeluQ[6][16] = {
    {1.574682295e-01f, 4.256815910e-01f, 5.833154321e-01f, 6.288617849e-01f, 6.061800122e-01f, 5.641406775e-01f, 5.306545496e-01f, 5.119456649e-01f, 5.038526058e-01f, 5.010370612e-01f, 5.002341866e-01f, 5.000445247e-01f, 5.000071526e-01f, 5.000009537e-01f, 5.000001192e-01f, 5.000000000e-01f},
    {3.065774441e-01f, 2.185953408e-01f, 9.678830951e-02f, 2.395650372e-03f, -3.915928304e-02f, -4.029914364e-02f, -2.586197667e-02f, -1.240917481e-02f, -4.712004680e-03f, -1.452727360e-03f, -3.687478020e-04f, -7.771958190e-05f, -1.367787445e-05f, -2.017856787e-06f, -2.502542031e-07f, -2.614705963e-08f},
    {-2.477467619e-02f, -5.821777508e-02f, -5.807171762e-02f, -3.421090543e-02f, -8.641877212e-03f, 5.244020838e-03f, 7.797981147e-03f, 5.318582989e-03f, 2.533993218e-03f, 9.265782428e-04f, 2.701113990e-04f, 6.402018334e-05f, 1.248151329e-05f, 2.016895223e-06f, 2.715447351e-07f, 3.057670384e-08f},
    {-1.552254613e-02f, -5.721269175e-03f, 5.161411129e-03f, 9.388004430e-03f, 6.890822202e-03f, 2.442568075e-03f, -3.443844907e-04f, -1.040039468e-03f, -7.454713341e-04f, -3.470337833e-04f, -1.205207809e-04f, -3.283991100e-05f, -7.197923424e-06f, -1.287533678e-06f, -1.897104340e-07f, -2.317300662e-08f},
    {1.445909613e-03f, 2.987356158e-03f, 2.051416319e-03f, 7.553815522e-05f, -1.065883669e-03f, -9.777307278e-04f, -4.045496462e-04f, -3.898285286e-06f, 1.077035413e-04f, 7.999079389e-05f, 3.597219620e-05f, 1.178569255e-05f, 2.991738256e-06f, 6.059211728e-07f, 9.956677616e-08f, 1.341717581e-08f},
    {5.277952878e-04f, 4.831424667e-05f, -3.666068078e-04f, -3.552793351e-04f, -9.063809557e-05f, 9.664196114e-05f, 1.099235960e-04f, 4.791146785e-05f, 2.661215831e-06f, -9.648066225e-06f, -6.997182936e-06f, -2.941563253e-06f, -8.871988371e-07f, -2.054721193e-07f, -3.772747803e-08f, -5.592842189e-09f},
};

// Interval index (in the low 4 bits of idx) and offset s in [-0.5, 0.5] of u >= 0: t = u/0.4 - 0.5
// (exact: 2.5 is exact and the fma rounds once), rounded with the 1.5 * 2^23 trick, whose bit
// pattern carries round(t) in its low bits. t is clamped below 15.49 (u >= 6.4 evaluates the last
// interval at its end); NaN passes through the min (second operand) into s and the polynomial.
static inline Simd::F gelu_poly(Simd::F u, const float (*table)[16]) {
  using S = Simd;
  const S::F magic = S::set1(12582912.0f);
  S::F t = S::min(S::set1(15.49f), _mm512_fmsub_ps(u, S::set1(2.5f), S::set1(0.5f)));
  S::F r = S::add(t, magic);
  __m512i idx = _mm512_castps_si512(r);
  S::F s = S::sub(t, S::sub(r, magic));
  S::F p = _mm512_permutexvar_ps(idx, _mm512_load_ps(table[5]));
  for (int j = 4; j >= 0; j--) p = S::fmadd(p, s, _mm512_permutexvar_ps(idx, _mm512_load_ps(table[j])));
  return p;
}

// Exact (erf) GELU, x Phi(x).
static inline Simd::F vgelu(Simd::F x) {
  using S = Simd;
  S::F u = S::abs(x);
  return S::fmadd(u, gelu_poly(u, kGeluP), S::mul(x, S::set1(0.5f)));
}

// d gelu / dx = Phi(x) + x phi(x).
static inline Simd::F vgelu_grad(Simd::F x) {
  using S = Simd;
  S::F q = gelu_poly(S::abs(x), kGeluQ);
  // |q| with the sign of x (vpternlogd bit select: magnitude bits from q, sign bit from x).
  const __m512i mag = _mm512_set1_epi32(0x7fffffff);
  S::F sq = _mm512_castsi512_ps(_mm512_ternarylogic_epi32(mag, _mm512_castps_si512(q), _mm512_castps_si512(x), 0xCA));
  return S::add(S::set1(0.5f), sq);
}

// exp(d) for d <= 0 (max-shifted softmax logits; -inf gives 0, NaN stays NaN): 2^t with
// t = d log2(e), split t = n + f, |f| <= 1/2, 2^f by a degree-6 polynomial (relative error
// <= 7.6e-8, fitted for this file), 2^n by vscalefps (gradual underflow). The rounding of
// d log2(e) costs |d| 6e-8 relative, which only matters for values below e^-1 ... e^-20
// (absolute error < 1e-8). ~11 operations instead of the general exp's ~15.
static inline Simd::F vexp_nonpos(Simd::F d) {
  using S = Simd;
  S::F t = S::max(S::set1(-151.0f), S::mul(d, S::set1(1.44269504088896341f)));
  S::F n = S::roundn(t);
  S::F f = S::sub(t, n);
  S::F p = S::set1(1.533757750e-04f);
  p = S::fmadd(p, f, S::set1(1.339985989e-03f));
  p = S::fmadd(p, f, S::set1(9.618519805e-03f));
  p = S::fmadd(p, f, S::set1(5.550329015e-02f));
  p = S::fmadd(p, f, S::set1(2.402264625e-01f));
  p = S::fmadd(p, f, S::set1(6.931471825e-01f));
  p = S::fmadd(p, f, S::set1(1.0f));
  return _mm512_scalef_ps(p, n);
}


#else

// exp(x), ~1 ulp (Cephes expf polynomial); 0 below -87.3, +inf above 88.7, NaN stays NaN.
static inline Simd::F vexp(Simd::F x) {
  using S = Simd;
  const S::F hi = S::set1(88.72283905206835f), lo = S::set1(-87.33654475055310f);
  S::F xc = S::min(hi, S::max(lo, x));
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
  S::F n1 = S::roundn(S::sub(S::mul(n, S::set1(0.5f)), S::set1(0.25f)));  // floor(n/2) for integral n
  S::F n2 = S::sub(n, n1);
  y = S::mul(S::mul(y, S::pow2i(n1)), S::pow2i(n2));
  y = S::select_lt(x, lo, S::zero(), y);
  y = S::select_lt(hi, x, S::set1(__builtin_inff()), y);
  return S::select_nan(x, x, y);
}

// erf(x) on |x| < 4 as 8 degree-7 polynomials over intervals of width 1/2, coefficients picked
// per lane with vpermps; |error| <= 8e-8; +-1 beyond 4.
alignas(32) static const float kErfTable8[8][8] = {
    {2.763263881e-01f, 7.111556530e-01f, 9.229001403e-01f, 9.866716862e-01f, 9.985373020e-01f, 9.998993874e-01f, 9.999957085e-01f, 9.999998808e-01f},
    {5.300070643e-01f, 3.214655221e-01f, 1.182605624e-01f, 2.638749778e-02f, 3.571159672e-03f, 2.931386407e-04f, 1.459450596e-05f, 4.407144161e-07f},
    {-6.625074148e-02f, -1.205495372e-01f, -7.391293347e-02f, -2.308905125e-02f, -4.017539322e-03f, -4.030668642e-04f, -2.371733353e-05f, -8.265177485e-07f},
    {-3.864631057e-02f, 3.348543774e-03f, 2.094198577e-02f, 1.126967371e-02f, 2.715564100e-03f, 3.450475342e-04f, 2.447657789e-05f, 9.962909644e-07f},
    {7.933409885e-03f, 9.417226538e-03f, -3.832521907e-04f, -3.006595187e-03f, -1.193016069e-03f, -2.036069054e-04f, -1.788558984e-05f, -8.615880915e-07f},
    {2.501133364e-03f, -1.663034083e-03f, -1.474579796e-03f, 2.068272879e-04f, 3.331268672e-04f, 8.613409591e-05f, 9.800901353e-06f, 5.728143719e-07f},
    {-6.146999076e-04f, -4.153567133e-04f, 3.218396450e-04f, 1.413983555e-04f, -4.343070395e-05f, -2.606016460e-05f, -4.277475455e-06f, -3.233190853e-07f},
    {-1.234638330e-04f, 1.397304295e-04f, 2.925867739e-05f, -4.635233927e-05f, -5.636929018e-06f, 4.967308541e-06f, 1.356223038e-06f, 1.339431748e-07f}
};

static inline Simd::F verf(Simd::F x) {
  using S = Simd;
  S::F u = S::abs(x);
  S::F u2 = S::mul(u, S::set1(2.0f));
  S::F fi = _mm256_floor_ps(S::min(u2, S::set1(7.0f)));
  __m256i idx = _mm256_cvttps_epi32(fi);
  S::F s = S::sub(S::sub(u2, fi), S::set1(0.5f));
  S::F p = _mm256_permutevar8x32_ps(_mm256_load_ps(kErfTable8[7]), idx);
  for (int j = 6; j >= 0; j--) p = S::fmadd(p, s, _mm256_permutevar8x32_ps(_mm256_load_ps(kErfTable8[j]), idx));
  S::F r = S::select_lt(u, S::set1(4.0f), p, S::set1(1.0f));
  return S::select_nan(x, S::add(x, x), S::copysign(r, x));
}

// The AVX2 copy keeps the erf/exp formulation (8-entry tables): gelu = 0.5 x (1 + erf(x/sqrt2)).
static inline Simd::F vgelu(Simd::F x) {
  using S = Simd;
  S::F e = verf(S::mul(x, S::set1(0.70710678118654752f)));
  return S::mul(S::mul(S::set1(0.5f), x), S::add(S::set1(1.0f), e));
}

static inline Simd::F vgelu_grad(Simd::F x) {
  using S = Simd;
  S::F cdf = S::mul(S::set1(0.5f), S::add(S::set1(1.0f), verf(S::mul(x, S::set1(0.70710678118654752f)))));
  S::F pdf = S::mul(S::set1(0.39894228040143268f), vexp(S::mul(S::set1(-0.5f), S::mul(x, x))));
  return S::fmadd(x, pdf, cdf);
}

static inline Simd::F vexp_nonpos(Simd::F d) { return vexp(d); }

#endif

