#include "bindings.h"
#include "csrc/ops/max_pool2d.h"

namespace pcn::bindings {

void bind_max_pool2d(py::module_& m) {
  m.def("max_pool2d_forward", &max_pool2d_forward, py::arg("x"), py::arg("kernel"),
        py::arg("stride"), py::arg("version"), ReleaseGil());
  m.def("max_pool2d_forward_taps", &max_pool2d_forward_taps, py::arg("x"), py::arg("kernel"),
        py::arg("stride"), py::arg("version"), ReleaseGil());
  m.def("max_pool2d_backward", &max_pool2d_backward, py::arg("dy"), py::arg("taps"),
        py::arg("x_shape"), py::arg("kernel"), py::arg("stride"), py::arg("version"),
        ReleaseGil());
}

}  // namespace pcn::bindings
