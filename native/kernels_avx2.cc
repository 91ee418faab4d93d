// The kernels compiled for the x86-64-v3 baseline (AVX2 + FMA), and the run-time choice between
// them and the AVX-512 copy.
#include <stdlib.h>
#include <string.h>

#include "kernels_impl.h"

extern "C" const KernelTable* cavmae_kernels_avx2() { return &kTable; }

static bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

// CAVMAE_NATIVE_ISA=avx2 forces the baseline kernels (tests use it to cover both copies).
const KernelTable& select_kernels() {
  static const KernelTable* table = [] {
    const char* force = getenv("CAVMAE_NATIVE_ISA");
    if (force && strcmp(force, "avx2") == 0) return cavmae_kernels_avx2();
    return cpu_has_avx512() ? cavmae_kernels_avx512() : cavmae_kernels_avx2();
  }();
  return *table;
}
