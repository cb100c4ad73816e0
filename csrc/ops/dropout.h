// Inverted dropout. Unit i (flat index into x) is kept iff
//   philox_word(seed, kStreamDropout, i) >= threshold,  threshold = llround(p * 2^32),
// an exact integer comparison, so CPU and CUDA draw the identical mask for the same seed
// (threshold is a 64-bit integer: for p > 1 - 2^-33 it is 2^32 and nothing is kept). p == 0 keeps
// everything. Kept units are scaled by 1 / (1 - p):
//   y = x * mask / (1 - p),  dx = dy * mask / (1 - p).
// A slice (offset, width) makes x (N, row) the columns [offset, offset + row) of an (N, width)
// tensor: unit i is then the unit of the wider tensor it stands for, so two halves draw exactly
// the wider tensor's mask.
// The mask is a uint8 tensor of 0/1 with x's shape: a quarter of the bytes of a float mask, and
// the op is bound by memory traffic. A dropped NaN stays NaN (x * 0), as in the reference.
#pragma once
#include <cstdint>
#include <utility>

#include "csrc/kernels/dropout.h"

namespace pcn {

// (y, mask)
std::pair<Tensor, Tensor> dropout_forward(const Tensor& x, double p, uint64_t seed, int version,
                                          int64_t slice_offset = 0, int64_t slice_width = -1);
Tensor dropout_backward(const Tensor& dy, const Tensor& mask, double p, int version);

}  // namespace pcn
