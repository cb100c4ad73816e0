// What the GEMM kernels of every version share: the pass a kernel computes, which its name
// carries (gemm3_fprop_kernel, conv2d_dgrad_kernel1, ...), as cuDNN's and CUTLASS's do, so that
// profiles and the SASS report (benchmarks/kernel_report.py) tell the passes apart; a block's
// tile and K range in the tiled kernels' grids; and the forward epilogue's activation.
#pragma once
#include <cuda_runtime.h>

namespace pcn::cuda {

enum class Pass {
  kFprop,  // forward: y = op(w, x) (+ b), then ReLU when fused
  kDgrad,  // data gradient: dx from dy and w
  kWgrad,  // weight gradient: dw from dy and x (the bias gradient: bias_wgrad, gemm.cu)
};

// How a GEMM's K is split: `splits` chunks of `chunk` terms (a multiple of 8), computed by
// separate blocks into a workspace and added in split order (reduce_splits, gemm.cu).
struct SplitPlan {
  int splits, chunk;
};

// A block's share of a GEMM grid (gemm2_body, gemm3_body): blockIdx.x = (g * tiles_m + tm) *
// tiles_n + tn names group g's tile of rows m0 = tm * tile_m + [0, tile_m) and columns
// n0 = tn * tile_n + [0, tile_n); blockIdx.y = split names the K terms [k_begin, k_end) of
// chunk `split` of k_chunk terms (empty past K).
struct BlockTile {
  int g, m0, n0, split, k_begin, k_end;
};

__device__ __forceinline__ BlockTile block_tile(int tile_m, int tile_n, int tiles_m, int tiles_n,
                                                int K, int k_chunk) {
  int tile = blockIdx.x;
  const int tn = tile % tiles_n;
  tile /= tiles_n;
  const int tm = tile % tiles_m;
  BlockTile b;
  b.g = tile / tiles_m;
  b.m0 = tm * tile_m;
  b.n0 = tn * tile_n;
  b.split = blockIdx.y;
  b.k_begin = min(K, b.split * k_chunk);
  b.k_end = min(K, b.k_begin + k_chunk);
  return b;
}

// The forward epilogue's bias and ReLU: v + bias (when given), then max(v, 0) when relu, computed
// as ops.relu does (NaN stays NaN, -0 stays -0), so that a fused forward is bit-identical to the
// unfused conv2d/linear + relu pair of the same kernel version.
__device__ __forceinline__ float bias_relu(float v, const float* bias, int i, bool relu) {
  if (bias) v += bias[i];
  return relu && v < 0.0f ? 0.0f : v;
}

}  // namespace pcn::cuda
