// Matrix multiplication through oneDNN's matmul primitive.
//
// Contract: every operand is a strided view with up to two batch dimensions,
//   C[i,j][m,n] = alpha * sum_k A[i,j][m,k] * B[i,j][k,n] + beta * C[i,j][m,n],
// where element (i, j, r, c) of a view lives at ptr + i*s[0] + j*s[1] + r*s[2] + c*s[3]
// (strides in elements). Transposes are just swapped strides, and attention reads q, k, v of
// every head straight out of the packed qkv buffer the same way, without a permute copy.
// A and B are both fp32 or both bf16 (then the products accumulate in fp32); C is fp32.
// Primitives are created once per (shape, strides, dtype, alpha, beta, threads) and cached per
// calling thread. beta == 0 never reads C.
#pragma once
#include <stdint.h>

#include <string>

struct MatView {
  const void* ptr;
  long s[4];  // strides: batch0, batch1, row, column
};

struct GemmShape {
  long b0, b1, m, n, k;
};

// What to do to each output tile right after it is computed (one row-major output matrix only):
// c += bias (per column, if bias); kind 1: aux = c (if aux), c = gelu(c); kind 2: c = aux + c.
struct GemmEpilogue {
  const float* bias;
  int kind;  // 0 none, 1 GELU, 2 add
  float* aux;
  long ldaux;
  // int8 GEMMs (C holds int32 sums): C = (acc - col_comp) * row_scale * col_scale first.
  const float* row_scale = nullptr;
  const float* col_scale = nullptr;
  const int32_t* col_comp = nullptr;
  // Also the final values rounded to bf16 (the input of a following bf16 GEMM), written per tile
  // while it is in cache. With c == nullptr only these are produced (each tile's fp32 values
  // live in per-thread scratch; needs beta == 0).
  uint16_t* out16 = nullptr;
  long ldout16 = 0;
  // Also the final values quantised per row to u8 (+128) with their scales (the input of a
  // following int8 GEMM). Needs whole rows in one tile: such GEMMs are cut by rows only. With
  // c == nullptr only these are produced (needs beta == 0).
  uint8_t* out8 = nullptr;
  float* out8_scale = nullptr;
  long ldout8 = 0;
};

// GEMM input types (the `bf16` argument of the functions below also takes kInt8).
constexpr int kF32 = 0, kBf16 = 1, kInt8 = 2;

void gemm_strided(const GemmShape& shape, const MatView& a, const MatView& b, float* c, const long c_strides[4],
                  float alpha, float beta, int bf16, const GemmEpilogue* epi = nullptr,
                  const uint8_t* b_packed = nullptr);

// One strided GEMM on the calling thread only (a single-threaded, cached oneDNN primitive). For
// callers that already run in parallel pieces (attention).
void gemm_single(const GemmShape& shape, const MatView& a, const MatView& b, float* c, const long c_strides[4],
                 float alpha, float beta, int bf16);

// The Kernels-API matmul / matmulBatched (dense matrices `stride` elements apart; see api.ts).
// bf16: A and B are rounded to bf16 into per-thread scratch first.
void matmul_batched(const float* a, const float* b, float* c, long batch, long m, long n, long k, bool transA,
                    bool transB, long strideA, long strideB, long strideC, float alpha, float beta, bool bf16);

// The fused linear layer: C [m,n] = alpha op(A) op(B) + beta C, then the epilogue. A or B may
// already be bf16 (a_bf16 / b_bf16: only with bf16); fp32 inputs are rounded to bf16 first when bf16.
void matmul_ex(const void* a, bool a_bf16, const void* b, bool b_bf16, float* c, long m, long n, long k, bool transA,
               bool transB, float alpha, float beta, bool bf16, const GemmEpilogue* epi);

// int8 linear layer: C [m,n] = x [m,k] · Wᵀ with x quantised per row (symmetric, to u8 + 128) and
// W [n,k] quantised per output channel (quantize_weights: s8, scales, +128 compensation); int32
// sums (AVX512-VNNI through oneDNN) dequantised per tile, then bias and the epilogue (kind, aux).
// xq / x_scale (optional): x already quantised (then x is not read; LayerNorm or the previous
// GEMM made them). out8 / out8_scale (optional): C quantised per row as well (c may then be null).
void matmul_int8(const float* x, const uint8_t* xq, const float* x_scale, const int8_t* wq, const float* w_scale,
                 const int32_t* w_comp, float* c, long m, long n, long k, const float* bias, int kind, float* aux,
                 uint8_t* out8, float* out8_scale, const uint8_t* w_packed = nullptr);
// w_packed (optional): W in gemm_int8.h's packed layout (pack_weights_int8; n % 64 == 0, k % 4 ==
// 0), read by our packed kernels where int8_packed_gemm_runs(); the sums are the same either way.
void pack_weights_int8(const int8_t* wq, long n, long k, uint8_t* out);
void quantize_weights(const float* w, long n, long k, int8_t* wq, float* scale, int32_t* comp);

// How a large GEMM uses the threads: kPieces, cut by shape into single-threaded tiles claimed
// from the kernels' pool (robust on a shared, busy machine; bit-identical for any thread count;
// the epilogue runs per tile in cache), or kOnednn, one oneDNN call on its own OpenMP threads
// (larger blocks per core; the epilogue in a second pass). kPieces unless
// CAVMAE_GEMM_THREADING=onednn (kept for comparing the two on a new CPU).
enum class GemmThreading { kPieces, kOnednn };
GemmThreading gemm_threading();
const char* gemm_threading_name();

// How bf16 GEMMs run on this CPU: "onednn" (AVX-512), or "fp32-widened" (oneDNN has no bf16
// matmul without AVX-512: fp32 GEMMs over the exactly widened operands).
const char* gemm_bf16_path();
// How int8 GEMMs run: "amx-packed", "vnni-packed" or "avx2-packed" (our kernels over the packed
// weights; amx-packed takes k not a multiple of 64 to the VNNI kernel),
// "onednn" (exact with VNNI), or "fp32-widened" (no VNNI: oneDNN's vpmaddubsw saturates, so exact
// fp32 GEMMs in K chunks of 512).
const char* gemm_int8_path();

// How fp32 GEMMs of one matrix with row-major A run: "packed" (our AVX-512 tiles over B packed into
// panels per call, gemm_f32.h; n a multiple of 16, alpha 1, beta 0; any m, always as pieces, so a
// row's values do not depend on the other rows of the call) or "onednn".
const char* gemm_f32_path();

// Threads the GEMM of this size will use (1 for small problems; see docs/kernels.md).
int gemm_threads_for(const GemmShape& shape);

// Human-readable identity of the implementation oneDNN chose for this shape (e.g.
// "brg:avx512_core_bf16"), from the primitive descriptor; "" if creation failed.
std::string gemm_impl_name(const GemmShape& shape, bool transA, bool transB, bool bf16);

// oneDNN version and the ISA it dispatches to.
std::string dnnl_version_string();
std::string dnnl_isa_string();

// Drop cached primitives (after the thread count changes they would be rebuilt anyway).
void gemm_clear_cache();
