// Numbered kernel versions. Each op that has several kernels keeps all of them callable: the
// user passes version 0 for the device's default (its best) or 1..count for a specific one, so
// tests validate every version and benchmarks compare them.
#pragma once
#include <string>

#include "csrc/check.h"

namespace pcn {

struct KernelVersions {
  int count;  // versions 1..count exist
  int best;   // what version 0 stands for
};

// The version to run on `device`: `version` itself, or the default for 0. ValueError listing the
// valid ones for anything else.
inline int resolve_version(const ArgCheck& c, const Device& device, int version,
                           KernelVersions cpu, KernelVersions cuda) {
  const KernelVersions v = device.is_cuda() ? cuda : cpu;
  if (version == 0) return v.best;
  if (version < 1 || version > v.count) {
    std::string valid = "0 (default, = " + std::to_string(v.best) + ")";
    for (int i = 1; i <= v.count; ++i) valid += ", " + std::to_string(i);
    c.require(false, "version", str("be one of ", valid, " on ", device.str()).c_str(), version);
  }
  return version;
}

// For ops whose CPU side has one implementation and accepts every CUDA version number (so code
// written for one device runs unchanged on the other): the kernel number to run, or ValueError.
inline int resolve_version(const ArgCheck& c, int version, int count, int best) {
  std::string rule = str("be 0 (the default, version ", best, ") or one of 1");
  for (int v = 2; v <= count; ++v) rule += str(", ", v);
  c.require(version >= 0 && version <= count, "version", rule.c_str(), version);
  return version == 0 ? best : version;
}

}  // namespace pcn
