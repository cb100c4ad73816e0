// Dropout kernels (the mask rule: csrc/ops/dropout.h).
#pragma once
#include <cstdint>

#include "csrc/philox.h"
#include "csrc/tensor.h"
#include "kernels.h"

namespace pcn {

// What the kernels need: computed once from p on the host, identical for both devices.
struct DropoutParams {
  uint64_t seed = 0;
  uint64_t threshold = 0;  // keep iff the 32-bit word >= threshold (0 .. 2^32)
  float scale = 1.0f;      // 1 / (1 - p), rounded to float
  // x may be a slice of the rows of a wider tensor (one column's half of a layer's features):
  // each row of `row` elements is elements [offset, offset + row) of a row of `row_stride`, and
  // draws that slice of the wider tensor's mask. row == 0: x is the whole tensor.
  int64_t row = 0, row_stride = 0, offset = 0;
};

// The unit of the mask that x's element i draws: i itself, or its place in the wider tensor.
PCN_HD uint64_t dropout_unit(const DropoutParams& p, int64_t i) {
  return static_cast<uint64_t>(p.row == 0 ? i : (i / p.row) * p.row_stride + p.offset + i % p.row);
}

// CPU 1. CUDA forward 1: one Philox call per element; 2 (default): one per 4 elements
// (cuda/dropout.cu). The backward pass has one kernel per device.
inline constexpr OpVersions kDropoutVersions{{1, 1}, {2, 2}};

PCN_KERNELS(
void dropout_forward(const Tensor& x, Tensor& y, Tensor& mask, const DropoutParams& p, int version);
void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx, const DropoutParams& p,
                      int version);
)

}  // namespace pcn
