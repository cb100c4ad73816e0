// ReLU. y = max(x, 0); dx = dy where y > 0 else 0 (the subgradient at 0 is taken as 0).
#pragma once
#include "csrc/tensor.h"

namespace pcn {
Tensor relu_forward(const Tensor& x);
Tensor relu_backward(const Tensor& dy, const Tensor& y);

// Kernels behind the dispatch, one signature for both devices: valid, same-device arguments,
// outputs preallocated.
namespace cpu {
void relu_forward(const Tensor& x, Tensor& y);
void relu_backward(const Tensor& dy, const Tensor& y, Tensor& dx);
}  // namespace cpu
namespace cuda {
void relu_forward(const Tensor& x, Tensor& y);
void relu_backward(const Tensor& dy, const Tensor& y, Tensor& dx);
}  // namespace cuda
}  // namespace pcn
