// Max-pooling kernels (the maths, the gradient rule and the taps: csrc/ops/max_pool2d.h).
#pragma once
#include <cstdint>

#include "csrc/tensor.h"
#include "kernels.h"

namespace pcn {

// CPU 1 and CUDA 1: forward one output (and tap) per window; backward a gather per input
// position from the taps.
inline constexpr OpVersions kMaxPool2dVersions{{1, 1}, {1, 1}};

// Valid arguments: kernel <= H, W; with taps (uint8, y's shape; undefined: not written)
// kernel <= 16, so that every tap r * kernel + c fits a uint8.
PCN_KERNELS(
void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& taps, int64_t kernel, int64_t stride,
                        int version);
void max_pool2d_backward(const Tensor& dy, const Tensor& taps, Tensor& dx, int64_t kernel,
                         int64_t stride, int version);
)

}  // namespace pcn
