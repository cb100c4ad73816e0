// Tensor: a contiguous, row-major (NCHW for images) array of float32, uint8 or int32 on the CPU
// or one CUDA device. Storage is reference counted; when the last Tensor (and so the last Python
// object) holding it goes away, the memory returns to its allocator (allocator.h).
// Tensors are never strided views: every op may assume dense row-major data.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "error.h"
#include "types.h"

namespace pcn {

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (defined() is false); used for optional arguments

  // Uninitialised / zero-filled tensors. Throws ValueError for negative sizes, DeviceError when
  // the device cannot be used, OutOfMemory when memory runs out.
  static Tensor empty(const Shape& shape, DType dtype, Device device);
  static Tensor zeros(const Shape& shape, DType dtype, Device device);
  // A copy of host memory holding `shape` of `dtype` (numel * dtype_size bytes).
  static Tensor from_host(const void* src, const Shape& shape, DType dtype, Device device);

  bool defined() const { return static_cast<bool>(data_); }
  const Shape& shape() const { return shape_; }
  int64_t dim() const { return static_cast<int64_t>(shape_.size()); }
  int64_t size(int64_t i) const;  // negative i counts from the end
  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_cuda() const { return device_.is_cuda(); }

  void* raw() const { return data_.get(); }
  // Typed pointer; throws TypeError if T does not match dtype().
  template <typename T> T* data() const {
    PCN_REQUIRE(dtype_of<T>::value == dtype_, TypeError, "Tensor::data: tensor has dtype ",
                dtype_name(dtype_), ", asked for ", dtype_name(dtype_of<T>::value));
    return static_cast<T*>(data_.get());
  }

  void copy_to_host(void* dst) const;                 // nbytes() bytes
  Tensor to(Device device) const;                     // a copy on `device` (self if same)
  Tensor reshape(const Shape& shape) const;           // shares storage; numel must match
  void fill_zero();
  std::string repr() const;

 private:
  std::shared_ptr<void> data_;
  Shape shape_;
  DType dtype_ = DType::Float32;
  Device device_;
};

}  // namespace pcn
