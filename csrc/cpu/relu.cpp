#include "csrc/kernels/relu.h"
#include "isa.h"
#include "parallel.h"

namespace pcn::cpu {

// Chunks of about 16K elements, as many per thread (parallel_chunks), each vectorised by the
// active instruction-set path (simd_kernels.h).

void relu_forward(const Tensor& x, Tensor& y) {
  const float* in = x.data<float>();
  float* out = y.data<float>();
  parallel_chunks(x.numel(), [&](int64_t begin, int64_t end) {
    simd().relu_forward(in + begin, out + begin, end - begin);
  });
}

void relu_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  const float* g = dy.data<float>();
  const float* out = y.data<float>();
  float* d = dx.data<float>();
  parallel_chunks(y.numel(), [&](int64_t begin, int64_t end) {
    simd().relu_backward(g + begin, out + begin, d + begin, end - begin);
  });
}

}  // namespace pcn::cpu
