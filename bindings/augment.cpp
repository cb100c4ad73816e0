#include "bindings.h"
#include "csrc/ops/augment.h"

namespace pcn::bindings {

void bind_augment(py::module_& m) {
  m.def("augment", &augment, py::arg("images"), py::arg("mean"), py::arg("offsets"),
        py::arg("flips"), py::arg("lighting"), py::arg("crop"), py::arg("repeats"),
        py::arg("version"), ReleaseGil());
}

}  // namespace pcn::bindings
