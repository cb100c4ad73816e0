// The `version` argument of an op: 0 picks the op's default kernel (the one believed fastest),
// 1..count pick a numbered CUDA kernel, so tests can validate every one and benchmarks sweep
// them. The CPU has one implementation per op and accepts every valid number, so code written
// for one device runs unchanged on the other.
#pragma once
#include <string>

#include "csrc/check.h"

namespace pcn {

// Returns the kernel number to run, or throws ValueError (the same message on both devices).
inline int resolve_version(const ArgCheck& c, int version, int count, int best) {
  std::string rule = str("be 0 (the default, version ", best, ") or one of 1");
  for (int v = 2; v <= count; ++v) rule += str(", ", v);
  c.require(version >= 0 && version <= count, "version", rule.c_str(), version);
  return version == 0 ? best : version;
}

}  // namespace pcn
