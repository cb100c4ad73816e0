// The only headers that include pybind11. module.cpp defines the module and calls each bind_*
// function; each op keeps its bindings in bindings/<op>.cpp.
#pragma once
#include <optional>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "csrc/tensor.h"

namespace pcn::bindings {
namespace py = pybind11;

// Every op releases the GIL while it runs.
using ReleaseGil = py::call_guard<py::gil_scoped_release>;

// An optional tensor argument or result: None in Python, an undefined Tensor in C++.
using OptTensor = std::optional<Tensor>;
inline OptTensor none_if_undefined(const Tensor& t) {
  return t.defined() ? OptTensor(t) : std::nullopt;
}

void bind_tensor(py::module_& m);    // tensor.cpp: Tensor, creation, cuda info, memory
void bind_staging(py::module_& m);   // staging.cpp: the loader's staging slots
void bind_transfer(py::module_& m);  // transfer.cpp: copies between devices, concat, split
void bind_random(py::module_& m);    // random.cpp: the Philox generator, for tests and Python
void bind_versions(py::module_& m);  // versions.cpp: every op's kernel versions
void bind_conv2d(py::module_& m);
void bind_linear(py::module_& m);
void bind_relu(py::module_& m);
void bind_add(py::module_& m);
void bind_lrn(py::module_& m);
void bind_max_pool2d(py::module_& m);
void bind_dropout(py::module_& m);
void bind_softmax_cross_entropy(py::module_& m);
void bind_sgd_update(py::module_& m);
void bind_augment(py::module_& m);
void bind_simulator(py::module_& m);  // simulator.cpp (sim/bindings.cpp in the simulator build)
}  // namespace pcn::bindings
