#include "csrc/kernels/augment.h"
#include "isa.h"
#include "parallel.h"

namespace pcn::cpu {

// One task per output row (m, i), made by the active path's kernel (isa.h, SimdKernels::
// augment_row): the same float32 operations in the same order as the CUDA kernel,
// (x - mean) + lighting.
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
  const SimdKernels& kern = simd();
  parallel_for(m_total * crop, [&](int64_t row) {
    const int64_t m = row / crop, i = row % crop;
    const int64_t y = off[2 * m] + i, x0 = off[2 * m + 1];
    kern.augment_row(img + (((m / repeats) * h + y) * w + x0) * 3, mu + (y * w + x0) * 3, crop,
                     flip[m] != 0, light + 3 * m, o + m * 3 * plane + i * crop, plane);
  });
}

}  // namespace pcn::cpu
