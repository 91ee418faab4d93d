// The hand-written (non-GEMM) kernels, as a table of plain function pointers.
//
// Contract: kernels_impl.h is compiled twice (kernels_avx2.cc, kernels_avx512.cc) and each copy
// fills one KernelTable; select_kernels() picks the AVX-512 one when the CPU supports it
// (checked once, at load). Semantics are those of src/kernels/api.ts: row-major fp32, explicit
// sizes, backward kernels accumulate (+=). Arguments are validated by the N-API layer; these
// functions trust them. Threading: the chunked, dynamically scheduled pool of pool.h (oneDNN
// keeps its own OpenMP threads for GEMM); small problems run on the calling thread only.
#pragma once
#include <stddef.h>
#include <stdint.h>

// The scalars of one Adam step, computed in double and rounded to fp32 once, as PyTorch does.
struct AdamScalars {
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float weight_decay;  // applied as L2 (g += wd*p) when !decoupled
  float decay;         // 1 - lr*wd, applied to p when decoupled
  float bc2_sqrt;      // sqrt(1 - beta2^step)
  float neg_step_size; // -lr / (1 - beta1^step)
  float eps;
  bool l2, decoupled_decay;
};

struct KernelTable {
  const char* isa;
  void (*layernorm_forward)(float* out, float* mean, float* rstd, const float* inp, const float* weight,
                            const float* bias, long rows, long cols, float eps);
  // layernorm_forward, the output quantised per row to u8 (+128) with scales (quantize_rows_u8 of
  // it) instead of written in fp32: the input of an int8 GEMM.
  void (*layernorm_forward_u8)(uint8_t* q, float* qscale, float* mean, float* rstd, const float* inp,
                               const float* weight, const float* bias, long rows, long cols, float eps);
  // layernorm_forward, the output rounded to bf16 (f32_to_bf16 of it) instead of written in fp32:
  // the operand of a bf16 GEMM.
  void (*layernorm_forward_bf16)(uint16_t* out16, float* mean, float* rstd, const float* inp, const float* weight,
                                 const float* bias, long rows, long cols, float eps);
  void (*layernorm_backward)(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                             const float* weight, const float* mean, const float* rstd, long rows, long cols);
  void (*gelu_forward)(float* out, const float* inp, long n);
  // gelu_forward, the output rounded to bf16 (f32_to_bf16 of it) instead of written in fp32.
  void (*gelu_forward_bf16)(uint16_t* out16, const float* inp, long n);
  void (*gelu_backward)(float* dinp, const float* inp, const float* dout, long n);
  void (*softmax_forward)(float* out, const float* inp, long rows, long cols, float scale);
  // softmax_forward, plus the bf16 rounding of every output row into p (row stride ldp elements,
  // an odd row padded with one zero), in the same pass; out may alias inp.
  void (*softmax_forward_bf16)(float* out, uint16_t* p, long ldp, const float* inp, long rows, long cols,
                               float scale);
  // accumulate=true: dinp += ...; false: dinp = ... (dinp may then alias dout).
  void (*softmax_backward)(float* dinp, const float* out, const float* dout, long rows, long cols, float scale,
                           bool accumulate);
  // int8 attention's probabilities: u8 rne(255 exp(scale x - max)) per row and their sums
  // (attention_int8.h), on the calling thread.
  void (*softmax_rows_u8)(const float* x, long ldx, uint8_t* p, long ldp, int32_t* rowsum, long rows, long cols,
                          float scale);
  void (*bias_add)(float* x, const float* bias, long rows, long cols);
  void (*bias_backward)(float* dbias, const float* dout, long rows, long cols);
  void (*add)(float* out, const float* a, const float* b, long n);
  void (*axpy)(float* y, const float* x, float alpha, long n);
  void (*gather_rows)(float* out, const float* inp, const int32_t* index, long n_index, long cols);
  void (*scatter_add_rows)(float* out, const float* inp, const int32_t* index, long n_index, long cols);
  void (*mean_pool)(float* out, const float* inp, long B, long T, long D);
  void (*mean_pool_backward)(float* dinp, const float* dout, long B, long T, long D);
  void (*l2_normalize)(float* out, float* norms, const float* inp, long rows, long cols, float eps);
  void (*l2_normalize_backward)(float* dinp, const float* dout, const float* out, const float* norms, long rows,
                                long cols, float eps);
  void (*adam_update)(float* param, const float* grad, float* m, float* v, long n, const struct AdamScalars& s);
  void (*f32_to_bf16)(uint16_t* out, const float* inp, long n);
  void (*bf16_to_f32)(float* out, const uint16_t* inp, long n);
  // Memory probe for the benchmark: dst = src (streams n floats in and out), threaded like the kernels.
  void (*copy)(float* dst, const float* src, long n);
  // int8 dequantisation, bias, GELU or residual add applied to one GEMM output tile (kernels_impl.h).
  void (*gemm_epilogue)(float* c, long ldc, long rows, long cols, const float* bias, int kind, float* aux,
                        long ldaux, const float* row_scale, const float* col_scale, const int32_t* col_comp);
  // int8: activations per row to u8 (+128) with scales; weights per output row to s8 with scales and
  // the +128 compensation (see kernels_impl.h).
  void (*quantize_rows_u8)(uint8_t* q, float* scale, const float* x, long rows, long cols);
  void (*quantize_weights_s8)(int8_t* q, float* scale, int32_t* comp, const float* w, long rows, long cols);
  // Hardware peak probe for the benchmark: `iters` rounds of independent register-only FMA chains
  // (fp32 vfmadd, or bf16 vdpbf16ps: 0 when not compiled in) on the calling thread; returns flops.
  double (*peak_fma_fp32)(long iters);
  double (*peak_fma_bf16)(long iters);
  // int8 vpdpbusd (AVX512-VNNI; 0 when not compiled in): ops (multiply and add = 2) per call.
  double (*peak_fma_int8)(long iters);
};

extern "C" const KernelTable* cavmae_kernels_avx2();
extern "C" const KernelTable* cavmae_kernels_avx512();  // nullptr if not compiled in

// The table for this CPU (AVX-512 when available), chosen once.
const KernelTable& select_kernels();

// Below this many bytes touched, a kernel runs on the calling thread only: waking the second
// thread costs more than it saves (see docs/kernels.md). CAVMAE_PARALLEL_MIN_BYTES overrides
// it (read once, for tuning).
extern "C" long cavmae_parallel_min_bytes();
