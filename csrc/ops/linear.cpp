#include "linear.h"

#include <limits>

#include "csrc/check.h"
#include "versions.h"

namespace pcn {

namespace {

// Checks every tensor argument's dtype, rank and size limit, then their device.
Device check_tensors(const ArgCheck& c, const Tensor* dy, const Tensor* x, const Tensor* w,
                     const Tensor* b) {
  if (dy) c.dtype(*dy, "dy", DType::Float32).rank(*dy, "dy", 2, "(N, out)");
  if (x) c.dtype(*x, "x", DType::Float32).rank(*x, "x", 2, "(N, in)");
  if (w) c.dtype(*w, "w", DType::Float32).rank(*w, "w", 2, "(out, in)");
  if (b && b->defined()) c.dtype(*b, "b", DType::Float32).rank(*b, "b", 1, "(out,)");
  if (dy) c.int32_size("dy", dy->shape());
  if (x) c.int32_size("x", x->shape());
  if (w) c.int32_size("w", w->shape());
  return c.same_device({{"dy", dy}, {"x", x}, {"w", w}, {"b", b}});
}

int resolve(const ArgCheck& c, const Device& dev, int version) {
  return resolve_version(c, dev, version, kLinearVersions);
}

// x's features match w's inputs.
void require_in_features(const ArgCheck& c, const Tensor& x, const Tensor& w) {
  c.require(x.size(1) == w.size(1), "x",
            str("have w's ", w.size(1), " input features (w has shape ", shape_str(w.shape()),
                ")").c_str(),
            str("shape ", shape_str(x.shape())));
}

}  // namespace

Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, bool relu, int version) {
  ArgCheck c("linear");
  const Device dev = check_tensors(c, nullptr, &x, &w, &b);
  const int v = resolve(c, dev, version);
  require_in_features(c, x, w);
  if (b.defined()) c.shape(b, "b", {w.size(0)});
  c.int32_size("y", {x.size(0), w.size(0)});
  Tensor y = Tensor::empty({x.size(0), w.size(0)}, DType::Float32, dev);
  PCN_DISPATCH(dev, linear_forward, x, w, b, y, relu, v);
  return y;
}

Tensor linear_backward_data(const Tensor& dy, const Tensor& w, int version) {
  ArgCheck c("linear_backward_data");
  const Device dev = check_tensors(c, &dy, nullptr, &w, nullptr);
  const int v = resolve(c, dev, version);
  c.shape(dy, "dy", {dy.size(0), w.size(0)});
  c.int32_size("dx", {dy.size(0), w.size(1)});
  Tensor dx = Tensor::empty({dy.size(0), w.size(1)}, DType::Float32, dev);
  PCN_DISPATCH(dev, linear_backward_data, dy, w, dx, v);
  return dx;
}

std::tuple<Tensor, Tensor> linear_backward_weight(const Tensor& dy, const Tensor& x,
                                                  int version) {
  ArgCheck c("linear_backward_weight");
  const Device dev = check_tensors(c, &dy, &x, nullptr, nullptr);
  const int v = resolve(c, dev, version);
  c.shape(dy, "dy", {x.size(0), dy.size(1)});
  c.int32_size("dw", {dy.size(1), x.size(1)});
  Tensor dw = Tensor::empty({dy.size(1), x.size(1)}, DType::Float32, dev);
  Tensor db = Tensor::empty({dy.size(1)}, DType::Float32, dev);
  PCN_DISPATCH(dev, linear_backward_weight, dy, x, dw, db, v);
  return {dw, db};
}

std::tuple<Tensor, Tensor, Tensor> linear_backward(const Tensor& dy, const Tensor& x,
                                                   const Tensor& w, bool input_grad, int version) {
  ArgCheck c("linear_backward");
  const Device dev = check_tensors(c, &dy, &x, &w, nullptr);
  const int v = resolve(c, dev, version);
  require_in_features(c, x, w);
  c.shape(dy, "dy", {x.size(0), w.size(0)});
  Tensor dx;
  if (input_grad) {
    dx = Tensor::empty(x.shape(), DType::Float32, dev);
    PCN_DISPATCH(dev, linear_backward_data, dy, w, dx, v);
  }
  Tensor dw = Tensor::empty(w.shape(), DType::Float32, dev);
  Tensor db = Tensor::empty({w.size(0)}, DType::Float32, dev);
  PCN_DISPATCH(dev, linear_backward_weight, dy, x, dw, db, v);
  return {dx, dw, db};
}

}  // namespace pcn
