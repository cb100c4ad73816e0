#include "bindings.h"
#include "csrc/ops/relu.h"

namespace pcn::bindings {

void bind_relu(py::module_& m) {
  m.def("relu_forward", &relu_forward, py::arg("x"), py::arg("version"), ReleaseGil());
  m.def("relu_backward", &relu_backward, py::arg("dy"), py::arg("y"), py::arg("version"),
        ReleaseGil());
}

}  // namespace pcn::bindings
