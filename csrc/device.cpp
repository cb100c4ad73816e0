#include "device.h"

#include <cstdlib>
#include <mutex>
#include <vector>

#include "error.h"
#ifdef PYCONVNET_WITH_CUDA
#include "cuda_check.h"
#endif

namespace pcn {

bool built_with_cuda() {
#ifdef PYCONVNET_WITH_CUDA
  return true;
#else
  return false;
#endif
}

#ifdef PYCONVNET_WITH_CUDA
namespace {
struct Probe {
  int count = 0;
  std::string reason;
};
// Asked once: cudaGetDeviceCount loads the driver, and fails cleanly when there is none.
const Probe& probe() {
  static Probe p = [] {
    Probe r;
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
      cudaGetLastError();
      r.reason = err == cudaErrorNoDevice ? "no CUDA device is visible"
                 : err == cudaErrorInsufficientDriver
                     ? "no CUDA driver is installed, or it is older than this build's CUDA runtime"
                     : str("CUDA could not be initialised: ", cudaGetErrorString(err));
    } else if (n == 0) {
      r.reason = "no CUDA device is visible";
    }
    r.count = err == cudaSuccess ? n : 0;
    return r;
  }();
  return p;
}
}  // namespace

int cuda_device_count() { return probe().count; }
std::string cuda_unavailable_reason() { return probe().reason; }

std::string cuda_device_name(int index) {
  require_device(Device::cuda(index), "cuda.device_name");
  cudaDeviceProp prop;
  CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  return prop.name;
}

void cuda_synchronize(int index) {
  require_device(Device::cuda(index), "cuda.synchronize");
  cuda::DeviceGuard guard(index);
  CUDA_CHECK(cudaStreamSynchronize(cuda::stream(index)));
}

uintptr_t cuda_current_stream(int index) {
  require_device(Device::cuda(index), "cuda.current_stream");
  CUDA_CHECK(cudaSetDevice(index));
  return reinterpret_cast<uintptr_t>(cuda::stream(index));
}

namespace cuda {

void throw_cuda_error(cudaError_t err, const char* expr, const char* file, int line) {
  cudaGetLastError();  // clear a non-sticky error so later calls are not blamed for it
  std::string msg = str(expr, " failed at ", file, ":", line, ": ", cudaGetErrorName(err), " (",
                        cudaGetErrorString(err), ")");
  if (err == cudaErrorMemoryAllocation) throw OutOfMemory(msg);
  throw CudaError(msg);
}

cudaStream_t stream(int device) {
  static std::mutex& mu = *new std::mutex;
  static auto& streams = *new std::vector<cudaStream_t>;  // leaked: used during shutdown
  std::lock_guard<std::mutex> lock(mu);
  if (streams.empty()) streams.assign(static_cast<size_t>(cuda_device_count()), nullptr);
  PCN_REQUIRE(device >= 0 && device < static_cast<int>(streams.size()), DeviceError,
              "cuda stream: device cuda:", device, " does not exist (", streams.size(),
              " visible)");
  if (streams[device] == nullptr) {
    DeviceGuard guard(device);
    CUDA_CHECK(cudaStreamCreateWithFlags(&streams[device], cudaStreamNonBlocking));
  }
  return streams[device];
}

DeviceGuard::DeviceGuard(int device) {
  CUDA_CHECK(cudaGetDevice(&previous_));
  if (previous_ != device) CUDA_CHECK(cudaSetDevice(device));
}
DeviceGuard::~DeviceGuard() {
  int cur = -1;
  if (cudaGetDevice(&cur) == cudaSuccess && cur != previous_) cudaSetDevice(previous_);
}

bool sync_launches() {
  static const bool on = [] {
    const char* v = std::getenv("PYCONVNET_SYNC_LAUNCHES");
    return v != nullptr && std::string(v) == "1";
  }();
  return on;
}

}  // namespace cuda

#else  // CPU-only build

int cuda_device_count() { return 0; }
std::string cuda_unavailable_reason() {
  return "this pyconvnet was built without CUDA (no CUDA compiler was found at build time)";
}
std::string cuda_device_name(int index) {
  require_device(Device::cuda(index), "cuda.device_name");
  return "";
}
void cuda_synchronize(int index) { require_device(Device::cuda(index), "cuda.synchronize"); }
uintptr_t cuda_current_stream(int index) {
  require_device(Device::cuda(index), "cuda.current_stream");
  return 0;
}

#endif

void require_device(const Device& device, const char* who) {
  if (device.is_cpu()) return;
  const int n = cuda_device_count();
  PCN_REQUIRE(n > 0, DeviceError, who, ": device ", device.str(), " requested, but ",
              cuda_unavailable_reason());
  PCN_REQUIRE(device.index >= 0 && device.index < n, DeviceError, who, ": device ", device.str(),
              " does not exist; ", n, " CUDA device(s) visible (cuda:0 to cuda:", n - 1, ")");
}

}  // namespace pcn
