// What the GEMM kernels of every version share: the pass a kernel computes, which its name
// carries (gemm3_fprop_kernel, conv2d_dgrad_kernel1, ...), as cuDNN's and CUTLASS's do, so that
// profiles and the SASS report (benchmarks/kernel_report.py) tell the passes apart; and the
// forward epilogue's activation.
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

// The forward epilogue's bias and ReLU: v + bias (when given), then max(v, 0) when relu, computed
// as ops.relu does (NaN stays NaN, -0 stays -0), so that a fused forward is bit-identical to the
// unfused conv2d/linear + relu pair of the same kernel version.
__device__ __forceinline__ float bias_relu(float v, const float* bias, int i, bool relu) {
  if (bias) v += bias[i];
  return relu && v < 0.0f ? 0.0f : v;
}

}  // namespace pcn::cuda
