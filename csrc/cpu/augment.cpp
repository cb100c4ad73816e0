#include "csrc/ops/augment.h"
#include "parallel.h"

namespace pcn::cpu {

// One task per output row (m, i): it reads one image row (reversed when flipped) and the same row
// of the mean, and writes row i of the three planes of output m. Channel-outer loops keep each
// inner loop a plain strided read and a contiguous write, which the compiler vectorises.
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
    const int64_t m = row / crop, i = row % crop;
    const int64_t y = off[2 * m] + i, x0 = off[2 * m + 1];
    const uint8_t* src = img + (((m / repeats) * h + y) * w + x0) * 3;
    const float* mrow = mu + (y * w + x0) * 3;
    for (int64_t c = 0; c < 3; ++c) {
      float* dst = o + (m * 3 + c) * plane + i * crop;
      const float r = light[3 * m + c];
      if (flip[m]) {
        for (int64_t j = 0; j < crop; ++j) {
          const int64_t k = (crop - 1 - j) * 3 + c;
          dst[j] = (static_cast<float>(src[k]) - mrow[k]) + r;
        }
      } else {
        for (int64_t j = 0; j < crop; ++j) {
          const int64_t k = j * 3 + c;
          dst[j] = (static_cast<float>(src[k]) - mrow[k]) + r;
        }
      }
    }
  });
}

}  // namespace pcn::cpu
