// Dense SGEMM on the version-3 pipeline (gemm_v3.cuh) with an FP32, TF32 or 3xTF32 core
// (gemm_tc.cuh): the linear layer's three products.
#include "gemm.cuh"
#include "gemm_tc.cuh"

namespace pcn::cuda {

namespace {
template <Pass3 P, bool TransA, bool TransB>
void sgemm3_dense(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C,
                  int ldc, const float* bias, Precision precision, cudaStream_t stream) {
  launch_gemm3_precision<P>(precision, DenseA3<TransA>{A, lda}, DenseB3<TransB>{B, ldb},
                            DenseOut{C, ldc, bias}, 1, M, N, K, 1, K, stream);
}
}  // namespace

void sgemm3(Pass3 pass, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
            float* C, int ldc, const float* bias, Precision precision, cudaStream_t stream) {
  if (pass == Pass3::kFprop) {
    sgemm3_dense<Pass3::kFprop, false, true>(M, N, K, A, lda, B, ldb, C, ldc, bias, precision,
                                             stream);
  } else if (pass == Pass3::kDgrad) {
    sgemm3_dense<Pass3::kDgrad, false, false>(M, N, K, A, lda, B, ldb, C, ldc, bias, precision,
                                              stream);
  } else {
    sgemm3_dense<Pass3::kWgrad, true, false>(M, N, K, A, lda, B, ldb, C, ldc, bias, precision,
                                             stream);
  }
}

}  // namespace pcn::cuda
