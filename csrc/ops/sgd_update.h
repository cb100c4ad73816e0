// SGD with momentum and weight decay, the paper's rule, in place on w and v:
//   v <- momentum * v - weight_decay * lr * w - lr * dw;  w <- w + v.
// One pass: each element of w, dw, v is read once and w, v written once.
#pragma once
#include "csrc/kernels/sgd_update.h"

namespace pcn {

// Mutates w and v; w, dw, v are three distinct tensors of one shape on one device.
void sgd_update(Tensor& w, const Tensor& dw, Tensor& v, const SgdParams& p, int version);

}  // namespace pcn
