#include "bindings.h"
#include "csrc/ops/conv2d.h"

namespace pcn::bindings {

void bind_conv2d(py::module_& m) {
  m.def("conv2d_forward",
        [](const Tensor& x, const Tensor& w, const OptTensor& b, Hw stride, Hw padding,
           int64_t groups, bool relu, int version) {
          return conv2d_forward(x, w, b.value_or(Tensor()), stride, padding, groups, relu,
                                version);
        },
        py::arg("x"), py::arg("w"), py::arg("b"), py::arg("stride"), py::arg("padding"),
        py::arg("groups"), py::arg("relu"), py::arg("version"), ReleaseGil());
  m.def("conv2d_backward_data", &conv2d_backward_data, py::arg("dy"), py::arg("w"),
        py::arg("x_shape"), py::arg("stride"), py::arg("padding"), py::arg("groups"),
        py::arg("version"), ReleaseGil());
  m.def("conv2d_backward_filter", &conv2d_backward_filter, py::arg("dy"), py::arg("x"),
        py::arg("w_shape"), py::arg("stride"), py::arg("padding"), py::arg("groups"),
        py::arg("version"), ReleaseGil());
  m.def("conv2d_backward",
        [](const Tensor& dy, const Tensor& x, const Tensor& w, Hw stride, Hw padding,
           int64_t groups, bool input_grad, int version) {
          auto [dx, dw, db] = conv2d_backward(dy, x, w, stride, padding, groups, input_grad, version);
          return std::make_tuple(none_if_undefined(dx), dw, db);
        },
        py::arg("dy"), py::arg("x"), py::arg("w"), py::arg("stride"), py::arg("padding"),
        py::arg("groups"), py::arg("input_grad"), py::arg("version"), ReleaseGil());
}

}  // namespace pcn::bindings
