#include "staging.h"

#include <cstring>
#include <mutex>

#include "allocator.h"
#include "device.h"
#ifdef PYCONVNET_WITH_CUDA
#include "cuda_check.h"
#endif

namespace pcn {

#ifdef PYCONVNET_WITH_CUDA
namespace {
// One copy stream per device, created on first use and kept for the process (like the op
// streams). Non-blocking: it never synchronises implicitly with the legacy default stream.
cudaStream_t copy_stream(int device) {
  static std::mutex& mu = *new std::mutex;
  static auto& streams = *new std::vector<cudaStream_t>;  // leaked: used during shutdown
  std::lock_guard<std::mutex> lock(mu);
  if (streams.empty()) streams.assign(static_cast<size_t>(cuda_device_count()), nullptr);
  if (streams[device] == nullptr) {
    cuda::DeviceGuard guard(device);
    CUDA_CHECK(cudaStreamCreateWithFlags(&streams[device], cudaStreamNonBlocking));
  }
  return streams[device];
}
}  // namespace
#endif

StagingSlot::StagingSlot(const std::vector<std::pair<Shape, DType>>& buffers, Device device)
    : where_(device) {
  require_device(device, "StagingSlot");
  for (const auto& [shape, dtype] : buffers) {
    shapes_.push_back(shape);
    dtypes_.push_back(dtype);
    device_.push_back(Tensor::empty(shape, dtype, device));  // checks the shape
    if (device.is_cuda()) host_.push_back(allocate_pinned(device_.back().nbytes()));
  }
#ifdef PYCONVNET_WITH_CUDA
  if (device.is_cuda()) {
    cuda::DeviceGuard guard(device.index);
    CUDA_CHECK(cudaEventCreateWithFlags(&copied_, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&released_, cudaEventDisableTiming));
    // The device buffers come from the caching allocator, which hands out blocks in op-stream
    // order: ops enqueued before now may still use this memory. The first upload (on the copy
    // stream) must wait for them.
    CUDA_CHECK(cudaEventRecord(released_, cuda::stream(device.index)));
  }
#endif
}

StagingSlot::~StagingSlot() {
  // Destructors must not throw. The loader calls close() itself, so errors surface there; here
  // they can only be dropped.
  try {
    close();
  } catch (...) {
  }
}

void StagingSlot::check_open(const char* what) const {
  PCN_REQUIRE(open_, ValueError, "StagingSlot.", what, ": the slot is closed");
}

void StagingSlot::check_index(size_t i) const {
  PCN_REQUIRE(i < device_.size(), ValueError, "StagingSlot: buffer index ", i,
              " out of range; the slot has ", device_.size(), " buffers");
}

void* StagingSlot::host(size_t i) const {
  check_open("host");
  check_index(i);
  return where_.is_cuda() ? host_[i].get() : device_[i].raw();
}

std::shared_ptr<void> StagingSlot::host_owner(size_t i) const {
  check_index(i);
  if (where_.is_cuda()) return host_[i];
  return std::make_shared<Tensor>(device_[i]);  // a CPU slot's host memory is the tensor's
}

const Shape& StagingSlot::shape(size_t i) const {
  check_index(i);
  return shapes_[i];
}

DType StagingSlot::dtype(size_t i) const {
  check_index(i);
  return dtypes_[i];
}

const Tensor& StagingSlot::device_buffer(size_t i) const {
  check_open("device_buffer");
  check_index(i);
  return device_[i];
}

void StagingSlot::wait_uploaded() {
  check_open("wait_uploaded");
#ifdef PYCONVNET_WITH_CUDA
  if (where_.is_cuda()) CUDA_CHECK(cudaEventSynchronize(copied_));
#endif
}

void StagingSlot::upload() {
  check_open("upload");
#ifdef PYCONVNET_WITH_CUDA
  if (!where_.is_cuda()) return;
  const int dev = where_.index;
  cuda::DeviceGuard guard(dev);
  cudaStream_t copy = copy_stream(dev);
  CUDA_CHECK(cudaStreamWaitEvent(copy, released_, 0));
  for (size_t i = 0; i < device_.size(); ++i) {
    const size_t bytes = device_[i].nbytes();
    if (bytes == 0) continue;
    CUDA_CHECK(cudaMemcpyAsync(device_[i].raw(), host_[i].get(), bytes, cudaMemcpyHostToDevice, copy));
  }
  CUDA_CHECK(cudaEventRecord(copied_, copy));
#endif
}

void StagingSlot::acquire() {
  check_open("acquire");
#ifdef PYCONVNET_WITH_CUDA
  if (!where_.is_cuda()) return;
  cuda::DeviceGuard guard(where_.index);
  CUDA_CHECK(cudaStreamWaitEvent(cuda::stream(where_.index), copied_, 0));
#endif
}

void StagingSlot::release() {
  check_open("release");
#ifdef PYCONVNET_WITH_CUDA
  if (!where_.is_cuda()) return;
  cuda::DeviceGuard guard(where_.index);
  CUDA_CHECK(cudaEventRecord(released_, cuda::stream(where_.index)));
#endif
}

Tensor StagingSlot::clone(size_t i) const {
  check_open("clone");
  check_index(i);
  const Tensor& src = device_[i];
  if (where_.is_cpu()) return Tensor::from_host(src.raw(), src.shape(), src.dtype(), where_);
  Tensor out = Tensor::empty(src.shape(), src.dtype(), where_);
#ifdef PYCONVNET_WITH_CUDA
  if (src.nbytes() > 0) {
    cuda::DeviceGuard guard(where_.index);
    CUDA_CHECK(cudaMemcpyAsync(out.raw(), src.raw(), src.nbytes(), cudaMemcpyDeviceToDevice,
                               cuda::stream(where_.index)));
  }
#endif
  return out;
}

void StagingSlot::close() {
  if (!open_) return;
  open_ = false;
#ifdef PYCONVNET_WITH_CUDA
  if (where_.is_cuda()) {
    cuda::DeviceGuard guard(where_.index);
    // A copy may still read the pinned memory or write the device buffers: both go back to
    // caches that assume no such pending use.
    CUDA_CHECK(cudaEventSynchronize(copied_));
    CUDA_CHECK(cudaEventDestroy(copied_));
    CUDA_CHECK(cudaEventDestroy(released_));
    copied_ = released_ = nullptr;
  }
#endif
  host_.clear();
  device_.clear();
}

}  // namespace pcn
