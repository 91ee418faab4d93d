// The kernels compiled for AVX-512 (F/BW/VL/DQ); used only when the CPU reports those features.
#define CAVMAE_SIMD_AVX512 1
#include "kernels_impl.h"

extern "C" const KernelTable* cavmae_kernels_avx512() { return &kTable; }
