// PCN_LAUNCH is the only way kernels are launched in pyconvnet (tests/test_source_rules.py
// rejects a bare triple-chevron launch anywhere else). It checks the launch configuration's
// error, skips empty grids (empty batches are legal), and under PYCONVNET_SYNC_LAUNCHES=1 also
// waits for the kernel so a fault is reported by the launch that caused it. In the simulator
// build (PYCONVNET_SIM, sim/) the launch hands the kernel and its arguments to the simulator,
// and PCN_EXTERN_SHARED (below) gives a kernel its dynamic shared memory.
#pragma once
#include <cuda_runtime.h>

#include <tuple>
#include <typeinfo>
#include <type_traits>
#include <utility>

#include "../csrc/cuda_check.h"

namespace pcn::cuda {

template <typename... KernelArgs, typename... Args>
void launch_checked(const char* name, const char* file, int line, void (*kernel)(KernelArgs...),
                    dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) return;
#ifdef PYCONVNET_SIM
  // Arguments are converted to the kernel's parameter types and copied, as a launch does.
  ::pcn_sim::launch(name, typeid(kernel), reinterpret_cast<const void*>(kernel), grid, block,
                    smem, stream,
                    [kernel, params = std::tuple<std::decay_t<KernelArgs>...>(
                                 std::forward<Args>(args)...)] { std::apply(kernel, params); });
#else
  kernel<<<grid, block, smem, stream>>>(std::forward<Args>(args)...);
#endif
  cudaError_t err = cudaGetLastError();
  if (err == cudaSuccess && sync_launches()) err = cudaStreamSynchronize(stream);
  if (err != cudaSuccess) {
    throw_cuda_error(err, pcn::str("launch of ", name, " grid (", grid.x, ",", grid.y, ",", grid.z,
                                   ") block (", block.x, ",", block.y, ",", block.z, ") smem ",
                                   smem).c_str(),
                     file, line);
  }
}

inline unsigned int ceil_div(long long a, long long b) {
  return static_cast<unsigned int>((a + b - 1) / b);
}

}  // namespace pcn::cuda

// PCN_EXTERN_SHARED(T, name) declares the launch's dynamic shared memory (PCN_LAUNCH's smem
// bytes; above 48 KiB the kernel needs cudaFuncAttributeMaxDynamicSharedMemorySize) as the array
// `T name[]`, inside a kernel. With nvcc it is `extern __shared__ T name[]`; C++ cannot make an
// extern array alias one per-block buffer, so the simulator declares a pointer to it instead.
#ifdef PYCONVNET_SIM
#define PCN_EXTERN_SHARED(T, name) T* const name = static_cast<T*>(::pcn_sim::dynamic_shared())
#else
#define PCN_EXTERN_SHARED(T, name) extern __shared__ T name[]
#endif

#define PCN_LAUNCH(kernel, grid, block, smem, stream, ...) \
  ::pcn::cuda::launch_checked(#kernel, __FILE__, __LINE__, kernel, grid, block, smem, stream, __VA_ARGS__)
