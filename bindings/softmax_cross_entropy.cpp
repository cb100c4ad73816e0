#include "bindings.h"
#include "csrc/ops/softmax_cross_entropy.h"

namespace pcn::bindings {

void bind_softmax_cross_entropy(py::module_& m) {
  m.def("softmax_forward", &softmax_forward, py::arg("x"), py::arg("version"), ReleaseGil());
  m.def("cross_entropy",
        [](const Tensor& logits, const Tensor& labels, int version) {
          const CrossEntropyResult r = cross_entropy(logits, labels, version);
          return std::make_tuple(r.loss, r.dlogits, r.top1_hits, r.top5_hits);
        },
        py::arg("logits"), py::arg("labels"), py::arg("version"), ReleaseGil(),
        "(loss, dlogits, top-1 hits, top-5 hits)");
  py::class_<PendingLoss, std::shared_ptr<PendingLoss>>(
      m, "PendingLoss", "A cross-entropy's (loss, top-1 hits, top-5 hits), read() when needed")
      .def("read", &PendingLoss::read, ReleaseGil(),
           "(loss, top-1 hits, top-5 hits); waits for the device the first time");
  m.def("cross_entropy_async", &cross_entropy_async, py::arg("logits"), py::arg("labels"),
        py::arg("version"), ReleaseGil(), "(PendingLoss, dlogits)");
}

}  // namespace pcn::bindings
