#include "csrc/kernels/sgd_update.h"
#include "isa.h"
#include "parallel.h"

namespace pcn::cpu {

void sgd_update(Tensor& w, const Tensor& dw, Tensor& v, const SgdParams& p, int /*version*/) {
  float* __restrict__ wp = w.data<float>();
  const float* __restrict__ gp = dw.data<float>();
  float* __restrict__ vp = v.data<float>();
  const float mom = static_cast<float>(p.momentum), lr = static_cast<float>(p.lr);
  const float decay = static_cast<float>(p.weight_decay * p.lr);
  parallel_chunks(w.numel(), [&](int64_t begin, int64_t end) {
    simd().sgd_update(wp + begin, gp + begin, vp + begin, mom, decay, lr, end - begin);
  });
}

}  // namespace pcn::cpu
