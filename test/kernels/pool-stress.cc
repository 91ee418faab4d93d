// Stress program for the kernels' thread pool (native/pool.cc), built and run by
// test/kernels/pool.test.ts. Many short jobs back to back, alternating two chunk functions whose
// contexts live on the caller's stack and differ in layout, while busy threads compete for the
// cores. Every chunk must run exactly once, within its job's range, with its own job's context,
// and never after its job returned (the context is poisoned then). pool.cc is compiled with
// CAVMAE_POOL_STRESS_PAUSE defined as a pause, which widens the windows that preemption opens on
// a loaded machine from nanoseconds to microseconds, so a protocol race shows in a second of run.
#include "pool.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {
std::atomic<long> errors{0};
constexpr unsigned kMagicA = 0xA11CEu, kMagicB = 0xB0B0u, kDead = 0xDEADu;

struct JobA {
  unsigned magic;
  long n;
  std::atomic<int> hits[64];
};
struct JobB {
  long n;
  unsigned magic;
  std::atomic<int> hits[64];
  double pad[3];
};

void spin(long chunk) {
  volatile double x = 0;
  for (long k = 0; k < 200 + (chunk % 7) * 50; k++) x = x + 1.0;
}

void fnA(void* ctx, long i) {
  auto* j = static_cast<JobA*>(ctx);
  if (j->magic != kMagicA || i < 0 || i >= j->n) { errors++; return; }
  j->hits[i]++;
  spin(i);
}
void fnB(void* ctx, long i) {
  auto* j = static_cast<JobB*>(ctx);
  if (j->magic != kMagicB || i < 0 || i >= j->n) { errors++; return; }
  j->hits[i]++;
  spin(i);
}
}  // namespace

int main(int argc, char** argv) {
  long jobs = argc > 1 ? atol(argv[1]) : 200000;
  int hogs = argc > 2 ? atoi(argv[2]) : 2;
  int nt = argc > 3 ? atoi(argv[3]) : 2;
  std::atomic<bool> stop{false};
  std::vector<std::thread> hog;
  for (int h = 0; h < hogs; h++)
    hog.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        volatile double x = 0;
        for (int k = 0; k < 20000; k++) x = x + 1.0;
        if (rand() % 4 == 0) std::this_thread::yield();
      }
    });
  unsigned seed = 12345;
  for (long t = 0; t < jobs; t++) {
    seed = seed * 1103515245u + 12345u;
    long n = 2 + (seed >> 16) % 62;
    if (t & 1) {
      JobA j;
      j.magic = kMagicA;
      j.n = n;
      for (auto& h : j.hits) h.store(0);
      cavmae_parallel_for(n, nt, fnA, &j);
      for (long i = 0; i < n; i++) if (j.hits[i].load() != 1) errors++;
      j.magic = kDead;
      j.n = 0;
    } else {
      JobB j;
      j.magic = kMagicB;
      j.n = n;
      for (auto& h : j.hits) h.store(0);
      cavmae_parallel_for(n, nt, fnB, &j);
      for (long i = 0; i < n; i++) if (j.hits[i].load() != 1) errors++;
      j.magic = kDead;
      j.n = 0;
    }
  }
  stop = true;
  for (auto& h : hog) h.join();
  printf("jobs %ld errors %ld\n", jobs, errors.load());
  return errors.load() == 0 ? 0 : 1;
}
