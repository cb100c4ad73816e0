#include "max_pool2d.h"

#include "csrc/check.h"
#include "versions.h"

namespace pcn {

// Checks kernel and stride against x (N, C, H, W); returns the output shape.
static Shape pooled_shape(const ArgCheck& c, const Tensor& x, int64_t kernel, int64_t stride) {
  c.rank(x, "x", 4, "(N, C, H, W)");
  c.require(kernel > 0, "kernel", "be > 0", kernel);
  c.require(stride > 0, "stride", "be > 0", stride);
  const int64_t h = x.size(2), w = x.size(3);
  c.require(kernel <= h && kernel <= w, "kernel",
            str("fit in the input: be <= its height and width (H, W) = (", h, ", ", w, ")").c_str(),
            kernel);
  return {x.size(0), x.size(1), (h - kernel) / stride + 1, (w - kernel) / stride + 1};
}

Tensor max_pool2d_forward(const Tensor& x, int64_t kernel, int64_t stride, int version) {
  ArgCheck c("max_pool2d");
  c.dtype(x, "x", DType::Float32);
  const Shape out = pooled_shape(c, x, kernel, stride);
  const Device dev = c.same_device({{"x", &x}});
  const int v = resolve_version(c, dev, version, kMaxPool2dVersions);
  Tensor y = Tensor::empty(out, DType::Float32, dev);
  PCN_DISPATCH(dev, max_pool2d_forward, x, y, kernel, stride, v);
  return y;
}

Tensor max_pool2d_backward(const Tensor& dy, const Tensor& x, const Tensor& y, int64_t kernel,
                           int64_t stride, int version) {
  ArgCheck c("max_pool2d_backward");
  c.dtype(dy, "dy", DType::Float32).dtype(x, "x", DType::Float32).dtype(y, "y", DType::Float32);
  const Shape out = pooled_shape(c, x, kernel, stride);
  c.shape(y, "y", out).shape(dy, "dy", out);
  const Device dev = c.same_device({{"dy", &dy}, {"x", &x}, {"y", &y}});
  const int v = resolve_version(c, dev, version, kMaxPool2dVersions);
  Tensor dx = Tensor::empty(x.shape(), DType::Float32, dev);
  PCN_DISPATCH(dev, max_pool2d_backward, dy, x, y, dx, kernel, stride, v);
  return dx;
}

}  // namespace pcn
