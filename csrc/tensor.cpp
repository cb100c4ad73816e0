#include "tensor.h"

#include <algorithm>
#include <cstring>

#include "allocator.h"
#include "device.h"
#ifdef PYCONVNET_WITH_CUDA
#include "cuda_check.h"
#endif

namespace pcn {

int64_t Tensor::size(int64_t i) const {
  const int64_t d = dim();
  PCN_REQUIRE(i >= -d && i < d, ValueError, "Tensor.size: dimension ", i,
              " out of range for a tensor of rank ", d);
  return shape_[static_cast<size_t>(i < 0 ? i + d : i)];
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape_) n *= s;
  return n;
}

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  int64_t n = 1;
  for (int64_t s : shape) {
    PCN_REQUIRE(s >= 0, ValueError, "empty: shape ", shape_str(shape), " has a negative size");
    PCN_REQUIRE(s == 0 || n <= (int64_t(1) << 40) / s, ValueError, "empty: shape ",
                shape_str(shape), " is too large");
    n *= s;
  }
  require_device(device, "empty");
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.device_ = device;
  t.data_ = allocate(static_cast<size_t>(n) * dtype_size(dtype), device);
  return t;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  t.fill_zero();
  return t;
}

void Tensor::fill_zero() {
  if (nbytes() == 0) return;
  if (device_.is_cpu()) {
    std::memset(raw(), 0, nbytes());
    return;
  }
#ifdef PYCONVNET_WITH_CUDA
  cuda::DeviceGuard guard(device_.index);
  CUDA_CHECK(cudaMemsetAsync(raw(), 0, nbytes(), cuda::stream(device_.index)));
#endif
}

Tensor Tensor::from_host(const void* src, const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  const size_t bytes = t.nbytes();
  if (bytes == 0) return t;
  if (device.is_cpu()) {
    std::memcpy(t.raw(), src, bytes);
    return t;
  }
#ifdef PYCONVNET_WITH_CUDA
  // Stage through pinned memory so the transfer runs at full bus speed.
  std::shared_ptr<void> staging = allocate_pinned(bytes);
  std::memcpy(staging.get(), src, bytes);
  cuda::DeviceGuard guard(device.index);
  cudaStream_t s = cuda::stream(device.index);
  CUDA_CHECK(cudaMemcpyAsync(t.raw(), staging.get(), bytes, cudaMemcpyHostToDevice, s));
  CUDA_CHECK(cudaStreamSynchronize(s));  // the staging buffer is reused once this returns
#endif
  return t;
}

void Tensor::copy_to_host(void* dst) const {
  const size_t bytes = nbytes();
  if (bytes == 0) return;
  if (device_.is_cpu()) {
    std::memcpy(dst, raw(), bytes);
    return;
  }
#ifdef PYCONVNET_WITH_CUDA
  std::shared_ptr<void> staging = allocate_pinned(bytes);
  cuda::DeviceGuard guard(device_.index);
  cudaStream_t s = cuda::stream(device_.index);
  CUDA_CHECK(cudaMemcpyAsync(staging.get(), raw(), bytes, cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaStreamSynchronize(s));
  std::memcpy(dst, staging.get(), bytes);
#endif
}

Tensor Tensor::to(Device device) const {
  if (device == device_) return *this;
  if (device_.is_cpu()) return from_host(raw(), shape_, dtype_, device);
  Tensor out = empty(shape_, dtype_, device);
  if (device.is_cpu()) {
    copy_to_host(out.raw());
    return out;
  }
#ifdef PYCONVNET_WITH_CUDA
  // GPU to GPU: after the source's pending work, on the destination's stream.
  if (nbytes() > 0) {
    CUDA_CHECK(cudaStreamSynchronize(cuda::stream(device_.index)));
    cuda::DeviceGuard guard(device.index);
    cudaStream_t s = cuda::stream(device.index);
    CUDA_CHECK(cudaMemcpyPeerAsync(out.raw(), device.index, raw(), device_.index, nbytes(), s));
    CUDA_CHECK(cudaStreamSynchronize(s));
  }
#endif
  return out;
}

Tensor Tensor::reshape(const Shape& shape) const {
  int64_t n = 1;
  for (int64_t s : shape) {
    PCN_REQUIRE(s >= 0 && (s == 0 || n <= (int64_t(1) << 40) / s), ValueError,
                "reshape: cannot view ", repr(), " as shape ", shape_str(shape),
                " (sizes must be >= 0, their product at most 2^40)");
    n *= s;
  }
  PCN_REQUIRE(n == numel(), ValueError, "reshape: cannot view ", repr(), " as shape ",
              shape_str(shape), " (", n, " elements, tensor has ", numel(), ")");
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

std::string Tensor::repr() const {
  if (!defined()) return "Tensor(undefined)";
  return str("Tensor(shape=", shape_str(shape_), ", dtype=", dtype_name(dtype_), ", device=",
             device_.str(), ")");
}

}  // namespace pcn
