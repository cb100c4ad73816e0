#include "versions.h"

#include "csrc/kernels/add.h"
#include "csrc/kernels/augment.h"
#include "csrc/kernels/conv2d.h"
#include "csrc/kernels/dropout.h"
#include "csrc/kernels/linear.h"
#include "csrc/kernels/lrn.h"
#include "csrc/kernels/max_pool2d.h"
#include "csrc/kernels/relu.h"
#include "csrc/kernels/sgd_update.h"
#include "csrc/kernels/softmax_cross_entropy.h"

namespace pcn {

namespace {

struct Entry {
  const char* op;
  OpVersions versions;
};

constexpr Entry kRegistry[] = {
    {"conv2d", kConv2dVersions},         {"linear", kLinearVersions},
    {"relu", kReluVersions},             {"lrn", kLrnVersions},
    {"max_pool2d", kMaxPool2dVersions},  {"dropout", kDropoutVersions},
    {"softmax", kSoftmaxVersions},       {"cross_entropy", kCrossEntropyVersions},
    {"sgd_update", kSgdUpdateVersions},  {"augment", kAugmentVersions},
    {"add", kAddVersions},
};

}  // namespace

int resolve_version(const ArgCheck& c, const Device& device, int version, const OpVersions& ops) {
  const KernelVersions v = ops.on(device.type);
  if (version == 0) return v.best;
  if (version < 1 || version > v.count) {
    std::string valid = str("0 (default, = ", v.best, ")");
    for (int i = 1; i <= v.count; ++i) valid += str(", ", i);
    c.require(false, "version", str("be one of ", valid, " on ", device.str()).c_str(), version);
  }
  return version;
}

std::vector<std::string> versioned_ops() {
  std::vector<std::string> names;
  for (const Entry& e : kRegistry) names.emplace_back(e.op);
  return names;
}

KernelVersions op_versions(const std::string& op, const Device& device) {
  std::string names;
  for (const Entry& e : kRegistry) {
    if (op == e.op) return e.versions.on(device.type);
    names += str(names.empty() ? "" : ", ", e.op);
  }
  throw ValueError(str("versions: op must be one of ", names, "; got \"", op, "\""));
}

}  // namespace pcn
