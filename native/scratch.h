// Per-thread scratch buffers of the native kernels, one named slot per use.
//
// Contract: scratch<T>(slot, n) returns the calling thread's buffer for `slot`, holding at least
// n elements of T (64-byte alignment is not promised: fp32 alignment only). Buffers are
// grow-only and never freed while the thread lives, so a warmed-up kernel never allocates.
// A slot's contents are only valid until the same thread asks for the same slot again: two
// buffers that must be alive at once need two slots, which is why every use has its own name.
// Slots are per thread, so pieces of a parallel_for each get their own.
#pragma once
#include <stddef.h>

enum ScratchSlot : int {
  // kernels_impl.h: per-group partial sums (LayerNorm backward's dweight/dbias, column sums) and
  // scatter's seen-flags; each kernel uses it only within one call.
  kScratchKernelPartials = 0,
  // gemm.cc: bf16 copies of fp32 GEMM operands A and B.
  kScratchGemmA16,
  kScratchGemmB16,
  // attention.cc: bf16 copy of the whole qkv (oneDNN path), of each probability block, of the
  // scores' gradient block, and of dout.
  kScratchAttnQkv16,
  kScratchAttnProb16,
  kScratchAttnDscores,
  kScratchAttnDscores16,
  kScratchAttnDout16,
  // attention.cc: a block's probabilities when they are not kept, and their recomputation in
  // backward.
  kScratchAttnScores,
  kScratchAttnScoresRecompute,
  // gemm.cc: int8 linear layer: activations quantised to u8, and their per-row scales.
  kScratchInt8Rows,
  kScratchInt8RowScales,
  // attention.cc / attention_bf16.h: packed k and v of one head, a block of q rows and of
  // probabilities, in vdpbf16ps layouts.
  kScratchAttnKPacked,
  kScratchAttnVPacked,
  kScratchAttnQRows,
  kScratchAttnProbRows,
  // gemm.cc: the fp32 tile of a GEMM whose output is wanted in bf16 only.
  kScratchGemmTile,
  // attention.cc's int8 path: key scales and compensations, value scales, query scales and the
  // probability row sums of one head (attention_int8.h).
  kScratchAttnInt8Scales,
  // kernels_impl.h: one fp32 row of a kernel whose output leaves in another form (LayerNorm to u8).
  kScratchRowTemp,
  // gemm.cc: fp32 copies of bf16 GEMM operands where oneDNN has no bf16 matmul (CPUs without
  // AVX-512, e.g. AMD Zen 3).
  kScratchGemmA32,
  kScratchGemmB32,
  // gemm.cc: one K chunk's fp32 sums of an int8 GEMM computed through fp32 (no VNNI).
  kScratchGemmC32,
  // gemm.cc: the last rows of an fp32 GEMM run padded to four rows (AVX2 oneDNN), A's and C's.
  kScratchGemmTailA,
  kScratchGemmTailC,
  // gemm_int8_avx2.cc: a row group's activations and one K chunk of a weight panel, widened to
  // int16.
  kScratchInt8Rows16,
  kScratchInt8Panel16,
  // gemm.cc: B of an fp32 GEMM packed into gemm_f32.h's panels (the calling thread's; its pieces
  // read it).
  kScratchGemmPackedF32,
  kScratchSlots
};

// The raw accessor (C linkage: also called from the separately compiled AVX-512 kernel table):
// at least `floats` floats in the calling thread's buffer `slot`.
extern "C" float* cavmae_scratch(int slot, size_t floats);

// At least n elements of T in the calling thread's buffer `slot`.
template <class T>
inline T* scratch(ScratchSlot slot, size_t n) {
  return reinterpret_cast<T*>(cavmae_scratch(slot, (n * sizeof(T) + sizeof(float) - 1) / sizeof(float)));
}
