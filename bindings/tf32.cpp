#include "bindings.h"
#include "csrc/ops/tf32.h"

namespace pcn::bindings {

void bind_tf32(py::module_& m) {
  m.def("tf32_round", &tf32_round, py::arg("x"), ReleaseGil(),
        "x rounded to TF32 (cvt.rna.tf32.f32 on CUDA), as float32.");
  m.def("mma_m16n8k8_tf32", &mma_m16n8k8_tf32, py::arg("a"), py::arg("b"), py::arg("c"),
        ReleaseGil(), "a b + c per tile (mma.sync.m16n8k8 TF32 on CUDA): a (T,16,8), b (T,8,8), c (T,16,8).");
}

}  // namespace pcn::bindings
