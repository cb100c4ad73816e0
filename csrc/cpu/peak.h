// The CPU's FP32 arithmetic peak, measured: what the cores deliver at the clock they actually
// run at with every used core busy (turbo, or a hypervisor's or the power limit's clock), which
// the nominal clock in /proc/cpuinfo does not tell.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pcn::cpu {

struct FmaPeak {
  std::string isa;                  // the instruction-set path whose probe ran (isa.h)
  double flops_per_s = 0.0;         // the sum over the threads
  std::vector<double> per_thread;   // each thread's best rate, FLOP/s
  int64_t flops_per_step = 0;       // FLOPs of one round of the 12 chains (vector width x 24)
};

// Runs the active path's probe (SimdKernels::fma_chains) on every thread of a parallel region
// at once for about `seconds`, in blocks of about 0.1 ms; each thread's rate is its fastest
// block (a block in which another process took the core is slower, never faster), and the peak
// is their sum. ValueError unless 0 < seconds <= 10.
FmaPeak measure_fma_peak(double seconds);

}  // namespace pcn::cpu
