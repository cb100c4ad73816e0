// Local response normalisation on the CPU: the work is cut into tasks of (image n, channel group
// g, tile of kLrnTile pixels); channels are HW floats apart in NCHW, so each of the active path's
// loops (isa.h, SimdKernels::lrn_forward / lrn_backward) runs over a tile's contiguous pixels of
// one channel, and a task's working set is a few channel rows of one tile. Every output is
// computed by one task in a fixed order, so nothing depends on the thread count.
#include "csrc/kernels/lrn.h"

#include <algorithm>
#include <vector>

#include "isa.h"
#include "parallel.h"

namespace pcn::cpu {

namespace {

struct Geometry {
  int64_t n, c, hw, cg, groups, tiles;
  explicit Geometry(const Tensor& x, int64_t groups_)
      : n(x.size(0)), c(x.size(1)), hw(x.size(2) * x.size(3)), cg(x.size(1) / groups_),
        groups(groups_), tiles((x.size(2) * x.size(3) + kLrnTile - 1) / kLrnTile) {}
  int64_t tasks() const { return n * groups * tiles; }
  // Offset of channel 0 of task t's group at the tile's first pixel, and the tile's width.
  int64_t base(int64_t t, int64_t& width) const {
    const int64_t tile = t % tiles, ng = t / tiles;
    const int64_t p0 = tile * kLrnTile;
    width = std::min(kLrnTile, hw - p0);
    return (ng / groups * c + ng % groups * cg) * hw + p0;
  }
};

}  // namespace

void lrn_forward(const Tensor& x, Tensor& y, const LrnParams& prm, int /*version*/) {
  const Geometry g(x, prm.groups);
  const float k = static_cast<float>(prm.k), a = static_cast<float>(prm.alpha / prm.size);
  const float nbeta = static_cast<float>(-prm.beta);
  const float* in = x.data<float>();
  float* out = y.data<float>();
  const SimdKernels& kern = simd();
  parallel_for(g.tasks(), [&](int64_t t) {
    int64_t w;
    const int64_t base = g.base(t, w);
    kern.lrn_forward(in + base, out + base, g.hw, g.cg, w, prm.size / 2, k, a, nbeta);
  });
}

void lrn_backward(const Tensor& dy, const Tensor& x, Tensor& dx, const LrnParams& prm,
                  int /*version*/) {
  const Geometry g(x, prm.groups);
  const float k = static_cast<float>(prm.k), a = static_cast<float>(prm.alpha / prm.size);
  const float nbeta = static_cast<float>(-prm.beta);
  const float coef = static_cast<float>(2.0 * prm.beta * prm.alpha / prm.size);
  const float* in = x.data<float>();
  const float* gy = dy.data<float>();
  float* gx = dx.data<float>();
  const SimdKernels& kern = simd();
  parallel_for(g.tasks(), [&](int64_t t) {
    int64_t w;
    const int64_t base = g.base(t, w);
    thread_local std::vector<float> scratch;  // kept between calls: it only ever grows
    scratch.resize(static_cast<size_t>(2 * g.cg * kLrnTile));
    kern.lrn_backward(in + base, gy + base, gx + base, g.hw, g.cg, w, prm.size / 2, k, a, nbeta,
                      coef, scratch.data());
  });
}

}  // namespace pcn::cpu
