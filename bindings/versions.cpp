#include "bindings.h"
#include "csrc/ops/versions.h"

namespace pcn::bindings {

void bind_versions(py::module_& m) {
  m.def("kernel_versions",
        [](const std::string& op, const std::string& device) {
          const KernelVersions v = op_versions(op, Device::parse(device));
          return py::make_tuple(v.count, v.best);
        },
        py::arg("op"), py::arg("device"),
        "(count, default) of op's kernel versions on device: versions 1..count, 0 = default.");
  m.def("versioned_ops", &versioned_ops, "The ops whose kernel versions kernel_versions knows.");
}

}  // namespace pcn::bindings
