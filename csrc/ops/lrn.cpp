#include "lrn.h"

#include <cmath>

#include "csrc/check.h"
#include "versions.h"

namespace pcn {

static void check_params(const ArgCheck& c, const Tensor& x, const LrnParams& p) {
  c.require(p.size > 0 && p.size % 2 == 1, "size", "be a positive odd number (the window is "
            "centred on its channel)", p.size);
  c.require(p.groups > 0 && x.size(1) % p.groups == 0, "groups",
            str("be positive and divide the channel count C = ", x.size(1)).c_str(), p.groups);
  c.require(std::isfinite(p.k) && p.k > 0, "k", "be a finite number > 0", p.k);
  c.require(std::isfinite(p.alpha) && p.alpha >= 0, "alpha", "be a finite number >= 0", p.alpha);
  c.require(std::isfinite(p.beta), "beta", "be a finite number", p.beta);
}

Tensor lrn_forward(const Tensor& x, const LrnParams& p, int version) {
  ArgCheck c("lrn");
  c.dtype(x, "x", DType::Float32).rank(x, "x", 4, "(N, C, H, W)");
  check_params(c, x, p);
  const Device dev = c.same_device({{"x", &x}});
  const int v = resolve_version(c, dev, version, kLrnVersions);
  Tensor y = Tensor::empty(x.shape(), DType::Float32, dev);
  PCN_DISPATCH(dev, lrn_forward, x, y, p, v);
  return y;
}

Tensor lrn_backward(const Tensor& dy, const Tensor& x, const Tensor& y, const LrnParams& p,
                    int version) {
  ArgCheck c("lrn_backward");
  c.dtype(dy, "dy", DType::Float32).dtype(x, "x", DType::Float32).dtype(y, "y", DType::Float32);
  c.rank(x, "x", 4, "(N, C, H, W)").shape(dy, "dy", x.shape()).shape(y, "y", x.shape());
  check_params(c, x, p);
  const Device dev = c.same_device({{"dy", &dy}, {"x", &x}, {"y", &y}});
  const int v = resolve_version(c, dev, version, kLrnVersions);
  Tensor dx = Tensor::empty(x.shape(), DType::Float32, dev);
  PCN_DISPATCH(dev, lrn_backward, dy, x, dx, p, v);
  return dx;
}

}  // namespace pcn
