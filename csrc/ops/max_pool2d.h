// Max-pooling over square windows, NCHW float32, no padding, overlapping windows allowed
// (stride < kernel): y[n, c, i, j] = max of x[n, c, i*s .. i*s+k-1, j*s .. j*s+k-1], output size
// floor((H - kernel) / stride) + 1. A NaN in a window makes its output NaN.
// Backward: the gradient of window w goes to the first element of w in row-major scan order that
// equals y[w] (the first NaN when y[w] is NaN), i.e. to numpy's argmax when y = max_pool2d(x);
// overlapping windows accumulate. Both devices use that rule and add a position's contributions
// in the same order (window row, then window column), so they agree bit for bit.
#pragma once
#include "csrc/kernels/max_pool2d.h"

namespace pcn {

Tensor max_pool2d_forward(const Tensor& x, int64_t kernel, int64_t stride, int version);
Tensor max_pool2d_backward(const Tensor& dy, const Tensor& x, const Tensor& y, int64_t kernel,
                           int64_t stride, int version);

}  // namespace pcn
