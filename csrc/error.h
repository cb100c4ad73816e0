// Errors. Library code never calls exit()/abort()/assert: every failure is a C++ exception
// of one of the types below, which bindings/module.cpp turns into a Python exception:
//   ValueError  -> ValueError      (an argument has a bad value or shape)
//   TypeError   -> TypeError       (an argument has a bad dtype or kind)
//   DeviceError -> RuntimeError    (no GPU, no driver, CPU-only build; mixed devices in one
//                                   call are a ValueError: they are a bad argument)
//   CudaError   -> pyconvnet.CudaError (RuntimeError): a CUDA call or kernel launch failed
//   OutOfMemory -> pyconvnet.OutOfMemoryError (RuntimeError)
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace pcn {

struct ValueError : std::runtime_error { using std::runtime_error::runtime_error; };
struct TypeError : std::runtime_error { using std::runtime_error::runtime_error; };
struct DeviceError : std::runtime_error { using std::runtime_error::runtime_error; };
struct CudaError : std::runtime_error { using std::runtime_error::runtime_error; };
struct OutOfMemory : std::runtime_error { using std::runtime_error::runtime_error; };

namespace detail {
inline void append(std::ostringstream&) {}
template <typename T, typename... Rest>
void append(std::ostringstream& os, const T& v, const Rest&... rest) {
  os << v;
  append(os, rest...);
}
}  // namespace detail

// str("a", 1, "b") == "a1b": builds error messages from values of any streamable type.
template <typename... Args>
std::string str(const Args&... args) {
  std::ostringstream os;
  detail::append(os, args...);
  return os.str();
}

}  // namespace pcn

// PCN_REQUIRE(cond, ExceptionType, message parts...): throws ExceptionType(str(parts...)) when
// cond is false. Unlike assert it is never compiled out, and the message carries the values.
#define PCN_REQUIRE(cond, Exc, ...)              \
  do {                                           \
    if (!(cond)) throw ::pcn::Exc(::pcn::str(__VA_ARGS__)); \
  } while (0)
