// Every inline-PTX instruction the engine uses, one device function each: no kernel contains
// `asm` itself (tests/test_source_rules.py). In the simulator build (PYCONVNET_SIM) each
// function is its twin in sim/include/pcn_sim_ptx.h, written from the PTX ISA's definition of
// the instruction (the rounding, and for mma the documented fragment layouts); tests/test_ptx.py
// checks every function against a scalar reference, on the simulator and on a GPU.
//
// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 (sm_80+): the warp computes D = A B + C,
// A 16 x 8 (row-major), B 8 x 8 (column-major), C and D 16 x 8 in FP32. With
// groupID = lane >> 2 and tig = lane % 4 (threadID_in_group), lane `lane` holds
//   A: a[0] = A[groupID][tig],     a[1] = A[groupID + 8][tig],
//      a[2] = A[groupID][tig + 4], a[3] = A[groupID + 8][tig + 4]
//   B: b[0] = B[tig][groupID],     b[1] = B[tig + 4][groupID]
//   C, D: c[i] = C[groupID + 8 * (i >= 2)][2 * tig + (i & 1)], i = 0..3
// (PTX ISA, "Matrix Fragments for mma.m16n8k8", .tf32 multiplicands, .f32 accumulators).
#pragma once
#include <cuda_runtime.h>  // in the simulator build, with the twins (pcn_sim_device.h)

namespace pcn::cuda {

#ifdef PYCONVNET_SIM
using pcn_sim::mma_m16n8k8_tf32;
using pcn_sim::opaque_pointer;
using pcn_sim::tf32_round;
#else

// p itself (mov.b64), hidden from the compiler's address arithmetic: a pointer formed once per
// thread (a loader's window origin) stays one register pair. Without it ptxas re-derives
// param + (index + offset) * 4 at every gathered load: an LDC of the parameter and four integer
// instructions per element in the convolutions' v3-v5 loops (benchmarks/README.md). Its
// test is every conv2d test of versions 3-5: a wrong address fails them.
__device__ __forceinline__ const float* opaque_pointer(const float* p) {
  const float* r;
  asm("mov.b64 %0, %1;" : "=l"(r) : "l"(p));
  return r;
}

// x rounded to TF32 (cvt.rna.tf32.f32): the nearest value with a 10-bit mantissa, ties away
// from zero, returned as an FP32 whose low 13 mantissa bits are zero. A value that rounds past
// TF32's largest becomes +-Inf; subnormals are rounded, not flushed; +-Inf stays; a NaN keeps
// its high bits (one whose payload lies only in the low 13 becomes +-Inf: ptxas 13.0's sm_90
// code clears the low bits of Inf and NaN without rounding).
__device__ __forceinline__ float tf32_round(float x) {
  unsigned int r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return __uint_as_float(r);
}

// acc (this lane's C/D fragment) += A B for the warp's m16n8k8 tile, a and b this lane's TF32
// fragments (tf32_round'ed values; the layouts above). Every lane of the warp must call it
// together (mma.sync.aligned): the same call site, no lane exited.
__device__ __forceinline__ void mma_m16n8k8_tf32(float (&acc)[4], const float (&a)[4],
                                                 const float (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};"
      : "+f"(acc[0]), "+f"(acc[1]), "+f"(acc[2]), "+f"(acc[3])
      : "r"(__float_as_uint(a[0])), "r"(__float_as_uint(a[1])), "r"(__float_as_uint(a[2])),
        "r"(__float_as_uint(a[3])), "r"(__float_as_uint(b[0])), "r"(__float_as_uint(b[1])));
}

#endif

}  // namespace pcn::cuda
