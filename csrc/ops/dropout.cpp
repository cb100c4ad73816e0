#include "dropout.h"

#include <cmath>
#include <string>

#include "csrc/check.h"
#include "versions.h"

namespace pcn {

static DropoutParams make_params(const ArgCheck& c, double p, uint64_t seed) {
  c.require(p >= 0.0 && p < 1.0, "p", "be a drop probability in [0, 1)", p);  // false for NaN
  DropoutParams d;
  d.seed = seed;
  // p * 2^32 is exact in double; llround: the nearest integer, halves away from zero.
  d.threshold = static_cast<uint64_t>(std::llround(std::ldexp(p, 32)));
  d.scale = static_cast<float>(1.0 / (1.0 - p));
  return d;
}

std::pair<Tensor, Tensor> dropout_forward(const Tensor& x, double p, uint64_t seed, int64_t first_row,
                                          int version, int64_t slice_offset, int64_t slice_width) {
  ArgCheck c("dropout");
  c.dtype(x, "x", DType::Float32);
  DropoutParams d = make_params(c, p, seed);
  const int64_t rows = x.dim() == 0 ? 1 : x.shape()[0];
  const std::string rule = str("be in [0, 2^32 - rows] with rows = ", rows, " (x's first axis)");
  c.require(first_row >= 0 && first_row <= (int64_t{1} << 32) - rows, "first_row", rule.c_str(),
            first_row);
  d.first_row = static_cast<uint32_t>(first_row);
  d.row_len = rows == 0 ? 0 : x.numel() / rows;
  if (slice_width >= 0) {
    c.rank(x, "x", 2, "(N, features)");
    const int64_t row = x.shape()[1];
    c.require(slice_offset >= 0 && slice_offset + row <= slice_width, "part",
              str("be (offset, width) with 0 <= offset and offset + ", row,
                  " (x's features) <= width").c_str(),
              str("(", slice_offset, ", ", slice_width, ")"));
    d.offset = slice_offset;
  }
  const Device dev = c.same_device({{"x", &x}});
  const int v = resolve_version(c, dev, version, kDropoutVersions);
  Tensor y = Tensor::empty(x.shape(), DType::Float32, dev);
  Tensor mask = Tensor::empty(x.shape(), DType::UInt8, dev);
  PCN_DISPATCH(dev, dropout_forward, x, y, mask, d, v);
  return {y, mask};
}

Tensor dropout_backward(const Tensor& dy, const Tensor& mask, double p, int version) {
  ArgCheck c("dropout_backward");
  c.dtype(dy, "dy", DType::Float32).dtype(mask, "mask", DType::UInt8);
  c.shape(mask, "mask", dy.shape());
  const DropoutParams d = make_params(c, p, 0);
  const Device dev = c.same_device({{"dy", &dy}, {"mask", &mask}});
  const int v = resolve_version(c, dev, version, kDropoutVersions);
  Tensor dx = Tensor::empty(dy.shape(), DType::Float32, dev);
  PCN_DISPATCH(dev, dropout_backward, dy, mask, dx, d, v);
  return dx;
}

}  // namespace pcn
