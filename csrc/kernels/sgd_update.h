// SGD update kernels (the rule: csrc/ops/sgd_update.h).
#pragma once
#include "csrc/tensor.h"
#include "kernels.h"

namespace pcn {

struct SgdParams {
  double lr = 0.01, momentum = 0.9, weight_decay = 0.0005;
};

// CPU 1 and CUDA 1: one pass, each element read and written once.
inline constexpr OpVersions kSgdUpdateVersions{{1, 1}, {1, 1}};

// w, dw, v: distinct tensors of one shape.
PCN_KERNELS(
void sgd_update(Tensor& w, const Tensor& dw, Tensor& v, const SgdParams& p, int version);
)

}  // namespace pcn
