#include "bindings.h"
#include "csrc/ops/linear.h"

namespace pcn::bindings {

void bind_linear(py::module_& m) {
  m.def("linear_forward",
        [](const Tensor& x, const Tensor& w, const OptTensor& b, bool relu, int version) {
          return linear_forward(x, w, b.value_or(Tensor()), relu, version);
        },
        py::arg("x"), py::arg("w"), py::arg("b"), py::arg("relu"), py::arg("version"),
        ReleaseGil());
  m.def("linear_backward_data", &linear_backward_data, py::arg("dy"), py::arg("w"),
        py::arg("version"), ReleaseGil());
  m.def("linear_backward_weight", &linear_backward_weight, py::arg("dy"), py::arg("x"),
        py::arg("version"), ReleaseGil());
  m.def("linear_backward",
        [](const Tensor& dy, const Tensor& x, const Tensor& w, bool input_grad, int version) {
          auto [dx, dw, db] = linear_backward(dy, x, w, input_grad, version);
          return std::make_tuple(none_if_undefined(dx), dw, db);
        },
        py::arg("dy"), py::arg("x"), py::arg("w"), py::arg("input_grad"), py::arg("version"),
        ReleaseGil());
}

}  // namespace pcn::bindings
