// Dense SGEMM on the version-3 pipeline (gemm_v3.cuh) with an FP32, TF32 or 3xTF32 core
// (gemm_tc.cuh): the linear layer's three products, the forward and the data gradient split
// along K when their output has too few tiles.
#include "gemm.cuh"
#include "gemm_tc.cuh"

namespace pcn::cuda {

namespace {
template <Pass P, bool TransA, bool TransB>
void sgemm3_dense(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C,
                  int ldc, const float* bias, bool relu, Precision precision,
                  const Device& device, cudaStream_t stream) {
  const DenseA3<TransA> a{A, lda};
  const DenseB3<TransB> b{B, ldb};
  // Split only a dense C (ldc == N, as the linear layer's): the reduction writes it flat.
  const SplitPlan plan = P == Pass::kWgrad || ldc != N ? SplitPlan{1, K}
                                                       : gemm3_split_plan(gemm3_tiles(M, N), K);
  if (plan.splits == 1) {
    launch_gemm3_precision<P>(precision, a, b, DenseOut{C, ldc, bias, relu, 0}, 1, M, N, K, 1, K,
                              stream);
    return;
  }
  // Partial sums of each chunk (M x N, dense), then their fixed-order sum with the epilogue;
  // the workspace returns to the caching allocator when this function ends, reused only in
  // stream order.
  const long long len = static_cast<long long>(M) * N;
  Tensor partial = Tensor::empty({plan.splits, len}, DType::Float32, device);
  launch_gemm3_precision<P>(precision, a, b, DenseOut{partial.data<float>(), N, nullptr, false, len},
                            1, M, N, K, plan.splits, plan.chunk, stream);
  reduce_splits(P, partial.data<float>(), C, plan.splits, len, bias, N, relu, stream);
}
}  // namespace

void sgemm3(Pass pass, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
            float* C, int ldc, const float* bias, bool relu, Precision precision,
            const Device& device, cudaStream_t stream) {
  if (pass == Pass::kFprop) {
    sgemm3_dense<Pass::kFprop, false, true>(M, N, K, A, lda, B, ldb, C, ldc, bias, relu,
                                            precision, device, stream);
  } else if (pass == Pass::kDgrad) {
    sgemm3_dense<Pass::kDgrad, false, false>(M, N, K, A, lda, B, ldb, C, ldc, bias, relu,
                                             precision, device, stream);
  } else {
    sgemm3_dense<Pass::kWgrad, true, false>(M, N, K, A, lda, B, ldb, C, ldc, bias, relu,
                                            precision, device, stream);
  }
}

}  // namespace pcn::cuda
