// The simulator's self-tests: small kernels with planted bugs that each check must catch, a
// shared-memory race whose result depends on the schedule, and timings of the engine. Compiled
// only into the simulator build; reached from Python as pyconvnet._C._sim_selftest(name).
#pragma once
#include <string>
#include <vector>

namespace pcn_sim {

// Runs self-test `name` on cuda:0 and returns its outputs (a kernel's results or timings);
// a check that fires surfaces as pcn::CudaError, as any kernel error does. ValueError for an
// unknown name (the message lists the known ones).
std::vector<double> selftest(const std::string& name);

}  // namespace pcn_sim
