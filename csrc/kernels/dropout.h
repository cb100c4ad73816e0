// Dropout kernels (the mask rule: csrc/ops/dropout.h).
#pragma once
#include <cstdint>

#include "csrc/tensor.h"
#include "kernels.h"

namespace pcn {

// What the kernels need: computed once from p on the host, identical for both devices.
struct DropoutParams {
  uint64_t seed = 0;
  uint64_t threshold = 0;  // keep iff the 32-bit word >= threshold (0 .. 2^32)
  float scale = 1.0f;      // 1 / (1 - p), rounded to float
  uint32_t first_row = 0;  // the Philox row of x's first row (csrc/ops/dropout.h)
  int64_t row_len = 0;     // elements per row of x: numel / shape[0]
};

// CPU 1. CUDA forward 1: one Philox call per element; 2 (default): one per 4 elements
// (cuda/dropout.cu). The backward pass has one kernel per device.
inline constexpr OpVersions kDropoutVersions{{1, 1}, {2, 2}};

PCN_KERNELS(
void dropout_forward(const Tensor& x, Tensor& y, Tensor& mask, const DropoutParams& p, int version);
void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx, const DropoutParams& p,
                      int version);
)

}  // namespace pcn
