// The CPU's one matrix product, used by convolution (after im2col) and by the linear layer.
#pragma once
#include <cstdint>
#include <vector>

namespace pcn::cpu {

// op(A) (M x K) packed into the micro-kernel's panels once, for products with many B's (a
// convolution's weights against every image of the batch). Built for the instruction-set path
// active when it was made (isa.h); sgemm_packed uses that path's micro-kernel.
struct PackedA {
  int64_t M = 0, K = 0, mr = 0, mc = 0;  // mc: rows of C per task, a multiple of mr
  std::vector<float> data;
};
PackedA pack_a(bool trans_a, int64_t M, int64_t K, const float* A, int64_t lda);

// C = op(A) * op(B), or C += op(A) * op(B) when `accumulate`; all row-major float32.
//   op(A) is M x K: A itself (M rows of stride lda) or, with trans_a, the transpose of A stored
//   as K rows of stride lda; likewise op(B) is K x N, B itself or (trans_b) B stored N x K.
//   C is M rows of stride ldc. With K == 0, C is zeroed (or left alone when accumulating).
// Multi-threaded over tiles of C (on the calling thread when called inside parallel_for). Each
// element's sum runs over k in a fixed order whatever the thread count, so results are
// bit-identical from run to run on one machine and instruction-set path.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A,
           int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate);
void sgemm_packed(const PackedA& a, bool trans_b, int64_t N, const float* B, int64_t ldb,
                  float* C, int64_t ldc, bool accumulate);

// The forward epilogue of the convolution and the linear layer: v + bias[i] (when bias is
// given), then ReLU when relu, computed as relu_forward does (NaN stays NaN), so that the fused
// forward is bit-identical to the forward followed by ops.relu.
inline float bias_relu(float v, const float* bias, int64_t i, bool relu) {
  if (bias) v += bias[i];
  return relu && v < 0.0f ? 0.0f : v;
}

}  // namespace pcn::cpu
