// The tensor-core check ops on CUDA (csrc/kernels/tf32.h): each kernel runs one wrapper of
// ptx.cuh, so that tests/test_ptx.py compares the instruction (or, in the simulator build, its
// twin) with a scalar reference.
#include "csrc/kernels/tf32.h"
#include "grid_stride.cuh"
#include "launch.cuh"
#include "ptx.cuh"

namespace pcn::cuda {

// y[i] = tf32_round(x[i]) for n elements; grid-stride, one element per thread.
__global__ void tf32_round_kernel(const float* __restrict__ x, float* __restrict__ y,
                                  long long n) {
  for (long long i = global_thread(); i < n; i += grid_threads()) y[i] = tf32_round(x[i]);
}

// d[t] = a[t] b[t] + c[t] (a: T x 16 x 8, b: T x 8 x 8, c, d: T x 16 x 8, row-major).
// Thread mapping: 2 warps per block, warp w of block blk computes tile t = 2 blk + w; each lane
// loads its fragments at the positions ptx.cuh lists (groupID = lane >> 2, tig = lane % 4),
// one mma, stores its 4 outputs. A warp without a tile (odd T) returns as a whole.
__global__ void __launch_bounds__(64) mma_m16n8k8_tf32_kernel(const float* __restrict__ a,
                                                              const float* __restrict__ b,
                                                              const float* __restrict__ c,
                                                              float* __restrict__ d, int tiles) {
  const int lane = threadIdx.x % 32, t = blockIdx.x * 2 + threadIdx.x / 32;
  if (t >= tiles) return;
  const int group = lane >> 2, tig = lane % 4;
  const float* at = a + t * 128LL;
  const float* bt = b + t * 64LL;
  const float fa[4] = {at[group * 8 + tig], at[(group + 8) * 8 + tig], at[group * 8 + tig + 4],
                       at[(group + 8) * 8 + tig + 4]};
  const float fb[2] = {bt[tig * 8 + group], bt[(tig + 4) * 8 + group]};
  float acc[4];
#pragma unroll
  for (int r = 0; r < 4; ++r) acc[r] = c[t * 128LL + (group + 8 * (r >= 2)) * 8 + 2 * tig + (r & 1)];
  mma_m16n8k8_tf32(acc, fa, fb);
#pragma unroll
  for (int r = 0; r < 4; ++r) d[t * 128LL + (group + 8 * (r >= 2)) * 8 + 2 * tig + (r & 1)] = acc[r];
}

void tf32_round(const Tensor& x, Tensor& y) {
  const long long n = x.numel();
  PCN_LAUNCH(tf32_round_kernel, grid_stride_blocks(n, 256), 256, 0, stream(x.device().index),
             x.data<float>(), y.data<float>(), n);
}

void mma_m16n8k8_tf32(const Tensor& a, const Tensor& b, const Tensor& c, Tensor& d) {
  const int tiles = static_cast<int>(a.size(0));
  PCN_LAUNCH(mma_m16n8k8_tf32_kernel, ceil_div(tiles, 2), 64, 0, stream(a.device().index),
             a.data<float>(), b.data<float>(), c.data<float>(), d.data<float>(), tiles);
}

}  // namespace pcn::cuda
