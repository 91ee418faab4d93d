// oneDNN matmul with a per-thread primitive cache (see gemm.h for the contract).
//
// Why a cache of our own on top of oneDNN's: building the op descriptor and primitive
// descriptor costs tens of microseconds even when oneDNN's global cache hits; ours keys on the
// raw shape and keeps the memory objects too, so a cached call is a few hundred nanoseconds of
// overhead. The scratchpad is user-managed (one grow-only buffer per thread) so execution never
// allocates.
#include "gemm.h"

#include "kernels.h"
#include "pool.h"

#include <omp.h>
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
                                     const long sc[4], float alpha, float beta, bool bf16) {
  auto in_dt = bf16 ? memory::data_type::bf16 : memory::data_type::f32;
  auto a_md = make_desc(s, s.m, s.k, sa, in_dt);
  auto b_md = make_desc(s, s.k, s.n, sb, in_dt);
  auto c_md = make_desc(s, s.m, s.n, sc, memory::data_type::f32);
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

}  // namespace

int gemm_threads_for(const GemmShape& s) {
  // Below ~4 MFLOP (e.g. 128x128x128 = 4.2 MFLOP) the second thread's start-up and the split of
  // a few tiles cost more than they save (measured; docs/kernels.md).
  double flops = 2.0 * s.b0 * s.b1 * s.m * s.n * s.k;
  return flops < cavmae_gemm_min_flops() ? 1 : cavmae_threads();
}

void gemm_strided(const GemmShape& s, const MatView& a, const MatView& b, float* c, const long c_strides[4],
                  float alpha, float beta, bool bf16) {
  if (s.m == 0 || s.n == 0 || s.b0 == 0 || s.b1 == 0) return;
  ThreadState& st = state();
  int threads = gemm_threads_for(s);
  Key key;
  memset(&key, 0, sizeof(key));
  key.dims[0] = s.b0;
  key.dims[1] = s.b1;
  key.dims[2] = s.m;
  key.dims[3] = s.n;
  key.dims[4] = s.k;
  canon_strides(s, a.s, key.sa);
  canon_strides(s, b.s, key.sb);
  canon_strides(s, c_strides, key.sc);
  memcpy(&key.alpha_bits, &alpha, 4);
  memcpy(&key.beta_bits, &beta, 4);
  key.bf16 = bf16;
  key.threads = threads;

  if (s.k == 0) {
    // oneDNN rejects K = 0; C = beta * C is all that is left.
    for (long i = 0; i < s.b0; i++)
      for (long j = 0; j < s.b1; j++)
        for (long r = 0; r < s.m; r++)
          for (long q = 0; q < s.n; q++) {
            float* p = c + i * key.sc[0] + j * key.sc[1] + r * key.sc[2] + q * key.sc[3];
            *p = beta == 0.0f ? 0.0f : beta * *p;
          }
    return;
  }
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
  if (threads > 1) cavmae_pool_park();  // our idle workers sleep now instead of spinning against OpenMP
  e->a.set_data_handle(const_cast<void*>(a.ptr));
  e->b.set_data_handle(const_cast<void*>(b.ptr));
  e->c.set_data_handle(c);
  e->scratch.set_data_handle(st.scratch.data());
  e->prim.execute(st.strm, {{DNNL_ARG_SRC, e->a},
                            {DNNL_ARG_WEIGHTS, e->b},
                            {DNNL_ARG_DST, e->c},
                            {DNNL_ARG_SCRATCHPAD, e->scratch}});
  st.strm.wait();
}

std::string gemm_impl_name(const GemmShape& s, bool transA, bool transB, bool bf16) {
  long sa[4] = {0, s.m * s.k, transA ? 1 : s.k, transA ? s.m : 1};
  long sb[4] = {0, s.k * s.n, transB ? 1 : s.n, transB ? s.k : 1};
  long sc[4] = {0, s.m * s.n, s.n, 1};
  try {
    ThreadScope scope(gemm_threads_for(s));
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
    uint16_t* a16 = reinterpret_cast<uint16_t*>(cavmae_scratch(1, (na + 1) / 2));
    uint16_t* b16 = reinterpret_cast<uint16_t*>(cavmae_scratch(2, (nb + 1) / 2));
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
