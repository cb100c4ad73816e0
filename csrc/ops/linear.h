// Fully-connected layer: y = x w^T + b, x (N, in), w (out, in), b (out,) optional, y (N, out).
// Backward: dx = dy w (N, in), dw = dy^T x (out, in), db = sum over the batch of dy (out,).
#pragma once
#include <tuple>

#include "csrc/kernels/linear.h"

namespace pcn {

// Host entry points: validate, allocate the outputs on the inputs' device, run the kernel of
// the chosen version on that device (0 = the device's default, the best).
// relu: max(y, 0) in the same pass (the fused bias + ReLU of a linear layer followed by ReLU).
Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, bool relu, int version);
Tensor linear_backward_data(const Tensor& dy, const Tensor& w, int version);       // dx
std::tuple<Tensor, Tensor> linear_backward_weight(const Tensor& dy, const Tensor& x,
                                                  int version);                    // (dw, db)
// (dx, dw, db) with one validation; dx is undefined when !input_grad.
std::tuple<Tensor, Tensor, Tensor> linear_backward(const Tensor& dy, const Tensor& x,
                                                   const Tensor& w, bool input_grad, int version);

}  // namespace pcn
