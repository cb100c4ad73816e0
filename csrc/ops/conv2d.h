// 2-D convolution (cross-correlation), NCHW float32, with groups, forward and backward:
//   y[n, k, p, q] = b[k] + sum_{c < C/G, r < R, s < S}
//                   xpad[n, g*C/G + c, p*sh + r, q*sw + s] * w[k, c, r, s],   g = k / (K/G)
// x (N, C, H, W), w (K, C/G, R, S), b (K,) optional, y (N, K, P, Q) with
// P = floor((H + 2*ph - R) / sh) + 1 and Q likewise; xpad is x with ph/pw zeros on each side.
#pragma once
#include <array>
#include <tuple>

#include "csrc/kernels/conv2d.h"

namespace pcn {

using Hw = std::array<int64_t, 2>;  // (height, width) pair: stride or padding

// Validates the shapes and hyper-parameters (ValueError naming `op`, the argument, the rule and
// the values) and returns them as Conv2dParams.
Conv2dParams conv2d_params(const char* op, const Shape& x_shape, const Shape& w_shape, Hw stride,
                           Hw padding, int64_t groups);

// Host entry points: validate, allocate the outputs on the inputs' device, run the kernel of
// the chosen version on that device (0 = the device's default; csrc/ops/versions.h).
// relu: max(y, 0) in the same pass (the fused bias + ReLU of a convolution followed by ReLU).
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Hw stride, Hw padding,
                      int64_t groups, bool relu, int version);
// dx (the shape x_shape) from dy and w.
Tensor conv2d_backward_data(const Tensor& dy, const Tensor& w, const Shape& x_shape, Hw stride,
                            Hw padding, int64_t groups, int version);
// (dw, db): dw has the shape w_shape, db (K,).
std::tuple<Tensor, Tensor> conv2d_backward_filter(const Tensor& dy, const Tensor& x,
                                                  const Shape& w_shape, Hw stride, Hw padding,
                                                  int64_t groups, int version);
// (dx, dw, db) with one validation; dx is undefined when !input_grad (a first layer needs none).
std::tuple<Tensor, Tensor, Tensor> conv2d_backward(const Tensor& dy, const Tensor& x,
                                                   const Tensor& w, Hw stride, Hw padding,
                                                   int64_t groups, bool input_grad, int version);


}  // namespace pcn
