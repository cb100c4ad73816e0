// Max-pooling over square windows, NCHW float32, no padding, overlapping windows allowed
// (stride < kernel): y[n, c, i, j] = max of x[n, c, i*s .. i*s+k-1, j*s .. j*s+k-1], output size
// floor((H - kernel) / stride) + 1. A NaN in a window makes its output NaN.
// The gradient of window w goes to its tap: the first element of w in row-major scan order that
// equals y[w] (the first NaN when y[w] is NaN), i.e. numpy's argmax of the window. The forward
// can write the taps, uint8 (N, C, Ho, Wo), tap r * kernel + c for the window's element (r, c)
// (kernel <= 16, so that it fits); the backward reads only dy and the taps (a quarter of y's
// bytes) and adds each window's dy to its tap, overlapping windows accumulating. Both devices
// add a position's contributions in the same order (window row, then window column), so they
// agree bit for bit. A tap >= kernel * kernel (none the forward writes) sends its window's
// gradient nowhere: no tap makes a kernel write outside dx.
#pragma once
#include <utility>

#include "csrc/kernels/max_pool2d.h"

namespace pcn {

Tensor max_pool2d_forward(const Tensor& x, int64_t kernel, int64_t stride, int version);
// (y, taps)
std::pair<Tensor, Tensor> max_pool2d_forward_taps(const Tensor& x, int64_t kernel, int64_t stride,
                                                  int version);
// dx (N, C, H, W), N and C from dy; x_shape: the input's (H, W) or (N, C, H, W).
Tensor max_pool2d_backward(const Tensor& dy, const Tensor& taps, const Shape& x_shape,
                           int64_t kernel, int64_t stride, int version);

}  // namespace pcn
