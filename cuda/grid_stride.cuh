// Grid size for the grid-stride loops of the pointwise kernels: enough blocks to cover `work`
// items at `per_block` items per block, capped (a loop covers the rest, so any size runs and
// no index overflows the grid's 32-bit dimensions). 0 for no work (PCN_LAUNCH then skips).
#pragma once
#include <algorithm>

#include "launch.cuh"

namespace pcn::cuda {

inline unsigned int grid_stride_blocks(long long work, long long per_block) {
  if (work <= 0) return 0u;
  return static_cast<unsigned int>(std::min<long long>((work + per_block - 1) / per_block,
                                                       65535LL * 16));
}

// The global index of this thread and the grid's total thread count, as 64-bit integers.
__device__ __forceinline__ long long global_thread() {
  return static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ long long grid_threads() {
  return static_cast<long long>(gridDim.x) * blockDim.x;
}

}  // namespace pcn::cuda
