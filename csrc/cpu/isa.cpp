// Choosing the CPU kernels' instruction-set path: the best the CPU supports, once, at load;
// PYCONVNET_CPU_ISA (read when the Python module initialises) or set_isa() picks a lower one.
#include "isa.h"
#include "streaming.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <string>

#include "csrc/error.h"

namespace pcn::cpu {
namespace {

bool cpu_runs(const SimdKernels* k) {
  if (k == nullptr) return false;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const std::string name = k->name;
  if (name == "avx512") {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }
  if (name == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return std::string(k->name) == "baseline";
}

// Best first.
std::vector<const SimdKernels*> usable() {
  std::vector<const SimdKernels*> out;
  for (const SimdKernels* k : {simd_avx512(), simd_avx2(), simd_baseline()})
    if (cpu_runs(k)) out.push_back(k);
  return out;
}

std::atomic<const SimdKernels*>& active() {
  static std::atomic<const SimdKernels*> table{usable().front()};
  return table;
}

}  // namespace

const SimdKernels& simd() { return *active().load(std::memory_order_relaxed); }

std::vector<std::string> supported_isas() {
  std::vector<std::string> names;
  for (const SimdKernels* k : usable()) names.emplace_back(k->name);
  return names;
}

std::string active_isa() { return simd().name; }

std::string isa_from_environment() {
  const char* v = std::getenv("PYCONVNET_CPU_ISA");
  return v == nullptr ? "" : v;
}

std::string set_isa(const std::string& name) {
  std::string valid;
  for (const SimdKernels* k : usable()) {
    if (name == k->name) return active().exchange(k)->name;
    valid += (valid.empty() ? "" : ", ") + std::string(k->name);
  }
  throw ValueError(str("CPU instruction set '", name, "': this CPU runs ", valid,
                       " (PYCONVNET_CPU_ISA and pyconvnet.set_cpu_isa take one of these)"));
}

namespace {
// The largest cache of CPU 0 that Linux lists (sysfs: the size this CPU's cores share; glibc's
// sysconf can report the whole package's, ten times that on an EPYC); never stream where none
// is listed.
int64_t last_level_cache_bytes() {
  int64_t best = 0;
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index);
    std::ifstream size_file(dir + "/size"), type_file(dir + "/type");
    std::string size, type;
    if (!(size_file >> size) || !(type_file >> type) || type == "Instruction") continue;
    char* end = nullptr;
    int64_t bytes = std::strtoll(size.c_str(), &end, 10);
    if (end != nullptr && (*end == 'K' || *end == 'k')) bytes <<= 10;
    if (end != nullptr && (*end == 'M' || *end == 'm')) bytes <<= 20;
    best = std::max(best, bytes);
  }
  return best > 0 ? best : std::numeric_limits<int64_t>::max();
}
std::atomic<int64_t>& threshold() {
  static std::atomic<int64_t> bytes{last_level_cache_bytes()};
  return bytes;
}
}  // namespace

int64_t streaming_threshold() { return threshold().load(std::memory_order_relaxed); }

int64_t set_streaming_threshold(int64_t bytes) {
  PCN_REQUIRE(bytes >= 0, ValueError, "set_streaming_threshold: bytes must be >= 0, got ", bytes);
  return threshold().exchange(bytes);
}

}  // namespace pcn::cpu
