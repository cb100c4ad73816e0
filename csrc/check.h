// Argument checks and device dispatch, shared by every op. An op's host entry point
// (csrc/ops/*.cpp) validates its arguments once with ArgCheck, allocates its outputs on the
// inputs' device, then calls PCN_DISPATCH, which picks cpu::fn or cuda::fn with the same
// arguments. So CPU and CUDA reject the same bad input with the same message, and the kernels
// behind the dispatch may assume valid, contiguous, same-device arguments.
#pragma once
#include <initializer_list>
#include <string>
#include <utility>

#include "device.h"
#include "error.h"
#include "tensor.h"
#ifdef PYCONVNET_WITH_CUDA
#include "cuda_check.h"
#endif

namespace pcn {

class ArgCheck {
 public:
  explicit ArgCheck(const char* op) : op_(op) {}

  // `t` is defined and has this dtype (TypeError otherwise).
  const ArgCheck& dtype(const Tensor& t, const char* name, DType want) const;
  // `t` has rank `rank`; `layout` names the axes for the message, e.g. "(N, C, H, W)".
  const ArgCheck& rank(const Tensor& t, const char* name, int64_t rank, const char* layout) const;
  // `t` has exactly this shape.
  const ArgCheck& shape(const Tensor& t, const char* name, const Shape& want) const;
  // A tensor of `shape` has fewer than 2^31 elements, so kernels may index it with 32-bit
  // integers. The batch (first axis) counts as at least one, so that one sample's sizes fit too
  // when the batch is empty.
  const ArgCheck& int32_size(const char* name, const Shape& shape) const;
  // All defined tensors are on one device, which can be used now; returns it.
  Device same_device(std::initializer_list<std::pair<const char*, const Tensor*>> tensors) const;
  // A ValueError "op: argument 'name' must <rule>; got <got>" unless ok.
  template <typename T>
  const ArgCheck& require(bool ok, const char* name, const char* rule, const T& got) const {
    if (!ok) throw ValueError(str(op_, ": argument '", name, "' must ", rule, "; got ", got));
    return *this;
  }
  const char* op() const { return op_; }

 private:
  const char* op_;
};

}  // namespace pcn

#ifdef PYCONVNET_WITH_CUDA
#define PCN_DISPATCH(device, fn, ...)                          \
  do {                                                         \
    if ((device).is_cuda()) {                                  \
      ::pcn::cuda::DeviceGuard pcn_guard_((device).index);     \
      ::pcn::cuda::fn(__VA_ARGS__);                            \
    } else {                                                   \
      ::pcn::cpu::fn(__VA_ARGS__);                             \
    }                                                          \
  } while (0)
#else
#define PCN_DISPATCH(device, fn, ...)                                             \
  do {                                                                            \
    if ((device).is_cuda()) ::pcn::require_device((device), #fn);                 \
    ::pcn::cpu::fn(__VA_ARGS__);                                                  \
  } while (0)
#endif
