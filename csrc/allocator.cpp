#include "allocator.h"

#include <cstdlib>
#include <map>
#include <mutex>
#include <utility>
#include <vector>
#if __has_include(<sys/mman.h>)
#include <sys/mman.h>
#endif

#ifdef PYCONVNET_WITH_CUDA
#include "cuda_check.h"
#endif
#include "device.h"
#include "error.h"

namespace pcn {

namespace {

// Blocks of at least kHugeMin bytes start on a 2 MiB boundary and ask the kernel for
// transparent huge pages over their whole 2 MiB pages (where it grants them: THP "madvise" or
// "always"). A kernel walking a large operand row by row, rows 36 KiB apart (fc6's weights),
// touches a new 4 KiB page on every row, more than the TLBs hold; on 2 MiB pages, far fewer.
// Measured (fc6 at batch 128, Zen 5 virtual machine): one thread, forward 58 -> 50 ms, input
// gradient 61 -> 56.5, filter gradient 49 -> 45 (medians, two alternated runs each); a later
// pair, the machine slower for both, 57 ms either way; on 2 threads no difference beyond the
// scatter. (NumPy advises its large arrays the same way.)
constexpr size_t kHugeMin = size_t(4) << 20, kHugePage = size_t(2) << 20;

void* host_alloc(size_t bytes) {
  void* p = nullptr;
  if (bytes == 0) bytes = 64;
  const size_t align = bytes >= kHugeMin ? kHugePage : 64;
  if (posix_memalign(&p, align, (bytes + 63) / 64 * 64) != 0 || p == nullptr)
    throw OutOfMemory(str("out of host memory allocating ", bytes, " bytes"));
#ifdef MADV_HUGEPAGE
  if (align == kHugePage) madvise(p, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);  // a hint
#endif
  return p;
}

// Large CPU blocks are cached: the C library returns a block of more than a few hundred KiB to
// the kernel when it is freed, so the next tensor of that size would take a page fault (and a
// zeroed page) for every 4 KiB it writes; fc6's weight gradient (151 MB) spent more time so than
// in its SGEMM. Blocks of at least kHostCacheMin bytes, rounded up to kHostCacheStep, go to a
// free list when their tensor dies and are reused for the next request of the same rounded
// size; at most kHostCacheMax bytes stay cached (the oldest blocks are freed first).
constexpr size_t kHostCacheMin = size_t(1) << 20, kHostCacheStep = size_t(64) << 10;
constexpr size_t kHostCacheMax = size_t(1) << 30;

struct HostPool {
  std::mutex mu;
  std::vector<std::pair<size_t, void*>> free_blocks;  // (rounded size, block), oldest first
  size_t cached = 0;
};
HostPool& host_pool() {
  static HostPool& p = *new HostPool;  // leaked on purpose, as the device pools
  return p;
}

// Frees every cached block (the caller holds pool.mu).
void release_host_cache(HostPool& pool) {
  for (const auto& [s, block] : pool.free_blocks) std::free(block);
  pool.free_blocks.clear();
  pool.cached = 0;
}

std::shared_ptr<void> host_allocate(size_t bytes) {
  if (bytes < kHostCacheMin) {
    return std::shared_ptr<void>(host_alloc(bytes), [](void* p) { std::free(p); });
  }
  const size_t size = (bytes + kHostCacheStep - 1) / kHostCacheStep * kHostCacheStep;
  HostPool& pool = host_pool();
  void* ptr = nullptr;
  {
    std::lock_guard<std::mutex> lock(pool.mu);
    for (auto it = pool.free_blocks.end(); it != pool.free_blocks.begin();) {
      --it;  // the most recently freed block first: the likeliest to be in the caches
      if (it->first == size) {
        ptr = it->second;
        pool.cached -= size;
        pool.free_blocks.erase(it);
        break;
      }
    }
  }
  if (ptr == nullptr) {
    try {
      ptr = host_alloc(size);
    } catch (const OutOfMemory&) {  // the cached blocks back to the C library, then once more
      std::lock_guard<std::mutex> lock(pool.mu);
      release_host_cache(pool);
    }
    if (ptr == nullptr) ptr = host_alloc(size);
  }
  return std::shared_ptr<void>(ptr, [size](void* q) {
    HostPool& pl = host_pool();
    std::lock_guard<std::mutex> lock(pl.mu);
    try {
      pl.free_blocks.emplace_back(size, q);
    } catch (...) {  // no memory for the list: free the block instead
      std::free(q);
      return;
    }
    pl.cached += size;
    size_t drop = 0;
    while (pl.cached > kHostCacheMax) {
      pl.cached -= pl.free_blocks[drop].first;
      std::free(pl.free_blocks[drop++].second);
    }
    pl.free_blocks.erase(pl.free_blocks.begin(), pl.free_blocks.begin() + drop);
  });
}

#ifdef PYCONVNET_WITH_CUDA
// Sizes are rounded so that blocks of nearly equal sizes share a free list: 512 B granularity
// below 1 MiB, 2 MiB above (at most ~6% waste for AlexNet's smallest large tensors).
size_t round_size(size_t bytes) {
  if (bytes == 0) return 512;
  const size_t g = bytes < (size_t(1) << 20) ? 512 : (size_t(2) << 20);
  return (bytes + g - 1) / g * g;
}

struct DevicePool {
  std::mutex mu;
  std::map<size_t, std::vector<void*>> free_blocks;  // rounded size -> blocks
  MemoryStats stats;

  void release_cached(int device) {
    cuda::DeviceGuard guard(device);
    // Cached blocks may still be the target of queued work only if that work was enqueued
    // before they were freed; wait for it before handing them back.
    CUDA_CHECK(cudaStreamSynchronize(cuda::stream(device)));
    for (auto& [size, blocks] : free_blocks) {
      while (!blocks.empty()) {  // pop first: a failing cudaFree must not leave a freed pointer
        void* p = blocks.back();
        blocks.pop_back();
        stats.reserved -= static_cast<int64_t>(size);
        CUDA_CHECK(cudaFree(p));
      }
    }
    free_blocks.clear();
  }
};

DevicePool& pool(int device) {
  // Leaked on purpose: tensors may be freed during interpreter shutdown, after statics die.
  static std::mutex& mu = *new std::mutex;
  static auto& pools = *new std::map<int, std::unique_ptr<DevicePool>>;
  std::lock_guard<std::mutex> lock(mu);
  auto& p = pools[device];
  if (!p) p = std::make_unique<DevicePool>();
  return *p;
}

std::shared_ptr<void> cuda_allocate(size_t bytes, int device) {
  const size_t size = round_size(bytes);
  DevicePool& p = pool(device);
  std::lock_guard<std::mutex> lock(p.mu);
  void* ptr = nullptr;
  auto it = p.free_blocks.find(size);
  if (it != p.free_blocks.end() && !it->second.empty()) {
    ptr = it->second.back();
    it->second.pop_back();
  } else {
    cuda::DeviceGuard guard(device);
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();  // clear the sticky-free error state before retrying
      p.release_cached(device);
      err = cudaMalloc(&ptr, size);
    }
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      throw OutOfMemory(str("CUDA out of memory on cuda:", device, ": tried to allocate ",
                            size / 1048576.0, " MiB; ", free_b / 1048576.0, " MiB free of ",
                            total_b / 1048576.0, " MiB; pyconvnet holds ",
                            p.stats.allocated / 1048576.0, " MiB in tensors"));
    }
    CUDA_CHECK(err);
    p.stats.reserved += static_cast<int64_t>(size);
    p.stats.driver_allocs += 1;
  }
  p.stats.allocated += static_cast<int64_t>(size);
  if (p.stats.allocated > p.stats.peak_allocated) p.stats.peak_allocated = p.stats.allocated;
  return std::shared_ptr<void>(ptr, [device, size](void* q) {
    DevicePool& pl = pool(device);
    std::lock_guard<std::mutex> lk(pl.mu);
    pl.free_blocks[size].push_back(q);
    pl.stats.allocated -= static_cast<int64_t>(size);
  });
}

struct PinnedPool {
  std::mutex mu;
  std::map<size_t, std::vector<void*>> free_blocks;
};
PinnedPool& pinned_pool() {
  static PinnedPool& p = *new PinnedPool;  // leaked on purpose, as the device pools
  return p;
}
#endif  // PYCONVNET_WITH_CUDA

}  // namespace

std::shared_ptr<void> allocate(size_t bytes, Device device) {
  if (device.is_cpu()) return host_allocate(bytes);
#ifdef PYCONVNET_WITH_CUDA
  return cuda_allocate(bytes, device.index);
#else
  throw DeviceError(str("allocate: ", device.str(), " requested, but ", cuda_unavailable_reason()));
#endif
}

std::shared_ptr<void> allocate_pinned(size_t bytes) {
#ifdef PYCONVNET_WITH_CUDA
  if (cuda_device_count() > 0) {
    const size_t size = round_size(bytes);
    PinnedPool& p = pinned_pool();
    void* ptr = nullptr;
    {
      std::lock_guard<std::mutex> lock(p.mu);
      auto it = p.free_blocks.find(size);
      if (it != p.free_blocks.end() && !it->second.empty()) {
        ptr = it->second.back();
        it->second.pop_back();
      }
    }
    if (ptr == nullptr) CUDA_CHECK(cudaMallocHost(&ptr, size));
    return std::shared_ptr<void>(ptr, [size](void* q) {
      // Blocks above 32 MiB (one-off uploads of large tensors) go back to the driver rather than
      // staying page-locked in the cache; smaller ones are reused.
      if (size > (size_t(32) << 20)) {
        cudaFreeHost(q);  // in a deleter: nothing to report an error to
        return;
      }
      PinnedPool& pl = pinned_pool();
      std::lock_guard<std::mutex> lk(pl.mu);
      pl.free_blocks[size].push_back(q);
    });
  }
#endif
  return std::shared_ptr<void>(host_alloc(bytes), [](void* p) { std::free(p); });
}

MemoryStats memory_stats(int device) {
#ifdef PYCONVNET_WITH_CUDA
  require_device(Device::cuda(device), "memory_stats");
  DevicePool& p = pool(device);
  std::lock_guard<std::mutex> lock(p.mu);
  return p.stats;
#else
  require_device(Device::cuda(device), "memory_stats");
  return {};
#endif
}

int64_t host_cached_bytes() {
  HostPool& pool = host_pool();
  std::lock_guard<std::mutex> lock(pool.mu);
  return static_cast<int64_t>(pool.cached);
}

void empty_host_cache() {
  HostPool& pool = host_pool();
  std::lock_guard<std::mutex> lock(pool.mu);
  release_host_cache(pool);
}

void empty_cache(int device) {
#ifdef PYCONVNET_WITH_CUDA
  require_device(Device::cuda(device), "empty_cache");
  DevicePool& p = pool(device);
  {
    std::lock_guard<std::mutex> lock(p.mu);
    p.release_cached(device);
  }
  PinnedPool& pp = pinned_pool();
  std::lock_guard<std::mutex> lock(pp.mu);
  for (auto& [size, blocks] : pp.free_blocks)
    for (void* q : blocks) CUDA_CHECK(cudaFreeHost(q));
  pp.free_blocks.clear();
#else
  require_device(Device::cuda(device), "empty_cache");
#endif
}

}  // namespace pcn
