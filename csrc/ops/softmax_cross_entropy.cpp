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

CrossEntropyResult cross_entropy(const Tensor& logits, const Tensor& labels, int version) {
  ArgCheck c("cross_entropy");
  c.dtype(logits, "logits", DType::Float32).rank(logits, "logits", 2, "(N, classes)");
  c.dtype(labels, "labels", DType::Int32).shape(labels, "labels", {logits.size(0)});
  const Device dev = c.same_device({{"logits", &logits}, {"labels", &labels}});
  const int v = resolve_version(c, dev, version, kCrossEntropyVersions);
  Tensor dlogits = Tensor::empty(logits.shape(), DType::Float32, dev);
  CrossEntropyStats stats;
  PCN_DISPATCH(dev, cross_entropy, logits, labels, dlogits, stats, v);
  // The labels are only known to the kernels (device data on CUDA), so this is where the range
  // check surfaces: one message for both devices, naming the first bad row.
  c.require(stats.bad_row < 0, "labels",
            str("hold class indices in [0, ", logits.size(1), ")").c_str(),
            str("labels[", stats.bad_row, "] = ", stats.bad_label));
  const int64_t n = logits.size(0);
  return {n > 0 ? stats.loss_sum / static_cast<double>(n) : 0.0, dlogits, stats.top1_hits,
          stats.top5_hits};
}

}  // namespace pcn
