// Convolution kernels (the maths: csrc/ops/conv2d.h).
#pragma once
#include <cstdint>

#include "csrc/tensor.h"
#include "kernels.h"

namespace pcn {

// Shapes and hyper-parameters of one convolution, validated (conv2d_params, csrc/ops/conv2d.h)
// before any kernel sees them: every size positive except N (an empty batch is legal), P, Q >= 1,
// groups divides C and K, and each of x, w, y has fewer than 2^31 elements, so kernels may index
// any one tensor with 32-bit integers.
struct Conv2dParams {
  int64_t N, C, H, W;  // input x
  int64_t K, R, S;     // filters w (K, C / groups, R, S)
  int64_t P, Q;        // output y (N, K, P, Q)
  int64_t stride_h, stride_w, pad_h, pad_w, groups;
  int64_t Cg() const { return C / groups; }  // input channels per group
  int64_t Kg() const { return K / groups; }  // filters per group
};

// CPU 1: im2col per image + SGEMM; 2 (default): the same SGEMMs with the im2col matrix gathered
// straight from a zero-padded copy of the image, and at stride 1 the input gradient as a
// convolution of dy with the flipped filters (csrc/cpu/conv2d.cpp). CUDA 1: direct, one output per thread; 2: tiled implicit
// GEMM (cuda/conv2d.cu); 3 (default): the same GEMMs on the 128x128-tile core with 8x8 outputs
// per thread (cuda/conv2d_v3.cu; verified on the CUDA simulator, not yet timed on a GPU);
// 4 (TF32) and 5 (3xTF32): version 3's loaders on tensor-core mma.sync (cuda/gemm_tc.cuh;
// verified on the simulator's reading of the PTX fragment layouts only). The precision listed
// for each version selects its core.
inline constexpr OpVersions kConv2dVersions{
    {2, 2},
    {5, 3, {Precision::kFp32, Precision::kFp32, Precision::kFp32, Precision::kTf32,
            Precision::kTf32x3}}};

// b may be undefined; outputs are preallocated, not zeroed. The forward with relu applies ReLU
// to the biased output in its epilogue: the same bits as conv2d_forward then relu_forward.
PCN_KERNELS(
void conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& w, const Tensor& b,
                    Tensor& y, bool relu, int version);
void conv2d_backward_data(const Conv2dParams& p, const Tensor& dy, const Tensor& w, Tensor& dx,
                          int version);
void conv2d_backward_filter(const Conv2dParams& p, const Tensor& dy, const Tensor& x, Tensor& dw,
                            Tensor& db, int version);
)

}  // namespace pcn
