// Attention core over a packed qkv (see attention.cc; semantics in src/kernels/api.ts).
#pragma once

void attention_forward(float* out, float* att, const float* qkv, long B, long T, long C, long H, float scale,
                       bool bf16);
void attention_backward(float* dqkv, float* scratch, const float* dout, const float* qkv, const float* att, long B,
                        long T, long C, long H, float scale, bool bf16);
