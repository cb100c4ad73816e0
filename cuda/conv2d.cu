// Convolution on CUDA (NCHW float32, groups): forward, input gradient (backward data), filter
// and bias gradients (backward filter).
//   version 1: direct: one output element per thread, the sum over its window in registers,
//              no shared memory. General and simple: the fallback and the oracle.
//   version 2: implicit GEMM: gemm_tiled_kernel2 (gemm.cuh: 64x64x8 shared tiles, 4x4 outputs
//              per thread) with loaders that gather each GEMM operand from the NCHW tensors in
//              place, reading padding as zeros (no im2col buffer in device memory):
//                forward          y_g  (Kg x N*P*Q)  = W_g (Kg x Cg*R*S)   * X_g (Cg*R*S x N*P*Q)
//                backward data    dx_g (Cg x N*H*W)  = W_g^T (Cg x Kg*R*S) * dY_g (Kg*R*S x N*H*W)
//                backward filter  dW_g (Kg x Cg*R*S) = dY_g (Kg x N*P*Q)   * X_g^T (N*P*Q x Cg*R*S)
//              The filter gradient's sum runs over the batch and the pixels (N*P*Q, 387,200
//              terms for conv1 at batch 128) while it has few output tiles, so it is split
//              into chunks computed by separate blocks into a workspace and then added in a
//              fixed order (reduce_splits): no atomics, bit-identical from run to run.
//   version 3: the same GEMMs on the version-3 core, the index arithmetic out of the loop
//              (conv2d_v3.cu).
//   versions 4, 5: version 3 on tensor cores, TF32 and 3xTF32 (cuda/gemm_tc.cuh); the
//              registry's precision of the version (kConv2dVersions) picks the core.
// Every version's forward adds the bias and, when asked, applies ReLU in its epilogue
// (bias_relu, gemm_common.cuh). Kernel names carry the pass: conv2d_fprop/dgrad/wgrad_kernel1,
// gemm2_fprop/dgrad/wgrad_kernel, gemm3_* (FP32), gemm_tf32_* and gemm_3xtf32_* (tensor cores).
// The bias gradient is one two-level reduction for every version (bias_wgrad, gemm.cu).
#include <algorithm>

#include "conv2d_common.cuh"
#include "gemm.cuh"
#include "grid_stride.cuh"

namespace pcn::cuda {

// ------------------------------------------------------------------------------- version 1

// conv2d_fprop_kernel1: y (N, K, P, Q) = conv(x (N, C, H, W), w (K, Cg, R, S)) + b (K,) or
// no bias (b == nullptr), then ReLU when relu (bias_relu).
// Thread mapping: one output y[n][k][p][q] per thread, flat NKPQ index, grid-stride loop
// (consecutive threads: consecutive q, so stores coalesce). Each thread sums c, r, s in order.
// Preconditions: as ConvShape.
__global__ void conv2d_fprop_kernel1(ConvShape s, const float* __restrict__ x,
                                     const float* __restrict__ w, const float* __restrict__ b,
                                     bool relu, float* __restrict__ y) {
  const long long total = static_cast<long long>(s.N) * s.K * s.PQ;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int q = static_cast<int>(idx % s.Q);
    const int p = static_cast<int>(idx / s.Q % s.P);
    const int k = static_cast<int>(idx / s.PQ % s.K);
    const int n = static_cast<int>(idx / (static_cast<long long>(s.PQ) * s.K));
    const int g = k / s.Kg;
    const float* xg = x + (static_cast<long long>(n) * s.C + g * s.Cg) * s.H * s.W;
    const float* wk = w + static_cast<long long>(k) * s.CRS;
    float acc = 0.0f;
    for (int c = 0; c < s.Cg; ++c) {
      for (int r = 0; r < s.R; ++r) {
        const int ih = p * s.sh - s.ph + r;
        if (ih < 0 || ih >= s.H) continue;
        for (int t = 0; t < s.S; ++t) {
          const int iw = q * s.sw - s.pw + t;
          if (iw < 0 || iw >= s.W) continue;
          acc += xg[(c * s.H + ih) * s.W + iw] * wk[(c * s.R + r) * s.S + t];
        }
      }
    }
    y[idx] = bias_relu(acc, b, k, relu);
  }
}

// conv2d_dgrad_kernel1: dx (N, C, H, W) from dy (N, K, P, Q) and w (K, Cg, R, S):
// dx[n][c][h][v] = sum over the filters k of c's group and taps (r, s) with
// h + ph - r = p*sh, v + pw - s = q*sw, 0 <= p < P, 0 <= q < Q of dy[n][k][p][q] * w[k][c'][r][s]
// (c' = c's index within its group).
// Thread mapping: one dx element per thread, flat NCHW index, grid-stride loop; each thread
// sums k, r, s in order.
// Preconditions: as ConvShape.
__global__ void conv2d_dgrad_kernel1(ConvShape s, const float* __restrict__ dy,
                                     const float* __restrict__ w, float* __restrict__ dx) {
  const long long total = static_cast<long long>(s.N) * s.C * s.H * s.W;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int v = static_cast<int>(idx % s.W);
    const int h = static_cast<int>(idx / s.W % s.H);
    const int c = static_cast<int>(idx / (static_cast<long long>(s.W) * s.H) % s.C);
    const int n = static_cast<int>(idx / (static_cast<long long>(s.W) * s.H * s.C));
    const int g = c / s.Cg, cl = c - g * s.Cg;
    float acc = 0.0f;
    for (int kk = 0; kk < s.Kg; ++kk) {
      const int k = g * s.Kg + kk;
      const float* dyk = dy + (static_cast<long long>(n) * s.K + k) * s.PQ;
      const float* wk = w + (static_cast<long long>(k) * s.Cg + cl) * s.RS;
      for (int r = 0; r < s.R; ++r) {
        const int hp = h + s.ph - r;
        if (hp < 0 || hp % s.sh != 0 || hp / s.sh >= s.P) continue;
        const int p = hp / s.sh;
        for (int t = 0; t < s.S; ++t) {
          const int vp = v + s.pw - t;
          if (vp < 0 || vp % s.sw != 0 || vp / s.sw >= s.Q) continue;
          acc += dyk[p * s.Q + vp / s.sw] * wk[r * s.S + t];
        }
      }
    }
    dx[idx] = acc;
  }
}

// conv2d_wgrad_kernel1: dw (K, Cg, R, S) = sum over n, p, q of
// dy[n][k][p][q] * xpad[n][g*Cg + c][p*sh + r][q*sw + s].
// Thread mapping: one dw element per thread, flat KCRS index, grid-stride loop; each thread
// sums n, p, q in order (slow for large batches: the oracle, not the fast path).
// Preconditions: as ConvShape.
__global__ void conv2d_wgrad_kernel1(ConvShape s, const float* __restrict__ dy,
                                     const float* __restrict__ x, float* __restrict__ dw) {
  const long long total = static_cast<long long>(s.K) * s.CRS;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const int t = static_cast<int>(idx % s.S);
    const int r = static_cast<int>(idx / s.S % s.R);
    const int c = static_cast<int>(idx / s.RS % s.Cg);
    const int k = static_cast<int>(idx / s.CRS);
    const int g = k / s.Kg;
    float acc = 0.0f;
    for (int n = 0; n < s.N; ++n) {
      const float* dyk = dy + (static_cast<long long>(n) * s.K + k) * s.PQ;
      const float* xc = x + (static_cast<long long>(n) * s.C + g * s.Cg + c) * s.H * s.W;
      for (int p = 0; p < s.P; ++p) {
        const int ih = p * s.sh - s.ph + r;
        if (ih < 0 || ih >= s.H) continue;
        for (int q = 0; q < s.Q; ++q) {
          const int iw = q * s.sw - s.pw + t;
          if (iw < 0 || iw >= s.W) continue;
          acc += dyk[p * s.Q + q] * xc[ih * s.W + iw];
        }
      }
    }
    dw[idx] = acc;
  }
}

// ------------------------------------------------------------------------------- version 2
// Loaders and epilogues for the version-2 core (interfaces in gemm.cuh). Group g's GEMM reads
// channels g*Cg.. of x / dx, filters g*Kg.. of w / dy. k and n index flattened axes:
//   forward:  k = (c*R + r)*S + s, n = (img*P + p)*Q + q
//   data:     k = (kk*R + r)*S + s, n = (img*H + h)*W + v
//   filter:   k = (img*P + p)*Q + q, n = (c*R + r)*S + s

namespace {

// Forward A: row m of W_g = filter g*Kg + m, its Cg*R*S weights contiguous in w.
struct FwdFilters {
  static constexpr bool kFastK = true;
  const float* w;
  ConvShape s;
  struct Line {
    const float* p;  // nullptr beyond the group's filters
  };
  __device__ Line line(int g, int m) const {
    return {m < s.Kg ? w + static_cast<long long>(g * s.Kg + m) * s.CRS : nullptr};
  }
  __device__ float load(const Line& l, int k) const { return l.p ? l.p[k] : 0.0f; }
};

// Forward B: column n = output pixel (img, p, q); element k = tap (c, r, s) reads
// x[img][g*Cg + c][p*sh - ph + r][q*sw - pw + s], 0 in the padding.
struct FwdPixels {
  static constexpr bool kFastK = false;  // consecutive n: consecutive q, nearby x
  const float* x;
  ConvShape s;
  struct Line {
    const float* img;  // x + the group's first channel of the image; nullptr beyond N*P*Q
    int ih0, iw0;      // the window's top-left corner in unpadded coordinates
  };
  __device__ Line line(int g, int n) const {
    if (n >= s.N * s.PQ) return {nullptr, 0, 0};
    const int q = n % s.Q, p = n / s.Q % s.P, img = n / s.PQ;
    return {x + (static_cast<long long>(img) * s.C + g * s.Cg) * s.H * s.W, p * s.sh - s.ph,
            q * s.sw - s.pw};
  }
  __device__ float load(const Line& l, int k) const {
    if (!l.img) return 0.0f;
    const int c = k / s.RS, r = k % s.RS / s.S, t = k % s.S;
    const int ih = l.ih0 + r, iw = l.iw0 + t;
    if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) return 0.0f;
    return l.img[(c * s.H + ih) * s.W + iw];
  }
};

// Backward-data A: row m = input channel c of the group; element k = (kk, r, s) reads
// w[g*Kg + kk][c][r][s]: runs of R*S contiguous weights, one run per filter.
struct DataFilters {
  static constexpr bool kFastK = true;
  const float* w;
  ConvShape s;
  struct Line {
    const float* p;  // &w[g*Kg][c][0][0]; nullptr beyond the group's channels
  };
  __device__ Line line(int g, int c) const {
    return {c < s.Cg ? w + (static_cast<long long>(g) * s.Kg * s.Cg + c) * s.RS : nullptr};
  }
  __device__ float load(const Line& l, int k) const {
    if (!l.p) return 0.0f;
    const int kk = k / s.RS, rs = k % s.RS;
    return l.p[static_cast<long long>(kk) * s.CRS + rs];
  }
};

// Backward-data B: column n = input pixel (img, h, v); element k = (kk, r, s) is the output
// gradient dy[img][g*Kg + kk][p][q] whose window put tap (r, s) on (h, v):
// h + ph - r = p*sh and v + pw - s = q*sw with 0 <= p < P, 0 <= q < Q; otherwise 0.
struct DataPixels {
  static constexpr bool kFastK = false;  // consecutive n: consecutive v
  const float* dy;
  ConvShape s;
  struct Line {
    const float* img;  // &dy[img][g*Kg][0][0]; nullptr beyond N*H*W
    int hp, vp;        // h + ph, v + pw: the pixel in padded coordinates
  };
  __device__ Line line(int g, int n) const {
    if (n >= s.N * s.H * s.W) return {nullptr, 0, 0};
    const int v = n % s.W, h = n / s.W % s.H, img = n / (s.H * s.W);
    return {dy + (static_cast<long long>(img) * s.K + g * s.Kg) * s.PQ, h + s.ph, v + s.pw};
  }
  __device__ float load(const Line& l, int k) const {
    if (!l.img) return 0.0f;
    const int kk = k / s.RS, r = k % s.RS / s.S, t = k % s.S;
    const int hr = l.hp - r, vr = l.vp - t;
    if (hr < 0 || vr < 0 || hr % s.sh != 0 || vr % s.sw != 0) return 0.0f;
    const int p = hr / s.sh, q = vr / s.sw;
    if (p >= s.P || q >= s.Q) return 0.0f;
    return l.img[(static_cast<long long>(kk) * s.P + p) * s.Q + q];
  }
};

// Backward-filter A: row m = filter g*Kg + m; element k = (img, p, q) reads dy[img][g*Kg+m][p][q]
// (contiguous within an image).
struct FilterGrads {
  static constexpr bool kFastK = true;
  const float* dy;
  ConvShape s;
  struct Line {
    const float* p;  // &dy[0][g*Kg + m][0][0]; nullptr beyond the group's filters
  };
  __device__ Line line(int g, int m) const {
    return {m < s.Kg ? dy + static_cast<long long>(g * s.Kg + m) * s.PQ : nullptr};
  }
  __device__ float load(const Line& l, int k) const {
    if (!l.p) return 0.0f;
    const int img = k / s.PQ, pq = k % s.PQ;
    return l.p[static_cast<long long>(img) * s.K * s.PQ + pq];
  }
};

// Backward-filter B: column n = tap (c, r, s); element k = output pixel (img, p, q) reads
// x[img][g*Cg + c][p*sh - ph + r][q*sw - pw + s], 0 in the padding.
struct FilterPixels {
  static constexpr bool kFastK = true;  // consecutive k: consecutive q, nearby x
  const float* x;
  ConvShape s;
  struct Line {
    const float* chan;  // &x[0][g*Cg + c][0][0]; nullptr beyond Cg*R*S
    int r_off, s_off;   // r - ph, s - pw
  };
  __device__ Line line(int g, int n) const {
    if (n >= s.CRS) return {nullptr, 0, 0};
    const int c = n / s.RS, r = n % s.RS / s.S, t = n % s.S;
    return {x + static_cast<long long>(g * s.Cg + c) * s.H * s.W, r - s.ph, t - s.pw};
  }
  __device__ float load(const Line& l, int k) const {
    if (!l.chan) return 0.0f;
    const int img = k / s.PQ, p = k % s.PQ / s.Q, q = k % s.Q;
    const int ih = p * s.sh + l.r_off, iw = q * s.sw + l.s_off;
    if (ih < 0 || ih >= s.H || iw < 0 || iw >= s.W) return 0.0f;
    return l.chan[static_cast<long long>(img) * s.C * s.H * s.W + ih * s.W + iw];
  }
};

}  // namespace

// ------------------------------------------------------------------------------ host side

void conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& w, const Tensor& b,
                    Tensor& y, bool relu, int version) {
  const ConvShape s = shape_of(p);
  if (version >= 3 && !conv2d_v3_fits(s)) version = 2;
  const Precision precision = kConv2dVersions.cuda.of(version);
  const cudaStream_t st = stream(x.device().index);
  const float* bias = b.defined() ? b.data<float>() : nullptr;
  if (version == 1) {
    PCN_LAUNCH(conv2d_fprop_kernel1, grid_stride_blocks(y.numel(), 256), 256, 0, st, s,
               x.data<float>(), w.data<float>(), bias, relu, y.data<float>());
    return;
  }
  if (version >= 3) {
    conv2d_forward3(s, static_cast<int>(p.groups), x.data<float>(), w.data<float>(), bias, relu,
                    y.data<float>(), precision, x.device(), st);
    return;
  }
  launch_gemm2<Pass::kFprop>(FwdFilters{w.data<float>(), s}, FwdPixels{x.data<float>(), s},
                             FwdOut{y.data<float>(), bias, relu, s}, static_cast<int>(p.groups),
                             s.Kg, s.N * s.PQ, s.CRS, 1, s.CRS, st);
}

void conv2d_backward_data(const Conv2dParams& p, const Tensor& dy, const Tensor& w, Tensor& dx,
                          int version) {
  const ConvShape s = shape_of(p);
  if (version >= 3 && !conv2d_v3_fits(s)) version = 2;
  const Precision precision = kConv2dVersions.cuda.of(version);
  const cudaStream_t st = stream(dy.device().index);
  if (version == 1) {
    PCN_LAUNCH(conv2d_dgrad_kernel1, grid_stride_blocks(dx.numel(), 256), 256, 0, st, s,
               dy.data<float>(), w.data<float>(), dx.data<float>());
    return;
  }
  if (version >= 3) {
    conv2d_backward_data3(s, static_cast<int>(p.groups), dy.data<float>(), w.data<float>(),
                          dx.data<float>(), precision, dy.device(), st);
    return;
  }
  const int kdim = s.Kg * s.RS;
  launch_gemm2<Pass::kDgrad>(DataFilters{w.data<float>(), s}, DataPixels{dy.data<float>(), s},
                             DataOut{dx.data<float>(), s}, static_cast<int>(p.groups), s.Cg,
                             s.N * s.H * s.W, kdim, 1, kdim, st);
}

void conv2d_backward_filter(const Conv2dParams& p, const Tensor& dy, const Tensor& x, Tensor& dw,
                            Tensor& db, int version) {
  const ConvShape s = shape_of(p);
  if (version >= 3 && !conv2d_v3_fits(s)) version = 2;
  const Precision precision = kConv2dVersions.cuda.of(version);
  const cudaStream_t st = stream(dy.device().index);
  if (version == 1) {
    PCN_LAUNCH(conv2d_wgrad_kernel1, grid_stride_blocks(dw.numel(), 256), 256, 0, st, s,
               dy.data<float>(), x.data<float>(), dw.data<float>());
  } else {
    const int groups = static_cast<int>(p.groups);
    const long long tiles = version >= 3
                                ? conv2d_backward_filter3_tiles(s, groups)
                                : p.groups * ceil_div(s.Kg, kTileM) * ceil_div(s.CRS, kTileN);
    const int kdim = s.N * s.PQ;
    const SplitPlan plan = filter_split_plan(tiles, kdim, dw.numel());
    auto gemm = [&](const FilterOut& out, int splits) {
      if (version >= 3) {
        conv2d_backward_filter3(s, groups, dy.data<float>(), x.data<float>(), out, splits,
                                plan.chunk, precision, dy.device(), st);
      } else {
        launch_gemm2<Pass::kWgrad>(FilterGrads{dy.data<float>(), s},
                                   FilterPixels{x.data<float>(), s}, out, groups, s.Kg, s.CRS,
                                   kdim, splits, plan.chunk, st);
      }
    };
    if (plan.splits == 1) {
      gemm(FilterOut{dw.data<float>(), 0, s}, 1);
    } else {
      // Partial sums of each chunk, then their fixed-order sum; the workspace returns to the
      // caching allocator when this function ends, and is reused only in stream order.
      Tensor partial = Tensor::empty({plan.splits, p.K, s.CRS}, DType::Float32, dw.device());
      gemm(FilterOut{partial.data<float>(), dw.numel(), s}, plan.splits);
      reduce_splits(Pass::kWgrad, partial.data<float>(), dw.data<float>(), plan.splits,
                    dw.numel(), nullptr, 1, false, st);
    }
  }
  bias_wgrad(dy.data<float>(), db.data<float>(), s.N, s.K, s.PQ, dy.device(), st);
}

}  // namespace pcn::cuda
