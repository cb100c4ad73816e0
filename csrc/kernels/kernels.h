// What every kernel header (csrc/kernels/<op>.h) uses: one declaration of an op's kernel entry
// points for both devices, and the op's numbered kernel versions.
//
// The CPU kernels (csrc/cpu/<op>.cpp, namespace pcn::cpu) and the CUDA kernels (cuda/<op>.cu,
// namespace pcn::cuda) implement the same signatures; the dispatch layer (csrc/ops/) calls one or
// the other with PCN_DISPATCH. A CPU-only build declares the CUDA entry points but never calls
// them. Every kernel may assume valid, contiguous, same-device arguments and preallocated
// outputs, and a version already resolved to 1..count for its device.
#pragma once
#include <cstdint>

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

// The arithmetic of a kernel version's products and sums: FP32 throughout; TF32 tensor cores
// (each operand rounded to a 10-bit mantissa, FP32 sums); or 3xTF32 (each operand split into a
// TF32 high part and a TF32 low part, three products per term: FP32-accurate on tensor cores).
enum class Precision : uint8_t { kFp32, kTf32, kTf32x3 };
inline constexpr const char* precision_name(Precision p) {
  return p == Precision::kTf32 ? "tf32" : p == Precision::kTf32x3 ? "3xtf32" : "fp32";
}

// The kernel versions of an op on one device: 1..count exist, version 0 stands for `best` (the
// fastest measured). A version number selects one kernel per pass; a pass with a single kernel
// runs it for every version. `precision` lists each version's arithmetic (FP32 unless given).
struct KernelVersions {
  static constexpr int kMax = 8;
  int count;
  int best;
  Precision precision[kMax] = {};
  // The precision of version v in 1..count.
  constexpr Precision of(int v) const { return precision[v - 1]; }
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
