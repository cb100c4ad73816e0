// parallel_for(n, f): calls f(i) for i in [0, n) on all cores (OpenMP, static schedule), or on
// one thread in a build without OpenMP. Each f(i) must write its own outputs: with a static
// schedule and no shared accumulators the results never depend on the thread count.
#pragma once
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace pcn::cpu {

// Whether the calling thread runs its kernels' loops on itself alone (set_serial_thread): a
// second host thread that calls kernels while the main one trains (the data loader's, on the
// CPU) would otherwise start an OpenMP team of its own, and with more OpenMP threads than cores
// libgomp lets its waiting threads spin only briefly before they sleep: every parallel region of
// the training step then waits for its threads to be woken (the default training run: 23.1-29.1
// s against 19.3-21.9 s with the loader's kernels on its own thread).
inline bool& serial_thread() {
  static thread_local bool serial = false;
  return serial;
}

// The threads a parallel_for started here would use (1 inside another parallel_for, or on a
// serial thread).
inline int64_t parallel_threads() {
#ifdef _OPENMP
  return omp_in_parallel() || serial_thread() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

template <typename F>
void parallel_for(int64_t n, const F& f) {
#ifdef _OPENMP
// One item runs on the calling thread: starting a team for it costs more than it saves, and on
// a loaded machine the woken thread may wait a whole scheduler time slice. Inside another
// parallel_for (work already split across the cores, e.g. a convolution over images) the loop
// runs on the calling thread.
#pragma omp parallel for schedule(static) if (n > 1 && !omp_in_parallel() && !serial_thread())
#endif
  for (int64_t i = 0; i < n; ++i) f(i);
}

// parallel_for for loops whose whole work is `work` element operations (a pointwise op: one per
// element; an op that costs more per element, such as softmax's exp, weighs its elements so):
// below kParallelWork of them, waking the other threads costs about as much as it saves (and on
// a loaded machine a woken thread may wait a whole scheduler time slice), so the loop runs on
// the calling thread. The same f(i) either way, so the results are the same.
inline constexpr int64_t kParallelWork = int64_t{1} << 15;

template <typename F>
void parallel_for_work(int64_t n, int64_t work, const F& f) {
  if (work < kParallelWork) {
    for (int64_t i = 0; i < n; ++i) f(i);
  } else {
    parallel_for(n, f);
  }
}

// A pointwise loop over n elements: f(begin, end) on chunks of about kPointwiseChunk elements
// (half of kParallelWork, so the smallest loop that runs in parallel gives every thread of two
// a chunk), their count a multiple of the thread count and their size a multiple of 16 floats
// (a cache line), so that every thread gets the same share: with chunks of exactly
// kPointwiseChunk, conv1's 34,848 weights made chunks of 16,384, 16,384 and 2,080, and one thread
// did 16 times the other's work. Below kParallelWork elements the chunks run on the calling
// thread (parallel_for_work). For element-wise loops only: the chunks depend on the thread count.
inline constexpr int64_t kPointwiseChunk = kParallelWork / 2;

template <typename F>
void parallel_chunks(int64_t n, const F& f) {
  if (n <= 0) return;
  const int64_t threads = parallel_threads();
  const int64_t chunks = ((n + kPointwiseChunk - 1) / kPointwiseChunk + threads - 1) / threads * threads;
  const int64_t size = ((n + chunks - 1) / chunks + 15) / 16 * 16;
  parallel_for_work((n + size - 1) / size, n, [&](int64_t c) {
    const int64_t begin = c * size;
    f(begin, n - begin < size ? n : begin + size);
  });
}

}  // namespace pcn::cpu
