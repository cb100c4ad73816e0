#include "sgd_update.h"

#include <cmath>

#include "csrc/check.h"
#include "versions.h"

namespace pcn {

void sgd_update(Tensor& w, const Tensor& dw, Tensor& v, const SgdParams& p, int version) {
  ArgCheck c("sgd_update");
  c.dtype(w, "w", DType::Float32).dtype(dw, "dw", DType::Float32).dtype(v, "v", DType::Float32);
  c.shape(dw, "dw", w.shape()).shape(v, "v", w.shape());
  // A non-finite hyperparameter would silently ruin every weight it touches.
  c.require(std::isfinite(p.lr) && p.lr >= 0, "lr", "be a finite number >= 0", p.lr);
  c.require(std::isfinite(p.momentum) && p.momentum >= 0, "momentum", "be a finite number >= 0",
            p.momentum);
  c.require(std::isfinite(p.weight_decay) && p.weight_decay >= 0, "weight_decay",
            "be a finite number >= 0", p.weight_decay);
  // The kernels read w, dw, v through restrict pointers and update w and v in place: shared
  // storage (the same tensor twice, or a reshape of it) would make the result depend on order.
  const bool distinct = w.numel() == 0 || (w.raw() != dw.raw() && w.raw() != v.raw() &&
                                           dw.raw() != v.raw());
  c.require(distinct, "w", "not share memory with dw or v (pass three distinct tensors)",
            "tensors sharing storage");
  const Device dev = c.same_device({{"w", &w}, {"dw", &dw}, {"v", &v}});
  const int ver = resolve_version(c, dev, version, kSgdUpdateVersions);
  PCN_DISPATCH(dev, sgd_update, w, dw, v, p, ver);
}

}  // namespace pcn
