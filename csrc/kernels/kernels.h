// What every kernel header (csrc/kernels/<op>.h) uses: one declaration of an op's kernel entry
// points for both devices, and the op's numbered kernel versions.
//
// The CPU kernels (csrc/cpu/<op>.cpp, namespace pcn::cpu) and the CUDA kernels (cuda/<op>.cu,
// namespace pcn::cuda) implement the same signatures; the dispatch layer (csrc/ops/) calls one or
// the other with PCN_DISPATCH. A CPU-only build declares the CUDA entry points but never calls
// them. Every kernel may assume valid, contiguous, same-device arguments and preallocated
// outputs, and a version already resolved to 1..count for its device.
#pragma once
#include "csrc/types.h"

// Declares the kernel entry points `decls` in pcn::cpu and in pcn::cuda (use inside namespace pcn).
#define PCN_KERNELS(...)       \
  namespace cpu {              \
  __VA_ARGS__                  \
  }                            \
  namespace cuda {             \
  __VA_ARGS__                  \
  }

namespace pcn {

// The kernel versions of an op on one device: 1..count exist, version 0 stands for `best` (the
// fastest measured). A version number selects one kernel per pass; a pass with a single kernel
// runs it for every version.
struct KernelVersions {
  int count;
  int best;
};

// An op's kernel versions on each device. The numbers belong to the device: the CPU accepts only
// its own, so asking the CPU for a CUDA-only version is a ValueError, not a silent substitute.
struct OpVersions {
  KernelVersions cpu, cuda;
  constexpr const KernelVersions& on(DeviceType d) const {
    return d == DeviceType::CUDA ? cuda : cpu;
  }
};

}  // namespace pcn
