// CUDA-only host helpers: included only by code compiled when PYCONVNET_WITH_CUDA is defined.
// CUDA_CHECK(expr) is the one way this project calls the CUDA runtime: a failure becomes a
// pcn::CudaError carrying the call, file:line and CUDA's own message (or pcn::OutOfMemory).
#pragma once
#include <cuda_runtime.h>

#include "error.h"

namespace pcn::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line);

// The stream every op on `device` runs on: one per device, created on first use. Using one
// stream keeps the caching allocator simple (a freed block is reused in stream order).
cudaStream_t stream(int device);

// Makes `device` current for the scope and restores the previous device on exit.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
};

// True when PYCONVNET_SYNC_LAUNCHES=1: every launch is followed by a device synchronisation so
// an asynchronous kernel fault is reported at the launch that caused it (slow; for debugging).
bool sync_launches();

}  // namespace pcn::cuda

#define CUDA_CHECK(expr)                                                       \
  do {                                                                         \
    cudaError_t pcn_err_ = (expr);                                             \
    if (pcn_err_ != cudaSuccess)                                               \
      ::pcn::cuda::throw_cuda_error(pcn_err_, #expr, __FILE__, __LINE__);      \
  } while (0)
