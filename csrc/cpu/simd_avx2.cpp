// The AVX2 + FMA path (isa.h). CMakeLists.txt compiles this file alone with -mavx2 -mfma
// -ffp-contract=off; nothing here runs unless isa.cpp found AVX2 and FMA on the CPU.
#include <cmath>
#include <cstdint>

#include "csrc/philox.h"
#include "isa.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

namespace pcn::cpu {
namespace simd_avx2_impl {
#include "simd_kernels.h"

// 6 x 16: 12 ymm accumulators + 2 B vectors + 1 broadcast of the 16 registers. Each k step
// loads 2 B vectors and broadcasts 6 A values for 12 FMAs, which keeps both FMA pipes busy.
struct Ymm {
  using Reg = __m256;
  static constexpr int kWidth = 8;
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
  static Reg broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
};
constexpr int MR = 6, NR = 2 * Ymm::kWidth;

PCN_SIMD_TABLE("avx2", MR, NR, (gemm_micro_fma<Ymm, MR>), (gemm_micro_rows_fma<Ymm, MR>),
               (fma_chains_vec<Ymm>))
}  // namespace simd_avx2_impl

const SimdKernels* simd_avx2() { return &simd_avx2_impl::table; }

}  // namespace pcn::cpu

#else
namespace pcn::cpu {
const SimdKernels* simd_avx2() { return nullptr; }  // not an x86-64 build
}  // namespace pcn::cpu
#endif
