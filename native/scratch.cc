// The per-thread scratch buffers of scratch.h.
#include "scratch.h"

#include <vector>

extern "C" float* cavmae_scratch(int slot, size_t floats) {
  thread_local std::vector<float> slots[kScratchSlots];
  std::vector<float>& s = slots[slot];
  if (s.size() < floats) s.resize(floats);
  return s.data();
}
