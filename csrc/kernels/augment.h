// Augmentation kernels (the formula and the argument layouts: csrc/ops/augment.h).
#pragma once
#include <cstdint>

#include "csrc/tensor.h"
#include "kernels.h"

namespace pcn {

// CPU 1 and CUDA 1: one output pixel (its 3 channels) per iteration / thread.
inline constexpr OpVersions kAugmentVersions{{1, 1}, {1, 1}};

// Valid arguments: offsets in range, flips 0/1, `out` allocated.
PCN_KERNELS(
void augment(const Tensor& images, const Tensor& mean, const Tensor& offsets, const Tensor& flips,
             const Tensor& lighting, int64_t repeats, int version, Tensor& out);
)

}  // namespace pcn
