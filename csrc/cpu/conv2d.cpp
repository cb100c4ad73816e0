// Convolution on the CPU, version 1: im2col per image and group, then the blocked SGEMM.
//   forward:         y[n, g]  (Kg x PQ)    = W_g (Kg x CgRS) * col(x[n, g]) (CgRS x PQ)
//   backward data:   dcol     (CgRS x PQ)  = W_g^T * dy[n, g], scattered back by col2im
//   backward filter: dW_g     (Kg x CgRS) += dy[n, g] (Kg x PQ) * col(x[n, g])^T, n = 0, 1, ...
// The weights are packed for the SGEMM once per call (pack_a), not once per image. Forward and
// backward data give each (image, group) pair to one thread, with its own column buffer, so a
// batch keeps every core busy with no synchronisation inside; with a single pair the SGEMM,
// im2col and col2im are parallel inside instead. Both ways compute each output with the same
// operations in the same order. The filter gradient sums over images in order, each product
// parallel over tiles of dW. Every sum has a fixed order: dW over images then pixels, col2im
// over taps in order, db over images then pixels.
#include "csrc/kernels/conv2d.h"

#include <algorithm>
#include <vector>

#include "gemm.h"
#include "parallel.h"

namespace pcn::cpu {
namespace {

// col[(c*R + r)*S + s][p*Q + q] = xpad[c][p*sh + r][q*sw + s] for one image's group of Cg
// channels starting at x (Cg x H x W).
void im2col(const Conv2dParams& p, const float* x, float* col) {
  const int64_t PQ = p.P * p.Q, RS = p.R * p.S;
  parallel_for(p.Cg() * RS, [&](int64_t row) {
    const int64_t c = row / RS, r = row / p.S % p.R, s = row % p.S;
    const float* xc = x + c * p.H * p.W;
    float* out = col + row * PQ;
    // Output columns q in [q0, q1) read inside the image: iw = q*sw - pw + s in [0, W).
    const int64_t q0 = std::min(p.Q, std::max<int64_t>(0, (p.pad_w - s + p.stride_w - 1) / p.stride_w));
    const int64_t q1 = std::max(q0, std::min(p.Q, (p.W + p.pad_w - s + p.stride_w - 1) / p.stride_w));
    for (int64_t i = 0; i < p.P; ++i, out += p.Q) {
      const int64_t ih = i * p.stride_h - p.pad_h + r;
      if (ih < 0 || ih >= p.H) {
        std::fill(out, out + p.Q, 0.0f);
        continue;
      }
      const float* xr = xc + ih * p.W - p.pad_w + s;
      std::fill(out, out + q0, 0.0f);
      if (p.stride_w == 1) {
        std::copy(xr + q0, xr + q1, out + q0);
      } else {
        for (int64_t j = q0; j < q1; ++j) out[j] = xr[j * p.stride_w];
      }
      std::fill(out + q1, out + p.Q, 0.0f);
    }
  });
}

// The transpose of im2col: dx (Cg x H x W, one image's group) = sum over taps of dcol, padding
// dropped. One task per channel, so no two tasks touch the same element of dx.
void col2im(const Conv2dParams& p, const float* dcol, float* dx) {
  const int64_t PQ = p.P * p.Q, RS = p.R * p.S;
  parallel_for(p.Cg(), [&](int64_t c) {
    float* dxc = dx + c * p.H * p.W;
    std::fill(dxc, dxc + p.H * p.W, 0.0f);
    for (int64_t rs = 0; rs < RS; ++rs) {
      const int64_t r = rs / p.S, s = rs % p.S;
      const int64_t q0 = std::min(p.Q, std::max<int64_t>(0, (p.pad_w - s + p.stride_w - 1) / p.stride_w));
      const int64_t q1 = std::max(q0, std::min(p.Q, (p.W + p.pad_w - s + p.stride_w - 1) / p.stride_w));
      const float* in = dcol + (c * RS + rs) * PQ;
      for (int64_t i = 0; i < p.P; ++i, in += p.Q) {
        const int64_t ih = i * p.stride_h - p.pad_h + r;
        if (ih < 0 || ih >= p.H) continue;
        float* dxr = dxc + ih * p.W - p.pad_w + s;
        if (p.stride_w == 1) {
          for (int64_t j = q0; j < q1; ++j) dxr[j] += in[j];
        } else {
          for (int64_t j = q0; j < q1; ++j) dxr[j * p.stride_w] += in[j];
        }
      }
    }
  });
}

// The weights of each group packed for the SGEMM: op(W_g) is W_g (forward) or W_g^T (backward
// data).
std::vector<PackedA> pack_weights(const Conv2dParams& p, const float* w, bool transposed) {
  const int64_t Kg = p.Kg(), CRS = p.Cg() * p.R * p.S;
  std::vector<PackedA> packed;
  for (int64_t g = 0; g < p.groups; ++g) {
    packed.push_back(transposed ? pack_a(true, CRS, Kg, w + g * Kg * CRS, CRS)
                                : pack_a(false, Kg, CRS, w + g * Kg * CRS, CRS));
  }
  return packed;
}

}  // namespace

void conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& w, const Tensor& b,
                    Tensor& y, bool relu, int version) {
  const int64_t Cg = p.Cg(), Kg = p.Kg(), PQ = p.P * p.Q, CRS = Cg * p.R * p.S;
  const float* xd = x.data<float>();
  const float* bd = b.defined() ? b.data<float>() : nullptr;
  float* yd = y.data<float>();
  const std::vector<PackedA> wp = pack_weights(p, w.data<float>(), false);
  parallel_for(p.N * p.groups, [&](int64_t ng) {
    const int64_t n = ng / p.groups, g = ng % p.groups;
    thread_local std::vector<float> col;
    col.resize(static_cast<size_t>(CRS * PQ));
    float* yg = yd + (n * p.K + g * Kg) * PQ;
    im2col(p, xd + (n * p.C + g * Cg) * p.H * p.W, col.data());
    sgemm_packed(wp[g], false, PQ, col.data(), PQ, yg, PQ, false);
    if (bd != nullptr || relu) {
      for (int64_t k = 0; k < Kg; ++k) {
        for (int64_t i = 0; i < PQ; ++i) yg[k * PQ + i] = bias_relu(yg[k * PQ + i], bd, g * Kg + k, relu);
      }
    }
  });
}

void conv2d_backward_data(const Conv2dParams& p, const Tensor& dy, const Tensor& w, Tensor& dx,
                          int version) {
  const int64_t Cg = p.Cg(), Kg = p.Kg(), PQ = p.P * p.Q, CRS = Cg * p.R * p.S;
  const float* dyd = dy.data<float>();
  float* dxd = dx.data<float>();
  const std::vector<PackedA> wp = pack_weights(p, w.data<float>(), true);
  parallel_for(p.N * p.groups, [&](int64_t ng) {
    const int64_t n = ng / p.groups, g = ng % p.groups;
    thread_local std::vector<float> dcol;
    dcol.resize(static_cast<size_t>(CRS * PQ));
    sgemm_packed(wp[g], false, PQ, dyd + (n * p.K + g * Kg) * PQ, PQ, dcol.data(), PQ, false);
    col2im(p, dcol.data(), dxd + (n * p.C + g * Cg) * p.H * p.W);
  });
}

void conv2d_backward_filter(const Conv2dParams& p, const Tensor& dy, const Tensor& x, Tensor& dw,
                            Tensor& db, int version) {
  const int64_t Cg = p.Cg(), Kg = p.Kg(), PQ = p.P * p.Q, CRS = Cg * p.R * p.S;
  const float* dyd = dy.data<float>();
  const float* xd = x.data<float>();
  float* dwd = dw.data<float>();
  std::vector<float> col(CRS * PQ);
  for (int64_t g = 0; g < p.groups; ++g) {
    for (int64_t n = 0; n < p.N; ++n) {
      im2col(p, xd + (n * p.C + g * Cg) * p.H * p.W, col.data());
      sgemm(false, true, Kg, CRS, PQ, dyd + (n * p.K + g * Kg) * PQ, PQ, col.data(), PQ,
            dwd + g * Kg * CRS, CRS, n > 0);
    }
  }
  if (p.N == 0) dw.fill_zero();
  float* dbd = db.data<float>();
  parallel_for(p.K, [&](int64_t k) {
    float total = 0.0f;
    for (int64_t n = 0; n < p.N; ++n) {
      const float* plane = dyd + (n * p.K + k) * PQ;
      float sum = 0.0f;
      for (int64_t i = 0; i < PQ; ++i) sum += plane[i];
      total += sum;
    }
    dbd[k] = total;
  });
}

}  // namespace pcn::cpu
