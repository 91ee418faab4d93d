// Our own fp32 GEMM for the linear layers on AVX-512 (x · Wᵀ and the like): B is packed once per
// call into panels of 48 columns, which 8 x 48 register tiles (24 accumulators, three B vectors
// and one broadcast of A) stream through. On an AMD Zen 5 machine (two 512-bit FMAs per cycle)
// oneDNN 2.6.3's gemm:jit, which packs A and B per piece, ran the model's GEMMs at 75-79% of the
// FMA peak; these tiles at 90-95% (docs/kernels.md, "fp32: our own tiles over packed panels").
//
// Packed layout of B [k, n] (any strides): panel p holds columns [48p, 48p + w), w = min(48,
// n - 48p), as [k][w] floats at offset 48p * k. Every sum runs over k in order, one FMA per k,
// so a value does not depend on how the GEMM is cut into pieces or on the thread count.
#pragma once

constexpr long kF32PanelWidth = 48;

// Whether fp32 GEMMs take this path here (read once): AVX-512 kernel table and AMD family 26
// (the CPU it was measured on), or CAVMAE_F32_GEMM=packed (any AVX-512 CPU, for measuring on a
// new one); CAVMAE_F32_GEMM=onednn keeps oneDNN everywhere.
bool f32_packed_gemm_runs();
// The shapes it takes: n a multiple of 16 (the last panel then holds 16 or 32 columns).
inline bool f32_gemm_supports(long n, long k) { return n > 0 && k > 0 && n % 16 == 0; }

// out [k * n floats] = panels [p0, p1) of B (element (q, j) at b[q * sb_k + j * sb_n]).
void f32_pack_panels(float* out, const float* b, long sb_k, long sb_n, long k, long n, long p0, long p1);

// What each tile does with its sums before storing them, in the order of the element-wise
// epilogue (kernels_impl.h gemm_epilogue): v += bias[j] (if bias), v = add[r][j] + v (if add).
// Pointers are relative to the call's first row and column.
struct F32TileEpilogue {
  const float* bias;
  const float* add;
  long ld_add;
};
// Called on each finished tile, rows [r0, r0 + rows) x columns [j0, j0 + cols) of c (relative to
// the call's c), right after it is stored: the caller's epilogue then reads it from L1.
typedef void (*F32TileDone)(void* ctx, long r0, long rows, long j0, long cols);

// c[r][j] (row stride ldc) = Σ_q a[r][q] · B[q][n0 + j] for r < m, j < n, A row-major with stride
// lda, B packed by f32_pack_panels (all of its columns). The columns are whole panels: n0 a
// multiple of 48, and n too unless the call ends at B's last column.
void f32_gemm_packed(float* c, long ldc, const float* a, long lda, const float* packed, long k, long m, long n0,
                     long n, const F32TileEpilogue* epi = nullptr, F32TileDone done = nullptr,
                     void* done_ctx = nullptr);
