// The AVX2 + FMA path (isa.h). CMakeLists.txt compiles this file alone with -mavx2 -mfma
// -ffp-contract=off; nothing here runs unless isa.cpp found AVX2 and FMA on the CPU.
#include <cmath>
#include <cstdint>

#include "isa.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

namespace pcn::cpu {
namespace simd_avx2_impl {
#include "simd_kernels.h"

// 6 x 16: 12 ymm accumulators + 2 B vectors + 1 broadcast of the 16 registers. Each k step
// loads 2 B vectors and broadcasts 6 A values for 12 FMAs, which keeps both FMA pipes busy.
constexpr int MR = 6, NR = 16;

void gemm_micro(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                int64_t rows, int64_t cols, bool add) {
  // Every loop over acc is fully unrolled, so it lives in registers (an indexed access
  // anywhere would put it on the stack and store it on every k step).
  __m256 acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
  for (int64_t p = 0; p < kc; ++p, ap += MR, bp += NR) {
    const __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m256 a = _mm256_broadcast_ss(ap + i);
      acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
    }
  }
  if (rows == MR && cols == NR) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      if (add) {
        acc[i][0] = _mm256_add_ps(_mm256_loadu_ps(ci), acc[i][0]);
        acc[i][1] = _mm256_add_ps(_mm256_loadu_ps(ci + 8), acc[i][1]);
      }
      _mm256_storeu_ps(ci, acc[i][0]);
      _mm256_storeu_ps(ci + 8, acc[i][1]);
    }
    return;
  }
  float tile[MR * NR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    _mm256_storeu_ps(tile + i * NR, acc[i][0]);
    _mm256_storeu_ps(tile + i * NR + 8, acc[i][1]);
  }
  store_partial<MR, NR>(tile, c, ldc, rows, cols, add);
}

PCN_SIMD_TABLE("avx2", MR, NR, gemm_micro)
}  // namespace simd_avx2_impl

const SimdKernels* simd_avx2() { return &simd_avx2_impl::table; }

}  // namespace pcn::cpu

#else
namespace pcn::cpu {
const SimdKernels* simd_avx2() { return nullptr; }  // not an x86-64 build
}  // namespace pcn::cpu
#endif
