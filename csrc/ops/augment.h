// Augmentation: a batch of prepared uint8 images becomes the float32 network input in one pass.
//
//   images   (N, H, W, 3) uint8, HWC as prepared on disk, on the CPU or a CUDA device
//   mean     (H, W, 3) float32, the per-pixel mean image, on the same device
//   offsets  (M, 2) int32 [y, x] top-left corner of each crop, 0 <= y <= H - crop, 0 <= x <= W - crop
//   flips    (M,) int32, 1 = reflect horizontally, 0 = not
//   lighting (M, 3) float32, the RGB offset added to every pixel (PCA lighting; 0 for evaluation)
//   M = N * repeats: output m is cut from image m / repeats (repeats = 10 for the ten crops)
//   -> out   (M, 3, crop, crop) float32, NCHW
//
//   out[m, c, i, j] = (float(images[m / repeats, y + i, x + jj, c]) - mean[y + i, x + jj, c])
//                     + lighting[m, c],     jj = flips[m] ? crop - 1 - j : j
//
// evaluated in float32 in exactly this order on both devices (no multiplications, so nothing a
// compiler may fuse): the CPU and CUDA results are bit-identical.
//
// The per-image parameters are small host arrays (CPU tensors on both devices): the host checks
// every offset before any kernel reads an image, and the CUDA launcher passes them to the kernel
// by value, so an augmentation needs no extra device memory, copy or synchronisation.
#pragma once
#include "csrc/kernels/augment.h"

namespace pcn {

// crop <= 32768; version resolved as every op's (csrc/ops/versions.h).
Tensor augment(const Tensor& images, const Tensor& mean, const Tensor& offsets, const Tensor& flips,
               const Tensor& lighting, int64_t crop, int64_t repeats, int version);

}  // namespace pcn
