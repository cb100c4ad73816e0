#include "bindings.h"
#include "csrc/ops/relu.h"

namespace pcn::bindings {
void bind_pointwise(py::module_& m) {
  m.def("relu_forward", &relu_forward, py::arg("x"), py::call_guard<py::gil_scoped_release>());
  m.def("relu_backward", &relu_backward, py::arg("dy"), py::arg("y"),
        py::call_guard<py::gil_scoped_release>());
}
}  // namespace pcn::bindings
