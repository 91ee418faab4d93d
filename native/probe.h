// Hardware probes for the benchmark: the machine's raw arithmetic peak and clock, to state GEMM
// and model rates against (docs/kernels.md, "GEMM against the hardware FMA peak").
#pragma once

// GFLOP/s of register-only FMA chains run as ~1 ms chunks on the pool with `threads` threads
// for about `ms` milliseconds of wall time. kind 0: fp32 vfmadd; kind 1: bf16 vdpbf16ps (0
// where the CPU or the build lacks AVX512-BF16); kind 3: int8 vpdpbusd GOP/s (0 without
// AVX512-VNNI); kind 4: int8 AMX tdpbusd GOP/s, kind 5: bf16 AMX tdpbf16ps (0 without AMX or
// without Linux's leave to use the tiles).
double probe_peak_gflops(int kind, int threads, double ms);

// Clock estimate in GHz from a dependent chain of integer adds (one per cycle) on the calling
// thread, for about `ms` milliseconds.
double probe_clock_ghz(double ms);
