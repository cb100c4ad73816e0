#include "augment.h"

#include <algorithm>

#include "csrc/check.h"
#include "versions.h"

namespace pcn {

namespace {

// The per-image parameters are read on the host (to be checked here, and passed by value to the
// CUDA kernel), so they must be CPU tensors whatever the images' device.
void require_host(const ArgCheck& c, const Tensor& t, const char* name) {
  c.require(t.device().is_cpu(), name,
            "be a CPU tensor (per-image parameters are checked and read on the host)",
            t.device().str());
}

}  // namespace

Tensor augment(const Tensor& images, const Tensor& mean, const Tensor& offsets, const Tensor& flips,
               const Tensor& lighting, int64_t crop, int64_t repeats, int version) {
  ArgCheck c("augment");
  c.dtype(images, "images", DType::UInt8).rank(images, "images", 4, "(N, H, W, 3)");
  c.require(images.size(3) == 3, "images", "have 3 channels last, (N, H, W, 3)",
            shape_str(images.shape()));
  const int64_t n = images.size(0), h = images.size(1), w = images.size(2);
  c.dtype(mean, "mean", DType::Float32).shape(mean, "mean", {h, w, 3});
  const Device dev = c.same_device({{"images", &images}, {"mean", &mean}});
  const int v = resolve_version(c, dev, version, kAugmentVersions);
  // 32768: the CUDA kernel indexes the pixels of a crop with 32-bit integers.
  const std::string crop_rule = std::min(h, w) <= 32768
                                    ? str("be in [1, min(H, W)] = [1, ", std::min(h, w), "]")
                                    : std::string("be in [1, 32768]");
  c.require(crop >= 1 && crop <= h && crop <= w && crop <= 32768, "crop", crop_rule.c_str(), crop);
  c.require(repeats >= 1 && repeats <= 1024, "repeats", "be in [1, 1024]", repeats);
  const int64_t m = n * repeats;
  c.dtype(offsets, "offsets", DType::Int32).shape(offsets, "offsets", {m, 2});
  c.dtype(flips, "flips", DType::Int32).shape(flips, "flips", {m});
  c.dtype(lighting, "lighting", DType::Float32).shape(lighting, "lighting", {m, 3});
  require_host(c, offsets, "offsets");
  require_host(c, flips, "flips");
  require_host(c, lighting, "lighting");

  // Every crop must lie inside its image: the kernels index without bounds checks.
  const int32_t* off = offsets.data<int32_t>();
  const int32_t* flip = flips.data<int32_t>();
  for (int64_t k = 0; k < m; ++k) {
    const int64_t y = off[2 * k], x = off[2 * k + 1];
    if (y < 0 || y > h - crop || x < 0 || x > w - crop) {
      const std::string rule = str("hold crop corners (y, x) with 0 <= y <= H - crop = ", h - crop,
                                   " and 0 <= x <= W - crop = ", w - crop);
      c.require(false, "offsets", rule.c_str(), str("(", y, ", ", x, ") in row ", k));
    }
    if (flip[k] != 0 && flip[k] != 1)
      c.require(false, "flips", "hold 0 or 1", str(flip[k], " in row ", k));
  }

  Tensor out = Tensor::empty({m, 3, crop, crop}, DType::Float32, dev);
  PCN_DISPATCH(dev, augment, images, mean, offsets, flips, lighting, repeats, v, out);
  return out;
}

}  // namespace pcn
