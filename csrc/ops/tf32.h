// The tensor-core check ops (csrc/kernels/tf32.h): tf32_round(x) = x rounded to TF32 (10-bit
// mantissa, ties away from zero); mma_m16n8k8_tf32(a, b, c) = a b + c per tile, a (T, 16, 8),
// b (T, 8, 8), c (T, 16, 8), with a and b read as TF32. For tests of cuda/ptx.cuh.
#pragma once
#include "csrc/kernels/tf32.h"

namespace pcn {
Tensor tf32_round(const Tensor& x);
Tensor mma_m16n8k8_tf32(const Tensor& a, const Tensor& b, const Tensor& c);
}  // namespace pcn
