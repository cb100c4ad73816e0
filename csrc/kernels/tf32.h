// The tensor-core instructions as ops, to check cuda/ptx.cuh's wrappers against a scalar
// reference (tests/test_ptx.py): on CUDA each runs the wrapper itself (on a GPU the instruction,
// in the simulator build its twin); the CPU twins compute the PTX ISA's definitions directly.
// Not kernel-versioned: one kernel per device.
#pragma once
#include "csrc/tensor.h"
#include "kernels.h"

namespace pcn {

PCN_KERNELS(
// y[i] = x[i] rounded to TF32 (cvt.rna.tf32.f32), for n elements.
void tf32_round(const Tensor& x, Tensor& y);
// d[t] = a[t] b[t] + c[t] for each of T tiles, a (T, 16, 8), b (T, 8, 8), c and d (T, 16, 8),
// all row-major: mma.sync.m16n8k8.row.col.f32.tf32.tf32.f32 with a and b read as TF32.
void mma_m16n8k8_tf32(const Tensor& a, const Tensor& b, const Tensor& c, Tensor& d);
)

}  // namespace pcn
