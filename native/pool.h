// A small persistent thread pool for the hand-written kernels.
//
// Contract: cavmae_parallel_for(nchunks, nt, fn, ctx) runs fn(ctx, i) once for every chunk
// i in [0, nchunks) on the calling thread plus up to nt - 1 pool workers, and returns when all
// chunks are done; if a chunk throws, the first exception is rethrown on the caller afterwards. Chunks are claimed dynamically (a tagged counter), so a worker that the OS
// has not scheduled yet simply claims nothing: the caller never waits for a thread that never
// started, which matters on a 2-core machine shared with data-loading threads or other
// processes (OpenMP's static split plus join barrier waited a whole time slice there; see
// docs/kernels.md). Workers spin briefly after a job, then sleep. Only one caller uses the pool
// at a time; a concurrent caller (another JS worker thread, or a kernel called from inside a
// chunk) runs its chunks serially instead of waiting.
#pragma once

extern "C" {
typedef void (*cavmae_chunk_fn)(void* ctx, long chunk);
void cavmae_parallel_for(long nchunks, int nt, cavmae_chunk_fn fn, void* ctx);
// Threads the calling JS thread asked for (setThreads), default: the number of processors.
int cavmae_threads();
void cavmae_set_threads(int n);
// GEMMs under this many flops run on one thread (CAVMAE_GEMM_MIN_FLOPS overrides, for tuning).
double cavmae_gemm_min_flops();
}
