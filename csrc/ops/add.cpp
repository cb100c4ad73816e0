#include "add.h"

#include "csrc/check.h"
#include "versions.h"

namespace pcn {

Tensor add_forward(const Tensor& a, const Tensor& b, int version) {
  ArgCheck c("add");
  c.dtype(a, "a", DType::Float32).dtype(b, "b", DType::Float32).shape(b, "b", a.shape());
  const Device dev = c.same_device({{"a", &a}, {"b", &b}});
  resolve_version(c, dev, version, kAddVersions);  // one kernel per device
  Tensor y = Tensor::empty(a.shape(), DType::Float32, dev);
  PCN_DISPATCH(dev, add_forward, a, b, y);
  return y;
}

}  // namespace pcn
