// Convolution version 3 on CUDA: the implicit GEMMs of version 2 (conv2d.cu) on the version-3
// core (gemm_v3.cuh: 128x128 or 64x128 block tiles, 8x8 outputs per thread, two shared stages,
// one barrier per k-step), with the index arithmetic out of the loop:
//   - a tap table, built by one small kernel per call, holds for every k of the GEMM what the
//     loaders need from it: the offset of the element in the A operand, its offset in the
//     gathered B operand, and the window displacement to bounds-check. A load is then a table
//     read (the same entry for all lines of a warp: a broadcast), two adds, two unsigned
//     compares and the load itself;
//   - each thread's line (a filter, an input channel, a pixel or a tap) is decoded once;
//   - the data gradient runs the same stride-1 loader at every stride: at stride (sh, sw) an
//     input pixel (h, v) is reached only by the taps r = ry + sh*r', s = rx + sw*s' of its
//     phase (ry, rx) = ((h + ph) % sh, (v + pw) % sw), from the output pixel
//     ((h + ph - ry)/sh - r', (v + pw - rx)/sw - s'), so the pass is sh*sw GEMMs, one per
//     phase, over that phase's pixels and taps (DgradPhase): no division in the loop, and no
//     product with the taps that miss a pixel (15 of every 16 at conv1's stride 4). Stride 1
//     is the one phase of all pixels and taps.
// The three passes launch gemm3_fprop_kernel, gemm3_dgrad_kernel and gemm3_wgrad_kernel (FP32;
// gemm_tf32_* and gemm_3xtf32_* for versions 4 and 5, the same loaders on the tensor-core cores
// of gemm_tc.cuh) and their tap tables conv2d_fprop/dgrad/wgrad_taps_kernel3. The filter
// gradient is split along N*P*Q as in version 2 (filter_split_plan, fixed-order sum).
#include <algorithm>
#include <limits>

#include "conv2d_common.cuh"
#include "ptx.cuh"
#include "gemm_tc.cuh"
#include "grid_stride.cuh"

namespace pcn::cuda {

namespace {

enum class Taps { kFprop, kDgrad, kWgrad };

// One phase (ry, rx) of the data gradient (see the top): its taps r = ry + sh*r' (r' < R) and
// s = rx + sw*s' (s' < S) and its input pixels h = h0 + sh*i (i < H), v = w0 + sw*j (j < W),
// whose windows start at output pixel (hq0 + i, wq0 + j). At stride 1: (0, 0), every tap and
// pixel, hq0 = ph, wq0 = pw.
struct DgradPhase {
  int ry, rx, R, S, h0, w0, H, W, hq0, wq0;
  // Column n of the phase's GEMM: pixel (img, i, j) of the phase, n = (img*H + i)*W + j.
  __device__ void pixel(int n, int& img, int& i, int& j) const {
    j = n % W, i = n / W % H, img = n / (H * W);
  }
};

// conv2d_taps_body (the kernels conv2d_fprop_taps_kernel3, conv2d_dgrad_taps_kernel3,
// conv2d_wgrad_taps_kernel3): taps[k] = {a, b, dy, dx} for k < len, the offsets of GEMM
// element k in the A operand and in the gathered B operand (from the line's start / window
// origin; each fits in int where conv2d_v3_fits holds) and the displacement that the B loader
// adds to its line's window position for the bounds check:
//   forward (k = (c, r, s)):                   {-, c*H*W + r*W + s, r, s}
//   data, phase f (k = (kk, r', s')):          {kk*Cg*R*S + (f.ry + sh*r')*S + f.rx + sw*s',
//                                               kk*P*Q - r'*Q - s', -r', -s'}
//   filter (k = (img, p, q)):                  {img*K*P*Q + p*Q + q, img*C*H*W + p*sh*W + q*sw,
//                                               p*sh, q*sw}
// Thread mapping: one entry per thread, grid-stride loop.
__device__ __forceinline__ void conv2d_taps_body(const ConvShape& s, const DgradPhase& f,
                                                 Taps kind, int4* __restrict__ taps, int len) {
  for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < len; k += gridDim.x * blockDim.x) {
    long long a = 0, b = 0;
    int dy = 0, dx = 0;
    if (kind == Taps::kFprop) {
      const int c = k / s.RS, r = k % s.RS / s.S, t = k % s.S;
      b = (static_cast<long long>(c) * s.H + r) * s.W + t;
      dy = r, dx = t;
    } else if (kind == Taps::kWgrad) {
      const int img = k / s.PQ, pq = k % s.PQ, p = pq / s.Q, q = pq % s.Q;
      a = static_cast<long long>(img) * s.K * s.PQ + pq;
      dy = p * s.sh, dx = q * s.sw;
      b = static_cast<long long>(img) * s.C * s.H * s.W + static_cast<long long>(dy) * s.W + dx;
    } else {
      const int rs = f.R * f.S, kk = k / rs, r = k % rs / f.S, t = k % f.S;
      a = static_cast<long long>(kk) * s.CRS + (f.ry + s.sh * r) * s.S + f.rx + s.sw * t;
      b = static_cast<long long>(kk) * s.PQ - static_cast<long long>(r) * s.Q - t;
      dy = -r, dx = -t;
    }
    taps[k] = make_int4(static_cast<int>(a), static_cast<int>(b), dy, dx);
  }
}

#define PCN_TAPS_KERNEL(name)                                                       \
  __global__ void name(ConvShape s, DgradPhase f, Taps kind, int4* __restrict__ taps, \
                       int len) {                                                       \
    conv2d_taps_body(s, f, kind, taps, len);                                            \
  }
PCN_TAPS_KERNEL(conv2d_fprop_taps_kernel3)
PCN_TAPS_KERNEL(conv2d_dgrad_taps_kernel3)
PCN_TAPS_KERNEL(conv2d_wgrad_taps_kernel3)
#undef PCN_TAPS_KERNEL

// The tap table of `len` > 0 entries on the convolution's device (a workspace that returns to
// the caching allocator when the caller drops it, reused only in stream order); `f` is read
// for the data gradient only.
Tensor make_taps(const ConvShape& s, Taps kind, int len, const Device& device, cudaStream_t st,
                 const DgradPhase& f = {}) {
  Tensor taps = Tensor::empty({len, 4}, DType::Int32, device);
  int4* t = reinterpret_cast<int4*>(taps.data<int32_t>());
  const unsigned int blocks = grid_stride_blocks(len, 256);
  if (kind == Taps::kFprop) {
    PCN_LAUNCH(conv2d_fprop_taps_kernel3, blocks, 256, 0, st, s, f, kind, t, len);
  } else if (kind == Taps::kWgrad) {
    PCN_LAUNCH(conv2d_wgrad_taps_kernel3, blocks, 256, 0, st, s, f, kind, t, len);
  } else {
    PCN_LAUNCH(conv2d_dgrad_taps_kernel3, blocks, 256, 0, st, s, f, kind, t, len);
  }
  return taps;
}

// A of every pass, one filter-side or gradient-side row per line: line i of group g starts at
// p + g*group_stride + i*line_stride; element k is at offset k (the forward's filters,
// contiguous) or taps[k].x (the data gradient's filter runs, the filter gradient's images).
template <bool Tabled>
struct Rows3 {
  static constexpr bool kFastK = true;
  const float* __restrict__ p;
  const int4* __restrict__ taps;  // unused unless Tabled
  long long group_stride;
  int line_stride;
  struct Line {
    const float* __restrict__ p;
  };
  __device__ Line line(int g, int i) const {
    return {p + g * group_stride + static_cast<long long>(i) * line_stride};
  }
  __device__ float load(const Line& l, int k) const {
    // Apart: one conditional expression would make k unsigned too, and an unsigned k + j may
    // wrap, so the compiler could not fold a thread's consecutive k into one address.
    if constexpr (Tabled) {
      return l.p[static_cast<unsigned int>(taps[k].x)];
    } else {
      return l.p[k];
    }
  }
};

// A window of the B operand: element k of the line is origin[taps[k].y] when
// (y0 + taps[k].z, x0 + taps[k].w) lies in [0, h) x [0, w), else 0 (padding). `origin` is
// where the window's (0, 0) would be: it may lie outside the tensor, and is only dereferenced
// at elements inside it.
struct Window3 {
  const float* __restrict__ origin;
  int y0, x0;
};
__device__ __forceinline__ float window_load(const Window3& l, const int4& tap, int h, int w) {
  const unsigned int y = l.y0 + tap.z, x = l.x0 + tap.w;
  return y < static_cast<unsigned int>(h) && x < static_cast<unsigned int>(w) ? l.origin[tap.y]
                                                                               : 0.0f;
}
// The origin is opaque_pointer'd so that it stays a pointer in the loop (ptx.cuh).
__device__ __forceinline__ Window3 window(const float* base, int y0, int x0, int row) {
  return {opaque_pointer(base + (static_cast<long long>(y0) * row + x0)), y0, x0};
}

// Forward B: column n = output pixel (img, p, q), whose window starts at
// (p*sh - ph, q*sw - pw) of x[img][g*Cg..].
struct FpropPixels3 {
  static constexpr bool kFastK = false;  // consecutive n: consecutive q, nearby x
  const float* __restrict__ x;
  const int4* __restrict__ taps;
  ConvShape s;
  using Line = Window3;
  __device__ Line line(int g, int n) const {
    const int q = n % s.Q, p = n / s.Q % s.P, img = n / s.PQ;
    return window(x + (static_cast<long long>(img) * s.C + g * s.Cg) * s.H * s.W,
                  p * s.sh - s.ph, q * s.sw - s.pw, s.W);
  }
  __device__ float load(const Line& l, int k) const { return window_load(l, taps[k], s.H, s.W); }
};

// Data-gradient B of phase f: column n = input pixel (img, f.h0 + sh*i, f.w0 + sw*j), n =
// (img*f.H + i)*f.W + j; element (kk, r', s') is dy[img][g*Kg + kk][f.hq0 + i - r'][f.wq0 + j - s']
// inside the output, else 0.
struct DgradPixels3 {
  static constexpr bool kFastK = false;  // consecutive n: consecutive j
  const float* __restrict__ dy;
  const int4* __restrict__ taps;
  ConvShape s;
  DgradPhase f;
  using Line = Window3;
  __device__ Line line(int g, int n) const {
    int img, i, j;
    f.pixel(n, img, i, j);
    return window(dy + (static_cast<long long>(img) * s.K + g * s.Kg) * s.PQ, f.hq0 + i,
                  f.wq0 + j, s.Q);
  }
  __device__ float load(const Line& l, int k) const { return window_load(l, taps[k], s.P, s.Q); }
};

// The data gradient's epilogue for phase f: dx[img][g*Cg + m][f.h0 + sh*i][f.w0 + sw*j] = v for
// column n = (img*f.H + i)*f.W + j.
struct DgradOut3 {
  float* dx;
  ConvShape s;
  DgradPhase f;
  __device__ void store(int g, int, int m, int n, float v) const {
    int img, i, j;
    f.pixel(n, img, i, j);
    dx[((static_cast<long long>(img) * s.C + g * s.Cg + m) * s.H + f.h0 + s.sh * i) * s.W +
       f.w0 + s.sw * j] = v;
  }
};

// Filter-gradient B: column n = tap (c, r, s); element (img, p, q) is
// x[img][g*Cg + c][p*sh + r - ph][q*sw + s - pw], 0 in the padding.
struct WgradPixels3 {
  static constexpr bool kFastK = true;  // consecutive k: consecutive q, nearby x
  const float* __restrict__ x;
  const int4* __restrict__ taps;
  ConvShape s;
  using Line = Window3;
  __device__ Line line(int g, int n) const {
    const int c = n / s.RS, r = n % s.RS / s.S, t = n % s.S;
    return window(x + static_cast<long long>(g * s.Cg + c) * s.H * s.W, r - s.ph, t - s.pw, s.W);
  }
  __device__ float load(const Line& l, int k) const { return window_load(l, taps[k], s.H, s.W); }
};

}  // namespace

bool conv2d_v3_fits(const ConvShape& s) {
  const long long hw = static_cast<long long>(s.H) * s.W;
  const long long fprop = (s.Cg - 1) * hw + static_cast<long long>(s.R - 1) * s.W + s.S - 1;
  const long long dgrad = static_cast<long long>(s.R - 1) * s.Q + s.S - 1;
  const long long wgrad = (s.N - 1LL) * s.C * hw + static_cast<long long>(s.P - 1) * s.sh * s.W +
                          static_cast<long long>(s.Q - 1) * s.sw;
  return std::max({fprop, dgrad, wgrad}) <= std::numeric_limits<int>::max();
}

void conv2d_forward3(const ConvShape& s, int groups, const float* x, const float* w,
                     const float* b, bool relu, float* y, Precision precision,
                     const Device& device, cudaStream_t st) {
  const Tensor taps = make_taps(s, Taps::kFprop, s.CRS, device, st);
  const int4* t = reinterpret_cast<const int4*>(taps.data<int32_t>());
  const int M = s.Kg, N = s.N * s.PQ;
  launch_gemm3_precision<Pass::kFprop>(
      precision, Rows3<false>{w, nullptr, static_cast<long long>(s.Kg) * s.CRS, s.CRS},
      FpropPixels3{x, t, s}, FwdOut{y, b, relu, s}, groups, M, N, s.CRS, 1, s.CRS, st);
}

// The phases of one axis: for phase r < stride, its first input pixel first (the least
// h >= 0 with (h + pad) % stride == r), its pixel count, its tap count and its window origin.
struct AxisPhase {
  int first, pixels, taps, origin;
};
AxisPhase axis_phase(int r, int stride, int pad, int size, int kernel) {
  const int first = ((r - pad) % stride + stride) % stride;
  return {first, first < size ? (size - first + stride - 1) / stride : 0,
          r < kernel ? (kernel - r + stride - 1) / stride : 0, (first + pad - r) / stride};
}

void conv2d_backward_data3(const ConvShape& s, int groups, const float* dy, const float* w,
                           float* dx, Precision precision, const Device& device,
                           cudaStream_t st) {
  for (int ry = 0; ry < s.sh; ++ry) {
    const AxisPhase y = axis_phase(ry, s.sh, s.ph, s.H, s.R);
    for (int rx = 0; rx < s.sw; ++rx) {
      const AxisPhase x = axis_phase(rx, s.sw, s.pw, s.W, s.S);
      const DgradPhase f{ry,      rx,      y.taps,  x.taps,   y.first,
                         x.first, y.pixels, x.pixels, y.origin, x.origin};
      const int N = s.N * f.H * f.W, K = s.Kg * f.R * f.S;
      if (N == 0) continue;  // no input pixel has this phase
      // K == 0 (no tap reaches these pixels: stride above the kernel): the GEMM stores zeros
      // and reads no table.
      const Tensor taps = K > 0 ? make_taps(s, Taps::kDgrad, K, device, st, f) : Tensor();
      const int4* t = K > 0 ? reinterpret_cast<const int4*>(taps.data<int32_t>()) : nullptr;
      launch_gemm3_precision<Pass::kDgrad>(
          precision, Rows3<true>{w, t, static_cast<long long>(s.Kg) * s.CRS, s.RS},
          DgradPixels3{dy, t, s, f}, DgradOut3{dx, s, f}, groups, s.Cg, N, K, 1, K, st);
    }
  }
}

long long conv2d_backward_filter3_tiles(const ConvShape& s, int groups) {
  const bool small = gemm3_small_tile(s.Kg);
  return static_cast<long long>(groups) *
         ceil_div(s.Kg, small ? Tile3Small::kM : Tile3Large::kM) * ceil_div(s.CRS, Tile3Large::kN);
}

void conv2d_backward_filter3(const ConvShape& s, int groups, const float* dy, const float* x,
                             const FilterOut& out, int splits, int chunk, Precision precision,
                             const Device& device, cudaStream_t st) {
  const int K = s.N * s.PQ;
  const Tensor taps = make_taps(s, Taps::kWgrad, K, device, st);
  const int4* t = reinterpret_cast<const int4*>(taps.data<int32_t>());
  launch_gemm3_precision<Pass::kWgrad>(
      precision, Rows3<true>{dy, t, static_cast<long long>(s.Kg) * s.PQ, s.PQ},
      WgradPixels3{x, t, s}, out, groups, s.Kg, s.CRS, K, splits, chunk, st);
}

}  // namespace pcn::cuda
