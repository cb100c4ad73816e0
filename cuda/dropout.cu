// Inverted dropout, forward and backward; csrc/ops/dropout.h has the rule. x, y, dy, dx: n
// float32; mask: n uint8 (1 = kept). Unit i is kept iff Philox word i of (seed, kStreamDropout)
// >= threshold, the same integer test as the CPU kernel, so both draw the identical mask.
//   version 1: one element per thread; one philox4x32 call per element (3 of its 4 words unused).
//   version 2: four elements per thread: one philox4x32 call gives the words of elements
//              4b .. 4b+3, so a quarter of the generator's arithmetic.
// A slice of a wider tensor (DropoutParams::row != 0) draws the words of the units it stands for
// (dropout_unit): version 1 as it is, version 2 falls back to version 1.
#include "csrc/kernels/dropout.h"
#include "csrc/philox.h"
#include "grid_stride.cuh"

namespace pcn::cuda {

namespace {

// Layout: flat arrays of n. Thread mapping: grid-stride over elements, thread i draws word i.
__global__ void dropout_forward_kernel1(const float* __restrict__ x, float* __restrict__ y,
                                        uint8_t* __restrict__ mask, long long n,
                                        DropoutParams p) {
  for (long long i = global_thread(); i < n; i += grid_threads()) {
    const bool kept = philox_word(p.seed, kStreamDropout, dropout_unit(p, i)) >= p.threshold;
    mask[i] = kept;
    y[i] = x[i] * (kept ? p.scale : 0.0f);  // x * 0 keeps a NaN a NaN
  }
}

// Layout: flat arrays of n. Thread mapping: grid-stride over the ceil(n / 4) Philox blocks;
// thread b handles elements 4b .. min(4b + 3, n - 1) with word e of block b for element 4b + e.
__global__ void dropout_forward_kernel2(const float* __restrict__ x, float* __restrict__ y,
                                        uint8_t* __restrict__ mask, long long n,
                                        DropoutParams p) {
  const long long blocks = (n + 3) / 4;
  for (long long b = global_thread(); b < blocks; b += grid_threads()) {
    const uint64_t block = static_cast<uint64_t>(b);
    const Philox4 r = philox4x32(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                                 kStreamDropout, 0u, static_cast<uint32_t>(p.seed),
                                 static_cast<uint32_t>(p.seed >> 32));
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const long long i = 4 * b + e;
      if (i < n) {
        const bool kept = r.v[e] >= p.threshold;
        mask[i] = kept;
        y[i] = x[i] * (kept ? p.scale : 0.0f);
      }
    }
  }
}

// Layout: flat arrays of n. Thread mapping: grid-stride over elements; dx = dy * scale where the
// mask is nonzero, dy * 0 (NaN stays NaN) elsewhere.
__global__ void dropout_backward_kernel1(const float* __restrict__ dy,
                                         const uint8_t* __restrict__ mask,
                                         float* __restrict__ dx, long long n, float scale) {
  for (long long i = global_thread(); i < n; i += grid_threads()) {
    dx[i] = dy[i] * (mask[i] ? scale : 0.0f);
  }
}

constexpr int kThreads = 256;

}  // namespace

void dropout_forward(const Tensor& x, Tensor& y, Tensor& mask, const DropoutParams& p,
                     int version) {
  const long long n = x.numel();
  cudaStream_t s = stream(x.device().index);
  if (version == 1 || p.row != 0) {
    PCN_LAUNCH(dropout_forward_kernel1, grid_stride_blocks(n, kThreads), kThreads, 0, s,
               x.data<float>(), y.data<float>(), mask.data<uint8_t>(), n, p);
  } else {
    PCN_LAUNCH(dropout_forward_kernel2, grid_stride_blocks((n + 3) / 4, kThreads), kThreads, 0, s,
               x.data<float>(), y.data<float>(), mask.data<uint8_t>(), n, p);
  }
}

void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx, const DropoutParams& p,
                      int /*version*/) {
  const long long n = dy.numel();
  PCN_LAUNCH(dropout_backward_kernel1, grid_stride_blocks(n, kThreads), kThreads, 0,
             stream(dy.device().index), dy.data<float>(), mask.data<uint8_t>(), dx.data<float>(),
             n, p.scale);
}

}  // namespace pcn::cuda
