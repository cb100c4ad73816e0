// Memory. CPU tensors get 64-byte aligned host memory; blocks of 1 MiB and more are cached when
// freed (up to 1 GiB, oldest freed first), so that a training step's large tensors do not take
// fresh, page-faulting memory from the kernel every step; blocks of 4 MiB and more are 2 MiB
// aligned and advised to the kernel as transparent huge pages (fewer TLB misses). CUDA tensors come from a per-device
// caching allocator: a freed block goes back to a free list keyed by its rounded size, and the
// next request of that size reuses it, so a training step allocates from the driver only in its
// first iteration. Blocks are used on one stream per device (cuda_check.h), so reuse in stream
// order is safe without events. Host<->device copies go through pinned staging buffers, cached
// the same way.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "types.h"

namespace pcn {

std::shared_ptr<void> allocate(size_t bytes, Device device);
// Page-locked host memory (plain host memory in a CPU-only build).
std::shared_ptr<void> allocate_pinned(size_t bytes);

struct MemoryStats {
  int64_t allocated = 0;       // bytes in live tensors
  int64_t reserved = 0;        // bytes held from the driver (live + cached)
  int64_t driver_allocs = 0;   // cudaMalloc calls so far
  int64_t peak_allocated = 0;
};
MemoryStats memory_stats(int device);
// Returns every cached (unused) block of `device` to the driver, and the pinned cache.
void empty_cache(int device);
// The bytes of freed CPU blocks held for reuse, and their return to the C library.
int64_t host_cached_bytes();
void empty_host_cache();

}  // namespace pcn
