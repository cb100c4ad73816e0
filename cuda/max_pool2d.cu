// Max-pooling, forward and backward; csrc/ops/max_pool2d.h has the rule. x, dx: NCHW float32
// (planes of H*W); y, dy: (N, C, Ho, Wo). Square windows of `kernel`, moved by `stride`, no
// padding; kernel <= H, W (checked by the host entry point).
//   version 1: forward, one thread per output; backward, one thread per input position that
//              gathers from the windows covering it (no atomics, so deterministic).
#include "csrc/kernels/max_pool2d.h"
#include "grid_stride.cuh"

namespace pcn::cuda {

namespace {

struct PoolShape {
  long long planes, h, w, ho, wo, kernel, stride;
};

// Layout: x (planes, h, w), y (planes, ho, wo). Thread mapping: grid-stride over the outputs;
// thread e scans its window row by row. A NaN replaces the running maximum and is then kept
// (nothing compares greater than NaN), so a NaN anywhere in the window makes the output NaN.
__global__ void max_pool2d_forward_kernel1(const float* __restrict__ x, float* __restrict__ y,
                                           PoolShape s) {
  const long long total = s.planes * s.ho * s.wo;
  for (long long e = global_thread(); e < total; e += grid_threads()) {
    const long long oj = e % s.wo, oi = e / s.wo % s.ho, plane = e / (s.wo * s.ho);
    const float* win = x + (plane * s.h + oi * s.stride) * s.w + oj * s.stride;
    float m = win[0];
    for (long long r = 0; r < s.kernel; ++r) {
      for (long long c = 0; c < s.kernel; ++c) {
        const float v = win[r * s.w + c];
        if (v > m || isnan(v)) m = v;
      }
    }
    y[e] = m;
  }
}

// Layout: dy, x, y, dx as above. Thread mapping: grid-stride over the inputs; thread e at (row,
// col) of its plane visits the windows (oi, oj) that cover it, in row then column order, and adds
// dy[oi, oj] when it is that window's argmax: x[e] equals y[oi, oj] (both NaN for a NaN window)
// and no earlier element of the window in row-major scan order does. The cheap equality test
// rejects most windows before any scan; y is what makes it possible without recomputing maxima.
__global__ void max_pool2d_backward_kernel1(const float* __restrict__ dy,
                                            const float* __restrict__ x,
                                            const float* __restrict__ y, float* __restrict__ dx,
                                            PoolShape s) {
  const long long total = s.planes * s.h * s.w;
  const long long k = s.kernel, st = s.stride;
  for (long long e = global_thread(); e < total; e += grid_threads()) {
    const long long col = e % s.w, row = e / s.w % s.h, plane = e / (s.w * s.h);
    // Windows oi with oi*st <= row < oi*st + k, clipped to the output.
    const long long i_lo = row < k ? 0 : (row - k) / st + 1;
    const long long i_hi = row / st < s.ho - 1 ? row / st : s.ho - 1;
    const long long j_lo = col < k ? 0 : (col - k) / st + 1;
    const long long j_hi = col / st < s.wo - 1 ? col / st : s.wo - 1;
    const float* xp = x + plane * s.h * s.w;
    const float xv = x[e];
    float acc = 0.0f;
    for (long long oi = i_lo; oi <= i_hi; ++oi) {
      for (long long oj = j_lo; oj <= j_hi; ++oj) {
        const long long o = (plane * s.ho + oi) * s.wo + oj;
        const float m = y[o];
        const bool nan = isnan(m);
        if (nan ? !isnan(xv) : xv != m) continue;
        // Is an earlier element of this window (scan position q < this one's) also a match?
        const long long r0 = oi * st, c0 = oj * st;
        const long long before = (row - r0) * k + (col - c0);
        bool first = true;
        for (long long q = 0; q < before && first; ++q) {
          const float v = xp[(r0 + q / k) * s.w + c0 + q % k];
          first = !(nan ? isnan(v) : v == m);
        }
        if (first) acc += dy[o];
      }
    }
    dx[e] = acc;
  }
}

constexpr int kThreads = 256;

PoolShape shape_of(const Tensor& x, const Tensor& y, int64_t kernel, int64_t stride) {
  return {x.size(0) * x.size(1), x.size(2), x.size(3), y.size(2), y.size(3), kernel, stride};
}

}  // namespace

void max_pool2d_forward(const Tensor& x, Tensor& y, int64_t kernel, int64_t stride,
                        int /*version*/) {
  PCN_LAUNCH(max_pool2d_forward_kernel1, grid_stride_blocks(y.numel(), kThreads), kThreads, 0,
             stream(x.device().index), x.data<float>(), y.data<float>(),
             shape_of(x, y, kernel, stride));
}

void max_pool2d_backward(const Tensor& dy, const Tensor& x, const Tensor& y, Tensor& dx,
                         int64_t kernel, int64_t stride, int /*version*/) {
  PCN_LAUNCH(max_pool2d_backward_kernel1, grid_stride_blocks(x.numel(), kThreads), kThreads, 0,
             stream(x.device().index), dy.data<float>(), x.data<float>(), y.data<float>(),
             dx.data<float>(), shape_of(x, y, kernel, stride));
}

}  // namespace pcn::cuda
