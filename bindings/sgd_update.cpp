#include "bindings.h"
#include "csrc/ops/sgd_update.h"

namespace pcn::bindings {

void bind_sgd_update(py::module_& m) {
  // The hyper-parameters as numbers, not an object: building one per call would cost, on a bias
  // vector of a few hundred floats, as much as the update itself.
  m.def(
      "sgd_update",
      [](Tensor& w, const Tensor& dw, Tensor& v, double lr, double momentum, double weight_decay,
         int version) { sgd_update(w, dw, v, SgdParams{lr, momentum, weight_decay}, version); },
      py::arg("w"), py::arg("dw"), py::arg("v"), py::arg("lr"), py::arg("momentum"),
      py::arg("weight_decay"), py::arg("version"), ReleaseGil());
}

}  // namespace pcn::bindings
