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

void layernorm_forward(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                       const float* bias, long rows, long cols, float eps) {
  for_rows(rows, 8.0 * cols, [&](long r0, long r1) {
    for (long r = r0; r < r1; r++) {
      const float* x = inp + r * cols;
      float* y = out + r * cols;
      V acc0 = S::zero(), acc1 = S::zero();
      long c = 0;
      for (; c + 2 * W <= cols; c += 2 * W) {
        acc0 = S::add(acc0, S::load(x + c));
        acc1 = S::add(acc1, S::load(x + c + W));
      }
      for (; c < cols; c += W) acc0 = S::add(acc0, ld(x + c, cols - c < W ? cols - c : W));
      float m = S::hsum(S::add(acc0, acc1)) / (float)cols;
      V vm = S::set1(m);
      acc0 = S::zero();
      acc1 = S::zero();
      for (c = 0; c + 2 * W <= cols; c += 2 * W) {
        V d0 = S::sub(S::load(x + c), vm), d1 = S::sub(S::load(x + c + W), vm);
        acc0 = S::fmadd(d0, d0, acc0);
        acc1 = S::fmadd(d1, d1, acc1);
      }
      for (; c < cols; c += W) {
        long w = cols - c < W ? cols - c : W;
        V d = S::sub(ld(x + c, w), vm);
        if (w < W) d = S::keep(d, w);
        acc0 = S::fmadd(d, d, acc0);
      }
      float var = S::hsum(S::add(acc0, acc1)) / (float)cols;
      float rs = 1.0f / sqrtf(var + eps);
      mean[r] = m;
      rstd[r] = rs;
      V vr = S::set1(rs);
      for (c = 0; c < cols; c += W) {
        long w = cols - c < W ? cols - c : W;
        V n = S::mul(S::sub(ld(x + c, w), vm), vr);
        st(y + c, S::fmadd(n, ld(weight + c, w), ld(bias + c, w)), w);
      }
    }
  });
}

void layernorm_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                        const float* weight, const float* mean, const float* rstd, long rows, long cols) {
  // Rows are cut into a fixed number of groups (independent of the thread count); each group
  // sums its dweight/dbias contributions into its own partial row, and the partials are added
  // in group order afterwards.
  const long groups = lmin(rows, 16);
  if (groups == 0) return;
  float* partial = cavmae_scratch(0, (size_t)groups * 2 * cols);  // [groups, 2, cols]: dweight, dbias
  parallel_for(groups, threads_for(12.0 * rows * cols), [&](long gi) {
    float* pw = partial + (size_t)gi * 2 * cols;
    float* pb = pw + cols;
    memset(pw, 0, sizeof(float) * 2 * cols);
    long r0 = rows * gi / groups, r1 = rows * (gi + 1) / groups;
    for (long r = r0; r < r1; r++) {
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
  const V half = S::set1(0.5f), one = S::set1(1.0f), rsqrt2 = S::set1(0.70710678118654752f);
  for_range(n, 8.0, [&](long i, long w) {
    V x = ld(inp + i, w);
    V e = verf(S::mul(x, rsqrt2));
    st(out + i, S::mul(S::mul(half, x), S::add(one, e)), w);
  });
}

void gelu_backward(float* dinp, const float* inp, const float* dout, long n) {
  const V half = S::set1(0.5f), one = S::set1(1.0f), rsqrt2 = S::set1(0.70710678118654752f);
  const V inv_sqrt_2pi = S::set1(0.39894228040143268f), mhalf = S::set1(-0.5f);
  for_range(n, 16.0, [&](long i, long w) {
    V x = ld(inp + i, w);
    V cdf = S::mul(half, S::add(one, verf(S::mul(x, rsqrt2))));
    V pdf = S::mul(inv_sqrt_2pi, vexp(S::mul(mhalf, S::mul(x, x))));
    V grad = S::fmadd(x, pdf, cdf);
    st(dinp + i, S::fmadd(grad, ld(dout + i, w), ld(dinp + i, w)), w);
  });
}

// ---------------- softmax over rows ----------------

void softmax_forward(float* out, const float* inp, long rows, long cols, float scale) {
  const V vs = S::set1(scale);
  for_rows(rows, 8.0 * cols, [&](long r0, long r1) {
    for (long r = r0; r < r1; r++) {
      const float* x = inp + r * cols;
      float* y = out + r * cols;
      V mx = S::set1(-__builtin_inff());
      long c = 0;
      for (; c + W <= cols; c += W) mx = S::max(mx, S::mul(S::load(x + c), vs));
      // Dead lanes become -inf after scaling (a negative scale would turn a -inf fill into +inf).
      if (c < cols) mx = S::max(mx, S::fill_tail(S::mul(S::load_part(x + c, cols - c), vs), cols - c, -__builtin_inff()));
      V vmax = S::set1(S::hmax(mx));
      V sum = S::zero();
      for (c = 0; c < cols; c += W) {
        long w = cols - c < W ? cols - c : W;
        V e = vexp(S::fmadd(ld(x + c, w), vs, S::sub(S::zero(), vmax)));
        if (w < W) e = S::keep(e, w);
        sum = S::add(sum, e);
        st(y + c, e, w);
      }
      V inv = S::set1(1.0f / S::hsum(sum));
      for (c = 0; c < cols; c += W) {
        long w = cols - c < W ? cols - c : W;
        st(y + c, S::mul(ld(y + c, w), inv), w);
      }
    }
  });
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

// Column sums: chunks are blocks of 8 vectors of columns; each walks every row keeping its
// running sums in registers (no partial buffers, no race, same order for any thread count).
void bias_backward(float* dbias, const float* dout, long rows, long cols) {
  const long block = 8 * W;
  parallel_for((cols + block - 1) / block, threads_for(4.0 * rows * cols), [&](long bi) {
    long cb = bi * block, ce = lmin(cols, cb + block);
    long nv = (ce - cb + W - 1) / W;
    V acc[8];
    for (int j = 0; j < 8; j++) acc[j] = S::zero();
    if (ce - cb == block) {
      for (long r = 0; r < rows; r++) {
        const float* g = dout + r * cols + cb;
        for (int j = 0; j < 8; j++) acc[j] = S::add(acc[j], S::load(g + j * W));
      }
    } else {
      for (long r = 0; r < rows; r++) {
        const float* g = dout + r * cols + cb;
        for (long j = 0; j < nv; j++) acc[j] = S::add(acc[j], ld(g + j * W, lmin(W, ce - cb - j * W)));
      }
    }
    for (long j = 0; j < nv; j++) {
      long w = lmin(W, ce - cb - j * W);
      st(dbias + cb + j * W, S::add(ld(dbias + cb + j * W, w), acc[j]), w);
    }
  });
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

// Indices may repeat, so chunks are column blocks (each walks the whole index list in order),
// not slices of the index list.
void scatter_add_rows(float* out, const float* inp, const int32_t* index, long n_index, long cols) {
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

// Chunks: (b, block of 8 vectors of columns), summing over t in registers.
void mean_pool(float* out, const float* inp, long B, long T, long D) {
  const float inv = 1.0f / (float)T;
  const long block = 8 * W;
  const long blocks = (D + block - 1) / block;
  parallel_for(B * blocks, threads_for(4.0 * B * T * D), [&](long j) {
    long b = j / blocks, cb = (j % blocks) * block;
    long ce = lmin(D, cb + block);
    long nv = (ce - cb + W - 1) / W;
    V acc[8];
    for (int k = 0; k < 8; k++) acc[k] = S::zero();
    for (long t = 0; t < T; t++) {
      const float* x = inp + (b * T + t) * D + cb;
      for (long k = 0; k < nv; k++) acc[k] = S::add(acc[k], ld(x + k * W, lmin(W, ce - cb - k * W)));
    }
    for (long k = 0; k < nv; k++) st(out + b * D + cb + k * W, S::mul(acc[k], S::set1(inv)), lmin(W, ce - cb - k * W));
  });
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

void l2_normalize(float* out, float* norms, const float* inp, long rows, long cols, float eps) {
  for_rows(rows, 8.0 * cols, [&](long r0, long r1) {
    for (long r = r0; r < r1; r++) {
      const float* x = inp + r * cols;
      V acc = S::zero();
      for (long c = 0; c < cols; c += W) {
        long w = cols - c < W ? cols - c : W;
        V v = ld(x + c, w);
        acc = S::fmadd(v, v, acc);
      }
      float norm = sqrtf(S::hsum(acc));
      norms[r] = norm;
      V d = S::set1(norm > eps ? norm : eps);
      for (long c = 0; c < cols; c += W) {
        long w = cols - c < W ? cols - c : W;
        st(out + r * cols + c, S::div(ld(x + c, w), d), w);
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
  const V half = S::set1(0.5f), one = S::set1(1.0f), rsqrt2 = S::set1(0.70710678118654752f);
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
        v = S::mul(S::mul(half, v), S::add(one, verf(S::mul(v, rsqrt2))));
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
  float tmp[W];
  for (long c = 0; c < cols; c += W) {
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

const KernelTable kTable = {
    Simd::name,
    layernorm_forward,
    layernorm_backward,
    gelu_forward,
    gelu_backward,
    softmax_forward,
    softmax_backward,
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
};

}  // namespace
