// Elementwise addition kernels (the maths: csrc/ops/add.h).
#pragma once
#include "csrc/tensor.h"
#include "kernels.h"

namespace pcn {

// CPU 1: a loop; CUDA 1: one thread per element, grid-stride.
inline constexpr OpVersions kAddVersions{{1, 1}, {1, 1}};

PCN_KERNELS(
void add_forward(const Tensor& a, const Tensor& b, Tensor& y);
)

}  // namespace pcn
