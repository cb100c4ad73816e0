// The linear layer on the CPU, version 1: each pass is one call of the blocked SGEMM.
#include "csrc/kernels/linear.h"

#include <algorithm>

#include "gemm.h"
#include "parallel.h"

namespace pcn::cpu {

void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, bool relu,
                    int version) {
  const int64_t N = x.size(0), in = x.size(1), out = w.size(0);
  float* yd = y.data<float>();
  sgemm(false, true, N, out, in, x.data<float>(), in, w.data<float>(), in, yd, out, false);
  if (b.defined() || relu) {
    const float* bd = b.defined() ? b.data<float>() : nullptr;
    parallel_for_work(N, N * out, [&](int64_t n) {
      for (int64_t o = 0; o < out; ++o) yd[n * out + o] = bias_relu(yd[n * out + o], bd, o, relu);
    });
  }
}

void linear_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, int version) {
  const int64_t N = dy.size(0), out = w.size(0), in = w.size(1);
  sgemm(false, false, N, in, out, dy.data<float>(), out, w.data<float>(), in, dx.data<float>(),
        in, false);
}

void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor& db,
                            int version) {
  const int64_t N = x.size(0), in = x.size(1), out = dy.size(1);
  const float* dyd = dy.data<float>();
  sgemm(true, false, out, in, N, dyd, out, x.data<float>(), in, dw.data<float>(), in, false);
  // db[o] = sum over n in order; one task per block of columns, rows walked contiguously.
  float* dbd = db.data<float>();
  constexpr int64_t kBlock = 256;
  parallel_for((out + kBlock - 1) / kBlock, [&](int64_t blk) {
    const int64_t o0 = blk * kBlock, o1 = std::min(out, o0 + kBlock);
    for (int64_t o = o0; o < o1; ++o) dbd[o] = 0.0f;
    for (int64_t n = 0; n < N; ++n) {
      for (int64_t o = o0; o < o1; ++o) dbd[o] += dyd[n * out + o];
    }
  });
}

}  // namespace pcn::cpu
