#include "csrc/kernels/relu.h"
#include "parallel.h"

#include <algorithm>

namespace pcn::cpu {

// NaN stays NaN: (v > 0 ? v : 0) would turn it into 0, so compare the other way round.
static inline float relu(float v) { return v < 0.0f ? 0.0f : v; }

void relu_forward(const Tensor& x, Tensor& y) {
  const float* in = x.data<float>();
  float* out = y.data<float>();
  const int64_t n = x.numel(), chunk = 1 << 16;
  parallel_for((n + chunk - 1) / chunk, [&](int64_t c) {
    const int64_t end = std::min(n, (c + 1) * chunk);
    for (int64_t i = c * chunk; i < end; ++i) out[i] = relu(in[i]);
  });
}

void relu_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  const float* g = dy.data<float>();
  const float* out = y.data<float>();
  float* d = dx.data<float>();
  const int64_t n = y.numel(), chunk = 1 << 16;
  parallel_for((n + chunk - 1) / chunk, [&](int64_t c) {
    const int64_t end = std::min(n, (c + 1) * chunk);
    for (int64_t i = c * chunk; i < end; ++i) d[i] = out[i] > 0.0f ? g[i] : 0.0f;
  });
}

}  // namespace pcn::cpu
