// oneDNN matmul with a per-thread primitive cache (see gemm.h for the contract).
//
// Why a cache of our own on top of oneDNN's: building the op descriptor and primitive
// descriptor costs tens of microseconds even when oneDNN's global cache hits; ours keys on the
// raw shape and keeps the memory objects too, so a cached call is a few hundred nanoseconds of
// overhead. The scratchpad is user-managed (one grow-only buffer per thread) so execution never
// allocates.
#include "gemm.h"

#include "gemm_f32.h"
#include "gemm_int8.h"
#include "kernels.h"
#include "pool.h"
#include "scratch.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <unordered_map>
#include <vector>

namespace {

using dnnl::memory;

struct Key {
  long dims[5];
  long sa[4], sb[4], sc[4];
  uint32_t alpha_bits, beta_bits;
  int bf16, threads;
  bool operator==(const Key& o) const { return memcmp(this, &o, sizeof(Key)) == 0; }
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    // FNV-1a over the bytes (the key is plain old data, zero-initialised before filling).
    const unsigned char* p = reinterpret_cast<const unsigned char*>(&k);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < sizeof(Key); i++) h = (h ^ p[i]) * 1099511628211ull;
    return (size_t)h;
  }
};

struct Entry {
  dnnl::matmul prim;
  memory a, b, c, scratch;
  size_t scratch_bytes;
};

struct ThreadState {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  std::unordered_map<Key, std::unique_ptr<Entry>, KeyHash> cache;
  std::vector<uint8_t> scratch;
};

ThreadState& state() {
  thread_local ThreadState st;
  return st;
}

constexpr size_t kMaxCacheEntries = 512;

// Number of batch dims actually used: 2-D descriptors when there is no batch, 3-D with one.
int rank_of(const GemmShape& s) { return s.b0 > 1 ? 4 : (s.b1 > 1 ? 3 : 2); }

memory::desc make_desc(const GemmShape& s, long rows, long cols, const long st[4], memory::data_type dt) {
  switch (rank_of(s)) {
    case 2:
      return memory::desc({rows, cols}, dt, memory::dims{st[2], st[3]});
    case 3:
      return memory::desc({s.b1, rows, cols}, dt, memory::dims{st[1], st[2], st[3]});
    default:
      return memory::desc({s.b0, s.b1, rows, cols}, dt, memory::dims{st[0], st[1], st[2], st[3]});
  }
}

// Strides of batch dims of size 1 do not matter; normalise them so they do not split the cache.
void canon_strides(const GemmShape& s, const long in[4], long out[4]) {
  out[0] = s.b0 > 1 ? in[0] : 0;
  out[1] = s.b1 > 1 ? in[1] : 0;
  out[2] = in[2];
  out[3] = in[3];
}

dnnl::matmul::primitive_desc make_pd(ThreadState& st, const GemmShape& s, const long sa[4], const long sb[4],
                                     const long sc[4], float alpha, float beta, int dt) {
  // dt: kF32, kBf16 (fp32 accumulation and result), kInt8 (u8 x s8 -> s32 sums).
  auto a_dt = dt == kInt8 ? memory::data_type::u8 : dt == kBf16 ? memory::data_type::bf16 : memory::data_type::f32;
  auto b_dt = dt == kInt8 ? memory::data_type::s8 : a_dt;
  auto a_md = make_desc(s, s.m, s.k, sa, a_dt);
  auto b_md = make_desc(s, s.k, s.n, sb, b_dt);
  auto c_md = make_desc(s, s.m, s.n, sc, dt == kInt8 ? memory::data_type::s32 : memory::data_type::f32);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (alpha != 1.0f) attr.set_output_scales(0, {alpha});
  if (beta != 0.0f) {
    dnnl::post_ops po;
    po.append_sum(beta);
    attr.set_post_ops(po);
  }
  dnnl::matmul::desc d(a_md, b_md, c_md);
  return dnnl::matmul::primitive_desc(d, attr, st.eng);
}

// Sets the OpenMP thread count for the duration of a scope (oneDNN reads it when it builds and
// when it runs a primitive), restoring the caller's setting after.
struct ThreadScope {
  int saved;
  explicit ThreadScope(int n) : saved(omp_get_max_threads()) {
    if (n != saved) omp_set_num_threads(n);
  }
  ~ThreadScope() {
    if (omp_get_max_threads() != saved) omp_set_num_threads(saved);
  }
};

// oneDNN 2.6 builds bf16 matmuls only from AVX-512 up: on an AVX2-only CPU (AMD Zen 3, family 25
// model 1) make_pd throws "could not create a primitive descriptor iterator". Asked once.
bool onednn_has_bf16_matmul() {
  static const bool ok = [] {
    try {
      GemmShape s{1, 1, 16, 16, 16};
      long st[4] = {0, 0, 16, 1};
      ThreadScope scope(1);
      make_pd(state(), s, st, st, st, 1.0f, 0.0f, kBf16);
      return true;
    } catch (const std::exception&) {
      return false;
    }
  }();
  return ok;
}

// oneDNN's int8 matmul is exact (int32 sums of u8 x s8 products) only with VNNI (vpdpbusd).
// Without it (AVX2, AVX-512 without VNNI) it multiplies with vpmaddubsw, whose pairwise int16
// sums saturate: 255 * 127 * 2 > 32767. On AMD Zen 3 a 3x5x7 product came out -1.37 where the
// exact value is -5.08, and int8 embeddings fell to cosine 0.94 to fp32.
bool onednn_int8_exact() {
  static const bool ok = [] {
    switch (dnnl::get_effective_cpu_isa()) {
      case dnnl::cpu_isa::avx2_vnni:
      case dnnl::cpu_isa::avx512_core_vnni:
      case dnnl::cpu_isa::avx512_core_bf16:
      case dnnl::cpu_isa::avx512_core_amx:
        return true;
      default:
        return false;
    }
  }();
  return ok;
}

// The matrices [b0][b1][rows][cols] of a strided view of T, widened to a dense fp32 copy in the
// calling thread's scratch `slot`, in the view's own orientation (column-major stays column-major,
// so oneDNN sees the same transposition). `widen_line` converts `len` contiguous elements.
// Returns the copy; its strides go to `out`.
template <class T, class WidenLine>
const float* widen_view(ScratchSlot slot, const GemmShape& s, const T* src, long rows, long cols, const long in[4],
                        long out[4], WidenLine widen_line) {
  const long entries = s.b0 * s.b1, per = rows * cols;
  float* dst = scratch<float>(slot, (size_t)(entries * per));
  // Both strides 1 (one row of a transposed view): column-major too, as the caller laid it out.
  const bool col_major = in[2] == 1 && (in[3] != 1 || cols > 1);
  out[0] = s.b1 * per;
  out[1] = per;
  out[2] = col_major ? 1 : cols;
  out[3] = col_major ? rows : 1;
  const long lines = col_major ? cols : rows, len = col_major ? rows : cols;
  const long line_stride = col_major ? in[3] : in[2], elem_stride = col_major ? in[2] : in[3];
  for (long i = 0; i < s.b0; i++)
    for (long j = 0; j < s.b1; j++) {
      // Batch strides of dims of size 1 are not meaningful (canon_strides zeroes them in keys).
      const T* m = src + (s.b0 > 1 ? i * in[0] : 0) + (s.b1 > 1 ? j * in[1] : 0);
      float* d = dst + (i * s.b1 + j) * per;
      for (long l = 0; l < lines; l++) {
        const T* line = m + l * line_stride;
        if (elem_stride == 1) {
          widen_line(d + l * len, line, len);
        } else {
          for (long e = 0; e < len; e++) widen_line(d + l * len + e, line + e * elem_stride, 1);
        }
      }
    }
  return dst;
}

void widen_bf16_line(float* d, const uint16_t* p, long n) { select_kernels().bf16_to_f32(d, p, n); }
template <class T>
void widen_int_line(float* d, const T* p, long n) {
  for (long e = 0; e < n; e++) d[e] = (float)p[e];
}

}  // namespace

GemmThreading gemm_threading() {
  static const GemmThreading mode = [] {
    // The pieces everywhere unless overridden. oneDNN's own threading was the default on AMD family
    // 26 (Zen 5) from the plain-program numbers; on a Zen 5 machine (2026-12-07, 2 threads)
    // the pieces were faster at 54 of the 72 ViT-B GEMMs of `cavmae bench`, within 3% at 12, and
    // faster in the fp32 and bf16 embedding (docs/performance.md, Zen 5).
    const char* force = getenv("CAVMAE_GEMM_THREADING");
    return force && strcmp(force, "onednn") == 0 ? GemmThreading::kOnednn : GemmThreading::kPieces;
  }();
  return mode;
}

const char* gemm_bf16_path() { return onednn_has_bf16_matmul() ? "onednn" : "fp32-widened"; }
const char* gemm_int8_path() {
  switch (int8_packed_kernel()) {
    case Int8PackedKernel::kAmx: return "amx-packed";
    case Int8PackedKernel::kVnni: return "vnni-packed";
    case Int8PackedKernel::kAvx2: return "avx2-packed";
    default: return onednn_int8_exact() ? "onednn" : "fp32-widened";
  }
}

const char* gemm_f32_path() { return f32_packed_gemm_runs() ? "packed" : "onednn"; }

const char* gemm_threading_name() { return gemm_threading() == GemmThreading::kOnednn ? "onednn" : "pieces"; }

int gemm_threads_for(const GemmShape& s) {
  // Below ~4 MFLOP (e.g. 128x128x128 = 4.2 MFLOP) the second thread's start-up and the split of
  // a few tiles cost more than they save (measured; docs/kernels.md).
  double flops = 2.0 * s.b0 * s.b1 * s.m * s.n * s.k;
  return flops < cavmae_gemm_min_flops() ? 1 : cavmae_threads();
}

namespace {

void gemm_int8_widened(const GemmShape& s, const void* pa, const long sa_in[4], const void* pb, const long sb_in[4],
                       float* c, const long sc_in[4], float alpha, float beta, int threads);

// oneDNN's fp32 GEMM below AVX-512 (gemm:jit, AVX2) computes rows in groups of six; the last one,
// two or three rows of a call go through another kernel that adds in another order, so a row's
// values depended on how many rows came with it (measured on AMD Zen 3: rows m-3..m-1 of an
// m-row call, m mod 6 in 1..3, differ in the last bits from the same rows in a larger call).
// Such tails run padded to four rows, which take the six-row kernel's order.
bool onednn_sgemm_tail_rows_differ() {
  static const bool differ = [] {
    auto isa = dnnl::get_effective_cpu_isa();
    return isa == dnnl::cpu_isa::avx2 || isa == dnnl::cpu_isa::avx2_vnni;
  }();
  return differ;
}
// Rows per oneDNN call where tail rows differ: a multiple of six, below the size at which oneDNN
// cuts M itself. Measured on Zen 3: 96 rows stay whole when B is transposed (the linear layers'
// x W^T), but not for every shape with a row-major B (attention's P V, 591 x 3072 x 768), where
// 48 do. Whole calls against 48-row ones: 0.74-0.76 against 0.63-0.70 clips/s (base embedding,
// fp32); against 96-row ones for W^T: 0.74-0.75 against 0.71-0.78. CAVMAE_SGEMM_ROWS overrides
// both (read once, for tuning).
long sgemm_call_rows(bool b_transposed) {
  static const long forced = [] {
    const char* e = getenv("CAVMAE_SGEMM_ROWS");
    long r = e ? atol(e) : 0;
    return r >= 6 ? r / 6 * 6 : 0L;
  }();
  return forced ? forced : b_transposed ? 96 : 48;
}
void gemm_tail_rows_padded(const GemmShape& s, const float* pa, const long sa[4], const void* pb, const long sb[4],
                           float* c, const long sc[4], float alpha, float beta, int threads);

// One strided GEMM through a cached primitive on `threads` OpenMP threads (1: the calling thread).
void gemm_exec(const GemmShape& s, const void* pa, const long sa_in[4], const void* pb, const long sb_in[4],
               float* c, const long sc_in[4], float alpha, float beta, int bf16, int threads = 1) {
  if (bf16 == kBf16 && !onednn_has_bf16_matmul()) {
    // bf16 values widen to fp32 exactly and the product of two is exact in fp32, so an fp32 GEMM
    // over the widened operands keeps the contract (bf16 inputs, fp32 products and sums).
    long sa32[4], sb32[4];
    const float* a32 =
        widen_view(kScratchGemmA32, s, static_cast<const uint16_t*>(pa), s.m, s.k, sa_in, sa32, widen_bf16_line);
    const float* b32 =
        widen_view(kScratchGemmB32, s, static_cast<const uint16_t*>(pb), s.k, s.n, sb_in, sb32, widen_bf16_line);
    return gemm_exec(s, a32, sa32, b32, sb32, c, sc_in, alpha, beta, kF32, threads);
  }
  if (bf16 == kInt8 && !onednn_int8_exact()) return gemm_int8_widened(s, pa, sa_in, pb, sb_in, c, sc_in, alpha, beta, threads);
  if (bf16 == kF32 && sa_in[3] == 1 && s.m > sgemm_call_rows(sb_in[2] == 1 && sb_in[3] != 1) &&
      onednn_sgemm_tail_rows_differ()) {
    // Larger calls are cut inside oneDNN into row blocks that depend on M, each with its own tail.
    // Only for a row-major A, the rows of activations: a transposed A is a weight gradient's,
    // whose M is a model dimension, and 48-row calls cost those products 12% (Zen 3).
    const long step = sgemm_call_rows(sb_in[2] == 1 && sb_in[3] != 1);
    for (long r0 = 0; r0 < s.m; r0 += step)
      gemm_exec(GemmShape{s.b0, s.b1, s.m - r0 < step ? s.m - r0 : step, s.n, s.k},
                static_cast<const float*>(pa) + r0 * sa_in[2], sa_in, pb, sb_in, c + r0 * sc_in[2], sc_in, alpha, beta,
                kF32, threads);
    return;
  }
  if (bf16 == kF32 && s.m % 6 >= 1 && s.m % 6 <= 3 && onednn_sgemm_tail_rows_differ()) {
    const long tail = s.m % 6, head = s.m - tail;
    if (head > 0) gemm_exec(GemmShape{s.b0, s.b1, head, s.n, s.k}, pa, sa_in, pb, sb_in, c, sc_in, alpha, beta, kF32, threads);
    const float* a = static_cast<const float*>(pa) + head * sa_in[2];
    float* ct = c + head * sc_in[2];
    return gemm_tail_rows_padded(GemmShape{s.b0, s.b1, tail, s.n, s.k}, a, sa_in, pb, sb_in, ct, sc_in, alpha, beta, threads);
  }
  ThreadState& st = state();
  Key key;
  memset(&key, 0, sizeof(key));
  key.dims[0] = s.b0;
  key.dims[1] = s.b1;
  key.dims[2] = s.m;
  key.dims[3] = s.n;
  key.dims[4] = s.k;
  canon_strides(s, sa_in, key.sa);
  canon_strides(s, sb_in, key.sb);
  canon_strides(s, sc_in, key.sc);
  memcpy(&key.alpha_bits, &alpha, 4);
  memcpy(&key.beta_bits, &beta, 4);
  key.bf16 = bf16;
  key.threads = threads;
  ThreadScope scope(threads);
  auto it = st.cache.find(key);
  Entry* e;
  if (it == st.cache.end()) {
    if (st.cache.size() >= kMaxCacheEntries) st.cache.clear();
    auto pd = make_pd(st, s, key.sa, key.sb, key.sc, alpha, beta, bf16);
    auto entry = std::make_unique<Entry>();
    entry->prim = dnnl::matmul(pd);
    entry->a = memory(pd.src_desc(), st.eng, DNNL_MEMORY_NONE);
    entry->b = memory(pd.weights_desc(), st.eng, DNNL_MEMORY_NONE);
    entry->c = memory(pd.dst_desc(), st.eng, DNNL_MEMORY_NONE);
    entry->scratch_bytes = pd.scratchpad_desc().get_size();
    entry->scratch = memory(pd.scratchpad_desc(), st.eng, DNNL_MEMORY_NONE);
    e = entry.get();
    st.cache.emplace(key, std::move(entry));
  } else {
    e = it->second.get();
  }
  if (st.scratch.size() < e->scratch_bytes) st.scratch.resize(e->scratch_bytes);
  e->a.set_data_handle(const_cast<void*>(pa));
  e->b.set_data_handle(const_cast<void*>(pb));
  e->c.set_data_handle(c);
  e->scratch.set_data_handle(st.scratch.data());
  e->prim.execute(st.strm, {{DNNL_ARG_SRC, e->a},
                            {DNNL_ARG_WEIGHTS, e->b},
                            {DNNL_ARG_DST, e->c},
                            {DNNL_ARG_SCRATCHPAD, e->scratch}});
  st.strm.wait();
}

// Rows [0, s.m) (s.m <= 3) of a fp32 GEMM through a four-row call: A's rows copied into a
// zero-padded [b0][b1][4][k] block (its orientation kept), C's rows into [b0][b1][4][n] and back.
void gemm_tail_rows_padded(const GemmShape& s, const float* pa, const long sa[4], const void* pb, const long sb[4],
                           float* c, const long sc[4], float alpha, float beta, int threads) {
  constexpr long kRows = 4;
  const long entries = s.b0 * s.b1;
  const bool a_col_major = sa[2] == 1 && (sa[3] != 1 || s.k > 1);
  float* at = scratch<float>(kScratchGemmTailA, (size_t)(entries * kRows * s.k));
  float* ct = scratch<float>(kScratchGemmTailC, (size_t)(entries * kRows * s.n));
  const long sat[4] = {s.b1 * kRows * s.k, kRows * s.k, a_col_major ? 1 : s.k, a_col_major ? kRows : 1};
  const long sct[4] = {s.b1 * kRows * s.n, kRows * s.n, s.n, 1};
  auto a_at = [&](long i, long j) { return pa + (s.b0 > 1 ? i * sa[0] : 0) + (s.b1 > 1 ? j * sa[1] : 0); };
  auto c_at = [&](long i, long j) { return c + (s.b0 > 1 ? i * sc[0] : 0) + (s.b1 > 1 ? j * sc[1] : 0); };
  for (long i = 0; i < s.b0; i++)
    for (long j = 0; j < s.b1; j++) {
      const long e = i * s.b1 + j;
      const float* a = a_at(i, j);
      float* ae = at + e * kRows * s.k;
      for (long r = 0; r < kRows; r++)
        for (long q = 0; q < s.k; q++) ae[r * sat[2] + q * sat[3]] = r < s.m ? a[r * sa[2] + q * sa[3]] : 0.0f;
      if (beta != 0.0f) {
        const float* ce = c_at(i, j);
        for (long r = 0; r < s.m; r++)
          for (long q = 0; q < s.n; q++) ct[e * kRows * s.n + r * s.n + q] = ce[r * sc[2] + q * sc[3]];
      }
    }
  gemm_exec(GemmShape{s.b0, s.b1, kRows, s.n, s.k}, at, sat, pb, sb, ct, sct, alpha, beta, kF32, threads);
  for (long i = 0; i < s.b0; i++)
    for (long j = 0; j < s.b1; j++) {
      float* ce = c_at(i, j);
      const float* src = ct + (i * s.b1 + j) * kRows * s.n;
      for (long r = 0; r < s.m; r++)
        for (long q = 0; q < s.n; q++) ce[r * sc[2] + q * sc[3]] = src[r * s.n + q];
    }
}

// The int8 GEMM (u8 A, s8 B, int32 sums in C) without VNNI, exactly: fp32 GEMMs over the widened
// operands, K in chunks of 512. A product is at most 255 * 127 = 32385 in magnitude, so a chunk's
// sum stays below 2^24 and every fp32 partial sum is an exact integer, whatever order oneDNN adds
// in; the chunks then add in int32, as vpdpbusd's sums do.
void gemm_int8_widened(const GemmShape& s, const void* pa, const long sa_in[4], const void* pb, const long sb_in[4],
                       float* c, const long sc_in[4], float alpha, float beta, int threads) {
  if (alpha != 1.0f || beta != 0.0f) throw std::invalid_argument("int8 gemm: alpha must be 1 and beta 0");
  constexpr long kChunk = 512;
  long sa32[4], sb32[4];
  const float* a32 =
      widen_view(kScratchGemmA32, s, static_cast<const uint8_t*>(pa), s.m, s.k, sa_in, sa32, widen_int_line<uint8_t>);
  const float* b32 =
      widen_view(kScratchGemmB32, s, static_cast<const int8_t*>(pb), s.k, s.n, sb_in, sb32, widen_int_line<int8_t>);
  const long entries = s.b0 * s.b1, per = s.m * s.n;
  float* part = scratch<float>(kScratchGemmC32, (size_t)(entries * per));
  const long sp[4] = {s.b1 * per, per, s.n, 1};
  for (long k0 = 0; k0 < s.k; k0 += kChunk) {
    GemmShape sub{s.b0, s.b1, s.m, s.n, s.k - k0 < kChunk ? s.k - k0 : kChunk};
    // Column k0 of A and row k0 of B, in the widened copies' own strides.
    gemm_exec(sub, a32 + k0 * sa32[3], sa32, b32 + k0 * sb32[2], sb32, part, sp, 1.0f, 0.0f, kF32, threads);
    for (long i = 0; i < s.b0; i++)
      for (long j = 0; j < s.b1; j++)
        for (long r = 0; r < s.m; r++) {
          int32_t* out = reinterpret_cast<int32_t*>(c + (s.b0 > 1 ? i * sc_in[0] : 0) + (s.b1 > 1 ? j * sc_in[1] : 0) +
                                                    r * sc_in[2]);
          const float* p = part + (i * s.b1 + j) * per + r * s.n;
          if (k0 == 0)
            for (long q = 0; q < s.n; q++) out[q * sc_in[3]] = (int32_t)p[q];
          else
            for (long q = 0; q < s.n; q++) out[q * sc_in[3]] += (int32_t)p[q];
        }
  }
}

// How a GEMM is cut into single-threaded pieces. The cut depends only on the shape (never on the
// thread count), and K is never split, so every output element is computed by the same kernel
// call whatever the number of threads: results are bit-identical with 1 or 2 threads.
struct Plan {
  // Batch entries (b0*b1 matrices): `group` consecutive entries of the inner batch dim per piece.
  long group, groups_per_row;
  // Tiles of one matrix: mt x nt blocks.
  long mt, nt, mblocks, nblocks;
  long pieces;
};

long div_up(long a, long b) { return (a + b - 1) / b; }

// Splits n into equal blocks of at most `most`, rounded up to a multiple of `align`.
long block_of(long n, long most, long align) {
  if (n <= most) return n;
  long parts = div_up(n, most);
  long b = div_up(div_up(n, parts), align) * align;
  return b < n ? b : n;
}

constexpr long kMinPieces = 8;           // enough pieces that a late thread does not leave a long tail
constexpr double kPieceMinFlops = 4e6;   // below this a piece costs more in call overhead than it computes

// Largest piece: 256 rows x 1024 columns (measured on Zen 4, docs/kernels.md);
// CAVMAE_GEMM_PIECE=ROWSxCOLS overrides (read once, for tuning).
long piece_dim(int which) {
  static const long dims[2] = {
      [] {
        const char* e = getenv("CAVMAE_GEMM_PIECE");
        long r = e ? atol(e) : 0;
        return r >= 16 ? r : 256L;
      }(),
      [] {
        const char* e = getenv("CAVMAE_GEMM_PIECE");
        const char* x = e ? strchr(e, 'x') : nullptr;
        long c = x ? atol(x + 1) : 0;
        return c >= 64 ? c : 1024L;
      }(),
  };
  return dims[which];
}
long piece_rows() { return piece_dim(0); }
long piece_cols() { return piece_dim(1); }

Plan make_plan(const GemmShape& s, bool whole_rows, long col_align = 64) {
  Plan p{};
  long entries = s.b0 * s.b1;
  double per_entry = 2.0 * s.m * s.n * s.k;
  if (entries > 1) {
    // Batched (attention): whole matrices per piece, a few entries of the inner dim together
    // when they are tiny.
    long g = (long)(kPieceMinFlops / (per_entry > 1 ? per_entry : 1));
    if (g < 1) g = 1;
    long cap = div_up(s.b1, div_up(kMinPieces, s.b0));  // keep at least ~kMinPieces pieces
    if (g > cap) g = cap;
    if (g > s.b1) g = s.b1;
    if (g < 1) g = 1;
    p.group = g;
    p.groups_per_row = div_up(s.b1, g);
    p.mt = s.m;
    p.nt = s.n;
    p.mblocks = p.nblocks = 1;
    p.pieces = s.b0 * p.groups_per_row;
    if (p.pieces >= kMinPieces / 2 || per_entry < 8 * kPieceMinFlops) return p;
    // A few large matrices: tile each one as well (below).
  }
  p.group = 1;
  p.groups_per_row = s.b1;
  long mt = block_of(s.m, piece_rows(), 16);
  long nt = whole_rows ? s.n : block_of(s.n, piece_cols(), col_align);
  auto count = [&](long a, long b) { return entries * div_up(s.m, a) * div_up(s.n, b); };
  while (count(mt, nt) < kMinPieces && 2.0 * mt * nt * s.k / 2 >= kPieceMinFlops) {
    if (!whole_rows && nt >= 2 * mt && nt > 128) nt = block_of(s.n, div_up(nt, 2), col_align);
    else if (mt > 32) mt = block_of(s.m, div_up(mt, 2), 16);
    else break;
  }
  p.mt = mt;
  p.nt = nt;
  p.mblocks = div_up(s.m, mt);
  p.nblocks = div_up(s.n, nt);
  p.pieces = entries * p.mblocks * p.nblocks;
  return p;
}

struct Job {
  const GemmShape* s;
  const Plan* p;
  const GemmEpilogue* epi;
  const char *a, *b;
  char* c;
  size_t ea, eb;  // element sizes of A and B
  const long *sa, *sb, *sc;
  float alpha, beta;
  int bf16;  // the GEMM type (kF32, kBf16, kInt8)
  const uint8_t* b_packed;  // kInt8 only: B in gemm_int8.h's packed layout (then our kernel, not oneDNN)
  const float* f32_packed;  // kF32 only: B in gemm_f32.h's panels (then our kernel, not oneDNN)
};

// The copies of a finished tile: bf16, or int8 rows (whole rows only).
void apply_copies(const GemmEpilogue& e, const float* ct, long ldc, long m0, long n0, long m, long n) {
  const KernelTable& kt = select_kernels();
  if (e.out16)
    for (long r = 0; r < m; r++) kt.f32_to_bf16(e.out16 + (m0 + r) * e.ldout16 + n0, ct + r * ldc, n);
  if (e.out8)  // whole rows (n0 == 0): the plan keeps them in one tile
    for (long r = 0; r < m; r++) kt.quantize_rows_u8(e.out8 + (m0 + r) * e.ldout8, e.out8_scale + m0 + r, ct + r * ldc, 1, n);
}

// The epilogue of one output tile [m, n] at (m0, n0): bias, GELU / add / int8 scales, then the
// copies.
void apply_epilogue(const GemmEpilogue& e, float* ct, long ldc, long m0, long n0, long m, long n) {
  if (e.bias || e.kind != 0 || e.row_scale)
    select_kernels().gemm_epilogue(ct, ldc, m, n, e.bias ? e.bias + n0 : nullptr, e.kind,
                                   e.aux ? e.aux + m0 * e.ldaux + n0 : nullptr, e.ldaux,
                                   e.row_scale ? e.row_scale + m0 : nullptr, e.col_scale ? e.col_scale + n0 : nullptr,
                                   e.col_comp ? e.col_comp + n0 : nullptr);
  apply_copies(e, ct, ldc, m0, n0, m, n);
}

// A packed int8 piece (matmul_int8 always passes the int8 scales): each tile is dequantised, with
// the bias and the residual, in the kernel's registers; a GELU then runs on the tile's floats
// while they are in L1. The epilogue kernel with no scales and no bias applies exactly that
// GELU, and float stores and loads are exact, so the values equal the one-pass epilogue's.
struct PieceTiles {
  const GemmEpilogue* epi;
  float* ct;
  long ldc, m0, n0;
};

// GELU (saving the pre-activation in aux, if any) on the finished tile [rows, cols] at (r0, j0).
void tile_gelu(const PieceTiles& p, long r0, long rows, long j0, long cols) {
  const GemmEpilogue& e = *p.epi;
  select_kernels().gemm_epilogue(p.ct + r0 * p.ldc + j0, p.ldc, rows, cols, nullptr, 1,
                                 e.aux ? e.aux + (p.m0 + r0) * e.ldaux + p.n0 + j0 : nullptr, e.ldaux, nullptr,
                                 nullptr, nullptr);
}

void piece_tile_gelu(void* ctx, long r0, long rows, long j0) {
  tile_gelu(*static_cast<const PieceTiles*>(ctx), r0, rows, j0, 64);
}

void run_packed_piece(const Job& j, float* ct, long ldc, long off_a, long m0, long n0, long m, long n) {
  const GemmEpilogue& e = *j.epi;
  PieceTiles pt{&e, ct, ldc, m0, n0};
  Int8Dequant dq{e.row_scale + m0, e.col_scale + n0, e.col_comp + n0, e.bias ? e.bias + n0 : nullptr,
                 e.kind == 2 ? e.aux + m0 * e.ldaux + n0 : nullptr, e.ldaux};
  int8_gemm_packed(reinterpret_cast<int32_t*>(ct), ldc, reinterpret_cast<const uint8_t*>(j.a) + off_a, j.sa[2],
                   j.b_packed, j.s->k, m, n0, n, &dq, e.kind == 1 ? piece_tile_gelu : nullptr, &pt);
  apply_copies(e, ct, ldc, m0, n0, m, n);
}

void f32_piece_tile_gelu(void* ctx, long r0, long rows, long j0, long cols) {
  tile_gelu(*static_cast<const PieceTiles*>(ctx), r0, rows, j0, cols);
}

// A packed fp32 piece: bias and residual in the tile's registers, a GELU on the tile's floats
// while they are in L1 (as the int8 pieces above), then the copies.
void run_f32_packed_piece(const Job& j, float* ct, long ldc, long off_a, long m0, long n0, long m, long n) {
  const float* a = reinterpret_cast<const float*>(j.a) + off_a;
  if (!j.epi) return f32_gemm_packed(ct, ldc, a, j.sa[2], j.f32_packed, j.s->k, m, n0, n);
  const GemmEpilogue& e = *j.epi;
  PieceTiles pt{&e, ct, ldc, m0, n0};
  F32TileEpilogue te{e.bias ? e.bias + n0 : nullptr, e.kind == 2 ? e.aux + m0 * e.ldaux + n0 : nullptr, e.ldaux};
  f32_gemm_packed(ct, ldc, a, j.sa[2], j.f32_packed, j.s->k, m, n0, n, &te, e.kind == 1 ? f32_piece_tile_gelu : nullptr,
                  &pt);
  apply_copies(e, ct, ldc, m0, n0, m, n);
}

struct PackJob {
  float* out;
  const float* b;
  long sb_k, sb_n, k, n;
};

void run_pack_panel(void* ctx, long p) {
  const PackJob& j = *static_cast<const PackJob*>(ctx);
  f32_pack_panels(j.out, j.b, j.sb_k, j.sb_n, j.k, j.n, p, p + 1);
}

// The whole-matrix path (GemmThreading::kOnednn): the epilogue over row blocks of the finished C.
struct EpilogueJob {
  const GemmEpilogue* epi;
  float* c;
  long ldc, m, n, rows_per_chunk;
};

void run_epilogue_chunk(void* ctx, long chunk) {
  const EpilogueJob& j = *static_cast<const EpilogueJob*>(ctx);
  long r0 = chunk * j.rows_per_chunk, r1 = r0 + j.rows_per_chunk < j.m ? r0 + j.rows_per_chunk : j.m;
  apply_epilogue(*j.epi, j.c + r0 * j.ldc, j.ldc, r0, 0, r1 - r0, j.n);
}

void run_piece(void* ctx, long piece) {
  const Job& j = *static_cast<const Job*>(ctx);
  const GemmShape& s = *j.s;
  const Plan& p = *j.p;
  if (p.group > 1 || (p.mblocks == 1 && p.nblocks == 1 && p.group == 1 && s.b0 * s.b1 > 1)) {
    // Whole matrices: entries (i, g*group .. ) of the batch.
    long i = piece / p.groups_per_row, g = piece % p.groups_per_row;
    long j0 = g * p.group, j1 = j0 + p.group < s.b1 ? j0 + p.group : s.b1;
    GemmShape sub{1, j1 - j0, s.m, s.n, s.k};
    long off_a = i * j.sa[0] + j0 * j.sa[1], off_b = i * j.sb[0] + j0 * j.sb[1], off_c = i * j.sc[0] + j0 * j.sc[1];
    gemm_exec(sub, j.a + off_a * j.ea, j.sa, j.b + off_b * j.eb, j.sb, reinterpret_cast<float*>(j.c) + off_c, j.sc,
              j.alpha, j.beta, j.bf16);
    return;
  }
  long tiles = p.mblocks * p.nblocks;
  long e = piece / tiles, t = piece % tiles;
  long i = e / s.b1, jj = e % s.b1;
  long mb = t / p.nblocks, nb = t % p.nblocks;
  long m0 = mb * p.mt, n0 = nb * p.nt;
  long m = s.m - m0 < p.mt ? s.m - m0 : p.mt, n = s.n - n0 < p.nt ? s.n - n0 : p.nt;
  GemmShape sub{1, 1, m, n, s.k};
  long off_a = i * j.sa[0] + jj * j.sa[1] + m0 * j.sa[2];
  long off_b = i * j.sb[0] + jj * j.sb[1] + n0 * j.sb[3];
  long off_c = i * j.sc[0] + jj * j.sc[1] + m0 * j.sc[2] + n0 * j.sc[3];
  if (!j.c) {
    // Only the bf16 / int8 copy is wanted: the fp32 tile stays in this thread's scratch.
    float* ct = scratch<float>(kScratchGemmTile, (size_t)m * n);
    long st[4] = {0, 0, n, 1};
    if (j.b_packed) return run_packed_piece(j, ct, n, off_a, m0, n0, m, n);
    if (j.f32_packed) return run_f32_packed_piece(j, ct, n, off_a, m0, n0, m, n);
    gemm_exec(sub, j.a + off_a * j.ea, j.sa, j.b + off_b * j.eb, j.sb, ct, st, j.alpha, 0.0f, j.bf16);
    apply_epilogue(*j.epi, ct, n, m0, n0, m, n);
    return;
  }
  float* ct = reinterpret_cast<float*>(j.c) + off_c;
  if (j.b_packed) return run_packed_piece(j, ct, j.sc[2], off_a, m0, n0, m, n);
  if (j.f32_packed) return run_f32_packed_piece(j, ct, j.sc[2], off_a, m0, n0, m, n);
  gemm_exec(sub, j.a + off_a * j.ea, j.sa, j.b + off_b * j.eb, j.sb, ct, j.sc, j.alpha, j.beta, j.bf16);
  if (j.epi) apply_epilogue(*j.epi, ct, j.sc[2], m0, n0, m, n);
}

}  // namespace

void gemm_single(const GemmShape& s, const MatView& a, const MatView& b, float* c, const long c_strides[4],
                 float alpha, float beta, int bf16) {
  if (s.m == 0 || s.n == 0 || s.b0 == 0 || s.b1 == 0 || s.k == 0) return;
  gemm_exec(s, a.ptr, a.s, b.ptr, b.s, c, c_strides, alpha, beta, bf16);
}

void gemm_strided(const GemmShape& s, const MatView& a, const MatView& b, float* c, const long c_strides[4],
                  float alpha, float beta, int bf16, const GemmEpilogue* epi, const uint8_t* b_packed) {
  if (b_packed && (bf16 != kInt8 || s.b0 * s.b1 != 1 || alpha != 1.0f || beta != 0.0f || a.s[3] != 1 ||
                   !int8_gemm_supports(s.n, s.k) || !epi || !epi->row_scale || !epi->col_scale || !epi->col_comp))
    throw std::invalid_argument(
        "packed int8 weights need one int8 GEMM with row-major A, alpha 1, beta 0 and the int8 scales");
  if (epi && (s.b0 * s.b1 != 1 || c_strides[3] != 1))
    throw std::invalid_argument("gemm epilogue needs one row-major output matrix");
  if (!c && !(epi && (epi->out16 || epi->out8) && beta == 0.0f))
    throw std::invalid_argument("gemm without an fp32 output needs the bf16 or int8 output and beta = 0");
  if (s.m == 0 || s.n == 0 || s.b0 == 0 || s.b1 == 0) return;
  long c_tmp[4] = {0, 0, s.n, 1};
  if (!c && (s.k == 0 || 2.0 * s.m * s.n * s.k < cavmae_gemm_min_flops())) {
    // Small (or empty) products in one piece: the whole fp32 result in scratch.
    c = scratch<float>(kScratchGemmTile, (size_t)s.m * s.n);
    c_strides = c_tmp;
  }
  if (s.k == 0) {
    // oneDNN rejects K = 0; C = beta * C is all that is left.
    for (long i = 0; i < s.b0; i++)
      for (long j = 0; j < s.b1; j++)
        for (long r = 0; r < s.m; r++)
          for (long q = 0; q < s.n; q++) {
            float* p = c + i * c_strides[0] + j * c_strides[1] + r * c_strides[2] + q * c_strides[3];
            *p = beta == 0.0f ? 0.0f : beta * *p;
          }
    if (epi) apply_epilogue(*epi, c, c_strides[2], 0, 0, s.m, s.n);
    return;
  }
  double flops = 2.0 * s.b0 * s.b1 * s.m * s.n * s.k;
  const bool small = flops < cavmae_gemm_min_flops();
  // fp32 products of one matrix with row-major A and C (the linear layers) on our packed tiles where
  // they run, whatever m and the thread count (a row's values then never depend on the rows it
  // came with): B packed into panels once per call, then the pieces read them.
  const float* f32_packed = nullptr;
  if (bf16 == kF32 && s.b0 * s.b1 == 1 && a.s[3] == 1 && (!c || c_strides[3] == 1) && alpha == 1.0f &&
      beta == 0.0f && f32_gemm_supports(s.n, s.k) && f32_packed_gemm_runs()) {
    float* panels = scratch<float>(kScratchGemmPackedF32, (size_t)s.k * s.n);
    PackJob pj{panels, static_cast<const float*>(b.ptr), b.s[2], b.s[3], s.k, s.n};
    cavmae_parallel_for(div_up(s.n, kF32PanelWidth), small ? 1 : cavmae_threads(), run_pack_panel, &pj);
    f32_packed = panels;
  }
  if (small) {
    if (f32_packed) {
      Job job{&s, nullptr, epi, static_cast<const char*>(a.ptr), nullptr, reinterpret_cast<char*>(c), 4, 4, a.s,
              b.s, c_strides, alpha, beta, bf16, nullptr, f32_packed};
      return run_f32_packed_piece(job, c, c_strides[2], 0, 0, 0, s.m, s.n);
    }
    if (b_packed)
      int8_gemm_packed(reinterpret_cast<int32_t*>(c), c_strides[2], static_cast<const uint8_t*>(a.ptr), a.s[2],
                       b_packed, s.k, s.m, 0, s.n);
    else
      gemm_exec(s, a.ptr, a.s, b.ptr, b.s, c, c_strides, alpha, beta, bf16);
    if (epi) apply_epilogue(*epi, c, c_strides[2], 0, 0, s.m, s.n);
    return;
  }
  if (s.b0 * s.b1 == 1 && cavmae_threads() > 1 && gemm_threading() == GemmThreading::kOnednn && !b_packed &&
      !f32_packed) {
    // One oneDNN call on all threads (its own M x N split), then the epilogue by row blocks.
    if (!c) {
      c = scratch<float>(kScratchGemmTile, (size_t)s.m * s.n);
      c_strides = c_tmp;
    }
    gemm_exec(s, a.ptr, a.s, b.ptr, b.s, c, c_strides, alpha, beta, bf16, cavmae_threads());
    if (epi) {
      EpilogueJob ej{epi, c, c_strides[2], s.m, s.n, 64};
      cavmae_parallel_for((s.m + 63) / 64, cavmae_threads(), run_epilogue_chunk, &ej);
    }
    return;
  }
  // Pieces run through the kernels' pool (dynamic claiming: a thread the OS has not scheduled
  // yet simply takes none), each on one oneDNN thread. OpenMP's static split instead waited at
  // its barrier for a descheduled thread: on a busy 2-core machine a 2-thread GEMM ran at half
  // the 1-thread speed.
  Plan p = make_plan(s, epi && epi->out8, f32_packed ? kF32PanelWidth : 64);
  size_t es = bf16 == kInt8 ? 1 : bf16 == kBf16 ? 2 : 4;
  Job job{&s, &p, epi, static_cast<const char*>(a.ptr), static_cast<const char*>(b.ptr), reinterpret_cast<char*>(c),
          es, es, a.s, b.s, c_strides, alpha, beta, bf16, b_packed, f32_packed};
  cavmae_parallel_for(p.pieces, cavmae_threads(), run_piece, &job);
}

std::string gemm_impl_name(const GemmShape& s, bool transA, bool transB, bool bf16) {
  if (!bf16 && !transA && s.b0 * s.b1 == 1 && f32_gemm_supports(s.n, s.k) && f32_packed_gemm_runs())
    return "cavmae:f32-packed-avx512 (8x48 tiles)";
  if (bf16 && !onednn_has_bf16_matmul()) return "bf16 widened to fp32, " + gemm_impl_name(s, transA, transB, false);
  long sa[4] = {0, s.m * s.k, transA ? 1 : s.k, transA ? s.m : 1};
  long sb[4] = {0, s.k * s.n, transB ? 1 : s.n, transB ? s.k : 1};
  long sc[4] = {0, s.m * s.n, s.n, 1};
  try {
    ThreadScope scope(1);  // every piece runs on one oneDNN thread (gemm_strided)
    auto pd = make_pd(state(), s, sa, sb, sc, 1.0f, 0.0f, bf16);
    return pd.impl_info_str();
  } catch (const std::exception&) {
    return "";
  }
}

std::string dnnl_version_string() {
  const dnnl_version_t* v = dnnl_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
}

std::string dnnl_isa_string() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "all";
  }
}

void gemm_clear_cache() { state().cache.clear(); }

// ---- the Kernels-API entry points ----

// Elements spanned by `batch` matrices of `per` elements placed `stride` apart.
static size_t span_of(long batch, long stride, long per) {
  return batch == 0 || per == 0 ? 0 : (size_t)((batch - 1) * stride + per);
}

void matmul_ex(const void* a, bool a_bf16, const void* b, bool b_bf16, float* c, long m, long n, long k, bool transA,
               bool transB, float alpha, float beta, bool bf16, const GemmEpilogue* epi) {
  if (m == 0 || n == 0) return;
  const KernelTable& kt = select_kernels();
  const void* pa = a;
  const void* pb = b;
  if (bf16 && k > 0 && !a_bf16) {
    uint16_t* a16 = scratch<uint16_t>(kScratchGemmA16, (size_t)m * k);
    kt.f32_to_bf16(a16, static_cast<const float*>(a), m * k);
    pa = a16;
  }
  if (bf16 && k > 0 && !b_bf16) {
    uint16_t* b16 = scratch<uint16_t>(kScratchGemmB16, (size_t)k * n);
    kt.f32_to_bf16(b16, static_cast<const float*>(b), k * n);
    pb = b16;
  }
  MatView va{pa, {0, 0, transA ? 1 : k, transA ? m : 1}};
  MatView vb{pb, {0, 0, transB ? 1 : n, transB ? k : 1}};
  long sc[4] = {0, 0, n, 1};
  gemm_strided(GemmShape{1, 1, m, n, k}, va, vb, c, sc, alpha, beta, bf16, epi);
}

void matmul_int8(const float* x, const uint8_t* xq_in, const float* x_scale_in, const int8_t* wq, const float* w_scale,
                 const int32_t* w_comp, float* c, long m, long n, long k, const float* bias, int kind, float* aux,
                 uint8_t* out8, float* out8_scale, const uint8_t* w_packed) {
  if (m == 0 || n == 0) return;
  const KernelTable& kt = select_kernels();
  const uint8_t* xq = xq_in;
  const float* x_scale = x_scale_in;
  if (!xq) {
    // Activations per row to u8 with their scales, in the calling thread's scratch (read by every piece).
    uint8_t* q = scratch<uint8_t>(kScratchInt8Rows, (size_t)m * k);
    float* qs = scratch<float>(kScratchInt8RowScales, (size_t)m);
    kt.quantize_rows_u8(q, qs, x, m, k);
    xq = q;
    x_scale = qs;
  }
  MatView va{xq, {0, 0, k, 1}};
  MatView vb{wq, {0, 0, 1, k}};  // weights [n, k] read as [k, n]
  long sc[4] = {0, 0, n, 1};
  GemmEpilogue epi{bias, kind, aux, n, x_scale, w_scale, w_comp};
  epi.out8 = out8;
  epi.out8_scale = out8_scale;
  epi.ldout8 = n;
  if (k == 0) {
    if (!c) c = scratch<float>(kScratchGemmTile, (size_t)m * n);
    // No products: every sum is 0 (the k = 0 path writes fp32 zeros, which are int32 zeros too).
    memset(c, 0, sizeof(float) * (size_t)m * n);
    apply_epilogue(epi, c, n, 0, 0, m, n);
    return;
  }
  // The packed weights only where our kernel runs (else oneDNN reads wq: same sums).
  const uint8_t* packed = w_packed && int8_gemm_reads_packed(n, k) ? w_packed : nullptr;
  if (!packed && !wq)
    throw std::invalid_argument("gemmInt8: wq is null, and this CPU's GEMM does not read packed weights (packsInt8Weights)");
  gemm_strided(GemmShape{1, 1, m, n, k}, va, vb, c, sc, 1.0f, 0.0f, kInt8, &epi, packed);
}

void pack_weights_int8(const int8_t* wq, long n, long k, uint8_t* out) {
  if (!int8_gemm_supports(n, k))
    throw std::invalid_argument("packWeightsInt8: n (" + std::to_string(n) + ") must be a multiple of 64 and k (" +
                                std::to_string(k) + ") a multiple of 4");
  int8_pack_weights(out, wq, n, k);
}

void quantize_weights(const float* w, long n, long k, int8_t* wq, float* scale, int32_t* comp) {
  select_kernels().quantize_weights_s8(wq, scale, comp, w, n, k);
}

void matmul_batched(const float* a, const float* b, float* c, long batch, long m, long n, long k, bool transA,
                    bool transB, long strideA, long strideB, long strideC, float alpha, float beta, bool bf16) {
  if (batch == 0 || m == 0 || n == 0) return;
  // Broadcast (stride 0) or overlapping outputs: oneDNN needs distinct batch entries, so run
  // the matrices one by one, in order (the reference's semantics).
  if (batch > 1 && (strideA == 0 || strideB == 0 || strideC < m * n)) {
    for (long i = 0; i < batch; i++)
      matmul_batched(a + i * strideA, b + i * strideB, c + i * strideC, 1, m, n, k, transA, transB, 0, 0, 0,
                     alpha, beta, bf16);
    return;
  }
  GemmShape s{1, batch, m, n, k};
  const void* pa = a;
  const void* pb = b;
  if (bf16 && k > 0) {
    const KernelTable& kt = select_kernels();
    size_t na = span_of(batch, strideA, m * k), nb = span_of(batch, strideB, k * n);
    uint16_t* a16 = scratch<uint16_t>(kScratchGemmA16, na);
    uint16_t* b16 = scratch<uint16_t>(kScratchGemmB16, nb);
    kt.f32_to_bf16(a16, a, (long)na);
    kt.f32_to_bf16(b16, b, (long)nb);
    pa = a16;
    pb = b16;
  }
  MatView va{pa, {0, strideA, transA ? 1 : k, transA ? m : 1}};
  MatView vb{pb, {0, strideB, transB ? 1 : n, transB ? k : 1}};
  long sc[4] = {0, strideC, n, 1};
  gemm_strided(s, va, vb, c, sc, alpha, beta, bf16);
}
