#include "bindings.h"
#include "csrc/ops/add.h"

namespace pcn::bindings {

void bind_add(py::module_& m) {
  m.def("add_forward", &add_forward, py::arg("a"), py::arg("b"), py::arg("version"), ReleaseGil());
}

}  // namespace pcn::bindings
