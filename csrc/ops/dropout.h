// Inverted dropout. x is read as rows: its first axis (a 0-d x is one row), row_len = numel /
// rows elements each. Element j of row r is kept iff
//   philox_row_word(seed, kStreamDropout, first_row + r, j) >= threshold,
//   threshold = llround(p * 2^32),
// an exact integer comparison, so CPU and CUDA draw the identical mask for the same seed. The
// mask of a sample depends only on (seed, its row number first_row + r): a batch split into
// parts, each part given its first row in the whole batch, draws the whole batch's mask
// (first_row + rows <= 2^32)
// (threshold is a 64-bit integer: for p > 1 - 2^-33 it is 2^32 and nothing is kept). p == 0 keeps
// everything. Kept units are scaled by 1 / (1 - p):
//   y = x * mask / (1 - p),  dx = dy * mask / (1 - p).
// A slice (offset, width) makes x (N, row) the features [offset, offset + row) of an (N, width)
// tensor: element j of row r draws word offset + j of its row, the word of the wider tensor's
// element it stands for, so two halves (on two devices) draw exactly the wider tensor's mask, and
// with first_row also any part of its rows.
// The mask is a uint8 tensor of 0/1 with x's shape: a quarter of the bytes of a float mask, and
// the op is bound by memory traffic. A dropped NaN stays NaN (x * 0), as in the reference.
#pragma once
#include <cstdint>
#include <utility>

#include "csrc/kernels/dropout.h"

namespace pcn {

// (y, mask)
std::pair<Tensor, Tensor> dropout_forward(const Tensor& x, double p, uint64_t seed, int64_t first_row,
                                          int version, int64_t slice_offset = 0,
                                          int64_t slice_width = -1);
Tensor dropout_backward(const Tensor& dy, const Tensor& mask, double p, int version);

}  // namespace pcn
