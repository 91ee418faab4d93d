{
  # Native kernels for cavmae. Baseline code is x86-64-v3 (AVX2 + FMA); the AVX-512 copy of the
  # hand-written kernels is a separate static library compiled with AVX-512 flags and chosen at
  # run time, so the .node also loads and runs on CPUs without AVX-512. GEMM: oneDNN (libdnnl,
  # OpenMP runtime, whose thread count setThreads also sets); our own loops use pool.cc.
  "variables": {
    "common_cflags": ["-O3", "-march=x86-64-v3", "-mtune=generic", "-fopenmp", "-fno-math-errno", "-ffp-contract=off", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-maybe-uninitialized"]
  },
  "targets": [
    {
      "target_name": "cavmae_kernels_avx512",
      "type": "static_library",
      "sources": ["kernels_avx512.cc"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags": ["<@(common_cflags)", "-fPIC", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mprefer-vector-width=512"],
      "cflags_cc": ["-std=c++17"]
    },
    {
      "target_name": "cavmae_native",
      "dependencies": ["cavmae_kernels_avx512"],
      "sources": ["addon.cc", "gemm.cc", "attention.cc", "attention_bf16.cc", "attention_int8.cc", "attention_int8_amx.cc", "gemm_f32.cc", "gemm_int8.cc", "gemm_int8_amx.cc", "gemm_int8_avx2.cc", "pool.cc", "scratch.cc", "probe.cc", "kernels_avx2.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags": ["<@(common_cflags)"],
      "cflags_cc": ["-std=c++17", "-fexceptions"],
      "libraries": ["-ldnnl", "-fopenmp"]
    }
  ]
}
