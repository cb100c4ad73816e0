#include "bindings.h"
#include "csrc/ops/sgd_update.h"

namespace pcn::bindings {

void bind_sgd_update(py::module_& m) {
  py::class_<SgdParams>(m, "SgdParams", "The hyper-parameters of sgd_update.")
      .def(py::init([](double lr, double momentum, double weight_decay) {
             return SgdParams{lr, momentum, weight_decay};
           }),
           py::arg("lr"), py::arg("momentum"), py::arg("weight_decay"))
      .def_readonly("lr", &SgdParams::lr)
      .def_readonly("momentum", &SgdParams::momentum)
      .def_readonly("weight_decay", &SgdParams::weight_decay);
  m.def("sgd_update", &sgd_update, py::arg("w"), py::arg("dw"), py::arg("v"), py::arg("params"),
        py::arg("version"), ReleaseGil());
}

}  // namespace pcn::bindings
