// 2-D convolution (cross-correlation), NCHW float32, with groups, forward and backward:
//   y[n, k, p, q] = b[k] + sum_{c < C/G, r < R, s < S}
//                   xpad[n, g*C/G + c, p*sh + r, q*sw + s] * w[k, c, r, s],   g = k / (K/G)
// x (N, C, H, W), w (K, C/G, R, S), b (K,) optional, y (N, K, P, Q) with
// P = floor((H + 2*ph - R) / sh) + 1 and Q likewise; xpad is x with ph/pw zeros on each side.
#pragma once
#include <array>
#include <tuple>

#include "csrc/tensor.h"
#include "versions.h"

namespace pcn {

using Hw = std::array<int64_t, 2>;  // (height, width) pair: stride or padding

// Shapes and hyper-parameters of one convolution, validated (conv2d_params) before any kernel
// sees them: every size positive except N (an empty batch is legal), P, Q >= 1, groups divides
// C and K, and each of x, w, y has fewer than 2^31 elements, so kernels may index any one
// tensor with 32-bit integers.
struct Conv2dParams {
  int64_t N, C, H, W;  // input x
  int64_t K, R, S;     // filters w (K, C / groups, R, S)
  int64_t P, Q;        // output y (N, K, P, Q)
  int64_t stride_h, stride_w, pad_h, pad_w, groups;
  int64_t Cg() const { return C / groups; }  // input channels per group
  int64_t Kg() const { return K / groups; }  // filters per group
};

// Validates the shapes and hyper-parameters (ValueError naming `op`, the argument, the rule and
// the values) and returns them as Conv2dParams.
Conv2dParams conv2d_params(const char* op, const Shape& x_shape, const Shape& w_shape, Hw stride,
                           Hw padding, int64_t groups);

// Host entry points: validate, allocate the outputs on the inputs' device, run the kernel of
// the chosen version on that device (0 = the device's default, the best; see *_versions).
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, Hw stride, Hw padding,
                      int64_t groups, int version);
// dx (the shape x_shape) from dy and w.
Tensor conv2d_backward_data(const Tensor& dy, const Tensor& w, const Shape& x_shape, Hw stride,
                            Hw padding, int64_t groups, int version);
// (dw, db): dw has the shape w_shape, db (K,).
std::tuple<Tensor, Tensor> conv2d_backward_filter(const Tensor& dy, const Tensor& x,
                                                  const Shape& w_shape, Hw stride, Hw padding,
                                                  int64_t groups, int version);
// (dx, dw, db) with one validation; dx is undefined when !input_grad (a first layer needs none).
std::tuple<Tensor, Tensor, Tensor> conv2d_backward(const Tensor& dy, const Tensor& x,
                                                   const Tensor& w, Hw stride, Hw padding,
                                                   int64_t groups, bool input_grad, int version);

// The kernel versions on `device` (versions.h).
KernelVersions conv2d_versions(const Device& device);

// Kernels behind the dispatch, one signature for both devices: valid, same-device, contiguous
// arguments (b may be undefined), outputs preallocated (not zeroed), version in 1..count.
namespace cpu {
inline constexpr KernelVersions kConv2dVersions{1, 1};  // 1: im2col per image + SGEMM
void conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& w, const Tensor& b,
                    Tensor& y, int version);
void conv2d_backward_data(const Conv2dParams& p, const Tensor& dy, const Tensor& w, Tensor& dx,
                          int version);
void conv2d_backward_filter(const Conv2dParams& p, const Tensor& dy, const Tensor& x, Tensor& dw,
                            Tensor& db, int version);
}  // namespace cpu
namespace cuda {
// 1: direct; 2: tiled implicit GEMM; 3: the same on the 128x128, 8x8-per-thread core
inline constexpr KernelVersions kConv2dVersions{3, 2};
void conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& w, const Tensor& b,
                    Tensor& y, int version);
void conv2d_backward_data(const Conv2dParams& p, const Tensor& dy, const Tensor& w, Tensor& dx,
                          int version);
void conv2d_backward_filter(const Conv2dParams& p, const Tensor& dy, const Tensor& x, Tensor& dw,
                            Tensor& db, int version);
}  // namespace cuda
}  // namespace pcn
