// Our own int8 GEMM (AVX512-VNNI, or exact AVX2) for the linear layers of int8 inference: C (int32 sums) =
// A (u8 rows) · Wᵀ, with the weights packed once per loaded model. It replaces oneDNN's
// `gemm:jit` for the shapes it takes (docs/kernels.md, "int8: our own kernel over packed
// weights"): on Zen 4 that ran at 63-73% of the vpdpbusd peak on one thread, these tiles at
// 88-96% (the weights read in the order the tile consumes them, the packing paid once instead
// of per call and piece).
//
// Packed layout of W [n, k] (s8, row-major; n a multiple of 64, k of 4): panels of 64 output
// channels, each [k/4][64][4] bytes: byte t of dword (q, j) of panel p is W[64p + j][4q + t].
// One k-quad of a panel is then four 64-byte vectors, 16 channels each, what one vpdpbusd
// multiplies by a broadcast dword of 4 activations.
#pragma once
#include <stdint.h>

// Which of our packed int8 GEMMs runs here (read once):
// - kAmx: AMX-INT8 with the AVX-512 kernel table and the OS's leave to use the tiles
//   (gemm_int8_amx.cc, tdpbusd) for k a multiple of 64, the VNNI kernel for other k;
// - kVnni: AVX512-VNNI with the AVX-512 kernel table (gemm_int8.cc, vpdpbusd);
// - kAvx2: where oneDNN's int8 GEMM is not exact (no VNNI of either width: it saturates), or the
//   AVX2 kernel table is forced (CAVMAE_NATIVE_ISA=avx2, so tests cover it on AVX-512 machines)
//   (gemm_int8_avx2.cc, vpmaddwd);
// - kNone: oneDNN (AVX-VNNI without AVX-512: its vpdpbusd multiplies 4x the bytes of vpmaddwd).
// CAVMAE_INT8_GEMM=onednn forces kNone (the GEMM then takes wq: oneDNN with VNNI, else fp32
// GEMMs over the widened operands), CAVMAE_INT8_GEMM=avx2 forces kAvx2 and =vnni kVnni on an AMX
// CPU; all for comparisons and tests.
enum class Int8PackedKernel { kNone, kAmx, kVnni, kAvx2 };
Int8PackedKernel int8_packed_kernel();
inline bool int8_packed_gemm_runs() { return int8_packed_kernel() != Int8PackedKernel::kNone; }
// The shapes the packed GEMM takes.
inline bool int8_gemm_supports(long n, long k) { return n > 0 && k > 0 && n % 64 == 0 && k % 4 == 0; }
// Whether a GEMM of this shape runs the packed kernel when given packed weights (packsInt8Weights).
inline bool int8_gemm_reads_packed(long n, long k) { return int8_packed_gemm_runs() && int8_gemm_supports(n, k); }

// out [n * k bytes] = W [n, k] in the packed layout above.
void int8_pack_weights(uint8_t* out, const int8_t* w, long n, long k);

// The dequantisation done in registers as each tile finishes, the same operations in the same
// order as the element-wise epilogue (kernels_impl.h gemm_epilogue): v = (float)(acc - comp[j]),
// v = (v * row_scale[r]) * col_scale[j], v += bias[j] (if bias), v = add[r][j] + v (if add).
// The tile then writes floats. Pointers are relative to the call's first row and column.
struct Int8Dequant {
  const float* row_scale;
  const float* col_scale;
  const int32_t* col_comp;
  const float* bias;
  const float* add;
  long ld_add;
};

// Called on each finished tile, rows [r0, r0 + rows) x columns [j0, j0 + 64) of c (relative to
// the call's c), right after the kernel stored it: the caller's epilogue then reads it from L1.
typedef void (*Int8TileDone)(void* ctx, long r0, long rows, long j0);

// c[r][j] (int32, row stride ldc) = Σ_k a[r][k] · W[n0 + j][k] for rows r < m and columns
// j < n (n0, n multiples of 64), a u8 rows with stride lda, W packed (all of its n_total columns).
// dq (optional): c receives the dequantised floats instead (as float*). done (optional) is
// called on every tile after that. The AVX2 kernel keeps the int32 sums of K chunks in c between
// chunks, so dq->add must not alias c (as with the oneDNN path's second pass).
void int8_gemm_packed(int32_t* c, long ldc, const uint8_t* a, long lda, const uint8_t* packed, long k, long m,
                      long n0, long n, const Int8Dequant* dq = nullptr, Int8TileDone done = nullptr,
                      void* done_ctx = nullptr);
// The AMX tile configuration of our kernels (palette 1, tmm0-7 all 16 rows x 64 bytes), loaded by
// each kernel call (_tile_loadconfig): the configuration is per thread, and oneDNN's AMX kernels
// load their own.
struct alignas(64) AmxTileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};

// AMX-INT8 is on the CPU and Linux granted this process the tile data (asked once, here).
bool amx_int8_usable();
// AMX-BF16 as well (the probe of oneDNN's bf16 AMX kernels' peak).
bool amx_bf16_usable();
// The hardware probes' register-only AMX chains (probe.h kinds 4, 5): the ops done in iters rounds.
double peak_amx_int8(long iters);
double peak_amx_bf16(long iters);
// The kernels behind it (int8_gemm_packed picks by int8_packed_kernel() and k).
void int8_gemm_packed_amx(int32_t* c, long ldc, const uint8_t* a, long lda, const uint8_t* packed, long k, long m,
                          long n0, long n, const Int8Dequant* dq, Int8TileDone done, void* done_ctx);
void int8_gemm_packed_vnni(int32_t* c, long ldc, const uint8_t* a, long lda, const uint8_t* packed, long k, long m,
                           long n0, long n, const Int8Dequant* dq, Int8TileDone done, void* done_ctx);
void int8_gemm_packed_avx2(int32_t* c, long ldc, const uint8_t* a, long lda, const uint8_t* packed, long k, long m,
                           long n0, long n, const Int8Dequant* dq, Int8TileDone done, void* done_ctx);
