// Local response normalization across channels (AlexNet layers 1 and 2), NCHW float32:
//   y_i = x_i / s_i^beta,  s_i = k + alpha/size * sum_{j in win(i)} x_j^2,
// win(i) = the channels j of i's group with |i - j| <= size/2 (alpha/size convention, groups
// as in docs/alexnet.md; reference.lrn is the spec).
//   dx_m = dy_m s_m^-beta - 2 beta alpha/size x_m sum_{i in win(m)} dy_i x_i s_i^(-beta-1).
// lrn_backward takes y for API symmetry with the other layers' backward passes; the kernels
// recompute s from x instead of reading y, because backward reads x anyway and reading y would
// add 4 bytes per element to a memory-bound op (and y / x cannot give s where x == 0, which is
// half of a ReLU output).
#pragma once
#include "csrc/kernels/lrn.h"

namespace pcn {

Tensor lrn_forward(const Tensor& x, const LrnParams& p, int version);
Tensor lrn_backward(const Tensor& dy, const Tensor& x, const Tensor& y, const LrnParams& p,
                    int version);

}  // namespace pcn
