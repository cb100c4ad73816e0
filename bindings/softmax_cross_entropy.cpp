#include "bindings.h"
#include "csrc/ops/softmax_cross_entropy.h"

namespace pcn::bindings {

void bind_softmax_cross_entropy(py::module_& m) {
  m.def("softmax_forward", &softmax_forward, py::arg("x"), py::arg("version"), ReleaseGil());
  m.def("cross_entropy", &cross_entropy, py::arg("logits"), py::arg("labels"),
        py::arg("version"), ReleaseGil());
}

}  // namespace pcn::bindings
