#include "csrc/kernels/dropout.h"
#include "isa.h"
#include "parallel.h"

#include <algorithm>

namespace pcn::cpu {

// Chunks of each row, each drawn by the active path's kernel (isa.h): the words of an element
// depend only on its row and place in it, so the chunking changes no result.
void dropout_forward(const Tensor& x, Tensor& y, Tensor& mask, const DropoutParams& p,
                     int /*version*/) {
  const float* in = x.data<float>();
  float* out = y.data<float>();
  uint8_t* keep = mask.data<uint8_t>();
  const int64_t len = p.row_len, chunk = 1 << 14;
  if (len == 0) return;
  const int64_t rows = x.numel() / len, per_row = (len + chunk - 1) / chunk;
  const SimdKernels& kern = simd();
  parallel_for(rows * per_row, [&](int64_t task) {
    const int64_t row = task / per_row, begin = task % per_row * chunk;
    const int64_t i = row * len + begin, n = std::min(len, begin + chunk) - begin;
    kern.dropout_forward(in + i, out + i, keep + i, n, static_cast<uint64_t>(p.offset + begin),
                         p.first_row + static_cast<uint32_t>(row), p.seed, p.threshold, p.scale);
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
