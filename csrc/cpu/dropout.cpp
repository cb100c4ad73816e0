#include "csrc/kernels/dropout.h"
#include "csrc/philox.h"
#include "isa.h"
#include "parallel.h"

#include <algorithm>

namespace pcn::cpu {

// Chunks of each row, walked in whole Philox blocks of the row's words offset .. offset + len: one
// philox4x32 call gives the mask of 4 elements of one row (fewer at a chunk's or slice's edge).
void dropout_forward(const Tensor& x, Tensor& y, Tensor& mask, const DropoutParams& p,
                     int /*version*/) {
  const float* in = x.data<float>();
  float* out = y.data<float>();
  uint8_t* keep = mask.data<uint8_t>();
  const int64_t len = p.row_len, chunk = 1 << 14;
  if (len == 0) return;
  const int64_t rows = x.numel() / len, per_row = (len + chunk - 1) / chunk;
  parallel_for(rows * per_row, [&](int64_t task) {
    const int64_t row = task / per_row, begin = task % per_row * chunk;
    const int64_t end = std::min(len, begin + chunk), base = row * len - p.offset;
    const uint32_t counter_row = p.first_row + static_cast<uint32_t>(row);
    // Word w of the row is element w - offset of x's row.
    for (int64_t w0 = (p.offset + begin) & ~int64_t{3}; w0 < p.offset + end; w0 += 4) {
      const uint64_t block = static_cast<uint64_t>(w0) >> 2;
      const Philox4 r = philox4x32(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                                   kStreamDropout, counter_row, static_cast<uint32_t>(p.seed),
                                   static_cast<uint32_t>(p.seed >> 32));
      const int64_t lo = std::max<int64_t>(w0, p.offset + begin);
      const int64_t hi = std::min<int64_t>(w0 + 4, p.offset + end);
      for (int64_t w = lo; w < hi; ++w) {
        const int64_t i = base + w;
        const bool kept = r.v[w - w0] >= p.threshold;
        keep[i] = kept;
        out[i] = in[i] * (kept ? p.scale : 0.0f);  // x * 0 keeps a NaN a NaN
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
  parallel_chunks(dy.numel(), [&](int64_t begin, int64_t end) {
    simd().dropout_backward(g + begin, keep + begin, scale, d + begin, end - begin);
  });
}

}  // namespace pcn::cpu
