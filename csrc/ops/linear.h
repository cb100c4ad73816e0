// Fully-connected layer: y = x w^T + b, x (N, in), w (out, in), b (out,) optional, y (N, out).
// Backward: dx = dy w (N, in), dw = dy^T x (out, in), db = sum over the batch of dy (out,).
#pragma once
#include <tuple>

#include "csrc/tensor.h"
#include "versions.h"

namespace pcn {

// Host entry points: validate, allocate the outputs on the inputs' device, run the kernel of
// the chosen version on that device (0 = the device's default, the best).
Tensor linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, int version);
Tensor linear_backward_data(const Tensor& dy, const Tensor& w, int version);       // dx
std::tuple<Tensor, Tensor> linear_backward_weight(const Tensor& dy, const Tensor& x,
                                                  int version);                    // (dw, db)
// (dx, dw, db) with one validation; dx is undefined when !input_grad.
std::tuple<Tensor, Tensor, Tensor> linear_backward(const Tensor& dy, const Tensor& x,
                                                   const Tensor& w, bool input_grad, int version);
KernelVersions linear_versions(const Device& device);

// Kernels behind the dispatch, one signature for both devices: valid, same-device arguments
// (b may be undefined), outputs preallocated (not zeroed), version in 1..count. Every tensor
// has fewer than 2^31 elements.
namespace cpu {
inline constexpr KernelVersions kLinearVersions{1, 1};  // 1: the blocked SGEMM
void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, int version);
void linear_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, int version);
void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor& db,
                            int version);
}  // namespace cpu
namespace cuda {
// 1: one output per thread; 2: 64x64 tiles; 3: 128x128 tiles, 8x8 outputs per thread
inline constexpr KernelVersions kLinearVersions{3, 2};
void linear_forward(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& y, int version);
void linear_backward_data(const Tensor& dy, const Tensor& w, Tensor& dx, int version);
void linear_backward_weight(const Tensor& dy, const Tensor& x, Tensor& dw, Tensor& db,
                            int version);
}  // namespace cuda
}  // namespace pcn
