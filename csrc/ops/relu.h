// ReLU. y = max(x, 0); dx = dy where y > 0 else 0 (the subgradient at 0 is taken as 0).
#pragma once
#include "csrc/kernels/relu.h"

namespace pcn {
Tensor relu_forward(const Tensor& x, int version);
Tensor relu_backward(const Tensor& dy, const Tensor& y, int version);

}  // namespace pcn
