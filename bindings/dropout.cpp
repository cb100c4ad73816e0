#include "bindings.h"
#include "csrc/ops/dropout.h"

namespace pcn::bindings {

void bind_dropout(py::module_& m) {
  m.def("dropout_forward", &dropout_forward, py::arg("x"), py::arg("p"), py::arg("seed"),
        py::arg("first_row"), py::arg("version"), py::arg("slice_offset") = 0,
        py::arg("slice_width") = -1, ReleaseGil());
  m.def("dropout_backward", &dropout_backward, py::arg("dy"), py::arg("mask"), py::arg("p"),
        py::arg("version"), ReleaseGil());
}

}  // namespace pcn::bindings
