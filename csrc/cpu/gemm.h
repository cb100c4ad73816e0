// The CPU's one matrix product, used by convolution (after im2col) and by the linear layer.
#pragma once
#include <cstdint>

namespace pcn::cpu {

// C = op(A) * op(B), or C += op(A) * op(B) when `accumulate`; all row-major float32.
//   op(A) is M x K: A itself (M rows of stride lda) or, with trans_a, the transpose of A stored
//   as K rows of stride lda; likewise op(B) is K x N, B itself or (trans_b) B stored N x K.
//   C is M rows of stride ldc. With K == 0, C is zeroed (or left alone when accumulating).
// Multi-threaded over tiles of C. Each element's sum runs over k in a fixed order whatever the
// thread count, so results are bit-identical from run to run on one machine.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A,
           int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate);

}  // namespace pcn::cpu
