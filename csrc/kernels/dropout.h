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
  // x is read as rows of row_len elements. x may be the features [offset, offset + row_len) of a
  // wider tensor's rows (one column's half of a layer): element j of row r then draws element
  // offset + j of Philox row first_row + r, the wider tensor's word (csrc/ops/dropout.h).
  uint32_t first_row = 0;  // the Philox row of x's first row
  int64_t row_len = 0;     // elements per row of x: numel / shape[0]
  int64_t offset = 0;      // x's first feature within the wider row; 0 for the whole tensor
};

// The mask word of element j of x's row r.
PCN_HD uint32_t dropout_word(const DropoutParams& p, int64_t r, int64_t j) {
  return philox_row_word(p.seed, kStreamDropout, p.first_row + static_cast<uint32_t>(r),
                         static_cast<uint64_t>(p.offset + j));
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
