#include "relu.h"

#include "csrc/check.h"
#include "versions.h"

namespace pcn {

Tensor relu_forward(const Tensor& x, int version) {
  ArgCheck c("relu");
  c.dtype(x, "x", DType::Float32);
  const Device dev = c.same_device({{"x", &x}});
  resolve_version(c, dev, version, kReluVersions);  // one kernel per device
  Tensor y = Tensor::empty(x.shape(), DType::Float32, dev);
  PCN_DISPATCH(dev, relu_forward, x, y);
  return y;
}

Tensor relu_backward(const Tensor& dy, const Tensor& y, int version) {
  ArgCheck c("relu_backward");
  c.dtype(dy, "dy", DType::Float32).dtype(y, "y", DType::Float32).shape(dy, "dy", y.shape());
  const Device dev = c.same_device({{"dy", &dy}, {"y", &y}});
  resolve_version(c, dev, version, kReluVersions);
  Tensor dx = Tensor::empty(y.shape(), DType::Float32, dev);
  PCN_DISPATCH(dev, relu_backward, dy, y, dx);
  return dx;
}

}  // namespace pcn
