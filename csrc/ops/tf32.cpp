#include "tf32.h"

#include "csrc/check.h"

namespace pcn {

Tensor tf32_round(const Tensor& x) {
  ArgCheck c("tf32_round");
  c.dtype(x, "x", DType::Float32);
  const Device dev = c.same_device({{"x", &x}});
  Tensor y = Tensor::empty(x.shape(), DType::Float32, dev);
  PCN_DISPATCH(dev, tf32_round, x, y);
  return y;
}

Tensor mma_m16n8k8_tf32(const Tensor& a, const Tensor& b, const Tensor& c) {
  ArgCheck chk("mma_m16n8k8_tf32");
  chk.dtype(a, "a", DType::Float32).dtype(b, "b", DType::Float32).dtype(c, "c", DType::Float32);
  chk.rank(a, "a", 3, "(T, 16, 8)");
  const int64_t tiles = a.size(0);
  chk.shape(a, "a", {tiles, 16, 8}).shape(b, "b", {tiles, 8, 8}).shape(c, "c", {tiles, 16, 8});
  chk.require(tiles < (1LL << 24), "a", "have fewer than 2^24 tiles", tiles);
  const Device dev = chk.same_device({{"a", &a}, {"b", &b}, {"c", &c}});
  Tensor d = Tensor::empty(c.shape(), DType::Float32, dev);
  PCN_DISPATCH(dev, mma_m16n8k8_tf32, a, b, c, d);
  return d;
}

}  // namespace pcn
