#include "check.h"

#include <algorithm>
#include <cstdint>
#include <limits>

namespace pcn {

const ArgCheck& ArgCheck::dtype(const Tensor& t, const char* name, DType want) const {
  PCN_REQUIRE(t.defined(), ValueError, op_, ": argument '", name, "' is missing (None)");
  PCN_REQUIRE(t.dtype() == want, TypeError, op_, ": argument '", name, "' must have dtype ",
              dtype_name(want), "; got ", dtype_name(t.dtype()));
  return *this;
}

const ArgCheck& ArgCheck::rank(const Tensor& t, const char* name, int64_t rank,
                               const char* layout) const {
  PCN_REQUIRE(t.defined(), ValueError, op_, ": argument '", name, "' is missing (None)");
  PCN_REQUIRE(t.dim() == rank, ValueError, op_, ": argument '", name, "' must have rank ", rank,
              " ", layout, "; got shape ", shape_str(t.shape()));
  return *this;
}

const ArgCheck& ArgCheck::shape(const Tensor& t, const char* name, const Shape& want) const {
  PCN_REQUIRE(t.defined(), ValueError, op_, ": argument '", name, "' is missing (None)");
  PCN_REQUIRE(t.shape() == want, ValueError, op_, ": argument '", name, "' must have shape ",
              shape_str(want), "; got ", shape_str(t.shape()));
  return *this;
}

const ArgCheck& ArgCheck::int32_size(const char* name, const Shape& shape) const {
  constexpr int64_t kMax = std::numeric_limits<int32_t>::max();
  int64_t n = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const int64_t d = i == 0 ? std::max<int64_t>(shape[i], 1) : shape[i];
    if (n > 0 && d > kMax / n) {  // n * d > kMax, found without overflowing
      n = kMax + 1;
      break;
    }
    n *= d;
  }
  return require(n <= kMax, name,
                 "have fewer than 2^31 elements (and one sample of it too, when the batch is empty)",
                 str("shape ", shape_str(shape)));
}

Device ArgCheck::same_device(
    std::initializer_list<std::pair<const char*, const Tensor*>> tensors) const {
  const char* first_name = nullptr;
  Device dev;
  for (const auto& [name, t] : tensors) {
    if (t == nullptr || !t->defined()) continue;
    if (first_name == nullptr) {
      first_name = name;
      dev = t->device();
      continue;
    }
    PCN_REQUIRE(t->device() == dev, ValueError, op_, ": all tensors must be on one device; '",
                first_name, "' is on ", dev.str(), " but '", name, "' is on ",
                t->device().str());
  }
  require_device(dev, op_);
  return dev;
}

}  // namespace pcn
