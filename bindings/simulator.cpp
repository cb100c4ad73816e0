// Builds without the CUDA simulator: pyconvnet.cuda.is_simulated() is False. The simulator
// build compiles sim/bindings.cpp in place of this file.
#include "bindings.h"

namespace pcn::bindings {

void bind_simulator(py::module_& m) { m.def("cuda_is_simulated", [] { return false; }); }

}  // namespace pcn::bindings
