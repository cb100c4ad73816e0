// Fully-connected layer kernels (the maths: csrc/ops/linear.h).
#pragma once
#include "csrc/tensor.h"
#include "kernels.h"

namespace pcn {

// CPU 1: the blocked SGEMM. CUDA 1: one output per thread; 2: tiled (cuda/gemm.cuh);
// 3 (default): 128x128 tiles, 8x8 outputs per thread, split-K for outputs of few tiles
// (cuda/gemm_v3.cuh; verified on the CUDA simulator, not yet timed on a GPU); 4 (TF32) and
// 5 (3xTF32): the same tiles and split-K on tensor-core mma.sync (cuda/gemm_tc.cuh; verified on
// the simulator only).
inline constexpr OpVersions kLinearVersions{
    {1, 1},
    {5, 3, {Precision::kFp32, Precision::kFp32, Precision::kFp32, Precision::kTf32,
            Precision::kTf32x3}}};

// b may be undefined; outputs are not zeroed; every tensor has fewer than 2^31 elements. The
// forward with relu applies ReLU to the biased output in its epilogue: the same bits as
// linear_forward then relu_forward.
PCN_KERNELS(
void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, bool relu,
                    int version);
void linear_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, int version);
void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor& db,
                            int version);
)

}  // namespace pcn
