#include "csrc/kernels/max_pool2d.h"
#include "parallel.h"

#include <cmath>

namespace pcn::cpu {

// One task per (n, c) plane; windows in row-major order.
void max_pool2d_forward(const Tensor& x, Tensor& y, int64_t kernel, int64_t stride,
                        int /*version*/) {
  const int64_t h = x.size(2), w = x.size(3), ho = y.size(2), wo = y.size(3);
  const float* in = x.data<float>();
  float* out = y.data<float>();
  parallel_for(x.size(0) * x.size(1), [&](int64_t plane) {
    const float* xp = in + plane * h * w;
    float* yp = out + plane * ho * wo;
    for (int64_t i = 0; i < ho; ++i) {
      for (int64_t j = 0; j < wo; ++j) {
        const float* win = xp + i * stride * w + j * stride;
        float m = win[0];
        for (int64_t r = 0; r < kernel; ++r) {
          for (int64_t s = 0; s < kernel; ++s) {
            const float v = win[r * w + s];
            if (v > m || std::isnan(v)) m = v;  // once m is NaN, only another NaN replaces it
          }
        }
        yp[i * wo + j] = m;
      }
    }
  });
}

// One task per plane, so its windows scatter into its own dx plane with no races; a position's
// contributions arrive in window order (row, then column), the order the CUDA kernel adds them.
void max_pool2d_backward(const Tensor& dy, const Tensor& x, const Tensor& y, Tensor& dx,
                         int64_t kernel, int64_t stride, int /*version*/) {
  const int64_t h = x.size(2), w = x.size(3), ho = y.size(2), wo = y.size(3);
  const float* in = x.data<float>();
  const float* out = y.data<float>();
  const float* gy = dy.data<float>();
  float* gx = dx.data<float>();
  parallel_for(x.size(0) * x.size(1), [&](int64_t plane) {
    const float* xp = in + plane * h * w;
    float* gp = gx + plane * h * w;
    for (int64_t e = 0; e < h * w; ++e) gp[e] = 0.0f;
    for (int64_t i = 0; i < ho; ++i) {
      for (int64_t j = 0; j < wo; ++j) {
        const float m = out[plane * ho * wo + i * wo + j];
        const bool nan = std::isnan(m);
        const int64_t corner = i * stride * w + j * stride;
        bool found = false;
        for (int64_t r = 0; r < kernel && !found; ++r) {
          for (int64_t s = 0; s < kernel; ++s) {
            const float v = xp[corner + r * w + s];
            if (nan ? std::isnan(v) : v == m) {
              gp[corner + r * w + s] += gy[plane * ho * wo + i * wo + j];
              found = true;
              break;
            }
          }
        }
      }
    }
  });
}

}  // namespace pcn::cpu
