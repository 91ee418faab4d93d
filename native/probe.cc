// The hardware probes of probe.h.
#include "probe.h"

#include <stdint.h>

#include <chrono>

#include "gemm_int8.h"
#include "kernels.h"
#include "pool.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct ProbeJob {
  double (*fn)(long);
  long iters;
};

}  // namespace

double probe_clock_ghz(double ms) {
  auto t0 = std::chrono::steady_clock::now();
  long rounds = 0;
  uint64_t x = 0;
  do {
#define CAVMAE_ADD8 "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
    for (int i = 0; i < 10000; i++)
      __asm__ volatile(CAVMAE_ADD8 CAVMAE_ADD8 CAVMAE_ADD8 CAVMAE_ADD8 CAVMAE_ADD8 CAVMAE_ADD8 CAVMAE_ADD8 CAVMAE_ADD8
                       : "+r"(x));
#undef CAVMAE_ADD8
    rounds++;
  } while (seconds_since(t0) < ms / 1e3);
  return 64.0 * 10000.0 * (double)rounds / seconds_since(t0) / 1e9;
}

double probe_peak_gflops(int kind, int threads, double ms) {
  __builtin_cpu_init();
  if (kind == 1 && !__builtin_cpu_supports("avx512bf16")) return 0.0;
  if (kind == 3 && !__builtin_cpu_supports("avx512vnni")) return 0.0;
  if (kind == 4 && !amx_int8_usable()) return 0.0;
  if (kind == 5 && !amx_bf16_usable()) return 0.0;
  const KernelTable& kt = select_kernels();
  ProbeJob job{kind == 1   ? kt.peak_fma_bf16
               : kind == 3 ? kt.peak_fma_int8
               : kind == 4 ? peak_amx_int8
               : kind == 5 ? peak_amx_bf16
                           : kt.peak_fma_fp32,
               1000};
  if (job.fn(1) == 0.0) return 0.0;  // not compiled into this kernel table (AVX2)
  // Calibrate chunks of ~1 ms on this thread.
  for (;;) {
    auto t0 = std::chrono::steady_clock::now();
    job.fn(job.iters);
    double dt = seconds_since(t0);
    if (dt > 2e-4 || job.iters > (1L << 30)) {
      job.iters = (long)((double)job.iters * 1e-3 / (dt > 1e-9 ? dt : 1e-9)) + 1;
      break;
    }
    job.iters *= 4;
  }
  long nchunks = (long)(ms * (double)threads) + threads;
  double per_round = job.fn(1);
  auto t0 = std::chrono::steady_clock::now();
  cavmae_parallel_for(
      nchunks, threads,
      [](void* ctx, long) {
        auto* j = static_cast<ProbeJob*>(ctx);
        j->fn(j->iters);
      },
      &job);
  double dt = seconds_since(t0);
  return per_round * (double)job.iters * (double)nchunks / dt / 1e9;
}
