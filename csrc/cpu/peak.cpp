#include "peak.h"

#include <algorithm>
#include <chrono>

#include "csrc/error.h"
#include "isa.h"
#include "parallel.h"

namespace pcn::cpu {

FmaPeak measure_fma_peak(double seconds) {
  PCN_REQUIRE(seconds > 0.0 && seconds <= 10.0, ValueError,
              "measure_cpu_peak: seconds must be in (0, 10], got ", seconds);
  using clock = std::chrono::steady_clock;
  const SimdKernels& kern = simd();
  FmaPeak peak;
  peak.isa = kern.name;
  float sink = 0.0f;
  peak.flops_per_step = kern.fma_chains(1, &sink);
  // About 0.1 ms a block at 1-4 steps a nanosecond; the first block of each thread warms up.
  constexpr int64_t kSteps = 1 << 15;
  const int64_t threads = parallel_threads();
  peak.per_thread.assign(static_cast<size_t>(threads), 0.0);
  std::vector<float> sinks(static_cast<size_t>(threads));
  parallel_for(threads, [&](int64_t t) {
    const clock::time_point start = clock::now();
    double best = 0.0, elapsed = 0.0;
    while (elapsed < seconds) {
      const clock::time_point t0 = clock::now();
      const int64_t flops = kern.fma_chains(kSteps, &sinks[t]);
      const clock::time_point t1 = clock::now();
      const double dt = std::chrono::duration<double>(t1 - t0).count();
      if (dt > 0.0) best = std::max(best, static_cast<double>(flops) / dt);
      elapsed = std::chrono::duration<double>(t1 - start).count();
    }
    peak.per_thread[t] = best;
  });
  for (double r : peak.per_thread) peak.flops_per_s += r;
  return peak;
}

}  // namespace pcn::cpu
