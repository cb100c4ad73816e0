// The basic types every layer uses: element types, devices and shapes. Nothing here knows about
// tensors, memory or kernels, so every header may include it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pcn {

enum class DType : int { Float32 = 0, UInt8 = 1, Int32 = 2 };
enum class DeviceType : int { CPU = 0, CUDA = 1 };

size_t dtype_size(DType t);
const char* dtype_name(DType t);  // "float32", "uint8", "int32"
DType dtype_from_name(const std::string& name);  // throws TypeError for anything else

template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::Float32; };
template <> struct dtype_of<uint8_t> { static constexpr DType value = DType::UInt8; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::Int32; };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;  // CUDA ordinal; always 0 for the CPU

  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int i) { return {DeviceType::CUDA, i}; }
  // Parses "cpu", "cuda", "cuda:N". Does not check that the device exists.
  static Device parse(const std::string& s);
  bool is_cuda() const { return type == DeviceType::CUDA; }
  bool is_cpu() const { return type == DeviceType::CPU; }
  std::string str() const;  // "cpu" or "cuda:N"
  bool operator==(const Device& o) const { return type == o.type && index == o.index; }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "(2, 3, 4)"

}  // namespace pcn
