// The only headers that include pybind11. module.cpp defines the module and calls each
// bind_* function; each op family keeps its bindings in its own file.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace pcn::bindings {
namespace py = pybind11;

void bind_tensor(py::module_& m);     // tensor.cpp: Tensor, creation, cuda info, memory
void bind_pointwise(py::module_& m);  // pointwise.cpp: relu, lrn, pooling, dropout, softmax, sgd
void bind_conv(py::module_& m);       // conv.cpp: conv2d, linear
void bind_data(py::module_& m);       // data.cpp: augmentation
void bind_random(py::module_& m);     // random.cpp: the Philox generator, for tests and Python
void bind_simulator(py::module_& m);  // simulator.cpp (sim/bindings.cpp in the simulator build)
}  // namespace pcn::bindings
