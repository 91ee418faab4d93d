// The kernels' thread pool (contract in pool.h).
//
// Job protocol: the caller writes the job's parameters (fn, ctx, nchunks, helpers) into the slot
// of its generation (two slots, by parity), sets the claim counter to (generation << 32 | 0) and
// bumps `generation`. Every participant claims chunk indices with a compare-and-swap that also
// checks the generation tag. A worker reads the parameters of job G from G's slot before it
// claims: the caller only rewrites that slot for job G + 2, after the claim counter has carried
// tag G + 1, so a worker whose claim with tag G succeeds has read G's own parameters, never a
// mixture with the next job's (one shared set of parameters allowed that: a worker preempted
// between waking and claiming could run the next job's function on a stale context, or an index
// past the end of its job, and count a chunk of a job it did not run). `done` counts finished
// chunks; the caller returns when it reaches nchunks, which also means no worker is still inside
// fn. Waiting uses a short spin (the next kernel usually follows within microseconds), then a
// condition variable.
#include "pool.h"

#include <immintrin.h>
#include <omp.h>
#include <sched.h>
#include <unistd.h>

#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

// A pause at the two places where preemption exposes the protocol's windows (between publishing
// a job's parameters and opening its claims; between a worker reading them and claiming). Empty
// in the addon; test/kernels/pool-stress.cc compiles this file with it to make those windows wide.
#ifndef CAVMAE_POOL_STRESS_PAUSE
#define CAVMAE_POOL_STRESS_PAUSE()
#endif

namespace {

// How long an idle worker spins before sleeping. Long enough to bridge the gap between two
// kernels called back to back from JS (a few microseconds), short enough not to steal a core
// from the next GEMM's OpenMP threads for long.
constexpr auto kSpin = std::chrono::microseconds(50);

class Pool {
 public:
  void run(long nchunks, int nt, cavmae_chunk_fn fn, void* ctx) {
    if (nt > 1 && nchunks > 1 && busy_.exchange(true, std::memory_order_acquire) == false) {
      ensure_workers(nt - 1);
      uint64_t gen = generation_.load(std::memory_order_relaxed) + 1;
      Job& job = jobs_[gen & 1];
      job.fn.store(fn, std::memory_order_release);
      job.ctx.store(ctx, std::memory_order_release);
      job.nchunks.store(nchunks, std::memory_order_release);
      job.helpers.store(nt - 1, std::memory_order_release);
      done_.store(0, std::memory_order_relaxed);
      CAVMAE_POOL_STRESS_PAUSE();
      next_.store(gen << 32, std::memory_order_seq_cst);
      // seq_cst store then load (and the worker's locked increment then load): neither side can
      // miss the other, so a worker never sleeps through a job it should have been woken for.
      generation_.store(gen, std::memory_order_seq_cst);
      if (sleepers_.load(std::memory_order_seq_cst) > 0) {
        std::lock_guard<std::mutex> lk(mu_);
        cv_.notify_all();
      }
      work(gen, nchunks, fn, ctx);
      // Wait for chunks claimed by workers; spin first, then yield the core to them.
      int spins = 0;
      while (done_.load(std::memory_order_acquire) < nchunks) {
        if (++spins < 4000) _mm_pause();
        else sched_yield();
      }
      // A chunk that threw (oneDNN error, bad_alloc) is rethrown here, on the caller, after every
      // other chunk has finished: a worker thread must never unwind out of its loop.
      std::exception_ptr error;
      {
        std::lock_guard<std::mutex> lk(mu_);
        error = error_;
        error_ = nullptr;
      }
      busy_.store(false, std::memory_order_release);
      if (error) std::rethrow_exception(error);
      return;
    }
    for (long i = 0; i < nchunks; i++) fn(ctx, i);
  }

 private:
  // Claims and runs chunks of job `gen` until none are left.
  void work(uint64_t gen, long nchunks, cavmae_chunk_fn fn, void* ctx) {
    uint64_t v = next_.load(std::memory_order_acquire);
    for (;;) {
      if ((v >> 32) != gen || (long)(v & 0xffffffffu) >= nchunks) return;
      if (next_.compare_exchange_weak(v, v + 1, std::memory_order_acq_rel, std::memory_order_relaxed)) {
        try {
          fn(ctx, (long)(v & 0xffffffffu));
        } catch (...) {
          std::lock_guard<std::mutex> lk(mu_);
          if (!error_) error_ = std::current_exception();
        }
        done_.fetch_add(1, std::memory_order_release);
        v = next_.load(std::memory_order_acquire);
      }
    }
  }

  void ensure_workers(int n) {
    // Grown only by the caller holding busy_, so no lock is needed around workers_.
    while ((int)workers_.size() < n) {
      int index = (int)workers_.size();
      workers_.emplace_back([this, index] { loop(index); });
    }
  }

  void loop(int index) {
    uint64_t seen = generation_.load(std::memory_order_acquire);
    for (;;) {
      uint64_t gen = wait_for_job(seen);
      seen = gen;
      // The slot may already hold job gen + 2's parameters if this thread was preempted that long;
      // the claim counter then carries a later tag and work() claims nothing.
      const Job& job = jobs_[gen & 1];
      if (index >= job.helpers.load(std::memory_order_acquire)) continue;  // this job wants fewer threads
      auto fn = job.fn.load(std::memory_order_acquire);
      void* ctx = job.ctx.load(std::memory_order_acquire);
      long nchunks = job.nchunks.load(std::memory_order_acquire);
      CAVMAE_POOL_STRESS_PAUSE();
      work(gen, nchunks, fn, ctx);
    }
  }

  uint64_t wait_for_job(uint64_t seen) {
    auto until = std::chrono::steady_clock::now() + kSpin;
    for (int i = 0;; i++) {
      uint64_t g = generation_.load(std::memory_order_acquire);
      if (g != seen) return g;
      _mm_pause();
      if ((i & 63) == 63 && std::chrono::steady_clock::now() > until) break;
    }
    std::unique_lock<std::mutex> lk(mu_);
    sleepers_.fetch_add(1, std::memory_order_seq_cst);
    cv_.wait(lk, [&] { return generation_.load(std::memory_order_seq_cst) != seen; });
    sleepers_.fetch_sub(1, std::memory_order_seq_cst);
    return generation_.load(std::memory_order_acquire);
  }

  std::vector<std::thread> workers_;
  std::atomic<bool> busy_{false};
  std::atomic<uint64_t> generation_{0};
  std::atomic<uint64_t> next_{0};
  std::atomic<long> done_{0};
  struct Job {
    std::atomic<cavmae_chunk_fn> fn{nullptr};
    std::atomic<void*> ctx{nullptr};
    std::atomic<long> nchunks{0};
    std::atomic<int> helpers{0};  // pool workers wanted (nt - 1)
  };
  Job jobs_[2];  // job G's parameters live in jobs_[G & 1] (see the protocol above)
  std::atomic<int> sleepers_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  std::exception_ptr error_;  // first exception thrown by a chunk of the current job (under mu_)
};

Pool& pool() {
  // Never destroyed: worker threads must not be joined from a static destructor while the
  // process (or a dlclose) tears down; the OS reclaims them at exit.
  static Pool* p = new Pool();
  return *p;
}

int default_threads() {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : (int)n;
}

thread_local int tl_threads = 0;

}  // namespace

extern "C" void cavmae_parallel_for(long nchunks, int nt, cavmae_chunk_fn fn, void* ctx) {
  pool().run(nchunks, nt, fn, ctx);
}

extern "C" int cavmae_threads() {
  if (tl_threads == 0) tl_threads = default_threads();
  return tl_threads;
}

extern "C" void cavmae_set_threads(int n) {
  tl_threads = n;
  omp_set_num_threads(n);  // oneDNN's OpenMP team for this JS thread
}

namespace {
long env_long(const char* name, long fallback) {
  const char* v = getenv(name);
  if (!v || !*v) return fallback;
  char* end;
  long x = strtol(v, &end, 10);
  return *end == 0 && x >= 0 ? x : fallback;
}
}  // namespace

extern "C" long cavmae_parallel_min_bytes() {
  static const long v = env_long("CAVMAE_PARALLEL_MIN_BYTES", 256 * 1024);
  return v;
}

extern "C" double cavmae_gemm_min_flops() {
  static const double v = (double)env_long("CAVMAE_GEMM_MIN_FLOPS", 4500000);
  return v;
}
