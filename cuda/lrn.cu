// Local response normalization across channels, forward and backward; csrc/ops/lrn.h has the
// maths. x, y, dy, dx: NCHW float32, hw = H*W; channel group g of an image holds the cg = C/groups
// channels [g*cg, (g+1)*cg), and a window never leaves its group.
//   version 1: one thread per element; it reads its window's neighbours itself (from cache), any
//              size. Backward recomputes the normalizer of every channel in its window: a naive
//              baseline, size^2 loads and size powf per element.
//   version 2: one thread per (image, group, pixel) walks the group's channels with the window
//              held in registers: each element of x and dy is loaded once, each s^-beta computed
//              once. Templated on the window (sizes 3, 5, 7); other sizes run version 1.
// All versions add a window's terms in ascending channel order, as the CPU kernels do.
#include "csrc/kernels/lrn.h"
#include "grid_stride.cuh"

namespace pcn::cuda {

namespace {

struct LrnShape {
  long long n, c, hw, cg, groups;
};

struct LrnConsts {
  float k;      // k
  float a;      // alpha / size
  float nbeta;  // -beta
  float coef;   // 2 * beta * alpha / size
};

// Layout: x, y (N, C, hw). Thread mapping: grid-stride over the N*C*hw elements, thread e
// computes y[e]; neighbours of its channel are hw floats away. half = size / 2.
__global__ void lrn_forward_kernel1(const float* __restrict__ x, float* __restrict__ y,
                                    LrnShape s, long long half, LrnConsts k) {
  const long long total = s.n * s.c * s.hw;
  for (long long e = global_thread(); e < total; e += grid_threads()) {
    const long long ci = (e / s.hw) % s.c % s.cg;  // channel index within its group
    const long long lo = (ci - half > 0 ? ci - half : 0) - ci;
    const long long hi = (ci + half < s.cg - 1 ? ci + half : s.cg - 1) - ci;
    float sum = 0.0f;
    for (long long j = lo; j <= hi; ++j) {
      const float v = x[e + j * s.hw];
      sum += v * v;
    }
    y[e] = x[e] * powf(k.k + k.a * sum, k.nbeta);
  }
}

// Layout: dy, x, dx (N, C, hw). Thread mapping: grid-stride over elements, thread e computes
// dx[e] = dy_m p_m - coef x_m sum_{i in win(m)} dy_i x_i p_i / s_i (m = e's channel,
// p = s^-beta), recomputing s_i for every i of its window.
__global__ void lrn_backward_kernel1(const float* __restrict__ dy, const float* __restrict__ x,
                                     float* __restrict__ dx, LrnShape s, long long half,
                                     LrnConsts k) {
  const long long total = s.n * s.c * s.hw;
  for (long long e = global_thread(); e < total; e += grid_threads()) {
    const long long cm = (e / s.hw) % s.c % s.cg;
    const long long lo = (cm - half > 0 ? cm - half : 0) - cm;
    const long long hi = (cm + half < s.cg - 1 ? cm + half : s.cg - 1) - cm;
    float acc = 0.0f, pm = 0.0f;
    for (long long j = lo; j <= hi; ++j) {  // channel i = cm + j of m's window
      const long long ci = cm + j;
      const long long qlo = (ci - half > 0 ? ci - half : 0) - ci;
      const long long qhi = (ci + half < s.cg - 1 ? ci + half : s.cg - 1) - ci;
      const long long ei = e + j * s.hw;
      float sum = 0.0f;
      for (long long q = qlo; q <= qhi; ++q) {
        const float v = x[ei + q * s.hw];
        sum += v * v;
      }
      const float scale = k.k + k.a * sum;
      const float p = powf(scale, k.nbeta);
      if (j == 0) pm = p;
      acc += dy[ei] * x[ei] * p / scale;
    }
    dx[e] = dy[e] * pm - k.coef * x[e] * acc;
  }
}

// Offset of (image n, group g, channel 0 of the group, pixel p) for thread item t, where items
// are ordered (n, g, p) with p fastest so a warp's loads of one channel are contiguous.
__device__ __forceinline__ long long group_base(long long t, const LrnShape& s) {
  const long long p = t % s.hw, ng = t / s.hw;
  return ((ng / s.groups) * s.c + (ng % s.groups) * s.cg) * s.hw + p;
}

// Layout: x, y (N, C, hw). Thread mapping: grid-stride over the N*groups*hw (image, group,
// pixel) items; the thread walks channels c = 0 .. cg-1 of the group keeping
// win = x_{c-2H} .. x_c (zeros outside the group) and writes y_i for i = c - H once its
// window is loaded. Precondition: size == 2H + 1.
template <int H>
__global__ void lrn_forward_kernel2(const float* __restrict__ x, float* __restrict__ y,
                                    LrnShape s, LrnConsts k) {
  constexpr int W = 2 * H + 1;
  const long long items = s.n * s.groups * s.hw;
  for (long long t = global_thread(); t < items; t += grid_threads()) {
    const long long base = group_base(t, s);
    float win[W];
#pragma unroll
    for (int q = 0; q < W; ++q) win[q] = 0.0f;
    for (long long c = 0; c < s.cg + H; ++c) {
#pragma unroll
      for (int q = 0; q + 1 < W; ++q) win[q] = win[q + 1];
      win[W - 1] = c < s.cg ? x[base + c * s.hw] : 0.0f;
      const long long i = c - H;
      if (i < 0) continue;
      float sum = 0.0f;
#pragma unroll
      for (int q = 0; q < W; ++q) sum += win[q] * win[q];
      y[base + i * s.hw] = win[H] * powf(k.k + k.a * sum, k.nbeta);
    }
  }
}

// Layout: dy, x, dx (N, C, hw). Thread mapping as lrn_forward_kernel2. At step c (x_c just
// loaded) the thread holds, zero outside the group:
//   xw = x_{c-2H} .. x_c            -> s_i of i = c - H, and x_m of m = c - 2H (xw[0]);
//   tw = t_{c-3H} .. t_{c-H}        -> the window sum of t = dy x s^(-beta-1) around m;
//   dyw, pw = dy, s^-beta of channels c-2H .. c-H   -> dy_m = dyw[0], p_m = pw[0];
// computes t_i, p_i, and writes dx_m. Precondition: size == 2H + 1.
template <int H>
__global__ void lrn_backward_kernel2(const float* __restrict__ dy, const float* __restrict__ x,
                                     float* __restrict__ dx, LrnShape s, LrnConsts k) {
  constexpr int W = 2 * H + 1;
  const long long items = s.n * s.groups * s.hw;
  for (long long t = global_thread(); t < items; t += grid_threads()) {
    const long long base = group_base(t, s);
    float xw[W], tw[W], dyw[H + 1], pw[H + 1];
#pragma unroll
    for (int q = 0; q < W; ++q) xw[q] = tw[q] = 0.0f;
#pragma unroll
    for (int q = 0; q <= H; ++q) dyw[q] = pw[q] = 0.0f;
    for (long long c = 0; c < s.cg + 2 * H; ++c) {
#pragma unroll
      for (int q = 0; q + 1 < W; ++q) {
        xw[q] = xw[q + 1];
        tw[q] = tw[q + 1];
      }
#pragma unroll
      for (int q = 0; q < H; ++q) {
        dyw[q] = dyw[q + 1];
        pw[q] = pw[q + 1];
      }
      xw[W - 1] = c < s.cg ? x[base + c * s.hw] : 0.0f;
      const long long i = c - H;
      tw[W - 1] = dyw[H] = pw[H] = 0.0f;
      if (i >= 0 && i < s.cg) {
        float sum = 0.0f;
#pragma unroll
        for (int q = 0; q < W; ++q) sum += xw[q] * xw[q];
        const float scale = k.k + k.a * sum;
        const float p = powf(scale, k.nbeta);
        const float g = dy[base + i * s.hw];
        tw[W - 1] = g * xw[H] * p / scale;
        dyw[H] = g;
        pw[H] = p;
      }
      const long long m = c - 2 * H;  // < cg always
      if (m < 0) continue;
      float acc = 0.0f;
#pragma unroll
      for (int q = 0; q < W; ++q) acc += tw[q];
      dx[base + m * s.hw] = dyw[0] * pw[0] - k.coef * xw[0] * acc;
    }
  }
}

constexpr int kThreads = 256;

struct Setup {
  LrnShape shape;
  LrnConsts consts;
  long long half;  // size / 2 (any odd size is valid: windows are clipped to the group)
  cudaStream_t stream;
};

Setup setup(const Tensor& x, const LrnParams& p) {
  Setup u;
  u.shape = {x.size(0), x.size(1), x.size(2) * x.size(3), x.size(1) / p.groups, p.groups};
  u.consts = {static_cast<float>(p.k), static_cast<float>(p.alpha / p.size),
              static_cast<float>(-p.beta), static_cast<float>(2.0 * p.beta * p.alpha / p.size)};
  u.half = p.size / 2;
  u.stream = stream(x.device().index);
  return u;
}

}  // namespace

void lrn_forward(const Tensor& x, Tensor& y, const LrnParams& p, int version) {
  const Setup u = setup(x, p);
  const float* in = x.data<float>();
  float* out = y.data<float>();
  const long long items = u.shape.n * u.shape.groups * u.shape.hw;
  const unsigned int blocks2 = grid_stride_blocks(items, kThreads);
  if (version == 2 && u.half == 1) {
    PCN_LAUNCH(lrn_forward_kernel2<1>, blocks2, kThreads, 0, u.stream, in, out, u.shape, u.consts);
  } else if (version == 2 && u.half == 2) {
    PCN_LAUNCH(lrn_forward_kernel2<2>, blocks2, kThreads, 0, u.stream, in, out, u.shape, u.consts);
  } else if (version == 2 && u.half == 3) {
    PCN_LAUNCH(lrn_forward_kernel2<3>, blocks2, kThreads, 0, u.stream, in, out, u.shape, u.consts);
  } else {
    PCN_LAUNCH(lrn_forward_kernel1, grid_stride_blocks(x.numel(), kThreads), kThreads, 0, u.stream,
               in, out, u.shape, u.half, u.consts);
  }
}

void lrn_backward(const Tensor& dy, const Tensor& x, Tensor& dx, const LrnParams& p, int version) {
  const Setup u = setup(x, p);
  const float* g = dy.data<float>();
  const float* in = x.data<float>();
  float* out = dx.data<float>();
  const long long items = u.shape.n * u.shape.groups * u.shape.hw;
  const unsigned int blocks2 = grid_stride_blocks(items, kThreads);
  if (version == 2 && u.half == 1) {
    PCN_LAUNCH(lrn_backward_kernel2<1>, blocks2, kThreads, 0, u.stream, g, in, out, u.shape,
               u.consts);
  } else if (version == 2 && u.half == 2) {
    PCN_LAUNCH(lrn_backward_kernel2<2>, blocks2, kThreads, 0, u.stream, g, in, out, u.shape,
               u.consts);
  } else if (version == 2 && u.half == 3) {
    PCN_LAUNCH(lrn_backward_kernel2<3>, blocks2, kThreads, 0, u.stream, g, in, out, u.shape,
               u.consts);
  } else {
    PCN_LAUNCH(lrn_backward_kernel1, grid_stride_blocks(x.numel(), kThreads), kThreads, 0, u.stream,
               g, in, out, u.shape, u.half, u.consts);
  }
}

}  // namespace pcn::cuda
