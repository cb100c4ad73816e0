// ReLU, forward and backward: elementwise over flat float32 arrays.
//   version 1: one element per thread, grid-stride loop.
#include "csrc/kernels/relu.h"
#include "grid_stride.cuh"
#include "launch.cuh"

#include <algorithm>

namespace pcn::cuda {

// x, y: n floats. Thread t handles elements t, t + stride, ... NaN propagates (fmaxf would drop
// it, so compare explicitly).
__global__ void relu_forward_kernel1(const float* __restrict__ x, float* __restrict__ y, long long n) {
  for (long long i = global_thread(); i < n; i += grid_threads()) {
    const float v = x[i];
    y[i] = v < 0.0f ? 0.0f : v;
  }
}

// dy, y, dx: n floats; dx = dy where y > 0.
__global__ void relu_backward_kernel1(const float* __restrict__ dy, const float* __restrict__ y,
                                      float* __restrict__ dx, long long n) {
  for (long long i = global_thread(); i < n; i += grid_threads()) {
    dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
  }
}

void relu_forward(const Tensor& x, Tensor& y) {
  const long long n = x.numel();
  PCN_LAUNCH(relu_forward_kernel1, grid_stride_blocks(n, 256), 256, 0, stream(x.device().index),
             x.data<float>(), y.data<float>(), n);
}

void relu_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  const long long n = y.numel();
  PCN_LAUNCH(relu_backward_kernel1, grid_stride_blocks(n, 256), 256, 0, stream(y.device().index),
             dy.data<float>(), y.data<float>(), dx.data<float>(), n);
}

}  // namespace pcn::cuda
