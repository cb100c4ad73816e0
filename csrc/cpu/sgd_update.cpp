#include "csrc/kernels/sgd_update.h"
#include "parallel.h"

#include <algorithm>

namespace pcn::cpu {

void sgd_update(Tensor& w, const Tensor& dw, Tensor& v, const SgdParams& p, int /*version*/) {
  float* __restrict__ wp = w.data<float>();
  const float* __restrict__ gp = dw.data<float>();
  float* __restrict__ vp = v.data<float>();
  const float mom = static_cast<float>(p.momentum), lr = static_cast<float>(p.lr);
  const float decay = static_cast<float>(p.weight_decay * p.lr);
  const int64_t n = w.numel(), chunk = 1 << 16;
  parallel_for((n + chunk - 1) / chunk, [&](int64_t c) {
    const int64_t end = std::min(n, (c + 1) * chunk);
    for (int64_t i = c * chunk; i < end; ++i) {
      const float vi = mom * vp[i] - decay * wp[i] - lr * gp[i];
      vp[i] = vi;
      wp[i] += vi;
    }
  });
}

}  // namespace pcn::cpu
