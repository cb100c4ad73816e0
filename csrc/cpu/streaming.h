// Outputs written past the caches. A pointwise op whose operands are larger than the last-level
// cache cannot keep its output there for the next op anyway; writing it with non-temporal
// stores (SimdKernels::stream_copy) saves the read that an ordinary store first makes of every
// line it writes (a third of a ReLU forward's memory traffic, a quarter of its backward's).
// Smaller outputs keep ordinary stores: the next op finds them in the cache.
#pragma once
#include <algorithm>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "isa.h"

namespace pcn::cpu {

// The bytes an op must touch (inputs and outputs together) for its outputs to be streamed: the
// last-level cache's size (the largest cache sysfs lists for CPU 0; never, where none is
// listed), or what set_streaming_threshold set.
int64_t streaming_threshold();
// Sets it (0: always stream, where the path can), returns the previous value; for tests.
int64_t set_streaming_threshold(int64_t bytes);

inline bool stream_outputs(int64_t bytes_touched) {
  return simd().stream_copy != nullptr && bytes_touched > streaming_threshold();
}

// Runs write(i0, m, out), which writes outputs i0..i0+m-1 of n to out[0..m), over the n outputs
// at y: in one call into y itself, or (stream) block by block into a buffer in L1 that
// stream_copy then stores past the caches, fenced before returning (so that other threads see
// the stores once the parallel region ends). The values are the same either way.
template <class Write>
void write_outputs(float* y, int64_t n, bool stream, const Write& write) {
  if (!stream) {
    write(int64_t{0}, n, y);
    return;
  }
  constexpr int64_t kBlock = 1024;  // 4 KiB
  alignas(64) float buf[kBlock];
  for (int64_t i0 = 0; i0 < n; i0 += kBlock) {
    const int64_t m = std::min(kBlock, n - i0);
    write(i0, m, buf);
    simd().stream_copy(buf, y + i0, m);
  }
#if defined(__x86_64__) || defined(__i386__)
  _mm_sfence();
#endif
}

}  // namespace pcn::cpu
