// The baseline path (isa.h): compiled with the build's default flags (SSE2 on x86-64).
#include <cmath>
#include <cstdint>

#include "csrc/philox.h"
#include "isa.h"

namespace pcn::cpu {
namespace simd_baseline_impl {
#include "simd_kernels.h"

// 4 x 8: 32 accumulators in 8 SSE registers, leaving room for the B row and the broadcast A
// values.
PCN_SIMD_TABLE("baseline", 4, 8, (gemm_micro_generic<4, 8>), nullptr, mul_add_chains)
}  // namespace simd_baseline_impl

const SimdKernels* simd_baseline() { return &simd_baseline_impl::table; }

}  // namespace pcn::cpu
