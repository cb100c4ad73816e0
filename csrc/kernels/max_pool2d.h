// Max-pooling kernels (the maths and the gradient rule: csrc/ops/max_pool2d.h).
#pragma once
#include <cstdint>

#include "csrc/tensor.h"
#include "kernels.h"

namespace pcn {

// CPU 1 and CUDA 1: forward one output per window; backward a gather per input position.
inline constexpr OpVersions kMaxPool2dVersions{{1, 1}, {1, 1}};

// Valid arguments: kernel <= H, W.
PCN_KERNELS(
void max_pool2d_forward(const Tensor& x, Tensor& y, int64_t kernel, int64_t stride, int version);
void max_pool2d_backward(const Tensor& dy, const Tensor& x, const Tensor& y, Tensor& dx,
                         int64_t kernel, int64_t stride, int version);
)

}  // namespace pcn
