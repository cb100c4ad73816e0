#include "csrc/kernels/lrn.h"
#include "parallel.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace pcn::cpu {

namespace {

// Work is split into tasks of (image n, channel group g, tile of kTile pixels): channels are
// HW floats apart in NCHW, so each loop below runs over a tile's contiguous pixels of one
// channel (vectorisable) and a task's working set is a few channel rows of one tile.
constexpr int64_t kTile = 256;

struct Geometry {
  int64_t n, c, hw, cg, groups, tiles;
  explicit Geometry(const Tensor& x, int64_t groups_)
      : n(x.size(0)), c(x.size(1)), hw(x.size(2) * x.size(3)), cg(x.size(1) / groups_),
        groups(groups_), tiles((x.size(2) * x.size(3) + kTile - 1) / kTile) {}
  int64_t tasks() const { return n * groups * tiles; }
  // Offset of channel 0 of task t's group at the tile's first pixel, and the tile's width.
  int64_t base(int64_t t, int64_t& width) const {
    const int64_t tile = t % tiles, ng = t / tiles;
    const int64_t p0 = tile * kTile;
    width = std::min(kTile, hw - p0);
    return (ng / groups * c + ng % groups * cg) * hw + p0;
  }
};

// s[0..w) = k + a * sum of squares of the channels j in [lo, hi] (channel rows hw apart from
// x0), added in ascending channel order as the CUDA kernels do.
inline void window_scale(const float* x0, int64_t hw, int64_t lo, int64_t hi, int64_t w, float k,
                         float a, float* s) {
  for (int64_t p = 0; p < w; ++p) s[p] = 0.0f;
  for (int64_t j = lo; j <= hi; ++j) {
    const float* xj = x0 + j * hw;
    for (int64_t p = 0; p < w; ++p) s[p] += xj[p] * xj[p];
  }
  for (int64_t p = 0; p < w; ++p) s[p] = k + a * s[p];
}

}  // namespace

void lrn_forward(const Tensor& x, Tensor& y, const LrnParams& prm, int /*version*/) {
  const Geometry g(x, prm.groups);
  const int64_t half = prm.size / 2;
  const float k = static_cast<float>(prm.k), a = static_cast<float>(prm.alpha / prm.size);
  const float nbeta = static_cast<float>(-prm.beta);
  const float* in = x.data<float>();
  float* out = y.data<float>();
  parallel_for(g.tasks(), [&](int64_t t) {
    int64_t w;
    const int64_t base = g.base(t, w);
    float s[kTile];
    for (int64_t i = 0; i < g.cg; ++i) {
      window_scale(in + base, g.hw, std::max<int64_t>(0, i - half), std::min(g.cg - 1, i + half),
                   w, k, a, s);
      const float* xi = in + base + i * g.hw;
      float* yi = out + base + i * g.hw;
      for (int64_t p = 0; p < w; ++p) yi[p] = xi[p] * std::pow(s[p], nbeta);
    }
  });
}

// Two passes per task over the group's channels: the first stores s_i^-beta and
// t_i = dy_i x_i s_i^(-beta-1) for the tile, the second sums t over each window.
void lrn_backward(const Tensor& dy, const Tensor& x, Tensor& dx, const LrnParams& prm,
                  int /*version*/) {
  const Geometry g(x, prm.groups);
  const int64_t half = prm.size / 2;
  const float k = static_cast<float>(prm.k), a = static_cast<float>(prm.alpha / prm.size);
  const float nbeta = static_cast<float>(-prm.beta);
  const float coef = static_cast<float>(2.0 * prm.beta * prm.alpha / prm.size);
  const float* in = x.data<float>();
  const float* gy = dy.data<float>();
  float* gx = dx.data<float>();
  parallel_for(g.tasks(), [&](int64_t t) {
    int64_t w;
    const int64_t base = g.base(t, w);
    std::vector<float> pw(g.cg * kTile), tt(g.cg * kTile);
    float s[kTile];
    for (int64_t i = 0; i < g.cg; ++i) {
      window_scale(in + base, g.hw, std::max<int64_t>(0, i - half), std::min(g.cg - 1, i + half),
                   w, k, a, s);
      const float* xi = in + base + i * g.hw;
      const float* dyi = gy + base + i * g.hw;
      float* pi = pw.data() + i * kTile;
      float* ti = tt.data() + i * kTile;
      for (int64_t p = 0; p < w; ++p) {
        pi[p] = std::pow(s[p], nbeta);
        ti[p] = dyi[p] * xi[p] * pi[p] / s[p];
      }
    }
    for (int64_t m = 0; m < g.cg; ++m) {
      for (int64_t p = 0; p < w; ++p) s[p] = 0.0f;
      for (int64_t i = std::max<int64_t>(0, m - half); i <= std::min(g.cg - 1, m + half); ++i) {
        const float* ti = tt.data() + i * kTile;
        for (int64_t p = 0; p < w; ++p) s[p] += ti[p];
      }
      const float* xm = in + base + m * g.hw;
      const float* dym = gy + base + m * g.hw;
      const float* pm = pw.data() + m * kTile;
      float* dxm = gx + base + m * g.hw;
      for (int64_t p = 0; p < w; ++p) dxm[p] = dym[p] * pm[p] - coef * xm[p] * s[p];
    }
  });
}

}  // namespace pcn::cpu
