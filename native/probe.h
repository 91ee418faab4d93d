// Hardware probes for the benchmark: the machine's raw arithmetic peak and clock, to state GEMM
// and model rates against (docs/kernels.md, "GEMM against the hardware FMA peak").
#pragma once

// GFLOP/s of register-only FMA chains run as ~1 ms chunks on the pool with `threads` threads
// for about `ms` milliseconds of wall time. kind 0: fp32 vfmadd; kind 1: bf16 vdpbf16ps (0
// where the CPU or the build lacks AVX512-BF16); kind 3: int8 vpdpbusd GOP/s (0 without
// AVX512-VNNI).
double probe_peak_gflops(int kind, int threads, double ms);

// Clock estimate in GHz from a dependent chain of integer adds (one per cycle) on the calling
// thread, for about `ms` milliseconds.
double probe_clock_ghz(double ms);
