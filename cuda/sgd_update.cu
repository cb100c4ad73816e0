// SGD with momentum and weight decay, in place (the rule: csrc/ops/sgd_update.h). w, dw, v: n float32,
// three distinct buffers (checked by the host entry point).
//   version 1: one element per thread, grid-stride: reads w, dw, v once, writes w, v once.
#include "csrc/kernels/sgd_update.h"
#include "grid_stride.cuh"

namespace pcn::cuda {

namespace {

// Layout: flat arrays of n. Thread mapping: grid-stride over elements.
// decay = weight_decay * lr, formed on the host in double as the reference does.
__global__ void sgd_update_kernel1(float* __restrict__ w, const float* __restrict__ dw,
                                   float* __restrict__ v, long long n, float momentum, float lr,
                                   float decay) {
  for (long long i = global_thread(); i < n; i += grid_threads()) {
    const float vi = momentum * v[i] - decay * w[i] - lr * dw[i];
    v[i] = vi;
    w[i] += vi;
  }
}

constexpr int kThreads = 256;

}  // namespace

void sgd_update(Tensor& w, const Tensor& dw, Tensor& v, const SgdParams& p, int /*version*/) {
  const long long n = w.numel();
  PCN_LAUNCH(sgd_update_kernel1, grid_stride_blocks(n, kThreads), kThreads, 0,
             stream(w.device().index), w.data<float>(), dw.data<float>(), v.data<float>(), n,
             static_cast<float>(p.momentum), static_cast<float>(p.lr),
             static_cast<float>(p.weight_decay * p.lr));
}

}  // namespace pcn::cuda
