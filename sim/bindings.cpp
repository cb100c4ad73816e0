// Python bindings of the simulator build: pyconvnet.cuda.is_simulated() is True, and the
// self-tests (selftest.h) and the schedule in use are reachable for tests/test_simulator.py.
#include "bindings/bindings.h"
#include "selftest.h"
#include "sim.h"

namespace pcn::bindings {

void bind_simulator(py::module_& m) {
  m.def("cuda_is_simulated", [] { return true; });
  m.def("_sim_schedule", &pcn_sim::schedule_name);
  m.def("_sim_host_waits", &pcn_sim::host_waits);
  m.def("_sim_kernel_launches", &pcn_sim::kernel_launches);
  m.def("_sim_peer_checks", &pcn_sim::peer_checks);
  m.def("_sim_selftest", &pcn_sim::selftest, py::arg("name"),
        py::call_guard<py::gil_scoped_release>());
}

}  // namespace pcn::bindings
