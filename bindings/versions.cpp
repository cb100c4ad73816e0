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
  m.def("kernel_precisions",
        [](const std::string& op, const std::string& device) {
          const KernelVersions v = op_versions(op, Device::parse(device));
          std::vector<std::string> names;
          for (int i = 1; i <= v.count; ++i) names.emplace_back(precision_name(v.of(i)));
          return names;
        },
        py::arg("op"), py::arg("device"),
        "The arithmetic of op's kernel versions 1..count on device: 'fp32', 'tf32' or '3xtf32'.");
  m.def("versioned_ops", &versioned_ops, "The ops whose kernel versions kernel_versions knows.");
}

}  // namespace pcn::bindings
