// Softmax and cross-entropy kernels (the maths: csrc/ops/softmax_cross_entropy.h).
#pragma once
#include <cstdint>
#include <memory>

#include "csrc/tensor.h"
#include "kernels.h"

namespace pcn {

// The cross-entropy kernels also count the rows whose label is among the top-1 and top-5
// logits, so that a training loop needs no copy of the logits for its running accuracy. A logit
// ranks ahead of the label's if it is larger, or equal at a lower index; NaN ranks behind every
// number (the order of numpy's stable argsort of -logits). kTopK: the largest k counted.
inline constexpr int kTopK = 5;

// What the cross-entropy kernels report to the host entry point.
struct CrossEntropyStats {
  double loss_sum = 0.0;  // sum over rows of the per-row loss, added in row order in double
  int64_t bad_row = -1;   // first row whose label is out of range, -1 if none
  int32_t bad_label = 0;  // its label
  int64_t top1_hits = 0;  // rows with no logit ranked ahead of the label's
  int64_t top5_hits = 0;  // rows with fewer than 5 ranked ahead
};

// CPU 1. CUDA 1: one block per row (any width); 2 (default): one warp per row holding the row
// in registers (rows of up to 1024 classes; wider rows run kernel 1); cuda/softmax_cross_entropy.cu.
inline constexpr OpVersions kSoftmaxVersions{{1, 1}, {2, 2}};
inline constexpr OpVersions kCrossEntropyVersions{{1, 1}, {2, 2}};

// A cross-entropy whose statistics may still be on their way from the device: the CPU kernel
// fills `stats` at once; the CUDA kernels leave their per-row report (8 + 5*rows bytes: the
// first bad row, ~0 = none; the row losses; the label ranks) in page-locked `host` memory,
// copied asynchronously, `copied` recorded after the copy. The training step enqueues its loss
// this way and reads it later, so it never waits for the device.
struct CrossEntropyPending {
  int64_t rows = 0;
  CrossEntropyStats stats;       // complete after cross_entropy_finish (at once on the CPU)
  std::shared_ptr<void> host;    // CUDA: the report
  std::shared_ptr<void> copied;  // CUDA: the copy's event (a cudaEvent_t), destroyed with it
  Tensor labels;                 // CUDA: to read a bad row's label
};

PCN_KERNELS(
void softmax_forward(const Tensor& x, Tensor& probs, int version);
void cross_entropy(const Tensor& logits, const Tensor& labels, Tensor& dlogits,
                   CrossEntropyStats& stats, int version);
// cross_entropy in two halves: the first enqueues (no host wait on CUDA), the second waits for
// the copy and fills pending.stats.
void cross_entropy_start(const Tensor& logits, const Tensor& labels, Tensor& dlogits,
                         CrossEntropyPending& pending, int version);
void cross_entropy_finish(CrossEntropyPending& pending);
)

}  // namespace pcn
