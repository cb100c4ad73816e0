#include "csrc/kernels/dropout.h"
#include "csrc/philox.h"
#include "isa.h"
#include "parallel.h"

#include <algorithm>

namespace pcn::cpu {

// Chunks of whole Philox blocks (4 words): one philox4x32 call gives the mask of 4 elements. A
// slice of a wider tensor (p.row != 0) draws each element's word of its unit.
void dropout_forward(const Tensor& x, Tensor& y, Tensor& mask, const DropoutParams& p,
                     int /*version*/) {
  const float* in = x.data<float>();
  float* out = y.data<float>();
  uint8_t* keep = mask.data<uint8_t>();
  const int64_t n = x.numel(), chunk = 1 << 14;
  if (p.row != 0) {
    parallel_for((n + chunk - 1) / chunk, [&](int64_t c) {
      const int64_t end = std::min(n, (c + 1) * chunk);
      for (int64_t i = c * chunk; i < end; ++i) {
        const bool kept = philox_word(p.seed, kStreamDropout, dropout_unit(p, i)) >= p.threshold;
        keep[i] = kept;
        out[i] = in[i] * (kept ? p.scale : 0.0f);
      }
    });
    return;
  }
  parallel_for((n + chunk - 1) / chunk, [&](int64_t c) {
    const int64_t end = std::min(n, (c + 1) * chunk);
    for (int64_t b = c * chunk; b < end; b += 4) {
      const uint64_t block = static_cast<uint64_t>(b) >> 2;
      const Philox4 r = philox4x32(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                                   kStreamDropout, 0u, static_cast<uint32_t>(p.seed),
                                   static_cast<uint32_t>(p.seed >> 32));
      for (int64_t e = 0; e < 4 && b + e < end; ++e) {
        const bool kept = r.v[e] >= p.threshold;
        keep[b + e] = kept;
        out[b + e] = in[b + e] * (kept ? p.scale : 0.0f);  // x * 0 keeps a NaN a NaN
      }
    }
  });
}

void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx, const DropoutParams& p,
                      int /*version*/) {
  const float* g = dy.data<float>();
  const uint8_t* keep = mask.data<uint8_t>();
  float* d = dx.data<float>();
  const float scale = p.scale;
  const int64_t n = dy.numel(), chunk = 1 << 16;
  parallel_for((n + chunk - 1) / chunk, [&](int64_t c) {
    const int64_t end = std::min(n, (c + 1) * chunk);
    simd().dropout_backward(g + c * chunk, keep + c * chunk, scale, d + c * chunk, end - c * chunk);
  });
}

}  // namespace pcn::cpu
