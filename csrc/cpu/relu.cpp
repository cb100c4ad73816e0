#include "csrc/kernels/relu.h"
#include "isa.h"
#include "parallel.h"

#include <algorithm>

namespace pcn::cpu {

// Chunks of 64K elements, each vectorised by the active instruction-set path (simd_kernels.h).

void relu_forward(const Tensor& x, Tensor& y) {
  const float* in = x.data<float>();
  float* out = y.data<float>();
  const int64_t n = x.numel(), chunk = 1 << 16;
  parallel_for((n + chunk - 1) / chunk, [&](int64_t c) {
    const int64_t end = std::min(n, (c + 1) * chunk);
    simd().relu_forward(in + c * chunk, out + c * chunk, end - c * chunk);
  });
}

void relu_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  const float* g = dy.data<float>();
  const float* out = y.data<float>();
  float* d = dx.data<float>();
  const int64_t n = y.numel(), chunk = 1 << 16;
  parallel_for((n + chunk - 1) / chunk, [&](int64_t c) {
    const int64_t end = std::min(n, (c + 1) * chunk);
    simd().relu_backward(g + c * chunk, out + c * chunk, d + c * chunk, end - c * chunk);
  });
}

}  // namespace pcn::cpu
