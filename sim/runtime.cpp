// The simulated CUDA runtime: the runtime API subset that pyconvnet calls, with the documented
// semantics, on the CPU.
//   Devices:  PYCONVNET_SIM_DEVICES (default 2) devices with an H200's limits; each has its own
//             memory accounting, default stream and sticky error; the current device is per
//             host thread, as in CUDA.
//   Memory:   every cudaMalloc is its own mapping with an inaccessible guard page on each side;
//             the allocation's end (rounded up to 256 bytes) touches the upper guard. Fresh
//             memory is filled with 0xFF bytes (a NaN in every float: initcheck). Freed memory
//             is made inaccessible and kept in quarantine (1 GiB of address space) so that a
//             late use faults and is named "freed". Pinned host memory is ordinary memory the
//             runtime remembers, so that copies from it can run asynchronously.
//   Streams:  each stream has a worker thread that runs its queue in order, asynchronously to
//             the host; events order streams. A copy from pageable host memory is staged at the
//             call, a copy to pageable host memory returns when done, as documented.
//   Errors:   a failed call returns its code and sets the thread's last error; a kernel that
//             fails a check makes its device's error sticky (every later call on that device
//             returns it), and cudaGetErrorString returns the detail the check reported.
#include <cxxabi.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "sim.h"

struct CUstream_st {
  int device = 0;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::function<void()>> ops;
  uint64_t enqueued = 0, completed = 0;
};

struct CUevent_st {
  int device = 0;
  std::mutex mu;
  std::condition_variable cv;
  uint64_t recorded = 0, completed = 0;
};

namespace pcn_sim {
namespace {

constexpr size_t kPage = 4096;
constexpr size_t kAlign = 256;              // cudaMalloc's alignment
constexpr size_t kStaticShared = 48 << 10;  // per block, without the opt-in attribute
constexpr size_t kOptinShared = 227 << 10;
constexpr size_t kQuarantine = size_t(1) << 30;
constexpr int kMaxDevices = 16;

std::string hex(uintptr_t v) {
  std::ostringstream os;
  os << "0x" << std::hex << v;
  return os.str();
}

// ------------------------------------------------------------------------------------ errors
thread_local cudaError_t last_error = cudaSuccess;
thread_local cudaError_t detail_code = cudaSuccess;
thread_local std::string detail;

cudaError_t fail(cudaError_t code, const std::string& what) {
  last_error = code;
  detail_code = code;
  detail = what;
  return code;
}

const char* standard_text(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorInitializationError: return "initialization error";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient";
    case cudaErrorNoDevice: return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    case cudaErrorNotReady: return "device not ready";
    case cudaErrorIllegalAddress: return "an illegal memory access was encountered";
    case cudaErrorLaunchOutOfResources: return "too many resources requested for launch";
    case cudaErrorPeerAccessAlreadyEnabled:
      return "peer access is already enabled";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}

// ----------------------------------------------------------------------------------- devices
struct Device {
  std::mutex mu;
  cudaError_t sticky = cudaSuccess;
  std::string sticky_message;
  size_t used = 0;
  cudaStream_t default_stream = nullptr;
  std::vector<cudaStream_t> streams;
  bool peer_enabled[kMaxDevices] = {};  // cudaDeviceEnablePeerAccess(peer) called on this device
};

struct Devices {
  int count = 0;
  std::string problem;  // why PYCONVNET_SIM_DEVICES could not be used
  size_t capacity = 0;  // bytes per device
  Device* device[kMaxDevices] = {};
};

const Devices& devices() {
  static const Devices& d = *[] {
    auto* r = new Devices;  // never destroyed: used while the process shuts down
    const char* v = std::getenv("PYCONVNET_SIM_DEVICES");
    r->count = 2;
    if (v != nullptr && *v != '\0') {
      char* end = nullptr;
      const long n = std::strtol(v, &end, 10);
      if (*end != '\0' || n < 0 || n > kMaxDevices) {
        r->problem = std::string("PYCONVNET_SIM_DEVICES=") + v + " is not a number from 0 to " +
                     std::to_string(kMaxDevices);
        r->count = 0;
      } else {
        r->count = static_cast<int>(n);
      }
    }
    // An H200's 141 GB, but no more than half of this machine's memory.
    const size_t host = static_cast<size_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGESIZE);
    r->capacity = std::min<size_t>(size_t(143771) << 20, host / 2);
    for (int i = 0; i < r->count; ++i) r->device[i] = new Device;
    return r;
  }();
  return d;
}

thread_local int current_device = 0;

bool valid_device(int d) { return d >= 0 && d < devices().count; }

// The device's sticky error, as this thread's error (with its detail), or cudaSuccess.
cudaError_t sticky(int d) {
  Device& dev = *devices().device[d];
  std::lock_guard<std::mutex> lock(dev.mu);
  if (dev.sticky == cudaSuccess) return cudaSuccess;
  return fail(dev.sticky, dev.sticky_message);
}

void set_sticky(int d, cudaError_t code, const std::string& message) {
  Device& dev = *devices().device[d];
  std::lock_guard<std::mutex> lock(dev.mu);
  if (dev.sticky != cudaSuccess) return;
  dev.sticky = code;
  dev.sticky_message = message;
}

bool failed(int d) {
  Device& dev = *devices().device[d];
  std::lock_guard<std::mutex> lock(dev.mu);
  return dev.sticky != cudaSuccess;
}

// ------------------------------------------------------------------------------------ memory
struct Allocation {
  uintptr_t base = 0;  // what cudaMalloc returned
  size_t bytes = 0;
  char* map = nullptr;  // the mapping, guard pages included
  size_t map_bytes = 0;
  int device = 0;
  bool freed = false;
};

struct Memory {
  std::mutex mu;
  std::map<uintptr_t, Allocation> device;  // by mapping start
  std::deque<uintptr_t> quarantine;        // freed mappings, oldest first
  size_t quarantine_bytes = 0;
  std::map<uintptr_t, size_t> pinned;  // base -> bytes
};
Memory& memory() {
  static Memory& m = *new Memory;
  return m;
}

// The allocation whose mapping holds `p`, or nullptr. Call with memory().mu held.
const Allocation* find_mapping(uintptr_t p) {
  auto& m = memory().device;
  auto it = m.upper_bound(p);
  if (it == m.begin()) return nullptr;
  --it;
  const Allocation& a = it->second;
  return p < reinterpret_cast<uintptr_t>(a.map) + a.map_bytes ? &a : nullptr;
}

bool is_pinned(const void* ptr, size_t bytes) {
  const auto p = reinterpret_cast<uintptr_t>(ptr);
  std::lock_guard<std::mutex> lock(memory().mu);
  auto& m = memory().pinned;
  auto it = m.upper_bound(p);
  if (it == m.begin()) return false;
  --it;
  return p + bytes <= it->first + it->second;
}

// The device that owns [p, p + bytes) in a live allocation, -1 if no allocation holds it
// whole (*why says what is wrong), -2 if p is not device memory at all.
int device_of(const void* ptr, size_t bytes, std::string* why) {
  const auto p = reinterpret_cast<uintptr_t>(ptr);
  std::lock_guard<std::mutex> lock(memory().mu);
  const Allocation* a = find_mapping(p);
  if (a == nullptr) return -2;
  if (a->freed) {
    *why = "it points into a freed allocation of " + std::to_string(a->bytes) + " bytes at " +
           hex(a->base);
    return -1;
  }
  if (p < a->base || p + bytes > a->base + a->bytes) {
    *why = "[" + hex(p) + ", +" + std::to_string(bytes) + ") is not inside the " +
           std::to_string(a->bytes) + "-byte allocation at " + hex(a->base) + " on cuda:" +
           std::to_string(a->device);
    return -1;
  }
  return a->device;
}

// ----------------------------------------------------------------------------------- streams
void stream_worker(cudaStream_t s) {
  for (;;) {
    std::function<void()> op;
    {
      std::unique_lock<std::mutex> lock(s->mu);
      s->cv.wait(lock, [&] { return !s->ops.empty(); });
      op = std::move(s->ops.front());
      s->ops.pop_front();
    }
    op();
    {
      std::lock_guard<std::mutex> lock(s->mu);
      ++s->completed;
    }
    s->cv.notify_all();
  }
}

cudaStream_t new_stream(int device) {
  auto* s = new CUstream_st;  // streams live as long as the process, like their workers
  s->device = device;
  std::thread(stream_worker, s).detach();
  Device& dev = *devices().device[device];
  std::lock_guard<std::mutex> lock(dev.mu);
  dev.streams.push_back(s);
  return s;
}

// `s`, or the current device's default stream for 0.
cudaStream_t resolve(cudaStream_t s) {
  if (s != nullptr) return s;
  Device& dev = *devices().device[current_device];
  {
    std::lock_guard<std::mutex> lock(dev.mu);
    if (dev.default_stream) return dev.default_stream;
  }
  cudaStream_t created = new_stream(current_device);
  std::lock_guard<std::mutex> lock(dev.mu);
  if (!dev.default_stream) dev.default_stream = created;
  return dev.default_stream;
}

// Queues `op`; returns the count the stream reaches when `op` is done.
uint64_t enqueue(cudaStream_t s, std::function<void()> op) {
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    s->ops.push_back(std::move(op));
    ticket = ++s->enqueued;
  }
  s->cv.notify_all();
  return ticket;
}

void wait_for(cudaStream_t s, uint64_t ticket) {
  std::unique_lock<std::mutex> lock(s->mu);
  s->cv.wait(lock, [&] { return s->completed >= ticket; });
}

void wait_idle(cudaStream_t s) {
  uint64_t ticket;
  {
    std::lock_guard<std::mutex> lock(s->mu);
    ticket = s->enqueued;
  }
  wait_for(s, ticket);
}

// Waits until every stream of `device` has run all its queued work.
void wait_device_idle(int device) {
  std::vector<cudaStream_t> streams;
  {
    Device& dev = *devices().device[device];
    std::lock_guard<std::mutex> lock(dev.mu);
    streams = dev.streams;
  }
  for (cudaStream_t s : streams) wait_idle(s);
}

// Checks common to calls that work on the current device.
cudaError_t check_current() {
  if (devices().count == 0) return fail(cudaErrorNoDevice, devices().problem);
  return sticky(current_device);
}

// ----------------------------------------------------------------------- kernel attributes
std::mutex& attribute_mu() {
  static std::mutex& m = *new std::mutex;
  return m;
}
std::map<const void*, int>& max_dynamic_shared() {
  static auto& m = *new std::map<const void*, int>;
  return m;
}

std::string dims(dim3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

}  // namespace

std::string describe_address(uintptr_t p) {
  std::lock_guard<std::mutex> lock(memory().mu);
  const Allocation* a = find_mapping(p);
  if (a == nullptr) return "not in or next to any device allocation";
  const std::string alloc = std::to_string(a->bytes) + "-byte allocation at " + hex(a->base) +
                            " on cuda:" + std::to_string(a->device);
  if (a->freed) return "inside the freed " + alloc;
  if (p < a->base) return std::to_string(a->base - p) + " bytes before the " + alloc;
  if (p >= a->base + a->bytes)
    return std::to_string(p - (a->base + a->bytes)) + " bytes past the end of the " + alloc;
  return "inside the " + alloc;
}

cudaError_t func_set_attribute(const void* kernel, cudaFuncAttribute attr, int value) {
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize)
    return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: unsupported attribute " +
                                           std::to_string(static_cast<int>(attr)));
  if (value < 0 || static_cast<size_t>(value) > kOptinShared)
    return fail(cudaErrorInvalidValue, "cudaFuncSetAttribute: " + std::to_string(value) +
                                           " bytes of dynamic shared memory; the limit is " +
                                           std::to_string(kOptinShared));
  std::lock_guard<std::mutex> lock(attribute_mu());
  max_dynamic_shared()[kernel] = value;
  return cudaSuccess;
}

void launch(const char* name, const std::type_info& type, const void* kernel, dim3 grid, dim3 block, size_t smem,
            cudaStream_t stream, std::function<void()> body) {
  if (check_current() != cudaSuccess) return;
  cudaStream_t s = resolve(stream);
  const std::string what = std::string("launch of ") + name + ": ";
  if (s->device != current_device) {
    fail(cudaErrorInvalidResourceHandle, what + "the stream belongs to cuda:" +
                                             std::to_string(s->device) +
                                             " but the current device is cuda:" +
                                             std::to_string(current_device));
    return;
  }
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  if (threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64) {
    fail(cudaErrorInvalidConfiguration,
         what + "block " + dims(block) + " (" + std::to_string(threads) +
             " threads): the limits are 1024 threads, x and y <= 1024, z <= 64");
    return;
  }
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 ||
      grid.z > 65535) {
    fail(cudaErrorInvalidConfiguration,
         what + "grid " + dims(grid) + ": the limits are x <= 2^31-1, y and z <= 65535");
    return;
  }
  size_t smem_limit = kStaticShared;
  {
    std::lock_guard<std::mutex> lock(attribute_mu());
    auto it = max_dynamic_shared().find(kernel);
    if (it != max_dynamic_shared().end()) smem_limit = std::max<size_t>(smem_limit, it->second);
  }
  if (smem > smem_limit) {
    fail(cudaErrorInvalidValue,
         what + std::to_string(smem) + " bytes of dynamic shared memory; the limit is " +
             std::to_string(smem_limit) +
             (smem_limit == kStaticShared
                  ? " (up to 232448 with cudaFuncAttributeMaxDynamicSharedMemorySize)"
                  : ""));
    return;
  }
  auto k = std::make_shared<Kernel>();
  k->name = name;
  if (std::strchr(name, '<') != nullptr) {  // a template: say which instance
    int status = 0;
    char* full = abi::__cxa_demangle(type.name(), nullptr, nullptr, &status);
    if (status == 0 && full != nullptr) k->name += std::string(" = ") + full;
    std::free(full);
  }
  k->grid = grid;
  k->block = block;
  k->smem = smem;
  k->body = std::move(body);
  const int device = current_device;
  enqueue(s, [k, device] {
    if (failed(device)) return;
    std::string message;
    const cudaError_t err = run_kernel(*k, &message);
    if (err != cudaSuccess) set_sticky(device, err, message);
  });
}

}  // namespace pcn_sim

using namespace pcn_sim;

// ------------------------------------------------------------------------------ the API
cudaError_t cudaGetDeviceCount(int* count) {
  *count = devices().count;
  if (!devices().problem.empty()) return fail(cudaErrorInitializationError, devices().problem);
  if (devices().count == 0) return fail(cudaErrorNoDevice, "PYCONVNET_SIM_DEVICES=0");
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  *device = current_device;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (!valid_device(device))
    return fail(cudaErrorInvalidDevice, "cudaSetDevice(" + std::to_string(device) + "): " +
                                            std::to_string(devices().count) +
                                            " simulated devices");
  current_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (!valid_device(device))
    return fail(cudaErrorInvalidDevice, "cudaGetDeviceProperties(" + std::to_string(device) +
                                            "): " + std::to_string(devices().count) +
                                            " simulated devices");
  std::memset(prop, 0, sizeof *prop);
  std::snprintf(prop->name, sizeof prop->name, "pyconvnet simulated GPU %d (H200 limits)", device);
  prop->totalGlobalMem = devices().capacity;
  prop->sharedMemPerBlock = kStaticShared;
  prop->sharedMemPerBlockOptin = kOptinShared;
  prop->sharedMemPerMultiprocessor = 228 << 10;
  prop->regsPerBlock = 65536;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->multiProcessorCount = 132;
  prop->major = 9;
  prop->minor = 0;
  prop->l2CacheSize = 50 << 20;
  prop->totalConstMem = 64 << 10;
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  if (cudaError_t e = check_current()) return e;
  Device& dev = *devices().device[current_device];
  std::lock_guard<std::mutex> lock(dev.mu);
  *total_bytes = devices().capacity;
  *free_bytes = devices().capacity - dev.used;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  if (devices().count == 0) return fail(cudaErrorNoDevice, devices().problem);
  wait_device_idle(current_device);
  return sticky(current_device);
}

cudaError_t cudaGetLastError() {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  if (e != cudaSuccess) return e;
  if (devices().count > 0) return sticky(current_device);
  return cudaSuccess;
}

const char* cudaGetErrorName(cudaError_t err) {
  switch (err) {
#define PCN_SIM_NAME(e) \
  case e: return #e;
    PCN_SIM_NAME(cudaSuccess)
    PCN_SIM_NAME(cudaErrorInvalidValue)
    PCN_SIM_NAME(cudaErrorMemoryAllocation)
    PCN_SIM_NAME(cudaErrorInitializationError)
    PCN_SIM_NAME(cudaErrorInvalidConfiguration)
    PCN_SIM_NAME(cudaErrorInsufficientDriver)
    PCN_SIM_NAME(cudaErrorNoDevice)
    PCN_SIM_NAME(cudaErrorInvalidDevice)
    PCN_SIM_NAME(cudaErrorInvalidResourceHandle)
    PCN_SIM_NAME(cudaErrorNotReady)
    PCN_SIM_NAME(cudaErrorIllegalAddress)
    PCN_SIM_NAME(cudaErrorLaunchOutOfResources)
    PCN_SIM_NAME(cudaErrorPeerAccessAlreadyEnabled)
    PCN_SIM_NAME(cudaErrorLaunchFailure)
#undef PCN_SIM_NAME
  }
  return "cudaErrorUnknown";
}

// The standard text, followed by the simulator's detail when this thread's latest failed call
// returned `err`. The string stays valid until this thread's fourth next call.
const char* cudaGetErrorString(cudaError_t err) {
  thread_local std::string ring[4];
  thread_local int next = 0;
  std::string& s = ring[next++ % 4];
  s = standard_text(err);
  if (err == detail_code && !detail.empty()) s += ": " + detail;
  return s.c_str();
}

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  *ptr = nullptr;
  if (cudaError_t e = check_current()) return e;
  const size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  const size_t data = (rounded + kPage - 1) / kPage * kPage;
  Device& dev = *devices().device[current_device];
  {
    std::lock_guard<std::mutex> lock(dev.mu);
    if (dev.used + rounded > devices().capacity)
      return fail(cudaErrorMemoryAllocation,
                  "cudaMalloc(" + std::to_string(bytes) + "): cuda:" +
                      std::to_string(current_device) + " has " +
                      std::to_string(devices().capacity - dev.used) + " of " +
                      std::to_string(devices().capacity) + " bytes free");
    dev.used += rounded;
  }
  void* m = mmap(nullptr, data + 2 * kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                 -1, 0);
  if (m == MAP_FAILED || (data && mprotect(static_cast<char*>(m) + kPage, data,
                                           PROT_READ | PROT_WRITE) != 0)) {
    if (m != MAP_FAILED) munmap(m, data + 2 * kPage);
    std::lock_guard<std::mutex> lock(dev.mu);
    dev.used -= rounded;
    return fail(cudaErrorMemoryAllocation,
                "cudaMalloc(" + std::to_string(bytes) + "): the host has no memory for it");
  }
  Allocation a;
  a.map = static_cast<char*>(m);
  a.map_bytes = data + 2 * kPage;
  a.base = reinterpret_cast<uintptr_t>(a.map) + kPage + (data - rounded);
  a.bytes = rounded;
  a.device = current_device;
  std::memset(reinterpret_cast<void*>(a.base), 0xFF, rounded);  // NaN: initcheck
  {
    std::lock_guard<std::mutex> lock(memory().mu);
    memory().device[reinterpret_cast<uintptr_t>(a.map)] = a;
  }
  *ptr = reinterpret_cast<void*>(a.base);
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  if (cudaError_t e = check_current()) return e;
  const auto p = reinterpret_cast<uintptr_t>(ptr);
  Memory& m = memory();
  std::unique_lock<std::mutex> lock(m.mu);
  Allocation* a = const_cast<Allocation*>(find_mapping(p));
  if (a == nullptr || a->base != p || a->freed)
    return fail(cudaErrorInvalidValue,
                "cudaFree(" + hex(p) + "): " +
                    (a && a->freed ? "already freed" : "not the start of a device allocation"));
  // Work queued before the free may still use the memory (as on a GPU, cudaFree waits for it).
  const int device = a->device;
  lock.unlock();
  wait_device_idle(device);
  lock.lock();
  a = const_cast<Allocation*>(find_mapping(p));
  a->freed = true;
  mprotect(a->map, a->map_bytes, PROT_NONE);
  madvise(a->map, a->map_bytes, MADV_DONTNEED);
  {
    Device& dev = *devices().device[device];
    std::lock_guard<std::mutex> dlock(dev.mu);
    dev.used -= a->bytes;
  }
  m.quarantine.push_back(reinterpret_cast<uintptr_t>(a->map));
  m.quarantine_bytes += a->map_bytes;
  while (m.quarantine_bytes > kQuarantine) {
    auto it = m.device.find(m.quarantine.front());
    m.quarantine.pop_front();
    m.quarantine_bytes -= it->second.map_bytes;
    munmap(it->second.map, it->second.map_bytes);
    m.device.erase(it);
  }
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, size_t bytes) {
  *ptr = nullptr;
  if (posix_memalign(ptr, kPage, std::max<size_t>(bytes, 1)) != 0)
    return fail(cudaErrorMemoryAllocation,
                "cudaMallocHost(" + std::to_string(bytes) + "): out of host memory");
  std::lock_guard<std::mutex> lock(memory().mu);
  memory().pinned[reinterpret_cast<uintptr_t>(*ptr)] = bytes;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(memory().mu);
    auto it = memory().pinned.find(reinterpret_cast<uintptr_t>(ptr));
    if (it == memory().pinned.end())
      return fail(cudaErrorInvalidValue, "cudaFreeHost(" + hex(reinterpret_cast<uintptr_t>(ptr)) +
                                             "): not memory from cudaMallocHost");
    memory().pinned.erase(it);
  }
  std::free(ptr);
  return cudaSuccess;
}

namespace {

// Validates one side of a copy: device memory (expect_device) or host memory.
cudaError_t check_side(const char* call, const char* side, const void* p, size_t bytes,
                       bool expect_device, int want_device) {
  std::string why;
  const int d = device_of(p, bytes, &why);
  const std::string where = std::string(call) + ": " + side + " " +
                            hex(reinterpret_cast<uintptr_t>(p)) + " (" + std::to_string(bytes) +
                            " bytes): ";
  if (d == -1) return fail(cudaErrorInvalidValue, where + why);
  if (expect_device && d == -2)
    return fail(cudaErrorInvalidValue, where + "not device memory");
  if (!expect_device && d >= 0)
    return fail(cudaErrorInvalidValue, where + "device memory (on cuda:" + std::to_string(d) +
                                           ") where the copy kind says host memory");
  if (expect_device && want_device >= 0 && d != want_device)
    return fail(cudaErrorInvalidValue, where + "memory of cuda:" + std::to_string(d) +
                                           ", not of cuda:" + std::to_string(want_device));
  return cudaSuccess;
}

cudaError_t copy(const char* call, void* dst, int dst_device, const void* src, int src_device,
                 size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  if (cudaError_t e = check_current()) return e;
  if (bytes == 0) return cudaSuccess;
  if (kind == cudaMemcpyDefault) {
    std::string why;
    const bool dd = device_of(dst, bytes, &why) != -2, sd = device_of(src, bytes, &why) != -2;
    kind = dd ? (sd ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
              : (sd ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  }
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  if (cudaError_t e = check_side(call, "destination", dst, bytes, dst_dev, dst_device)) return e;
  if (cudaError_t e = check_side(call, "source", src, bytes, src_dev, src_device)) return e;
  cudaStream_t s = resolve(stream);
  const int device = s->device;
  if (!src_dev && !is_pinned(src, bytes)) {
    // Pageable source: staged now, so the caller may reuse it when the call returns.
    auto staged = std::make_shared<std::vector<char>>(static_cast<const char*>(src),
                                                      static_cast<const char*>(src) + bytes);
    enqueue(s, [dst, staged, device] {
      if (!failed(device)) std::memcpy(dst, staged->data(), staged->size());
    });
    return cudaSuccess;
  }
  const uint64_t ticket = enqueue(s, [dst, src, bytes, device] {
    if (!failed(device)) std::memcpy(dst, src, bytes);
  });
  if (!dst_dev && !is_pinned(dst, bytes)) {
    // Pageable destination: the call returns once the copy is done.
    wait_for(s, ticket);
    return sticky(device);
  }
  return cudaSuccess;
}

}  // namespace

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  return copy("cudaMemcpyAsync", dst, -1, src, -1, bytes, kind, stream);
}

cudaError_t cudaMemcpyPeerAsync(void* dst, int dst_device, const void* src, int src_device,
                                size_t bytes, cudaStream_t stream) {
  if (!valid_device(dst_device) || !valid_device(src_device))
    return fail(cudaErrorInvalidDevice, "cudaMemcpyPeerAsync: devices " +
                                            std::to_string(dst_device) + " and " +
                                            std::to_string(src_device));
  return copy("cudaMemcpyPeerAsync", dst, dst_device, src, src_device, bytes,
              cudaMemcpyDeviceToDevice, stream);
}

// Rows of `width` bytes, `height` of them, `spitch` and `dpitch` bytes apart. Each side's whole
// extent, from its first byte to the end of its last row, must lie in one allocation (or be host
// memory), as for cudaMemcpyAsync; pageable host memory is staged or waited for the same way.
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                              size_t height, cudaMemcpyKind kind, cudaStream_t stream) {
  if (cudaError_t e = check_current()) return e;
  if (width > dpitch || width > spitch)
    return fail(cudaErrorInvalidValue, "cudaMemcpy2DAsync: width " + std::to_string(width) +
                                           " is larger than a pitch (dpitch " +
                                           std::to_string(dpitch) + ", spitch " +
                                           std::to_string(spitch) + ")");
  if (width == 0 || height == 0) return cudaSuccess;
  const size_t dextent = dpitch * (height - 1) + width, sextent = spitch * (height - 1) + width;
  std::string why;
  if (kind == cudaMemcpyDefault) {
    const bool dd = device_of(dst, dextent, &why) != -2, sd = device_of(src, sextent, &why) != -2;
    kind = dd ? (sd ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
              : (sd ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  }
  const bool dst_dev = kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToDevice;
  const bool src_dev = kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
  const char* call = "cudaMemcpy2DAsync";
  if (cudaError_t e = check_side(call, "destination", dst, dextent, dst_dev, -1)) return e;
  if (cudaError_t e = check_side(call, "source", src, sextent, src_dev, -1)) return e;
  cudaStream_t s = resolve(stream);
  const int device = s->device;
  auto rows = [=](const char* from) {
    for (size_t r = 0; r < height; ++r)
      std::memcpy(static_cast<char*>(dst) + r * dpitch, from + r * spitch, width);
  };
  if (!src_dev && !is_pinned(src, sextent)) {
    auto staged = std::make_shared<std::vector<char>>(static_cast<const char*>(src),
                                                      static_cast<const char*>(src) + sextent);
    enqueue(s, [rows, staged, device] {
      if (!failed(device)) rows(staged->data());
    });
    return cudaSuccess;
  }
  const uint64_t ticket = enqueue(s, [rows, src, device] {
    if (!failed(device)) rows(static_cast<const char*>(src));
  });
  if (!dst_dev && !is_pinned(dst, dextent)) {
    wait_for(s, ticket);
    return sticky(device);
  }
  return cudaSuccess;
}

// Every pair of distinct simulated devices can reach each other's memory (it is all host memory).
cudaError_t cudaDeviceCanAccessPeer(int* can_access, int device, int peer_device) {
  *can_access = 0;
  if (!valid_device(device) || !valid_device(peer_device))
    return fail(cudaErrorInvalidDevice, "cudaDeviceCanAccessPeer(" + std::to_string(device) +
                                            ", " + std::to_string(peer_device) + "): " +
                                            std::to_string(devices().count) +
                                            " simulated devices");
  *can_access = device != peer_device;
  return cudaSuccess;
}

cudaError_t cudaDeviceEnablePeerAccess(int peer_device, unsigned int flags) {
  if (cudaError_t e = check_current()) return e;
  if (flags != 0)
    return fail(cudaErrorInvalidValue, "cudaDeviceEnablePeerAccess: flags must be 0; got " +
                                           std::to_string(flags));
  if (!valid_device(peer_device) || peer_device == current_device)
    return fail(cudaErrorInvalidDevice, "cudaDeviceEnablePeerAccess(" +
                                            std::to_string(peer_device) + ") on cuda:" +
                                            std::to_string(current_device));
  Device& dev = *devices().device[current_device];
  std::lock_guard<std::mutex> lock(dev.mu);
  if (dev.peer_enabled[peer_device])
    return fail(cudaErrorPeerAccessAlreadyEnabled,
                "cudaDeviceEnablePeerAccess(" + std::to_string(peer_device) + ") on cuda:" +
                    std::to_string(current_device) + ": already enabled");
  dev.peer_enabled[peer_device] = true;
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t bytes, cudaStream_t stream) {
  if (cudaError_t e = check_current()) return e;
  if (bytes == 0) return cudaSuccess;
  if (cudaError_t e = check_side("cudaMemsetAsync", "destination", ptr, bytes, true, -1)) return e;
  cudaStream_t s = resolve(stream);
  const int device = s->device;
  enqueue(s, [ptr, value, bytes, device] {
    if (!failed(device)) std::memset(ptr, value, bytes);
  });
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int flags) {
  if (cudaError_t e = check_current()) return e;
  *stream = new_stream(current_device);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (devices().count == 0) return fail(cudaErrorNoDevice, devices().problem);
  cudaStream_t s = resolve(stream);
  wait_idle(s);
  return sticky(s->device);
}

cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
  if (cudaError_t e = check_current()) return e;
  cudaStream_t s = resolve(stream);
  uint64_t target;
  {
    std::lock_guard<std::mutex> lock(event->mu);
    target = event->recorded;
  }
  if (target == 0) return cudaSuccess;  // never recorded: nothing to wait for
  enqueue(s, [event, target] {
    std::unique_lock<std::mutex> lock(event->mu);
    event->cv.wait(lock, [&] { return event->completed >= target; });
  });
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags) {
  if (cudaError_t e = check_current()) return e;
  // Events are never freed: a destroyed event may still be named by queued work.
  *event = new CUevent_st;
  (*event)->device = current_device;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (cudaError_t e = check_current()) return e;
  cudaStream_t s = resolve(stream);
  if (s->device != event->device)
    return fail(cudaErrorInvalidResourceHandle,
                "cudaEventRecord: the event belongs to cuda:" + std::to_string(event->device) +
                    ", the stream to cuda:" + std::to_string(s->device));
  uint64_t gen;
  {
    std::lock_guard<std::mutex> lock(event->mu);
    gen = ++event->recorded;
  }
  enqueue(s, [event, gen] {
    {
      std::lock_guard<std::mutex> lock(event->mu);
      event->completed = std::max(event->completed, gen);
    }
    event->cv.notify_all();
  });
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  std::unique_lock<std::mutex> lock(event->mu);
  const uint64_t target = event->recorded;
  event->cv.wait(lock, [&] { return event->completed >= target; });
  lock.unlock();
  return sticky(event->device);
}

// cudaErrorNotReady while the work before the last record is still running; like CUDA, that
// answer is not an error (it does not become the thread's last error).
cudaError_t cudaEventQuery(cudaEvent_t event) {
  {
    std::lock_guard<std::mutex> lock(event->mu);
    if (event->completed < event->recorded) return cudaErrorNotReady;
  }
  return sticky(event->device);
}

cudaError_t cudaEventDestroy(cudaEvent_t event) { return cudaSuccess; }
