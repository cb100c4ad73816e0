#include "bindings.h"
#include "csrc/ops/dropout.h"
#include "csrc/ops/lrn.h"
#include "csrc/ops/pool.h"
#include "csrc/ops/relu.h"
#include "csrc/ops/sgd.h"
#include "csrc/ops/softmax.h"

namespace pcn::bindings {

namespace {
LrnParams lrn_params(int64_t size, double alpha, double beta, double k, int64_t groups) {
  LrnParams p;
  p.size = size;
  p.alpha = alpha;
  p.beta = beta;
  p.k = k;
  p.groups = groups;
  return p;
}
}  // namespace

void bind_pointwise(py::module_& m) {
  using release = py::call_guard<py::gil_scoped_release>;
  m.def("relu_forward", &relu_forward, py::arg("x"), release());
  m.def("relu_backward", &relu_backward, py::arg("dy"), py::arg("y"), release());

  m.def("lrn_forward",
        [](const Tensor& x, int64_t size, double alpha, double beta, double k, int64_t groups,
           int version) {
          return lrn_forward(x, lrn_params(size, alpha, beta, k, groups), version);
        },
        py::arg("x"), py::arg("size"), py::arg("alpha"), py::arg("beta"), py::arg("k"),
        py::arg("groups"), py::arg("version"), release());
  m.def("lrn_backward",
        [](const Tensor& dy, const Tensor& x, const Tensor& y, int64_t size, double alpha,
           double beta, double k, int64_t groups, int version) {
          return lrn_backward(dy, x, y, lrn_params(size, alpha, beta, k, groups), version);
        },
        py::arg("dy"), py::arg("x"), py::arg("y"), py::arg("size"), py::arg("alpha"),
        py::arg("beta"), py::arg("k"), py::arg("groups"), py::arg("version"), release());

  m.def("max_pool2d_forward", &max_pool2d_forward, py::arg("x"), py::arg("kernel"),
        py::arg("stride"), py::arg("version"), release());
  m.def("max_pool2d_backward", &max_pool2d_backward, py::arg("dy"), py::arg("x"), py::arg("y"),
        py::arg("kernel"), py::arg("stride"), py::arg("version"), release());

  m.def("dropout_forward", &dropout_forward, py::arg("x"), py::arg("p"), py::arg("seed"),
        py::arg("version"), release());
  m.def("dropout_backward", &dropout_backward, py::arg("dy"), py::arg("mask"), py::arg("p"),
        py::arg("version"), release());

  m.def("softmax_forward", &softmax_forward, py::arg("x"), py::arg("version"), release());
  m.def("cross_entropy", &cross_entropy, py::arg("logits"), py::arg("labels"),
        py::arg("version"), release());

  m.def("sgd_update",
        [](Tensor& w, const Tensor& dw, Tensor& v, double lr, double momentum,
           double weight_decay, int version) {
          SgdParams p;
          p.lr = lr;
          p.momentum = momentum;
          p.weight_decay = weight_decay;
          sgd_update(w, dw, v, p, version);
        },
        py::arg("w"), py::arg("dw"), py::arg("v"), py::arg("lr"), py::arg("momentum"),
        py::arg("weight_decay"), py::arg("version"), release());
}
}  // namespace pcn::bindings
