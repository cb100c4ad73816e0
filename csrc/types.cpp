#include "types.h"

#include "error.h"

namespace pcn {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::Float32: return 4;
    case DType::UInt8: return 1;
    case DType::Int32: return 4;
  }
  throw TypeError("dtype_size: unknown dtype");
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::Float32: return "float32";
    case DType::UInt8: return "uint8";
    case DType::Int32: return "int32";
  }
  return "unknown";
}

DType dtype_from_name(const std::string& name) {
  if (name == "float32") return DType::Float32;
  if (name == "uint8") return DType::UInt8;
  if (name == "int32") return DType::Int32;
  throw TypeError(str("dtype must be float32, uint8 or int32; got ", name));
}

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5) {
    const std::string idx = s.substr(5);
    bool digits = idx.size() <= 6;
    for (char c : idx) digits = digits && c >= '0' && c <= '9';
    if (digits) return cuda(std::stoi(idx));
  }
  throw ValueError(pcn::str("device must be \"cpu\", \"cuda\" or \"cuda:N\"; got \"", s, "\""));
}

std::string Device::str() const { return is_cpu() ? std::string("cpu") : pcn::str("cuda:", index); }

std::string shape_str(const Shape& s) {
  std::string out = "(";
  for (size_t i = 0; i < s.size(); ++i) out += pcn::str(i ? ", " : "", s[i]);
  if (s.size() == 1) out += ",";
  return out + ")";
}

}  // namespace pcn
