#include "max_pool2d.h"

#include "csrc/check.h"
#include "versions.h"

namespace pcn {

// Checks kernel and stride against an input of height h and width w; returns the output's
// (Ho, Wo).
static std::pair<int64_t, int64_t> pooled_size(const ArgCheck& c, int64_t h, int64_t w,
                                               int64_t kernel, int64_t stride) {
  c.require(kernel > 0, "kernel", "be > 0", kernel);
  c.require(stride > 0, "stride", "be > 0", stride);
  c.require(kernel <= h && kernel <= w, "kernel",
            str("fit in the input: be <= its height and width (H, W) = (", h, ", ", w, ")").c_str(),
            kernel);
  return {(h - kernel) / stride + 1, (w - kernel) / stride + 1};
}

// Taps are uint8: kernel * kernel - 1 must fit.
static void check_tap_kernel(const ArgCheck& c, int64_t kernel) {
  c.require(kernel <= 16, "kernel", "be <= 16 for taps (r * kernel + c must fit a uint8)",
            kernel);
}

static std::pair<Tensor, Tensor> forward(const Tensor& x, int64_t kernel, int64_t stride,
                                         int version, bool with_taps) {
  ArgCheck c("max_pool2d");
  c.dtype(x, "x", DType::Float32);
  c.rank(x, "x", 4, "(N, C, H, W)");
  const auto [ho, wo] = pooled_size(c, x.size(2), x.size(3), kernel, stride);
  if (with_taps) check_tap_kernel(c, kernel);
  const Shape out{x.size(0), x.size(1), ho, wo};
  const Device dev = c.same_device({{"x", &x}});
  const int v = resolve_version(c, dev, version, kMaxPool2dVersions);
  Tensor y = Tensor::empty(out, DType::Float32, dev);
  Tensor taps = with_taps ? Tensor::empty(out, DType::UInt8, dev) : Tensor();
  PCN_DISPATCH(dev, max_pool2d_forward, x, y, taps, kernel, stride, v);
  return {y, taps};
}

Tensor max_pool2d_forward(const Tensor& x, int64_t kernel, int64_t stride, int version) {
  return forward(x, kernel, stride, version, false).first;
}

std::pair<Tensor, Tensor> max_pool2d_forward_taps(const Tensor& x, int64_t kernel, int64_t stride,
                                                  int version) {
  return forward(x, kernel, stride, version, true);
}

Tensor max_pool2d_backward(const Tensor& dy, const Tensor& taps, const Shape& x_shape,
                           int64_t kernel, int64_t stride, int version) {
  ArgCheck c("max_pool2d_backward");
  c.dtype(dy, "dy", DType::Float32).dtype(taps, "taps", DType::UInt8);
  c.rank(dy, "dy", 4, "(N, C, Ho, Wo)");
  const int64_t n = dy.size(0), ch = dy.size(1);
  const bool plane = x_shape.size() == 2;
  c.require(plane || (x_shape.size() == 4 && x_shape[0] == n && x_shape[1] == ch), "x_shape",
            str("be the input's (H, W) or (N, C, H, W) with (N, C) = (", n, ", ", ch,
                ") (dy's)").c_str(),
            shape_str(x_shape));
  const int64_t h = x_shape[plane ? 0 : 2], w = x_shape[plane ? 1 : 3];
  const auto [ho, wo] = pooled_size(c, h, w, kernel, stride);
  check_tap_kernel(c, kernel);
  const Shape out{n, ch, ho, wo};
  c.shape(dy, "dy", out).shape(taps, "taps", out);
  const Device dev = c.same_device({{"dy", &dy}, {"taps", &taps}});
  const int v = resolve_version(c, dev, version, kMaxPool2dVersions);
  Tensor dx = Tensor::empty({n, ch, h, w}, DType::Float32, dev);
  PCN_DISPATCH(dev, max_pool2d_backward, dy, taps, dx, kernel, stride, v);
  return dx;
}

}  // namespace pcn
