// parallel_for(n, f): calls f(i) for i in [0, n) on all cores (OpenMP, static schedule), or on
// one thread in a build without OpenMP. Each f(i) must write its own outputs: with a static
// schedule and no shared accumulators the results never depend on the thread count.
#pragma once
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace pcn::cpu {

// The threads a parallel_for started here would use (1 inside another parallel_for).
inline int64_t parallel_threads() {
#ifdef _OPENMP
  return omp_in_parallel() ? 1 : omp_get_max_threads();
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
#pragma omp parallel for schedule(static) if (n > 1 && !omp_in_parallel())
#endif
  for (int64_t i = 0; i < n; ++i) f(i);
}

// parallel_for for loops whose whole work is `work` elements: below about 64K of them, waking
// the other threads costs more than it saves (tens of microseconds on a loaded machine), so the
// loop runs on the calling thread. The same f(i) either way, so the results are the same.
template <typename F>
void parallel_for_work(int64_t n, int64_t work, const F& f) {
  if (work < (int64_t{1} << 16)) {
    for (int64_t i = 0; i < n; ++i) f(i);
  } else {
    parallel_for(n, f);
  }
}

}  // namespace pcn::cpu
