// The kernel-version registry. Each op declares its versions per device next to its kernels
// (kXxxVersions in csrc/kernels/<op>.h); the dispatch resolves the version a caller asked for
// with the one rule below, and op_versions() lists every op's for tests, benchmarks and Python
// (pyconvnet.ops.versions).
#pragma once
#include <string>
#include <vector>

#include "csrc/check.h"
#include "csrc/kernels/kernels.h"

namespace pcn {

// The kernel to run on `device`: `version` itself when the device has it, its default for 0.
// Any other number, a CUDA-only version on the CPU included, is a ValueError listing the
// device's versions.
int resolve_version(const ArgCheck& c, const Device& device, int version, const OpVersions& v);

// The versions of `op` (conv2d, linear, relu, lrn, max_pool2d, dropout, softmax, cross_entropy,
// sgd_update, augment) on `device`; ValueError listing the ops for any other name.
KernelVersions op_versions(const std::string& op, const Device& device);
// The ops in the registry, in the order above.
std::vector<std::string> versioned_ops();

}  // namespace pcn
