// ReLU kernels (the maths: csrc/ops/relu.h).
#pragma once
#include "csrc/tensor.h"
#include "kernels.h"

namespace pcn {

// CPU 1: a loop; CUDA 1: one thread per element, grid-stride.
inline constexpr OpVersions kReluVersions{{1, 1}, {1, 1}};

PCN_KERNELS(
void relu_forward(const Tensor& x, Tensor& y);
void relu_backward(const Tensor& dy, const Tensor& y, Tensor& dx);
)

}  // namespace pcn
