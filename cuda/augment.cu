// Augmentation: uint8 HWC image batch -> float32 NCHW crops, mean-subtracted, reflected and
// PCA-lit (csrc/ops/augment.h has the formula and the argument layouts).
//   version 1: one thread per output pixel computes its 3 channels; per-image parameters passed
//              by value in chunks of kAugmentChunk images (one launch per chunk, one grid row
//              per image).
#include <algorithm>

#include "csrc/kernels/augment.h"
#include "launch.cuh"

namespace pcn::cuda {

namespace {

// Per-image parameters of one launch. Passed by value, they live in the kernel's constant
// parameter bank: no device allocation, no host-to-device copy, no synchronisation. 64 images
// take 64 * 28 = 1792 bytes, inside the 4 KiB limit on kernel parameters of every CUDA version.
constexpr int kAugmentChunk = 64;
struct AugmentParams {
  int image[kAugmentChunk];  // source image n of output m0 + k (m / repeats)
  int y[kAugmentChunk];      // crop corner
  int x[kAugmentChunk];
  int flip[kAugmentChunk];   // 0 or 1
  float light[kAugmentChunk][3];
};

}  // namespace

// images: (N, H, W, 3) uint8; mean: (H, W, 3) float32; out: (M, 3, crop, crop) float32.
// One launch writes outputs m0 .. m0 + gridDim.y - 1 (at most kAugmentChunk), described by p.
// Thread mapping: blockIdx.y = k, the output image m0 + k; blockIdx.x * blockDim.x + threadIdx.x
// = i * crop + j, the pixel of its crop, j fastest. A warp writes 32 consecutive floats of each of
// the 3 output planes (coalesced) and reads 96 consecutive bytes of one image row and 96 of the
// mean's (mirrored when flipped: the same cache lines); all its threads read the same parameters
// (a constant-bank broadcast). Index arithmetic is 32-bit within a crop (crop <= 32768, checked
// on the host), 64-bit for addresses. Each thread writes its own 3 outputs: no races, no atomics.
// Preconditions (checked on the host): crops lie inside the image, flips are 0 or 1.
__global__ void augment_kernel1(const uint8_t* __restrict__ images, const float* __restrict__ mean,
                                float* __restrict__ out, AugmentParams p, long long m0,
                                long long h, long long w, int crop) {
  const int k = blockIdx.y;
  const int plane = crop * crop;
  const int pix = blockIdx.x * blockDim.x + threadIdx.x;
  if (pix >= plane) return;
  const int i = pix / crop;
  const int j = pix - i * crop;
  const long long y = p.y[k] + i;
  const long long x = p.x[k] + (p.flip[k] ? crop - 1 - j : j);
  const uint8_t* src = images + ((p.image[k] * h + y) * w + x) * 3;
  const float* mu = mean + (y * w + x) * 3;
  float* dst = out + (m0 + k) * 3 * (long long)plane + pix;
#pragma unroll
  for (int c = 0; c < 3; ++c) dst[(long long)c * plane] = ((float)src[c] - mu[c]) + p.light[k][c];
}

void augment(const Tensor& images, const Tensor& mean, const Tensor& offsets, const Tensor& flips,
             const Tensor& lighting, int64_t repeats, int version, Tensor& out) {
  // version 0 (the default) and 1 are the same kernel: there is only one so far.
  const int32_t* off = offsets.data<int32_t>();  // host memory (checked in csrc/ops/augment.cpp)
  const int32_t* flip = flips.data<int32_t>();
  const float* light = lighting.data<float>();
  const long long h = images.size(1), w = images.size(2);
  const int64_t m_total = out.size(0);
  const int crop = static_cast<int>(out.size(2));
  cudaStream_t s = stream(images.device().index);
  for (int64_t m0 = 0; m0 < m_total; m0 += kAugmentChunk) {
    const int count = static_cast<int>(std::min<int64_t>(kAugmentChunk, m_total - m0));
    AugmentParams p{};
    for (int k = 0; k < count; ++k) {
      const int64_t m = m0 + k;
      p.image[k] = static_cast<int>(m / repeats);
      p.y[k] = off[2 * m];
      p.x[k] = off[2 * m + 1];
      p.flip[k] = flip[m];
      for (int c = 0; c < 3; ++c) p.light[k][c] = light[3 * m + c];
    }
    const dim3 grid(ceil_div((long long)crop * crop, 256), static_cast<unsigned int>(count));
    PCN_LAUNCH(augment_kernel1, grid, 256, 0, s, images.data<uint8_t>(), mean.data<float>(),
               out.data<float>(), p, static_cast<long long>(m0), h, w, crop);
  }
}

}  // namespace pcn::cuda
