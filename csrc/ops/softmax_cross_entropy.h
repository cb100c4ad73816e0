// Softmax over the last axis of (N, classes) float32 logits, and the multinomial logistic loss
// fused with its gradient (one pass over the logits instead of softmax + loss + gradient):
//   probs[n, i] = exp(x[n, i] - m_n) / S_n,  m_n = max_i x[n, i],  S_n = sum_i exp(x[n, i] - m_n);
//   loss = mean_n (log S_n - (x[n, label_n] - m_n));  dlogits = (probs - onehot(labels)) / N.
// Shifting by the row maximum keeps both stable for logits of any size; a NaN in a row makes that
// row (and the loss) NaN. Labels are int32 (N,), validated by the kernels themselves (they are
// device data on CUDA): the kernels report the first row with a label outside [0, classes) and
// the host entry point raises the same ValueError for both devices.
#pragma once
#include <cstdint>
#include <memory>
#include <tuple>
#include <utility>

#include "csrc/kernels/softmax_cross_entropy.h"

namespace pcn {

Tensor softmax_forward(const Tensor& x, int version);
struct CrossEntropyResult {
  double loss = 0.0;  // the mean over the batch (0 for an empty batch)
  Tensor dlogits;
  int64_t top1_hits = 0, top5_hits = 0;  // rows whose label is among the 1 / 5 highest logits
};
CrossEntropyResult cross_entropy(const Tensor& logits, const Tensor& labels, int version);

// A cross-entropy whose loss and hits may still be on their way from the device: what a
// training step enqueues so that it never waits for the GPU.
class PendingLoss {
 public:
  PendingLoss(CrossEntropyPending pending, Device device, int64_t classes)
      : pending_(std::move(pending)), device_(device), classes_(classes) {}
  // (loss, top-1 hits, top-5 hits), as cross_entropy returns them; waits for the device the
  // first time. A label out of range is the ValueError cross_entropy raises.
  std::tuple<double, int64_t, int64_t> read();

 private:
  CrossEntropyPending pending_;
  Device device_;
  int64_t classes_;
  bool finished_ = false;
};

// cross_entropy without waiting: (the pending loss, dlogits).
std::pair<std::shared_ptr<PendingLoss>, Tensor> cross_entropy_async(const Tensor& logits,
                                                                    const Tensor& labels,
                                                                    int version);

}  // namespace pcn
