// What the convolution's CUDA versions share: the shape in 32-bit ints, the epilogues that
// store each pass's GEMM result into its NCHW / KCRS tensor, and the filter gradient's split-K
// plan. Included by conv2d.cu and conv2d_v3.cu.
#pragma once
#include <algorithm>

#include "csrc/kernels/conv2d.h"  // before cuda_runtime.h: the simulator's macros follow it
#include <cuda_runtime.h>

#include "gemm_common.cuh"

namespace pcn::cuda {

// The convolution's sizes as ints: conv2d_params guarantees that every tensor has fewer than
// 2^31 elements and the padded input fewer than 2^31 rows and columns, so every offset into
// one tensor, and every p*sh, h + ph, fits in 32 bits (offsets are still formed in 64 bits
// where they multiply an image index, for clarity of the bound).
struct ConvShape {
  int N, C, H, W, K, R, S, P, Q;
  int sh, sw, ph, pw;
  int Cg, Kg, RS, CRS, PQ;
};

inline ConvShape shape_of(const Conv2dParams& p) {
  ConvShape s;
  s.N = static_cast<int>(p.N), s.C = static_cast<int>(p.C), s.H = static_cast<int>(p.H);
  s.W = static_cast<int>(p.W), s.K = static_cast<int>(p.K), s.R = static_cast<int>(p.R);
  s.S = static_cast<int>(p.S), s.P = static_cast<int>(p.P), s.Q = static_cast<int>(p.Q);
  s.sh = static_cast<int>(p.stride_h), s.sw = static_cast<int>(p.stride_w);
  s.ph = static_cast<int>(p.pad_h), s.pw = static_cast<int>(p.pad_w);
  s.Cg = static_cast<int>(p.Cg()), s.Kg = static_cast<int>(p.Kg());
  s.RS = s.R * s.S, s.CRS = s.Cg * s.RS, s.PQ = s.P * s.Q;
  return s;
}

// Epilogues (the store interface of gemm.cuh and gemm_v3.cuh).

// Forward epilogue: y[img][g*Kg + m][p][q] = bias_relu(v, b, g*Kg + m, relu) (no bias when
// b == nullptr).
struct FwdOut {
  float* y;
  const float* b;
  bool relu;
  ConvShape s;
  __device__ void store(int g, int, int m, int n, float v) const {
    const int k = g * s.Kg + m, img = n / s.PQ, pq = n % s.PQ;
    y[(static_cast<long long>(img) * s.K + k) * s.PQ + pq] = bias_relu(v, b, k, relu);
  }
};

// Backward-data epilogue: dx[img][g*Cg + m][h][v] = v.
struct DataOut {
  float* dx;
  ConvShape s;
  __device__ void store(int g, int, int m, int n, float v) const {
    const int hw = s.H * s.W, img = n / hw, pix = n % hw;
    dx[(static_cast<long long>(img) * s.C + g * s.Cg + m) * hw + pix] = v;
  }
};

// Backward-filter epilogue: split `split`'s partial dW into dst + split*split_stride (the
// workspace), or straight into dw when there is one split (split_stride unused).
struct FilterOut {
  float* dst;
  long long split_stride;  // K*Cg*R*S
  ConvShape s;
  __device__ void store(int g, int split, int m, int n, float v) const {
    dst[split * split_stride + static_cast<long long>(g * s.Kg + m) * s.CRS + n] = v;
  }
};

// Split-K plan for the filter gradient. Its K dimension is N*P*Q while its output has few
// tiles (conv1: 2 x 6 tiles, 387,200 terms at batch 128), so blocks take chunks of the sum.
// The plan depends only on the shape, never on the GPU, so results are reproducible across
// GPUs too.
inline SplitPlan filter_split_plan(long long tiles, long long kdim, long long out_size) {
  constexpr long long kTargetBlocks = 1024;      // several waves of 256-thread blocks on an H100
  constexpr long long kMinChunk = 512;           // each block's loop amortises its tile
  constexpr long long kMaxWorkspace = 1LL << 24;  // floats (64 MiB) of partial results
  constexpr long long kStep = 8;
  if (kdim == 0) return {1, 0};
  long long splits = std::max(1LL, kTargetBlocks / std::max(1LL, tiles));
  splits = std::min(splits, (kdim + kMinChunk - 1) / kMinChunk);
  splits = std::min(splits, std::max(1LL, kMaxWorkspace / std::max(1LL, out_size)));
  splits = std::max(1LL, std::min(splits, 65535LL));
  long long chunk = (kdim + splits - 1) / splits;
  chunk = (chunk + kStep - 1) / kStep * kStep;  // both GEMM versions step K by 8
  splits = (kdim + chunk - 1) / chunk;  // no empty split after rounding the chunk up
  return {static_cast<int>(splits), static_cast<int>(chunk)};
}

// Versions 3-5 (conv2d_v3.cu): the three passes on the gemm_v3.cuh pipeline, with the core of
// `precision` (FP32: version 3's SIMT core; TF32, 3xTF32: the tensor-core cores of versions 4
// and 5, gemm_tc.cuh). The filter gradient writes through `out` (dW, or the split-K workspace)
// in `splits` chunks of `chunk` terms planned with filter_split_plan over
// conv2d_backward_filter3_tiles tiles.
// Whether the shape's tap offsets fit in 32-bit ints, as version 3 needs: true unless the
// padding or the kernel is far larger than the image (then version 2 runs instead).
bool conv2d_v3_fits(const ConvShape& s);
void conv2d_forward3(const ConvShape& s, int groups, const float* x, const float* w,
                     const float* b, bool relu, float* y, Precision precision,
                     const Device& device, cudaStream_t st);
void conv2d_backward_data3(const ConvShape& s, int groups, const float* dy, const float* w,
                           float* dx, Precision precision, const Device& device, cudaStream_t st);
long long conv2d_backward_filter3_tiles(const ConvShape& s, int groups);
void conv2d_backward_filter3(const ConvShape& s, int groups, const float* dy, const float* x,
                             const FilterOut& out, int splits, int chunk, Precision precision,
                             const Device& device, cudaStream_t st);

}  // namespace pcn::cuda
