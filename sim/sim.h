// Internal interface between the simulator's runtime (runtime.cpp: devices, memory, streams,
// events, errors) and its execution engine (engine.cpp: blocks on worker threads, CUDA threads
// as fibers, the checks).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>

namespace pcn_sim {

struct Kernel {
  std::string name;
  dim3 grid, block;
  size_t smem = 0;
  int device = 0;
  unsigned devices = 0;  // bit d: the kernel may touch cuda:d's memory (its own, enabled peers)
  std::function<void()> body;
};

// Runs every block of `k` on the worker pool and returns when all have finished. On a failed
// check returns its error code and sets *message (kernel, block, thread and what went wrong).
cudaError_t run_kernel(const Kernel& k, std::string* message);

// What the runtime knows about an address, for memcheck's messages: "inside a 512-byte
// allocation at 0x... on cuda:0", "32 bytes past the end of ...", "in freed memory ...".
std::string describe_address(uintptr_t address);
// The device whose allocation (live or freed, guard pages included) holds `address`, or -1.
int allocation_device(uintptr_t address);

// Gives the calling thread access to the memory of the devices in `device_mask` (bit d for
// cuda:d) and none to the others' (memory protection keys). True from peer_checks() when every
// device's memory has its own key, i.e. when a kernel's access to a device it has no peer
// access to faults.
void set_thread_access(unsigned device_mask);
bool peer_checks();

// The block-thread order between scheduling points, from PYCONVNET_SIM_SCHEDULE
// (forward | reverse | random[:seed]); "forward" when unset.
std::string schedule_name();

// How many times the host has waited for the simulated devices (cudaDeviceSynchronize,
// cudaStreamSynchronize, cudaEventSynchronize) since the process started: tests count the
// waits of a piece of code (a training step must enqueue without any).
uint64_t host_waits();

// How many times each kernel (by its unqualified name, template arguments dropped) has been
// launched since the process started: tests check which kernels an op runs (split-K or not).
std::map<std::string, uint64_t> kernel_launches();
std::mutex& launch_counts_mu();
std::map<std::string, uint64_t>& launch_counts();

}  // namespace pcn_sim
