// Vectorised, multi-threaded implementations of the non-GEMM kernels (see kernels.h).
// Included once per instruction set; everything lives in an anonymous namespace so the two
// copies never share a symbol.
//
// Threading: work is cut into chunks of ~64 KiB of memory traffic (row blocks, or flat ranges
// aligned to 16 vectors) that the pool (pool.h) hands out dynamically. Chunking depends only on
// the problem size, never on the thread count, and cross-row reductions (dweight, dbias) go
// through per-chunk partial sums added in chunk order, so every kernel gives bit-identical
// results with 1 or 2 threads. Problems under cavmae_parallel_min_bytes() run on the calling thread.
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "pool.h"
#include "scratch.h"
#include "simd.h"

namespace {

using S = Simd;
using V = Simd::F;
constexpr long W = Simd::W;
constexpr double kChunkBytes = 64 * 1024;

inline long lmin(long a, long b) { return a < b ? a : b; }

inline int threads_for(double bytes) {
  if (bytes < (double)cavmae_parallel_min_bytes()) return 1;
  return cavmae_threads();
}

// Runs f(chunk) for every chunk in [0, nchunks) on up to nt threads.
template <class F>
inline void parallel_for(long nchunks, int nt, const F& f) {
  if (nt <= 1 || nchunks <= 1) {
    for (long i = 0; i < nchunks; i++) f(i);
    return;
  }
  cavmae_parallel_for(
      nchunks, nt, [](void* ctx, long i) { (*static_cast<const F*>(ctx))(i); },
      const_cast<void*>(static_cast<const void*>(&f)));
}

// Row blocks of ~kChunkBytes: body(r0, r1) for consecutive ranges covering [0, rows).
template <class F>
inline void for_rows(long rows, double bytes_per_row, const F& body) {
  long rpc = (long)(kChunkBytes / (bytes_per_row > 1 ? bytes_per_row : 1));
  if (rpc < 1) rpc = 1;
  long nchunks = (rows + rpc - 1) / rpc;
  parallel_for(nchunks, threads_for(bytes_per_row * rows), [&](long c) { body(c * rpc, lmin(rows, (c + 1) * rpc)); });
}

// Elementwise map over [0, n): body(i, width) handles elements i..i+width-1 (width <= W).
template <class F>
inline void for_range(long n, double bytes_per_elem, const F& body) {
  long chunk = (long)(kChunkBytes / bytes_per_elem);
  chunk = (chunk + 16 * W - 1) / (16 * W) * (16 * W);
  long nchunks = (n + chunk - 1) / chunk;
  parallel_for(nchunks, threads_for(bytes_per_elem * n), [&](long c) {
    long i = c * chunk, hi = lmin(n, (c + 1) * chunk);
    for (; i + W <= hi; i += W) body(i, W);
    if (i < hi) body(i, hi - i);
  });
}

inline V ld(const float* p, long w) { return w == W ? S::load(p) : S::load_part(p, w); }
inline void st(float* p, V v, long w) {
  if (w == W) S::store(p, v);
  else S::store_part(p, v, w);
}

// ---------------- LayerNorm ----------------

// Prefetches a row of `cols` floats into L1 (and for writing when `write`): issued during a pass
// that works on the current row in L1, so the next row's misses overlap this row's arithmetic
// instead of stalling the first pass over it.
inline void prefetch_row(const float* p, long cols, bool write) {
  if (!p) return;
  for (long c = 0; c < cols; c += 16) {
    if (write) __builtin_prefetch(p + c, 1, 3);
    else __builtin_prefetch(p + c, 0, 3);
  }
}

// Two passes over the row for mean and variance (the row is in L1 after the first; exact
// two-pass variance, no E[x^2] - m^2 cancellation), four accumulators each (a quarter of the
// add/fma latency chain), then the normalisation. The next row is prefetched during the second pass.
template <class Out>
inline void quantize_row(Out* q, float* scale, const float* x, long cols, int offset);

// With q or out16: the rows go to a per-thread temporary row and leave quantised per row to u8
// (+128) with their scales (the input of an int8 GEMM), or rounded to bf16 (the operand of a
// bf16 GEMM): the same values as quantising or rounding `out`, without writing it.
void layernorm_impl(float* out, uint8_t* q, float* qscale, uint16_t* out16, float* mean, float* rstd,
                    const float* inp, const float* weight, const float* bias, long rows, long cols, float eps) {
  const bool via_row = q || out16;
  for_rows(rows, 8.0 * cols, [&](long r0, long r1) {
    float* row = via_row ? scratch<float>(kScratchRowTemp, (size_t)cols) : nullptr;
    for (long r = r0; r < r1; r++) {
      const float* x = inp + r * cols;
      float* y = via_row ? row : out + r * cols;
      V a0 = S::zero(), a1 = S::zero(), a2 = S::zero(), a3 = S::zero();
      long c = 0;
      for (; c + 4 * W <= cols; c += 4 * W) {
        a0 = S::add(a0, S::load(x + c));
        a1 = S::add(a1, S::load(x + c + W));
        a2 = S::add(a2, S::load(x + c + 2 * W));
        a3 = S::add(a3, S::load(x + c + 3 * W));
      }
      for (; c < cols; c += W) a0 = S::add(a0, ld(x + c, lmin(W, cols - c)));
      float m = S::hsum(S::add(S::add(a0, a1), S::add(a2, a3))) / (float)cols;
      V vm = S::set1(m);
      a0 = a1 = a2 = a3 = S::zero();
      if (r + 1 < r1) {
        prefetch_row(x + cols, cols, false);
        if (!via_row) prefetch_row(y + cols, cols, true);
      }
      for (c = 0; c + 4 * W <= cols; c += 4 * W) {
        V d0 = S::sub(S::load(x + c), vm), d1 = S::sub(S::load(x + c + W), vm);
        V d2 = S::sub(S::load(x + c + 2 * W), vm), d3 = S::sub(S::load(x + c + 3 * W), vm);
        a0 = S::fmadd(d0, d0, a0);
        a1 = S::fmadd(d1, d1, a1);
        a2 = S::fmadd(d2, d2, a2);
        a3 = S::fmadd(d3, d3, a3);
      }
      for (; c < cols; c += W) {
        long w = lmin(W, cols - c);
        V d = S::sub(ld(x + c, w), vm);
        if (w < W) d = S::keep(d, w);
        a0 = S::fmadd(d, d, a0);
      }
      float var = S::hsum(S::add(S::add(a0, a1), S::add(a2, a3))) / (float)cols;
      float rs = 1.0f / sqrtf(var + eps);
      mean[r] = m;
      rstd[r] = rs;
      V vr = S::set1(rs);
      for (c = 0; c < cols; c += W) {
        long w = lmin(W, cols - c);
        V n = S::mul(S::sub(ld(x + c, w), vm), vr);
        st(y + c, S::fmadd(n, ld(weight + c, w), ld(bias + c, w)), w);
      }
      if (q) quantize_row(q + r * cols, qscale + r, y, cols, 128);
      if (out16)
        for (long c2 = 0; c2 < cols; c2 += W) S::to_bf16(out16 + r * cols + c2, y + c2, lmin(W, cols - c2));
    }
  });
}

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, long rows, long cols, float eps) {
  layernorm_impl(out, nullptr, nullptr, nullptr, mean, rstd, inp, weight, bias, rows, cols, eps);
}

void layernorm_forward_bf16(uint16_t* out16, float* mean, float* rstd, const float* inp, const float* weight,
                            const float* bias, long rows, long cols, float eps) {
  layernorm_impl(nullptr, nullptr, nullptr, out16, mean, rstd, inp, weight, bias, rows, cols, eps);
}

void layernorm_forward_u8(uint8_t* q, float* qscale, float* mean, float* rstd, const float* inp,
                          const float* weight, const float* bias, long rows, long cols, float eps) {
  layernorm_impl(nullptr, q, qscale, nullptr, mean, rstd, inp, weight, bias, rows, cols, eps);
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, long rows, long cols) {
  // Rows are cut into a fixed number of groups (independent of the thread count); each group
  // sums its dweight/dbias contributions into its own partial row, and the partials are added
  // in group order afterwards. Rows go in pairs through the second pass, so the partial rows are
  // loaded and stored once per two rows (one row alone needs 6 loads + 3 stores per vector).
  const long groups = lmin(rows, 16);
  if (groups == 0) return;
  float* partial = scratch<float>(kScratchKernelPartials, (size_t)groups * 2 * cols);  // [groups, 2, cols]: dweight, dbias
  parallel_for(groups, threads_for(12.0 * rows * cols), [&](long gi) {
    float* pw = partial + (size_t)gi * 2 * cols;
    float* pb = pw + cols;
    memset(pw, 0, sizeof(float) * 2 * cols);
    long r0 = rows * gi / groups, r1 = rows * (gi + 1) / groups;
    long r = r0;
    for (; r + 2 <= r1; r += 2) {
      const float* x0 = inp + r * cols;
      const float* x1 = x0 + cols;
      const float* dy0 = dout + r * cols;
      const float* dy1 = dy0 + cols;
      float* dx0 = dinp + r * cols;
      float* dx1 = dx0 + cols;
      V vm0 = S::set1(mean[r]), vr0 = S::set1(rstd[r]);
      V vm1 = S::set1(mean[r + 1]), vr1 = S::set1(rstd[r + 1]);
      V a0 = S::zero(), a1 = S::zero(), b0 = S::zero(), b1 = S::zero();
      for (long c = 0; c < cols; c += W) {
        long w = lmin(W, cols - c);
        V wc = ld(weight + c, w);
        V n0 = S::mul(S::sub(ld(x0 + c, w), vm0), vr0);
        V n1 = S::mul(S::sub(ld(x1 + c, w), vm1), vr1);
        V dn0 = S::mul(wc, ld(dy0 + c, w));  // zero in dead lanes
        V dn1 = S::mul(wc, ld(dy1 + c, w));
        a0 = S::add(a0, dn0);
        a1 = S::fmadd(dn0, n0, a1);
        b0 = S::add(b0, dn1);
        b1 = S::fmadd(dn1, n1, b1);
      }
      V dnm0 = S::set1(S::hsum(a0) / (float)cols), dnnm0 = S::set1(S::hsum(a1) / (float)cols);
      V dnm1 = S::set1(S::hsum(b0) / (float)cols), dnnm1 = S::set1(S::hsum(b1) / (float)cols);
      for (long c = 0; c < cols; c += W) {
        long w = lmin(W, cols - c);
        V wc = ld(weight + c, w);
        V n0 = S::mul(S::sub(ld(x0 + c, w), vm0), vr0);
        V n1 = S::mul(S::sub(ld(x1 + c, w), vm1), vr1);
        V g0 = ld(dy0 + c, w), g1 = ld(dy1 + c, w);
        st(pb + c, S::add(ld(pb + c, w), S::add(g0, g1)), w);
        st(pw + c, S::fmadd(g1, n1, S::fmadd(g0, n0, ld(pw + c, w))), w);
        V t0 = S::fnmadd(n0, dnnm0, S::sub(S::mul(wc, g0), dnm0));
        V t1 = S::fnmadd(n1, dnnm1, S::sub(S::mul(wc, g1), dnm1));
        st(dx0 + c, S::fmadd(t0, vr0, ld(dx0 + c, w)), w);
        st(dx1 + c, S::fmadd(t1, vr1, ld(dx1 + c, w)), w);
      }
    }
    for (; r < r1; r++) {
      const float* x = inp + r * cols;
      const float* dy = dout + r * cols;
      float* dx = dinp + r * cols;
      V vm = S::set1(mean[r]), vr = S::set1(rstd[r]);
      V a0 = S::zero(), a1 = S::zero();
      for (long c = 0; c < cols; c += W) {
        long w = cols - c < W ? cols - c : W;
        V n = S::mul(S::sub(ld(x + c, w), vm), vr);
        V dn = S::mul(ld(weight + c, w), ld(dy + c, w));  // zero in dead lanes
        a0 = S::add(a0, dn);
        a1 = S::fmadd(dn, n, a1);
      }
      V dnm = S::set1(S::hsum(a0) / (float)cols);
      V dnnm = S::set1(S::hsum(a1) / (float)cols);
      for (long c = 0; c < cols; c += W) {
        long w = cols - c < W ? cols - c : W;
        V n = S::mul(S::sub(ld(x + c, w), vm), vr);
        V g = ld(dy + c, w);
        V dn = S::mul(ld(weight + c, w), g);
        st(pb + c, S::add(ld(pb + c, w), g), w);
        st(pw + c, S::fmadd(g, n, ld(pw + c, w)), w);
        V t = S::fnmadd(n, dnnm, S::sub(dn, dnm));
        st(dx + c, S::fmadd(t, vr, ld(dx + c, w)), w);
      }
    }
  });
  for (long c = 0; c < cols; c += W) {
    long w = cols - c < W ? cols - c : W;
    V sw = S::zero(), sb = S::zero();
    for (long gi = 0; gi < groups; gi++) {
      sw = S::add(sw, ld(partial + (size_t)gi * 2 * cols + c, w));
      sb = S::add(sb, ld(partial + (size_t)gi * 2 * cols + cols + c, w));
    }
    st(dweight + c, S::add(ld(dweight + c, w), sw), w);
    st(dbias + c, S::add(ld(dbias + c, w), sb), w);
  }
}

// ---------------- GELU (exact, erf) ----------------

void gelu_forward(float* out, const float* inp, long n) {
  for_range(n, 8.0, [&](long i, long w) { st(out + i, vgelu(ld(inp + i, w)), w); });
}

void gelu_forward_bf16(uint16_t* out16, const float* inp, long n) {
  for_range(n, 6.0, [&](long i, long w) {
    alignas(64) float y[W];
    st(y, vgelu(ld(inp + i, w)), w);
    S::to_bf16(out16 + i, y, w);
  });
}

void gelu_backward(float* dinp, const float* inp, const float* dout, long n) {
  for_range(n, 16.0, [&](long i, long w) {
    V grad = vgelu_grad(ld(inp + i, w));
    st(dinp + i, S::fmadd(grad, ld(dout + i, w), ld(dinp + i, w)), w);
  });
}

// ---------------- softmax over rows ----------------

// Max of the raw row (max(scale x) is scale max(x), or scale min(x) for a negative scale: one
// operation per vector instead of two), then exp + sum writing the output, then the scaling while
// the row is still in L1. Two accumulators per reduction halve its dependency chain.
// p16 (optional): also the bf16 rounding of the result (attention's probabilities for a bf16
// GEMM), written in the same last pass; an odd row gets a zero after its last column.
inline void softmax_row(float* y, const float* x, long cols, float scale, const V vs, uint16_t* p16 = nullptr) {
  V mx0, mx1;
  long c = 0;
  if (scale >= 0) {
    mx0 = mx1 = S::set1(-__builtin_inff());
    for (; c + 2 * W <= cols; c += 2 * W) {
      mx0 = S::max(mx0, S::load(x + c));
      mx1 = S::max(mx1, S::load(x + c + W));
    }
    for (; c < cols; c += W) mx0 = S::max(mx0, S::load_part_fill(x + c, lmin(W, cols - c), -__builtin_inff()));
    mx0 = S::max(mx0, mx1);
  } else {
    mx0 = mx1 = S::set1(__builtin_inff());
    for (; c + 2 * W <= cols; c += 2 * W) {
      mx0 = S::min(mx0, S::load(x + c));
      mx1 = S::min(mx1, S::load(x + c + W));
    }
    for (; c < cols; c += W) mx0 = S::min(mx0, S::load_part_fill(x + c, lmin(W, cols - c), __builtin_inff()));
    mx0 = S::min(mx0, mx1);
  }
  float m = (scale >= 0 ? S::hmax(mx0) : S::hmin(mx0)) * scale;
  V negmax = S::set1(-m);
  V sum0 = S::zero(), sum1 = S::zero();
  for (c = 0; c + 2 * W <= cols; c += 2 * W) {
    V e0 = vexp_nonpos(S::fmadd(S::load(x + c), vs, negmax));
    V e1 = vexp_nonpos(S::fmadd(S::load(x + c + W), vs, negmax));
    sum0 = S::add(sum0, e0);
    sum1 = S::add(sum1, e1);
    S::store(y + c, e0);
    S::store(y + c + W, e1);
  }
  for (; c < cols; c += W) {
    long w = lmin(W, cols - c);
    V e = vexp_nonpos(S::fmadd(ld(x + c, w), vs, negmax));
    if (w < W) e = S::keep(e, w);
    sum0 = S::add(sum0, e);
    st(y + c, e, w);
  }
  V inv = S::set1(1.0f / S::hsum(S::add(sum0, sum1)));
  if (p16) {
    for (c = 0; c < cols; c += W) {
      long w = lmin(W, cols - c);
      V v = S::mul(ld(y + c, w), inv);
      st(y + c, v, w);
      S::to_bf16(p16 + c, y + c, w);
    }
    if (cols & 1) p16[cols] = 0;
    return;
  }
  for (c = 0; c < cols; c += W) {
    long w = lmin(W, cols - c);
    st(y + c, S::mul(ld(y + c, w), inv), w);
  }
}

void softmax_forward(float* out, const float* inp, long rows, long cols, float scale) {
  const V vs = S::set1(scale);
  for_rows(rows, 8.0 * cols, [&](long r0, long r1) {
    for (long r = r0; r < r1; r++) softmax_row(out + r * cols, inp + r * cols, cols, scale, vs);
  });
}

void softmax_forward_bf16(float* out, uint16_t* p, long ldp, const float* inp, long rows, long cols, float scale) {
  const V vs = S::set1(scale);
  for_rows(rows, 10.0 * cols, [&](long r0, long r1) {
    for (long r = r0; r < r1; r++) softmax_row(out + r * cols, inp + r * cols, cols, scale, vs, p + r * ldp);
  });
}

// int8 attention's probabilities (attention_int8.h): per row, e = exp(scale * x - max(scale * x))
// in (0, 1] as u8 rne(255 e) into p (row stride ldp bytes, zero-padded from cols to ldp), and
// the row's sum of those bytes. Runs on the calling thread (one attention piece).
void softmax_rows_u8(const float* x, long ldx, uint8_t* p, long ldp, int32_t* rowsum, long rows, long cols,
                     float scale) {
  const V vs = S::set1(scale), k255 = S::set1(255.0f);
  for (long r = 0; r < rows; r++) {
    const float* xr = x + r * ldx;
    uint8_t* pr = p + r * ldp;
    V mx = S::set1(scale >= 0 ? -__builtin_inff() : __builtin_inff());
    for (long c = 0; c < cols; c += W) {
      V v = S::load_part_fill(xr + c, lmin(W, cols - c), scale >= 0 ? -__builtin_inff() : __builtin_inff());
      mx = scale >= 0 ? S::max(mx, v) : S::min(mx, v);
    }
    const V negmax = S::set1(-(scale >= 0 ? S::hmax(mx) : S::hmin(mx)) * scale);
    int32_t sum = 0;
    long c = 0;
#if defined(CAVMAE_SIMD_AVX512)
    __m512i acc = _mm512_setzero_si512();
    for (; c + W <= cols; c += W) {
      const __m512i q = _mm512_cvtps_epi32(S::mul(vexp_nonpos(S::fmadd(S::load(xr + c), vs, negmax)), k255));
      acc = _mm512_add_epi32(acc, q);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(pr + c), _mm512_cvtepi32_epi8(q));
    }
    sum = _mm512_reduce_add_epi32(acc);
#endif
    float tmp[W];
    for (; c < cols; c += W) {
      const long w = lmin(W, cols - c);
      S::store(tmp, S::roundn(S::mul(vexp_nonpos(S::fmadd(ld(xr + c, w), vs, negmax)), k255)));
      for (long i = 0; i < w; i++) {
        pr[c + i] = (uint8_t)(int)tmp[i];
        sum += (int)tmp[i];
      }
    }
    for (c = cols; c < ldp; c++) pr[c] = 0;
    rowsum[r] = sum;
  }
}

void softmax_backward(float* dinp, const float* out, const float* dout, long rows, long cols, float scale,
                      bool accumulate) {
  const V vs = S::set1(scale);
  for_rows(rows, 12.0 * cols, [&](long r0, long r1) {
    for (long r = r0; r < r1; r++) {
      const float* y = out + r * cols;
      const float* dy = dout + r * cols;
      float* dx = dinp + r * cols;
      V acc = S::zero();
      for (long c = 0; c < cols; c += W) {
        long w = cols - c < W ? cols - c : W;
        acc = S::fmadd(ld(y + c, w), ld(dy + c, w), acc);
      }
      V dot = S::set1(S::hsum(acc));
      for (long c = 0; c < cols; c += W) {
        long w = cols - c < W ? cols - c : W;
        V g = S::mul(vs, S::mul(ld(y + c, w), S::sub(ld(dy + c, w), dot)));
        st(dx + c, accumulate ? S::add(ld(dx + c, w), g) : g, w);
      }
    }
  });
}

// ---------------- bias, residual, axpy ----------------

void bias_add(float* x, const float* bias, long rows, long cols) {
  for_rows(rows, 8.0 * cols, [&](long r0, long r1) {
    for (long r = r0; r < r1; r++) {
      float* y = x + r * cols;
      for (long c = 0; c < cols; c += W) {
        long w = cols - c < W ? cols - c : W;
        st(y + c, S::add(ld(y + c, w), ld(bias + c, w)), w);
      }
    }
  });
}

// Column sums of a [rows, cols] matrix, in two steps: the rows are cut into a fixed number of
// groups (independent of the thread count), each summed into its own partial row by sequential
// sweeps over whole rows (four rows per sweep, the partial row stays in L1), then the partials are
// added in group order. Whole-row streams replaced column blocks that walked every row with a
// 3 KB stride (which the prefetchers served at about half the copy bandwidth). Same result with 1
// or 2 threads. Returns the partials [groups, cols] (calling thread's scratch slot 0).
inline void sum_rows_into(float* p, const float* x, long nrows, long cols) {
  for (long c = 0; c < cols; c += W) st(p + c, S::zero(), lmin(W, cols - c));
  long r = 0;
  for (; r + 4 <= nrows; r += 4) {
    const float* x0 = x + r * cols;
    const float* x1 = x0 + cols;
    const float* x2 = x1 + cols;
    const float* x3 = x2 + cols;
    long c = 0;
    for (; c + W <= cols; c += W)
      S::store(p + c, S::add(S::load(p + c), S::add(S::add(S::load(x0 + c), S::load(x1 + c)),
                                                    S::add(S::load(x2 + c), S::load(x3 + c)))));
    if (c < cols) {
      long w = cols - c;
      st(p + c, S::add(ld(p + c, w), S::add(S::add(ld(x0 + c, w), ld(x1 + c, w)), S::add(ld(x2 + c, w), ld(x3 + c, w)))), w);
    }
  }
  for (; r < nrows; r++) {
    const float* x0 = x + r * cols;
    for (long c = 0; c < cols; c += W) {
      long w = lmin(W, cols - c);
      st(p + c, S::add(ld(p + c, w), ld(x0 + c, w)), w);
    }
  }
}

// Partial column sums of `batches` stacked [rows, cols] matrices: [batches, groups, cols].
inline const float* column_partials(const float* x, long batches, long rows, long cols, long groups) {
  float* partial = scratch<float>(kScratchKernelPartials, (size_t)batches * groups * cols);
  parallel_for(batches * groups, threads_for(4.0 * batches * rows * cols), [&](long j) {
    long bi = j / groups, gi = j % groups;
    long r0 = rows * gi / groups, r1 = rows * (gi + 1) / groups;
    sum_rows_into(partial + (size_t)j * cols, x + ((size_t)bi * rows + r0) * cols, r1 - r0, cols);
  });
  return partial;
}

void bias_backward(float* dbias, const float* dout, long rows, long cols) {
  const long groups = lmin(rows, 16);
  if (groups == 0) return;
  const float* partial = column_partials(dout, 1, rows, cols, groups);
  for (long c = 0; c < cols; c += W) {
    long w = lmin(W, cols - c);
    V s = S::zero();
    for (long gi = 0; gi < groups; gi++) s = S::add(s, ld(partial + (size_t)gi * cols + c, w));
    st(dbias + c, S::add(ld(dbias + c, w), s), w);
  }
}

void add(float* out, const float* a, const float* b, long n) {
  for_range(n, 12.0, [&](long i, long w) { st(out + i, S::add(ld(a + i, w), ld(b + i, w)), w); });
}

void axpy(float* y, const float* x, float alpha, long n) {
  const V va = S::set1(alpha);
  for_range(n, 12.0, [&](long i, long w) { st(y + i, S::fmadd(va, ld(x + i, w), ld(y + i, w)), w); });
}

void copy(float* dst, const float* src, long n) {
  for_range(n, 8.0, [&](long i, long w) { st(dst + i, ld(src + i, w), w); });
}

// ---------------- row gather / scatter ----------------

void gather_rows(float* out, const float* inp, const int32_t* index, long n_index, long cols) {
  for_rows(n_index, 8.0 * cols, [&](long i0, long i1) {
    for (long i = i0; i < i1; i++) memcpy(out + i * cols, inp + (long)index[i] * cols, sizeof(float) * cols);
  });
}

// Indices may repeat. When they do not (un-shuffling a permutation, the usual case), every output
// row receives exactly one addition, so chunks are slices of the index list walking whole rows
// (sequential streams); otherwise chunks are column blocks that each walk the whole index list
// in order, so repeated rows never race and the sum order is fixed. Both give the same result.
void scatter_add_rows(float* out, const float* inp, const int32_t* index, long n_index, long cols) {
  long max_index = -1;
  for (long i = 0; i < n_index; i++) max_index = index[i] > max_index ? index[i] : max_index;
  unsigned char* seen = scratch<unsigned char>(kScratchKernelPartials, (size_t)max_index + 1);
  memset(seen, 0, (size_t)max_index + 1);
  bool unique = true;
  for (long i = 0; i < n_index && unique; i++) {
    if (seen[index[i]]) unique = false;
    seen[index[i]] = 1;
  }
  if (unique) {
    for_rows(n_index, 12.0 * cols, [&](long i0, long i1) {
      for (long i = i0; i < i1; i++) {
        float* y = out + (long)index[i] * cols;
        const float* x = inp + i * cols;
        for (long c = 0; c < cols; c += W) {
          long w = lmin(W, cols - c);
          st(y + c, S::add(ld(y + c, w), ld(x + c, w)), w);
        }
      }
    });
    return;
  }
  const long block = 8 * W;
  parallel_for((cols + block - 1) / block, threads_for(12.0 * n_index * cols), [&](long bi) {
    long c0 = bi * block, c1 = lmin(cols, c0 + block);
    for (long i = 0; i < n_index; i++) {
      float* y = out + (long)index[i] * cols;
      const float* x = inp + i * cols;
      for (long c = c0; c < c1; c += W) {
        long w = lmin(W, c1 - c);
        st(y + c, S::add(ld(y + c, w), ld(x + c, w)), w);
      }
    }
  });
}

// ---------------- token mean-pooling ----------------

// Column sums per sample through column_partials (see bias_backward), then the mean.
void mean_pool(float* out, const float* inp, long B, long T, long D) {
  const long groups = lmin(T, 16);
  if (B == 0 || D == 0) return;
  if (groups == 0) {  // T = 0: the mean of nothing, 0/0 as the reference computes it
    for (long i = 0; i < B * D; i++) out[i] = __builtin_nanf("");
    return;
  }
  const V inv = S::set1(1.0f / (float)T);
  const float* partial = column_partials(inp, B, T, D, groups);
  for (long b = 0; b < B; b++) {
    const float* p = partial + (size_t)b * groups * D;
    for (long c = 0; c < D; c += W) {
      long w = lmin(W, D - c);
      V s = S::zero();
      for (long gi = 0; gi < groups; gi++) s = S::add(s, ld(p + (size_t)gi * D + c, w));
      st(out + b * D + c, S::mul(s, inv), w);
    }
  }
}

void mean_pool_backward(float* dinp, const float* dout, long B, long T, long D) {
  const V inv = S::set1(1.0f / (float)T);
  for_rows(B * T, 8.0 * D, [&](long r0, long r1) {
    for (long r = r0; r < r1; r++) {
      const float* g = dout + (r / T) * D;
      float* dx = dinp + r * D;
      for (long c = 0; c < D; c += W) {
        long w = D - c < W ? D - c : W;
        st(dx + c, S::fmadd(ld(g + c, w), inv, ld(dx + c, w)), w);
      }
    }
  });
}

// ---------------- L2 normalisation (F.normalize) ----------------

// Sum of squares with four accumulators (a quarter of the fma latency chain), then one multiply
// by the reciprocal instead of a vdivps per vector (<= 1.5 ulp instead of 0.5 on values <= 1).
// The next row is prefetched during the second pass.
void l2_normalize(float* out, float* norms, const float* inp, long rows, long cols, float eps) {
  for_rows(rows, 8.0 * cols, [&](long r0, long r1) {
    for (long r = r0; r < r1; r++) {
      const float* x = inp + r * cols;
      float* y = out + r * cols;
      V a0 = S::zero(), a1 = S::zero(), a2 = S::zero(), a3 = S::zero();
      long c = 0;
      for (; c + 4 * W <= cols; c += 4 * W) {
        V v0 = S::load(x + c), v1 = S::load(x + c + W), v2 = S::load(x + c + 2 * W), v3 = S::load(x + c + 3 * W);
        a0 = S::fmadd(v0, v0, a0);
        a1 = S::fmadd(v1, v1, a1);
        a2 = S::fmadd(v2, v2, a2);
        a3 = S::fmadd(v3, v3, a3);
      }
      for (; c < cols; c += W) {
        V v = ld(x + c, lmin(W, cols - c));
        a0 = S::fmadd(v, v, a0);
      }
      float norm = sqrtf(S::hsum(S::add(S::add(a0, a1), S::add(a2, a3))));
      norms[r] = norm;
      if (r + 1 < r1) {
        prefetch_row(x + cols, cols, false);
        prefetch_row(y + cols, cols, true);
      }
      V inv = S::set1(1.0f / (norm > eps ? norm : eps));
      for (c = 0; c < cols; c += W) {
        long w = lmin(W, cols - c);
        st(y + c, S::mul(ld(x + c, w), inv), w);
      }
    }
  });
}

// y = x / max(|x|, eps). Where |x| >= eps: dx = (dy - y (y.dy)) / |x|; else dx = dy / eps
// (the clamp passes no gradient to the norm, as torch's clamp_min).
void l2_normalize_backward(float* dinp, const float* dout, const float* out, const float* norms, long rows,
                           long cols, float eps) {
  for_rows(rows, 12.0 * cols, [&](long r0, long r1) {
    for (long r = r0; r < r1; r++) {
      const float* y = out + r * cols;
      const float* dy = dout + r * cols;
      float* dx = dinp + r * cols;
      float norm = norms[r];
      if (norm >= eps) {
        V acc = S::zero();
        for (long c = 0; c < cols; c += W) {
          long w = cols - c < W ? cols - c : W;
          acc = S::fmadd(ld(y + c, w), ld(dy + c, w), acc);
        }
        V dot = S::set1(S::hsum(acc));
        V inv = S::set1(1.0f / norm);
        for (long c = 0; c < cols; c += W) {
          long w = cols - c < W ? cols - c : W;
          V g = S::fnmadd(ld(y + c, w), dot, ld(dy + c, w));
          st(dx + c, S::fmadd(g, inv, ld(dx + c, w)), w);
        }
      } else {
        V inv = S::set1(1.0f / eps);
        for (long c = 0; c < cols; c += W) {
          long w = cols - c < W ? cols - c : W;
          st(dx + c, S::fmadd(ld(dy + c, w), inv, ld(dx + c, w)), w);
        }
      }
    }
  });
}

// ---------------- Adam / AdamW ----------------

// Same operation order and roundings as torch.optim.Adam's single-tensor path (and the
// TypeScript reference): g += wd*p (Adam) | p *= 1 - lr*wd (AdamW); m = m*b1 + g*(1-b1);
// v = v*b2 + ((1-b2)*g)*g; p += (-step_size * m) / (sqrt(v)/bc2_sqrt + eps).
void adam_update(float* param, const float* grad, float* m, float* v, long n, const AdamScalars& s) {
  const V b1 = S::set1(s.beta1), b1c = S::set1(s.one_minus_beta1);
  const V b2 = S::set1(s.beta2), b2c = S::set1(s.one_minus_beta2);
  const V veps = S::set1(s.eps), vwd = S::set1(s.weight_decay), vstep = S::set1(s.neg_step_size);
  const V vbc2 = S::set1(s.bc2_sqrt), decay = S::set1(s.decay);
  const bool l2 = s.l2, wdec = s.decoupled_decay;
  for_range(n, 28.0, [&](long i, long w) {
    V p = ld(param + i, w), g = ld(grad + i, w);
    if (l2) g = S::fmadd(vwd, p, g);
    if (wdec) p = S::mul(p, decay);
    V mm = S::fmadd(g, b1c, S::mul(ld(m + i, w), b1));
    V vv = S::fmadd(S::mul(b2c, g), g, S::mul(ld(v + i, w), b2));
    V denom = S::add(S::div(S::sqrt(vv), vbc2), veps);
    p = S::add(p, S::div(S::mul(vstep, mm), denom));
    st(m + i, mm, w);
    st(v + i, vv, w);
    st(param + i, p, w);
  });
}

// ---------------- GEMM epilogue (on one output tile, calling thread only) ----------------

// int8 GEMMs first (row_scale given): c holds the int32 sums of u8 (x/scale + 128) x s8 weight
// products; c = (float)(acc - comp[col]) * row_scale[r] * col_scale[col]. Then c[r, :] += bias;
// then kind 1 (GELU): pre[r, :] = c[r, :] (if pre), c = gelu(c); kind 2 (add): c = aux[r, :] + c.
// Exactly the operations (and roundings) of biasAdd, geluForward and add done one after the
// other, but while the tile is still in cache. Row strides ldc / ldaux.
void gemm_epilogue(float* c, long ldc, long rows, long cols, const float* bias, int kind, float* aux, long ldaux,
                   const float* row_scale, const float* col_scale, const int32_t* col_comp) {
  for (long r = 0; r < rows; r++) {
    float* y = c + r * ldc;
    float* x = aux ? aux + r * ldaux : nullptr;
    const V rs = S::set1(row_scale ? row_scale[r] : 1.0f);
    for (long j = 0; j < cols; j += W) {
      long w = cols - j < W ? cols - j : W;
      V v;
      if (row_scale) {
        v = S::cvt_diff_i32(reinterpret_cast<const int32_t*>(y + j), col_comp + j, w);
        v = S::mul(S::mul(v, rs), ld(col_scale + j, w));
      } else {
        v = ld(y + j, w);
      }
      if (bias) v = S::add(v, ld(bias + j, w));
      if (kind == 1) {
        if (x) st(x + j, v, w);
        v = vgelu(v);
      } else if (kind == 2) {
        v = S::add(ld(x + j, w), v);
      }
      st(y + j, v, w);
    }
  }
}

// ---------------- int8 quantisation ----------------

// Per row: scale = max|x| / 127, q = round_to_nearest_even(x * (127 / max|x|)) in [-127, 127]
// (all zeros for a zero row, scale 0). Shared by activations (stored + 128 as u8, the operand
// VNNI multiplies) and weights (s8, with comp = 128 * the row sum of q, which removes the +128
// of the activations from the int32 sums).
template <class Out>
inline void quantize_row(Out* q, float* scale, const float* x, long cols, int offset) {
  V mx = S::zero();
  for (long c = 0; c < cols; c += W) mx = S::max(mx, S::abs(ld(x + c, lmin(W, cols - c))));
  float m = S::hmax(mx);
  *scale = m / 127.0f;
  const V inv = S::set1(m > 0 ? 127.0f / m : 0.0f), lo = S::set1(-127.0f), hi = S::set1(127.0f);
  long c = 0;
#if defined(CAVMAE_SIMD_AVX512)
  // 16 values per step straight to bytes: the rounded values are exact integers in [-127, 127],
  // so the conversion to int32 is exact and the byte truncation of (v + offset) is the value.
  const __m512i off = _mm512_set1_epi32(offset);
  for (; c + W <= cols; c += W) {
    V v = S::min(S::max(S::roundn(S::mul(S::load(x + c), inv)), lo), hi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + c), _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v), off)));
  }
#endif
  float tmp[W];
  for (; c < cols; c += W) {
    long w = lmin(W, cols - c);
    V v = S::min(S::max(S::roundn(S::mul(ld(x + c, w), inv)), lo), hi);
    S::store(tmp, v);
    for (long i = 0; i < w; i++) q[c + i] = (Out)((int)tmp[i] + offset);
  }
}

void quantize_rows_u8(uint8_t* q, float* scale, const float* x, long rows, long cols) {
  for_rows(rows, 5.0 * cols, [&](long r0, long r1) {
    for (long r = r0; r < r1; r++) quantize_row(q + r * cols, scale + r, x + r * cols, cols, 128);
  });
}

void quantize_weights_s8(int8_t* q, float* scale, int32_t* comp, const float* w, long rows, long cols) {
  for_rows(rows, 5.0 * cols, [&](long r0, long r1) {
    for (long r = r0; r < r1; r++) {
      quantize_row(q + r * cols, scale + r, w + r * cols, cols, 0);
      int32_t sum = 0;
      for (long c = 0; c < cols; c++) sum += q[r * cols + c];
      comp[r] = 128 * sum;
    }
  });
}

// ---------------- bf16 ----------------

void f32_to_bf16(uint16_t* out, const float* inp, long n) {
  for_range(n, 6.0, [&](long i, long w) { S::to_bf16(out + i, inp + i, w); });
}

void bf16_to_f32(float* out, const uint16_t* inp, long n) {
  for_range(n, 6.0, [&](long i, long w) { S::from_bf16(out + i, inp + i, w); });
}

// ---------------- hardware peak probe (benchmark) ----------------

// Runs `iters` rounds of 12 independent vector FMA chains (12 > latency x throughput on current
// cores, so the FMA units, not the dependency chains, are the limit) and returns the flops done.
double peak_fma_fp32(long iters) {
  V acc[12];
  for (int j = 0; j < 12; j++) acc[j] = S::set1(1.0f + 1e-7f * j);
  const V a = S::set1(0.999999f), b = S::set1(1e-7f);
  for (long i = 0; i < iters; i++) {
    for (int j = 0; j < 12; j++) acc[j] = S::fmadd(acc[j], a, b);
  }
  V s = S::zero();
  for (int j = 0; j < 12; j++) s = S::add(s, acc[j]);
  alignas(64) float lanes[W];
  S::store(lanes, s);
  volatile float sink = lanes[0] + lanes[W - 1];
  (void)sink;
  return 2.0 * W * 12.0 * (double)iters;
}

#if defined(CAVMAE_SIMD_AVX512)
// The same with vdpbf16ps (each lane: two bf16 products added to an fp32 accumulator: 4 flops).
// Compiled for AVX512-BF16 on this function only; the caller checks the CPU has it.
__attribute__((target("avx512bf16"))) double peak_fma_bf16(long iters) {
  __m512 acc[12];
  for (int j = 0; j < 12; j++) acc[j] = _mm512_set1_ps(0.0f);
  const __m512bh a = (__m512bh)_mm512_set1_epi16(0x3f80), b = (__m512bh)_mm512_set1_epi16(0x0001);
  for (long i = 0; i < iters; i++) {
    for (int j = 0; j < 12; j++) acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
  }
  __m512 s = _mm512_setzero_ps();
  for (int j = 0; j < 12; j++) s = _mm512_add_ps(s, acc[j]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  volatile float sink = lanes[0] + lanes[15];
  (void)sink;
  return 4.0 * 16 * 12.0 * (double)iters;
}

// The same with vpdpbusd (each 32-bit lane: four u8 x s8 products added to an int32
// accumulator: 8 ops), the int8 GEMMs' instruction. Compiled for AVX512-VNNI on this function only.
// The 12 chains are one inline-assembly block, as in the GEMM tiles: with the intrinsic GCC 12
// copied every accumulator before its vpdpbusd, and on Zen 5 (two vpdpbusd per cycle) the probe
// read 648-985 GOP/s on one thread against 936-964 without the copies.
__attribute__((target("avx512vnni"))) double peak_fma_int8(long iters) {
  __m512i c0 = _mm512_set1_epi32(0), c1 = _mm512_set1_epi32(1), c2 = _mm512_set1_epi32(2),
          c3 = _mm512_set1_epi32(3), c4 = _mm512_set1_epi32(4), c5 = _mm512_set1_epi32(5),
          c6 = _mm512_set1_epi32(6), c7 = _mm512_set1_epi32(7), c8 = _mm512_set1_epi32(8),
          c9 = _mm512_set1_epi32(9), c10 = _mm512_set1_epi32(10), c11 = _mm512_set1_epi32(11);
  const __m512i a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(1);
  for (long i = 0; i < iters; i++) {
    __asm__(
        "vpdpbusd %[b], %[a], %[c0]\n\tvpdpbusd %[b], %[a], %[c1]\n\tvpdpbusd %[b], %[a], %[c2]\n\t"
        "vpdpbusd %[b], %[a], %[c3]\n\tvpdpbusd %[b], %[a], %[c4]\n\tvpdpbusd %[b], %[a], %[c5]\n\t"
        "vpdpbusd %[b], %[a], %[c6]\n\tvpdpbusd %[b], %[a], %[c7]\n\tvpdpbusd %[b], %[a], %[c8]\n\t"
        "vpdpbusd %[b], %[a], %[c9]\n\tvpdpbusd %[b], %[a], %[c10]\n\tvpdpbusd %[b], %[a], %[c11]"
        : [c0] "+v"(c0), [c1] "+v"(c1), [c2] "+v"(c2), [c3] "+v"(c3), [c4] "+v"(c4), [c5] "+v"(c5),
          [c6] "+v"(c6), [c7] "+v"(c7), [c8] "+v"(c8), [c9] "+v"(c9), [c10] "+v"(c10), [c11] "+v"(c11)
        : [a] "v"(a), [b] "v"(b));
  }
  const __m512i acc[12] = {c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11};
  __m512i s = _mm512_setzero_si512();
  for (int j = 0; j < 12; j++) s = _mm512_add_epi32(s, acc[j]);
  alignas(64) int32_t lanes[16];
  _mm512_store_si512(lanes, s);
  volatile int32_t sink = lanes[0] + lanes[15];
  (void)sink;
  return 8.0 * 16 * 12.0 * (double)iters;
}
#else
double peak_fma_bf16(long) { return 0.0; }
double peak_fma_int8(long) { return 0.0; }
#endif

const KernelTable kTable = {
    Simd::name,
    layernorm_forward,
    layernorm_forward_u8,
    layernorm_forward_bf16,
    layernorm_backward,
    gelu_forward,
    gelu_forward_bf16,
    gelu_backward,
    softmax_forward,
    softmax_forward_bf16,
    softmax_backward,
    softmax_rows_u8,
    bias_add,
    bias_backward,
    add,
    axpy,
    gather_rows,
    scatter_add_rows,
    mean_pool,
    mean_pool_backward,
    l2_normalize,
    l2_normalize_backward,
    adam_update,
    f32_to_bf16,
    bf16_to_f32,
    copy,
    gemm_epilogue,
    quantize_rows_u8,
    quantize_weights_s8,
    peak_fma_fp32,
    peak_fma_bf16,
    peak_fma_int8,
};

}  // namespace
