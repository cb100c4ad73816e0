#include "csrc/kernels/add.h"
#include "parallel.h"

namespace pcn::cpu {

// Chunks of about 16K elements, as many per thread (parallel_chunks); the compiler vectorises
// the loop.
void add_forward(const Tensor& a, const Tensor& b, Tensor& y) {
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  float* out = y.data<float>();
  parallel_chunks(a.numel(), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) out[i] = pa[i] + pb[i];
  });
}

}  // namespace pcn::cpu
