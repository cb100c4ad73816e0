// The linear layer on CUDA: each pass is one SGEMM (its version is the layer's version:
// 1 = one output per thread, 2 = 64x64x8 shared-memory tiles (gemm.cu), 3 = 128x128 tiles with
// 8x8 outputs per thread (gemm_v3.cu), 4 and 5 = the same tiles on TF32 and 3xTF32 tensor cores
// (gemm_tc.cuh), the registry's precision of the version picking the core), plus the bias
// gradient's fixed-order reduction.
#include "csrc/kernels/linear.h"
#include "gemm.cuh"
#include "gemm_v3.cuh"

namespace pcn::cuda {

namespace {
// The pass's SGEMM in `version` (3-5: sgemm3, whose transposes the pass fixes).
void gemm(int version, Pass3 pass, bool trans_a, bool trans_b, int M, int N, int K,
          const float* A, int lda, const float* B, int ldb, float* C, int ldc, const float* bias,
          cudaStream_t stream) {
  if (version >= 3) {
    sgemm3(pass, M, N, K, A, lda, B, ldb, C, ldc, bias, kLinearVersions.cuda.of(version), stream);
  } else {
    sgemm(version, trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, bias, stream);
  }
}
}  // namespace

// y (N, out) = x (N, in) w^T + b: w (out, in) read as B^T.
void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, int version) {
  const int N = static_cast<int>(x.size(0)), in = static_cast<int>(x.size(1));
  const int out = static_cast<int>(w.size(0));
  gemm(version, Pass3::kFprop, false, true, N, out, in, x.data<float>(), in, w.data<float>(),
       in, y.data<float>(), out, b.defined() ? b.data<float>() : nullptr,
       stream(x.device().index));
}

// dx (N, in) = dy (N, out) w (out, in).
void linear_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, int version) {
  const int N = static_cast<int>(dy.size(0)), out = static_cast<int>(w.size(0));
  const int in = static_cast<int>(w.size(1));
  gemm(version, Pass3::kDgrad, false, false, N, in, out, dy.data<float>(), out,
       w.data<float>(), in, dx.data<float>(), in, nullptr, stream(dy.device().index));
}

// dw (out, in) = dy^T (out, N) x (N, in); db (out,) = dy summed over the batch.
void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor& db,
                            int version) {
  const int N = static_cast<int>(x.size(0)), in = static_cast<int>(x.size(1));
  const int out = static_cast<int>(dy.size(1));
  const cudaStream_t st = stream(dy.device().index);
  gemm(version, Pass3::kWgrad, true, false, out, in, N, dy.data<float>(), out,
       x.data<float>(), in, dw.data<float>(), in, nullptr, st);
  bias_grad(dy.data<float>(), db.data<float>(), N, out, 1, st);
}

}  // namespace pcn::cuda
