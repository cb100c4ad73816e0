#include "softmax_cross_entropy.h"

#include "csrc/check.h"
#include "versions.h"

namespace pcn {

Tensor softmax_forward(const Tensor& x, int version) {
  ArgCheck c("softmax");
  c.dtype(x, "x", DType::Float32).rank(x, "x", 2, "(N, classes)");
  const Device dev = c.same_device({{"x", &x}});
  const int v = resolve_version(c, dev, version, kSoftmaxVersions);
  Tensor probs = Tensor::empty(x.shape(), DType::Float32, dev);
  PCN_DISPATCH(dev, softmax_forward, x, probs, v);
  return probs;
}

std::pair<std::shared_ptr<PendingLoss>, Tensor> cross_entropy_async(const Tensor& logits,
                                                                    const Tensor& labels,
                                                                    int version) {
  ArgCheck c("cross_entropy");
  c.dtype(logits, "logits", DType::Float32).rank(logits, "logits", 2, "(N, classes)");
  c.dtype(labels, "labels", DType::Int32).shape(labels, "labels", {logits.size(0)});
  const Device dev = c.same_device({{"logits", &logits}, {"labels", &labels}});
  const int v = resolve_version(c, dev, version, kCrossEntropyVersions);
  Tensor dlogits = Tensor::empty(logits.shape(), DType::Float32, dev);
  CrossEntropyPending pending;
  PCN_DISPATCH(dev, cross_entropy_start, logits, labels, dlogits, pending, v);
  return {std::make_shared<PendingLoss>(std::move(pending), dev, logits.size(1)), dlogits};
}

std::tuple<double, int64_t, int64_t> PendingLoss::read() {
  if (!finished_) {
    PCN_DISPATCH(device_, cross_entropy_finish, pending_);
    finished_ = true;
  }
  const CrossEntropyStats& stats = pending_.stats;
  // The labels are only known to the kernels (device data on CUDA), so this is where the range
  // check surfaces: one message for both devices, naming the first bad row.
  ArgCheck("cross_entropy").require(stats.bad_row < 0, "labels",
            str("hold class indices in [0, ", classes_, ")").c_str(),
            str("labels[", stats.bad_row, "] = ", stats.bad_label));
  const int64_t n = pending_.rows;
  return {n > 0 ? stats.loss_sum / static_cast<double>(n) : 0.0, stats.top1_hits,
          stats.top5_hits};
}

CrossEntropyResult cross_entropy(const Tensor& logits, const Tensor& labels, int version) {
  auto [pending, dlogits] = cross_entropy_async(logits, labels, version);
  const auto [loss, top1, top5] = pending->read();
  return {loss, dlogits, top1, top5};
}

}  // namespace pcn
