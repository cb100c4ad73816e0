#include "bindings.h"
#include "csrc/ops/lrn.h"

namespace pcn::bindings {

void bind_lrn(py::module_& m) {
  py::class_<LrnParams>(m, "LrnParams", "The hyper-parameters of lrn.")
      .def(py::init([](int64_t size, double alpha, double beta, double k, int64_t groups) {
             return LrnParams{size, alpha, beta, k, groups};
           }),
           py::arg("size"), py::arg("alpha"), py::arg("beta"), py::arg("k"), py::arg("groups"))
      .def_readonly("size", &LrnParams::size)
      .def_readonly("alpha", &LrnParams::alpha)
      .def_readonly("beta", &LrnParams::beta)
      .def_readonly("k", &LrnParams::k)
      .def_readonly("groups", &LrnParams::groups);
  m.def("lrn_forward", &lrn_forward, py::arg("x"), py::arg("params"), py::arg("version"),
        ReleaseGil());
  m.def("lrn_backward", &lrn_backward, py::arg("dy"), py::arg("x"), py::arg("y"),
        py::arg("params"), py::arg("version"), ReleaseGil());
}

}  // namespace pcn::bindings
