// Elementwise addition y = a + b of two float32 tensors of one shape on one device: where the
// two columns' gradients of a shared input meet (pyconvnet/columns.py). One rounding per element,
// so CPU and CUDA agree bit for bit.
#pragma once
#include "csrc/kernels/add.h"

namespace pcn {
Tensor add_forward(const Tensor& a, const Tensor& b, int version);

}  // namespace pcn
