// The linear layer on CUDA: each pass is one SGEMM (its version is the layer's version:
// 1 = one output per thread, 2 = 64x64x8 shared-memory tiles (gemm.cu), 3 = 128x128 tiles with
// 8x8 outputs per thread and split-K for outputs of few tiles (gemm_v3.cu), 4 and 5 = the same
// tiles on TF32 and 3xTF32 tensor cores (gemm_tc.cuh), the registry's precision of the version
// picking the core), the forward's bias and ReLU in the GEMM's epilogue, plus the bias
// gradient's fixed-order reduction.
#include "csrc/kernels/linear.h"
#include "gemm.cuh"
#include "gemm_v3.cuh"

namespace pcn::cuda {

namespace {
// The pass's SGEMM in `version` (3-5: sgemm3, the registry's precision of the version picking
// its core).
void gemm(int version, Pass pass, int M, int N, int K, const float* A, int lda, const float* B,
          int ldb, float* C, int ldc, const float* bias, bool relu, const Device& device) {
  const cudaStream_t st = stream(device.index);
  if (version >= 3) {
    sgemm3(pass, M, N, K, A, lda, B, ldb, C, ldc, bias, relu, kLinearVersions.cuda.of(version),
           device, st);
  } else {
    sgemm(version, pass, M, N, K, A, lda, B, ldb, C, ldc, bias, relu, st);
  }
}
}  // namespace

// y (N, out) = x (N, in) w^T + b (then ReLU): w (out, in) read as B^T.
void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, bool relu,
                    int version) {
  const int N = static_cast<int>(x.size(0)), in = static_cast<int>(x.size(1));
  const int out = static_cast<int>(w.size(0));
  gemm(version, Pass::kFprop, N, out, in, x.data<float>(), in, w.data<float>(), in,
       y.data<float>(), out, b.defined() ? b.data<float>() : nullptr, relu, x.device());
}

// dx (N, in) = dy (N, out) w (out, in).
void linear_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, int version) {
  const int N = static_cast<int>(dy.size(0)), out = static_cast<int>(w.size(0));
  const int in = static_cast<int>(w.size(1));
  gemm(version, Pass::kDgrad, N, in, out, dy.data<float>(), out, w.data<float>(), in,
       dx.data<float>(), in, nullptr, false, dy.device());
}

// dw (out, in) = dy^T (out, N) x (N, in); db (out,) = dy summed over the batch.
void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor& db,
                            int version) {
  const int N = static_cast<int>(x.size(0)), in = static_cast<int>(x.size(1));
  const int out = static_cast<int>(dy.size(1));
  gemm(version, Pass::kWgrad, out, in, N, dy.data<float>(), out, x.data<float>(), in,
       dw.data<float>(), in, nullptr, false, dy.device());
  bias_wgrad(dy.data<float>(), db.data<float>(), N, out, 1, dy.device(), stream(dy.device().index));
}

}  // namespace pcn::cuda
