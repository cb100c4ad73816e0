#include "conv2d.h"

#include <algorithm>
#include <limits>

#include "csrc/check.h"
#include "versions.h"

namespace pcn {

namespace {

std::string hw_str(Hw v) { return str("(", v[0], ", ", v[1], ")"); }

// Checks every tensor argument's dtype and rank, then their device; returns the device.
Device check_tensors(const ArgCheck& c, const Tensor* dy, const Tensor* x, const Tensor* w,
                     const Tensor* b) {
  if (dy) c.dtype(*dy, "dy", DType::Float32).rank(*dy, "dy", 4, "(N, K, P, Q)");
  if (x) c.dtype(*x, "x", DType::Float32).rank(*x, "x", 4, "(N, C, H, W)");
  if (w) c.dtype(*w, "w", DType::Float32).rank(*w, "w", 4, "(K, C/groups, R, S)");
  if (b && b->defined()) c.dtype(*b, "b", DType::Float32).rank(*b, "b", 1, "(K,)");
  return c.same_device({{"dy", dy}, {"x", x}, {"w", w}, {"b", b}});
}

int resolve(const ArgCheck& c, const Device& dev, int version) {
  return resolve_version(c, dev, version, kConv2dVersions);
}

}  // namespace

Conv2dParams conv2d_params(const char* op, const Shape& x, const Shape& w, Hw stride, Hw padding,
                           int64_t groups) {
  ArgCheck c(op);
  c.require(x.size() == 4, "x", "have rank 4 (N, C, H, W)", str("shape ", shape_str(x)));
  c.require(w.size() == 4, "w", "have rank 4 (K, C/groups, R, S)", str("shape ", shape_str(w)));
  constexpr int64_t kMaxInt = std::numeric_limits<int32_t>::max();
  c.require(stride[0] >= 1 && stride[1] >= 1, "stride", "be positive", hw_str(stride));
  c.require(stride[0] <= kMaxInt && stride[1] <= kMaxInt, "stride", "be below 2^31",
            hw_str(stride));
  c.require(padding[0] >= 0 && padding[1] >= 0, "padding", "be non-negative", hw_str(padding));
  c.require(groups >= 1, "groups", "be positive", groups);
  c.require(x[1] >= 1 && x[2] >= 0 && x[3] >= 0 && x[0] >= 0, "x",
            "have C >= 1 and non-negative N, H, W", str("shape ", shape_str(x)));
  c.require(w[0] >= 1 && w[1] >= 1 && w[2] >= 1 && w[3] >= 1, "w", "have positive sizes",
            str("shape ", shape_str(w)));
  Conv2dParams p;
  p.N = x[0], p.C = x[1], p.H = x[2], p.W = x[3];
  p.K = w[0], p.R = w[2], p.S = w[3];
  p.stride_h = stride[0], p.stride_w = stride[1], p.pad_h = padding[0], p.pad_w = padding[1];
  p.groups = groups;
  c.require(p.C % groups == 0, "groups", str("divide the input channels C=", p.C).c_str(), groups);
  c.require(p.K % groups == 0, "groups", str("divide the output channels K=", p.K).c_str(),
            groups);
  c.require(w[1] * groups == p.C, "w",
            str("have C/groups = ", p.C / groups, " input channels (x has C=", p.C,
                ", groups=", groups, ")").c_str(),
            str("shape ", shape_str(w)));
  // Kernels index rows and columns of the padded input with 32-bit integers.
  c.require(padding[0] <= (kMaxInt - p.H) / 2 && padding[1] <= (kMaxInt - p.W) / 2, "padding",
            "keep the padded input below 2^31 rows and columns", hw_str(padding));
  const int64_t hp = p.H + 2 * p.pad_h, wp = p.W + 2 * p.pad_w;
  c.require(p.R <= hp && p.S <= wp, "w",
            str("have a kernel no larger than the padded input ", hp, "x", wp,
                " (x is ", p.H, "x", p.W, ", padding ", hw_str(padding), ")").c_str(),
            str("a ", p.R, "x", p.S, " kernel"));
  p.P = (hp - p.R) / p.stride_h + 1;
  p.Q = (wp - p.S) / p.stride_w + 1;
  c.int32_size("x", x);
  c.int32_size("w", w);
  c.int32_size("y", {p.N, p.K, p.P, p.Q});
  return p;
}

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Hw stride, Hw padding,
                      int64_t groups, bool relu, int version) {
  ArgCheck c("conv2d");
  const Device dev = check_tensors(c, nullptr, &x, &w, &b);
  const int v = resolve(c, dev, version);
  const Conv2dParams p = conv2d_params("conv2d", x.shape(), w.shape(), stride, padding, groups);
  if (b.defined()) c.shape(b, "b", {p.K});
  Tensor y = Tensor::empty({p.N, p.K, p.P, p.Q}, DType::Float32, dev);
  PCN_DISPATCH(dev, conv2d_forward, p, x, w, b, y, relu, v);
  return y;
}

Tensor conv2d_backward_data(const Tensor& dy, const Tensor& w, const Shape& x_shape, Hw stride,
                            Hw padding, int64_t groups, int version) {
  ArgCheck c("conv2d_backward_data");
  const Device dev = check_tensors(c, &dy, nullptr, &w, nullptr);
  const int v = resolve(c, dev, version);
  const Conv2dParams p =
      conv2d_params("conv2d_backward_data", x_shape, w.shape(), stride, padding, groups);
  c.shape(dy, "dy", {p.N, p.K, p.P, p.Q});
  Tensor dx = Tensor::empty(x_shape, DType::Float32, dev);
  PCN_DISPATCH(dev, conv2d_backward_data, p, dy, w, dx, v);
  return dx;
}

std::tuple<Tensor, Tensor> conv2d_backward_filter(const Tensor& dy, const Tensor& x,
                                                  const Shape& w_shape, Hw stride, Hw padding,
                                                  int64_t groups, int version) {
  ArgCheck c("conv2d_backward_filter");
  const Device dev = check_tensors(c, &dy, &x, nullptr, nullptr);
  const int v = resolve(c, dev, version);
  const Conv2dParams p =
      conv2d_params("conv2d_backward_filter", x.shape(), w_shape, stride, padding, groups);
  c.shape(dy, "dy", {p.N, p.K, p.P, p.Q});
  Tensor dw = Tensor::empty(w_shape, DType::Float32, dev);
  Tensor db = Tensor::empty({p.K}, DType::Float32, dev);
  PCN_DISPATCH(dev, conv2d_backward_filter, p, dy, x, dw, db, v);
  return {dw, db};
}

std::tuple<Tensor, Tensor, Tensor> conv2d_backward(const Tensor& dy, const Tensor& x,
                                                   const Tensor& w, Hw stride, Hw padding,
                                                   int64_t groups, bool input_grad, int version) {
  ArgCheck c("conv2d_backward");
  const Device dev = check_tensors(c, &dy, &x, &w, nullptr);
  const int v = resolve(c, dev, version);
  const Conv2dParams p =
      conv2d_params("conv2d_backward", x.shape(), w.shape(), stride, padding, groups);
  c.shape(dy, "dy", {p.N, p.K, p.P, p.Q});
  Tensor dx;
  if (input_grad) {
    dx = Tensor::empty(x.shape(), DType::Float32, dev);
    PCN_DISPATCH(dev, conv2d_backward_data, p, dy, w, dx, v);
  }
  Tensor dw = Tensor::empty(w.shape(), DType::Float32, dev);
  Tensor db = Tensor::empty({p.K}, DType::Float32, dev);
  PCN_DISPATCH(dev, conv2d_backward_filter, p, dy, x, dw, db, v);
  return {dx, dw, db};
}

}  // namespace pcn
