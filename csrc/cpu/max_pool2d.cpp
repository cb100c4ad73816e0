#include "csrc/kernels/max_pool2d.h"
#include "isa.h"
#include "parallel.h"

namespace pcn::cpu {

// One task per (n, c) plane, run by the active instruction-set path (simd_kernels.h): each
// backward task writes its own dx plane, so there are no races, and a position's contributions
// are added in window order (row, then column), the order the CUDA kernel adds them.
void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& taps, int64_t kernel, int64_t stride,
                        int /*version*/) {
  const int64_t h = x.size(2), w = x.size(3), ho = y.size(2), wo = y.size(3);
  const float* in = x.data<float>();
  float* out = y.data<float>();
  uint8_t* tp = taps.defined() ? taps.data<uint8_t>() : nullptr;
  const int64_t planes = x.size(0) * x.size(1);
  parallel_for(planes, [&](int64_t plane) {
    simd().max_pool_forward(in + plane * h * w, h, w, out + plane * ho * wo,
                            tp == nullptr ? nullptr : tp + plane * ho * wo, ho, wo, kernel,
                            stride, planes - 1 - plane);
  });
}

void max_pool2d_backward(const Tensor& dy, const Tensor& taps, Tensor& dx, int64_t kernel,
                         int64_t stride, int /*version*/) {
  const int64_t h = dx.size(2), w = dx.size(3), ho = dy.size(2), wo = dy.size(3);
  const uint8_t* tp = taps.data<uint8_t>();
  const float* gy = dy.data<float>();
  float* gx = dx.data<float>();
  const int64_t planes = dx.size(0) * dx.size(1);
  parallel_for(planes, [&](int64_t plane) {
    simd().max_pool_backward(tp + plane * ho * wo, gy + plane * ho * wo, gx + plane * h * w, h, w,
                             ho, wo, kernel, stride, planes - 1 - plane);
  });
}

}  // namespace pcn::cpu
