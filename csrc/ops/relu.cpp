#include "relu.h"

#include "csrc/check.h"

namespace pcn {

Tensor relu_forward(const Tensor& x) {
  ArgCheck c("relu");
  c.dtype(x, "x", DType::Float32);
  const Device dev = c.same_device({{"x", &x}});
  Tensor y = Tensor::empty(x.shape(), DType::Float32, dev);
  PCN_DISPATCH(dev, relu_forward, x, y);
  return y;
}

Tensor relu_backward(const Tensor& dy, const Tensor& y) {
  ArgCheck c("relu_backward");
  c.dtype(dy, "dy", DType::Float32).dtype(y, "y", DType::Float32).shape(dy, "dy", y.shape());
  const Device dev = c.same_device({{"dy", &dy}, {"y", &y}});
  Tensor dx = Tensor::empty(y.shape(), DType::Float32, dev);
  PCN_DISPATCH(dev, relu_backward, dy, y, dx);
  return dx;
}

}  // namespace pcn
