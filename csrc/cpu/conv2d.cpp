// Convolution on the CPU, version 1: im2col per image and group, then the blocked SGEMM.
//   forward:         y[n, g]  (Kg x PQ)    = W_g (Kg x CgRS) * col(x[n, g]) (CgRS x PQ)
//   backward data:   dcol     (CgRS x PQ)  = W_g^T * dy[n, g], scattered back by col2im
//   backward filter: dW_g     (Kg x CgRS) += dy[n, g] (Kg x PQ) * col(x[n, g])^T, n = 0, 1, ...
// Images are processed one after the other and the SGEMM, im2col and col2im are each
// parallel inside, so small batches (the tests, batch 1) still use every core and the column
// buffer is one image's (conv1: 363 x 3025 floats). Every sum has a fixed order: dW accumulates
// over images in order, col2im over taps in order, db over images then pixels.
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
    for (int64_t i = 0; i < p.P; ++i, out += p.Q) {
      const int64_t ih = i * p.stride_h - p.pad_h + r;
      if (ih < 0 || ih >= p.H) {
        std::fill(out, out + p.Q, 0.0f);
        continue;
      }
      const float* xr = xc + ih * p.W;
      for (int64_t j = 0; j < p.Q; ++j) {
        const int64_t iw = j * p.stride_w - p.pad_w + s;
        out[j] = iw >= 0 && iw < p.W ? xr[iw] : 0.0f;
      }
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
      const float* in = dcol + (c * RS + rs) * PQ;
      for (int64_t i = 0; i < p.P; ++i, in += p.Q) {
        const int64_t ih = i * p.stride_h - p.pad_h + r;
        if (ih < 0 || ih >= p.H) continue;
        float* dxr = dxc + ih * p.W;
        for (int64_t j = 0; j < p.Q; ++j) {
          const int64_t iw = j * p.stride_w - p.pad_w + s;
          if (iw >= 0 && iw < p.W) dxr[iw] += in[j];
        }
      }
    }
  });
}

}  // namespace

void conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& w, const Tensor& b,
                    Tensor& y, int version) {
  const int64_t Cg = p.Cg(), Kg = p.Kg(), PQ = p.P * p.Q, CRS = Cg * p.R * p.S;
  const float* xd = x.data<float>();
  const float* wd = w.data<float>();
  float* yd = y.data<float>();
  std::vector<float> col(CRS * PQ);
  for (int64_t n = 0; n < p.N; ++n) {
    for (int64_t g = 0; g < p.groups; ++g) {
      im2col(p, xd + (n * p.C + g * Cg) * p.H * p.W, col.data());
      sgemm(false, false, Kg, PQ, CRS, wd + g * Kg * CRS, CRS, col.data(), PQ,
            yd + (n * p.K + g * Kg) * PQ, PQ, false);
    }
  }
  if (b.defined()) {
    const float* bd = b.data<float>();
    parallel_for(p.N * p.K, [&](int64_t nk) {
      float* plane = yd + nk * PQ;
      const float bias = bd[nk % p.K];
      for (int64_t i = 0; i < PQ; ++i) plane[i] += bias;
    });
  }
}

void conv2d_backward_data(const Conv2dParams& p, const Tensor& dy, const Tensor& w, Tensor& dx,
                          int version) {
  const int64_t Cg = p.Cg(), Kg = p.Kg(), PQ = p.P * p.Q, CRS = Cg * p.R * p.S;
  const float* dyd = dy.data<float>();
  const float* wd = w.data<float>();
  float* dxd = dx.data<float>();
  std::vector<float> dcol(CRS * PQ);
  for (int64_t n = 0; n < p.N; ++n) {
    for (int64_t g = 0; g < p.groups; ++g) {
      sgemm(true, false, CRS, PQ, Kg, wd + g * Kg * CRS, CRS, dyd + (n * p.K + g * Kg) * PQ, PQ,
            dcol.data(), PQ, false);
      col2im(p, dcol.data(), dxd + (n * p.C + g * Cg) * p.H * p.W);
    }
  }
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
