#include "csrc/kernels/augment.h"
#include "parallel.h"

#include <vector>

namespace pcn::cpu {

// One task per output row (m, i). It first subtracts the mean from the crop's row of pixels,
// interleaved RGB as stored (a contiguous loop the compiler vectorises), then scatters the row to
// the three output planes, adding the lighting offset, mirrored when flipped. Same float32
// operations in the same order as the CUDA kernel: (x - mean) + lighting.
void augment(const Tensor& images, const Tensor& mean, const Tensor& offsets, const Tensor& flips,
             const Tensor& lighting, int64_t repeats, int version, Tensor& out) {
  const uint8_t* img = images.data<uint8_t>();
  const float* mu = mean.data<float>();
  const int32_t* off = offsets.data<int32_t>();
  const int32_t* flip = flips.data<int32_t>();
  const float* light = lighting.data<float>();
  float* o = out.data<float>();
  const int64_t h = images.size(1), w = images.size(2);
  const int64_t m_total = out.size(0), crop = out.size(2), plane = crop * crop;
  parallel_for(m_total * crop, [&](int64_t row) {
    thread_local std::vector<float> centred;
    centred.resize(static_cast<size_t>(3 * crop));
    float* t = centred.data();
    const int64_t m = row / crop, i = row % crop;
    const int64_t y = off[2 * m] + i, x0 = off[2 * m + 1];
    const uint8_t* src = img + (((m / repeats) * h + y) * w + x0) * 3;
    const float* mrow = mu + (y * w + x0) * 3;
    for (int64_t k = 0; k < 3 * crop; ++k) t[k] = static_cast<float>(src[k]) - mrow[k];
    for (int64_t c = 0; c < 3; ++c) {
      float* dst = o + (m * 3 + c) * plane + i * crop;
      const float r = light[3 * m + c];
      const float* tc = t + c;
      if (flip[m]) {
        for (int64_t j = 0; j < crop; ++j) dst[j] = tc[3 * (crop - 1 - j)] + r;
      } else {
        for (int64_t j = 0; j < crop; ++j) dst[j] = tc[3 * j] + r;
      }
    }
  });
}

}  // namespace pcn::cpu
