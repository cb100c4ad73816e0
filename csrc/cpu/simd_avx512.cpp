// The AVX-512 path (isa.h). CMakeLists.txt compiles this file alone with -mavx512f -mavx512vl
// -mavx512bw -mavx512dq -mavx2 -mfma -ffp-contract=off; nothing here runs unless isa.cpp found
// all of those on the CPU.
#include <cmath>
#include <cstdint>

#include "csrc/philox.h"
#include "isa.h"

#if defined(__AVX512F__) && defined(__AVX512VL__) && defined(__AVX512BW__) && \
    defined(__AVX512DQ__) && defined(__FMA__)
// GCC 12's AVX-512 intrinsics (vmaxps, vcvtps2pd, vextractf64x4, ...) pass _mm512_undefined_*()
// as the merge source of their unmasked forms, which -Wuninitialized then reports wherever they
// are inlined (GCC bug 105593, fixed in GCC 13): silenced for the intrinsics' header only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop
#else
#include <immintrin.h>
#endif

namespace pcn::cpu {
namespace simd_avx512_impl {
#include "simd_kernels.h"

// 6 x 32: 12 zmm accumulators (of 32 registers), 2 B vectors and 6 broadcasts per k step.
struct Zmm {
  using Reg = __m512;
  static constexpr int kWidth = 16;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
  static Reg broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
};
constexpr int MR = 6, NR = 2 * Zmm::kWidth;

PCN_SIMD_TABLE("avx512", MR, NR, (gemm_micro_fma<Zmm, MR>), (gemm_micro_rows_fma<Zmm, MR>),
               (fma_chains_vec<Zmm>))
}  // namespace simd_avx512_impl

const SimdKernels* simd_avx512() { return &simd_avx512_impl::table; }

}  // namespace pcn::cpu

#else
namespace pcn::cpu {
const SimdKernels* simd_avx512() { return nullptr; }  // not an x86-64 build
}  // namespace pcn::cpu
#endif
