// Max-pooling, forward and backward; csrc/ops/max_pool2d.h has the rule and the taps. x, dx:
// NCHW float32 (planes of H*W); y, dy: (N, C, Ho, Wo) float32, taps the same shape, uint8.
// Square windows of `kernel`, moved by `stride`, no padding; kernel <= H, W, and kernel <= 16
// with taps (checked by the host entry points).
//   version 1: forward, one thread per output (and its tap); backward, one thread per input
//              position that gathers from the taps of the windows covering it (no atomics, so
//              deterministic).
// Run on the CUDA simulator (PYCONVNET_CUDA=sim) against the CPU kernels bit for bit; compiled
// for sm_90 with nvcc.
#include "csrc/kernels/max_pool2d.h"
#include "grid_stride.cuh"

namespace pcn::cuda {

namespace {

struct PoolShape {
  long long planes, h, w, ho, wo, kernel, stride;
};

// Layout: x (planes, h, w), y and taps (planes, ho, wo); taps may be null (not written). Thread
// mapping: grid-stride over the outputs; thread e scans its window row by row. A NaN replaces
// the running maximum and is then kept (nothing compares greater than NaN), so a NaN anywhere in
// the window makes the output NaN. The tap moves to an element that raises the maximum or is
// the window's first NaN: it ends on the first element equal to the maximum (the first NaN).
__global__ void max_pool2d_forward_kernel1(const float* __restrict__ x, float* __restrict__ y,
                                           uint8_t* __restrict__ taps, PoolShape s) {
  const long long total = s.planes * s.ho * s.wo;
  for (long long e = global_thread(); e < total; e += grid_threads()) {
    const long long oj = e % s.wo, oi = e / s.wo % s.ho, plane = e / (s.wo * s.ho);
    const float* win = x + (plane * s.h + oi * s.stride) * s.w + oj * s.stride;
    float m = win[0];
    int tap = 0;
    for (long long r = 0; r < s.kernel; ++r) {
      for (long long c = 0; c < s.kernel; ++c) {
        const float v = win[r * s.w + c];
        const bool nan = isnan(v), up = v > m;
        if (up || (nan && !isnan(m))) tap = static_cast<int>(r * s.kernel + c);
        if (up || nan) m = v;
      }
    }
    y[e] = m;
    if (taps != nullptr) taps[e] = static_cast<uint8_t>(tap);
  }
}

// Layout: dy, taps as y above, dx as x. Thread mapping: grid-stride over the inputs; thread e at
// (row, col) of its plane visits the windows (oi, oj) that cover it, in row then column order,
// and adds dy[oi, oj] when that window's tap is this element's place in it. A tap >= kernel^2
// matches no element, so its gradient goes nowhere.
__global__ void max_pool2d_backward_kernel1(const float* __restrict__ dy,
                                            const uint8_t* __restrict__ taps,
                                            float* __restrict__ dx, PoolShape s) {
  const long long total = s.planes * s.h * s.w;
  const long long k = s.kernel, st = s.stride;
  for (long long e = global_thread(); e < total; e += grid_threads()) {
    const long long col = e % s.w, row = e / s.w % s.h, plane = e / (s.w * s.h);
    // Windows oi with oi*st <= row < oi*st + k, clipped to the output.
    const long long i_lo = row < k ? 0 : (row - k) / st + 1;
    const long long i_hi = row / st < s.ho - 1 ? row / st : s.ho - 1;
    const long long j_lo = col < k ? 0 : (col - k) / st + 1;
    const long long j_hi = col / st < s.wo - 1 ? col / st : s.wo - 1;
    float acc = 0.0f;
    for (long long oi = i_lo; oi <= i_hi; ++oi) {
      for (long long oj = j_lo; oj <= j_hi; ++oj) {
        const long long o = (plane * s.ho + oi) * s.wo + oj;
        if (taps[o] == (row - oi * st) * k + (col - oj * st)) acc += dy[o];
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

void max_pool2d_forward(const Tensor& x, Tensor& y, Tensor& taps, int64_t kernel, int64_t stride,
                        int /*version*/) {
  uint8_t* tp = taps.defined() ? taps.data<uint8_t>() : nullptr;
  PCN_LAUNCH(max_pool2d_forward_kernel1, grid_stride_blocks(y.numel(), kThreads), kThreads, 0,
             stream(x.device().index), x.data<float>(), y.data<float>(), tp,
             shape_of(x, y, kernel, stride));
}

void max_pool2d_backward(const Tensor& dy, const Tensor& taps, Tensor& dx, int64_t kernel,
                         int64_t stride, int /*version*/) {
  PCN_LAUNCH(max_pool2d_backward_kernel1, grid_stride_blocks(dx.numel(), kThreads), kThreads, 0,
             stream(dx.device().index), dy.data<float>(), taps.data<uint8_t>(),
             dx.data<float>(), shape_of(dx, dy, kernel, stride));
}

}  // namespace pcn::cuda
