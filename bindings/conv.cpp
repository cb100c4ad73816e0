#include <optional>

#include "bindings.h"
#include "csrc/ops/conv.h"
#include "csrc/ops/linear.h"

namespace pcn::bindings {

namespace {
using OptTensor = std::optional<Tensor>;

OptTensor none_if_undefined(const Tensor& t) { return t.defined() ? OptTensor(t) : std::nullopt; }

std::vector<int> version_list(KernelVersions v) {
  std::vector<int> out;
  for (int i = 1; i <= v.count; ++i) out.push_back(i);
  return out;
}
}  // namespace

void bind_conv(py::module_& m) {
  const auto release = py::call_guard<py::gil_scoped_release>();
  m.def("conv2d_forward",
        [](const Tensor& x, const Tensor& w, const OptTensor& b, Hw stride, Hw padding,
           int64_t groups, int version) {
          return conv2d_forward(x, w, b.value_or(Tensor()), stride, padding, groups, version);
        },
        py::arg("x"), py::arg("w"), py::arg("b"), py::arg("stride"), py::arg("padding"),
        py::arg("groups"), py::arg("version"), release);
  m.def("conv2d_backward_data", &conv2d_backward_data, py::arg("dy"), py::arg("w"),
        py::arg("x_shape"), py::arg("stride"), py::arg("padding"), py::arg("groups"),
        py::arg("version"), release);
  m.def("conv2d_backward_filter", &conv2d_backward_filter, py::arg("dy"), py::arg("x"),
        py::arg("w_shape"), py::arg("stride"), py::arg("padding"), py::arg("groups"),
        py::arg("version"), release);
  m.def("conv2d_backward",
        [](const Tensor& dy, const Tensor& x, const Tensor& w, Hw stride, Hw padding,
           int64_t groups, bool input_grad, int version) {
          auto [dx, dw, db] = conv2d_backward(dy, x, w, stride, padding, groups, input_grad, version);
          return std::make_tuple(none_if_undefined(dx), dw, db);
        },
        py::arg("dy"), py::arg("x"), py::arg("w"), py::arg("stride"), py::arg("padding"),
        py::arg("groups"), py::arg("input_grad"), py::arg("version"), release);
  m.def("conv2d_versions",
        [](const std::string& device) { return version_list(conv2d_versions(Device::parse(device))); },
        py::arg("device"));

  m.def("linear_forward",
        [](const Tensor& x, const Tensor& w, const OptTensor& b, int version) {
          return linear_forward(x, w, b.value_or(Tensor()), version);
        },
        py::arg("x"), py::arg("w"), py::arg("b"), py::arg("version"), release);
  m.def("linear_backward_data", &linear_backward_data, py::arg("dy"), py::arg("w"),
        py::arg("version"), release);
  m.def("linear_backward_weight", &linear_backward_weight, py::arg("dy"), py::arg("x"),
        py::arg("version"), release);
  m.def("linear_backward",
        [](const Tensor& dy, const Tensor& x, const Tensor& w, bool input_grad, int version) {
          auto [dx, dw, db] = linear_backward(dy, x, w, input_grad, version);
          return std::make_tuple(none_if_undefined(dx), dw, db);
        },
        py::arg("dy"), py::arg("x"), py::arg("w"), py::arg("input_grad"), py::arg("version"),
        release);
  m.def("linear_versions",
        [](const std::string& device) { return version_list(linear_versions(Device::parse(device))); },
        py::arg("device"));
}

}  // namespace pcn::bindings
