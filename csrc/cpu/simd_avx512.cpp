// The AVX-512 path (isa.h). CMakeLists.txt compiles this file alone with -mavx512f -mavx512vl
// -mavx512bw -mavx512dq -mavx2 -mfma -ffp-contract=off; nothing here runs unless isa.cpp found
// all of those on the CPU.
#include <cmath>
#include <cstdint>

#include "isa.h"

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BW__) && \
    defined(__AVX512DQ__) && defined(__FMA__)
#include <immintrin.h>

namespace pcn::cpu {
namespace simd_avx512_impl {
#include "simd_kernels.h"

// 6 x 32: 12 zmm accumulators (of 32 registers), 2 B vectors and 6 broadcasts per k step.
constexpr int MR = 6, NR = 32;

void gemm_micro(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                int64_t rows, int64_t cols, bool add) {
  // Every loop over acc is fully unrolled, so it lives in registers (an indexed access
  // anywhere would put it on the stack and store it on every k step).
  __m512 acc[MR][2];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t p = 0; p < kc; ++p, ap += MR, bp += NR) {
    const __m512 b0 = _mm512_loadu_ps(bp), b1 = _mm512_loadu_ps(bp + 16);
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      const __m512 a = _mm512_set1_ps(ap[i]);
      acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
    }
  }
  if (rows == MR && cols == NR) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      if (add) {
        acc[i][0] = _mm512_add_ps(_mm512_loadu_ps(ci), acc[i][0]);
        acc[i][1] = _mm512_add_ps(_mm512_loadu_ps(ci + 16), acc[i][1]);
      }
      _mm512_storeu_ps(ci, acc[i][0]);
      _mm512_storeu_ps(ci + 16, acc[i][1]);
    }
    return;
  }
  float tile[MR * NR];
#pragma GCC unroll 6
  for (int i = 0; i < MR; ++i) {
    _mm512_storeu_ps(tile + i * NR, acc[i][0]);
    _mm512_storeu_ps(tile + i * NR + 16, acc[i][1]);
  }
  store_partial<MR, NR>(tile, c, ldc, rows, cols, add);
}

PCN_SIMD_TABLE("avx512", MR, NR, gemm_micro)
}  // namespace simd_avx512_impl

const SimdKernels* simd_avx512() { return &simd_avx512_impl::table; }

}  // namespace pcn::cpu

#else
namespace pcn::cpu {
const SimdKernels* simd_avx512() { return nullptr; }  // not an x86-64 build
}  // namespace pcn::cpu
#endif
