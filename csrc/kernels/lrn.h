// Local response normalization kernels (the maths: csrc/ops/lrn.h).
#pragma once
#include <cstdint>

#include "csrc/tensor.h"
#include "kernels.h"

namespace pcn {

struct LrnParams {
  int64_t size = 5;
  double alpha = 1e-4, beta = 0.75, k = 2.0;
  int64_t groups = 1;
};

// CPU 1: tiles of pixels walk their group's channels. CUDA 1: one thread per element;
// 2 (default): one thread per pixel walks its group's channels with the window in registers
// (cuda/lrn.cu).
inline constexpr OpVersions kLrnVersions{{1, 1}, {2, 2}};

// Valid arguments: size odd, C % groups == 0.
PCN_KERNELS(
void lrn_forward(const Tensor& x, Tensor& y, const LrnParams& p, int version);
void lrn_backward(const Tensor& dy, const Tensor& x, Tensor& dx, const LrnParams& p, int version);
)

}  // namespace pcn
