// Attention core over a packed qkv (see attention.cc; semantics in src/kernels/api.ts).
#pragma once

void attention_forward(float* out, float* att, const float* qkv, long B, long T, long C, long H, float scale,
                       bool bf16);
void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv, const float* att, long B,
                        long T, long C, long H, float scale, bool bf16);

// Inference only (no backward follows): out = attention(qkv) in the given precision: 0 fp32, 1 bf16
// (= attention_forward with bf16), 2 int8 on AVX512-VNNI (attention_int8.h; the bf16 path where
// the CPU or the head size does not allow it).
void attention_inference(float* out, const float* qkv, long B, long T, long C, long H, float scale, int precision);
