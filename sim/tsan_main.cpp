// pcn_sim_tsan: the CUDA simulator under ThreadSanitizer (docs/simulator.md). Every CUDA thread
// is a TSan fiber and only CUDA's barriers order the threads of a block, so two threads that
// touch the same shared memory with no barrier between them are reported on stderr even when
// the result is right. Runs, in order, each name it is given:
//   <self-test>  a simulator self-test (sim/selftest.h), e.g. shared_race (the planted race)
//   kernels      the engine's CUDA kernels at tiny shapes, every version, forward and backward,
//                each compared with its CPU twin
// Prints one line per run; exits 0 when every run finished and matched, 1 otherwise (TSan's own
// exit code, 66 unless TSAN_OPTIONS says otherwise, when it reported something).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <tuple>
#include <vector>

#include "csrc/ops/conv2d.h"
#include "csrc/ops/linear.h"
#include "csrc/ops/lrn.h"
#include "csrc/ops/max_pool2d.h"
#include "csrc/ops/relu.h"
#include "csrc/ops/softmax_cross_entropy.h"
#include "csrc/tensor.h"
#include "sim/selftest.h"

namespace {

using pcn::Device;
using pcn::DType;
using pcn::Shape;
using pcn::Tensor;

// A tensor of `shape` with reproducible values in [-1, 1), on the CPU.
Tensor random_tensor(const Shape& shape, uint64_t seed) {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  std::vector<float> v(static_cast<size_t>(n));
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& f : v) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    f = static_cast<float>(x >> 40) / static_cast<float>(1 << 23) - 1.0f;
  }
  return Tensor::from_host(v.data(), shape, DType::Float32, Device::cpu());
}

// A tensor's values as floats (a uint8 tensor, such as max-pool's taps, by value).
std::vector<float> host(const Tensor& t) {
  const Tensor c = t.to(Device::cpu());
  std::vector<float> v(static_cast<size_t>(t.numel()));
  if (c.dtype() == DType::UInt8) {
    std::vector<uint8_t> bytes(v.size());
    c.copy_to_host(bytes.data());
    std::copy(bytes.begin(), bytes.end(), v.begin());
  } else {
    c.copy_to_host(v.data());
  }
  return v;
}

// Compares a CUDA result with the CPU's: |cuda - cpu| <= 1e-4 + 1e-4 |cpu| everywhere.
bool close(const std::string& what, const Tensor& cuda, const Tensor& cpu) {
  const std::vector<float> a = host(cuda), b = host(cpu);
  double worst = 0.0;  // the largest share of the tolerance used
  for (size_t i = 0; i < a.size(); ++i)
    worst = std::max(worst, std::fabs(double(a[i]) - b[i]) / (1e-4 + 1e-4 * std::fabs(b[i])));
  const bool ok = a.size() == b.size() && !std::isnan(worst) && worst <= 1.0;
  std::printf("  %-44s %s (%.0f%% of the tolerance)\n", what.c_str(), ok ? "ok" : "MISMATCH",
              100.0 * worst);
  return ok;
}

// Runs `op` on the CPU tensors with the CPU's default kernel and on their cuda:0 copies with
// CUDA kernel `version`; compares every output.
using Op = std::function<std::vector<Tensor>(const std::vector<Tensor>&, int version)>;
bool compare(const std::string& what, int version, const std::vector<Tensor>& inputs,
             const Op& op) {
  std::vector<Tensor> on_cuda;
  for (const Tensor& t : inputs) on_cuda.push_back(t.to(Device::cuda(0)));
  const std::vector<Tensor> want = op(inputs, 0), got = op(on_cuda, version);
  bool ok = true;
  for (size_t i = 0; i < want.size(); ++i)
    ok &= close(what + " output " + std::to_string(i), got[i], want[i]);
  return ok;
}

bool run_kernels() {
  using Ts = std::vector<Tensor>;
  bool ok = true;
  const Tensor x = random_tensor({2, 4, 9, 9}, 1), w = random_tensor({6, 2, 3, 3}, 2),
               b = random_tensor({6}, 3), dy = random_tensor({2, 6, 5, 5}, 4);
  for (int v = 1; v <= 3; ++v) {
    const std::string name = "conv2d v" + std::to_string(v);
    ok &= compare(name + " forward (bias + ReLU)", v, {x, w, b}, [](const Ts& t, int version) {
      return Ts{pcn::conv2d_forward(t[0], t[1], t[2], {2, 2}, {1, 1}, 2, true, version)};
    });
    ok &= compare(name + " backward (data, filter, bias)", v, {dy, x, w},
                  [](const Ts& t, int version) {
                    auto [dx, dw, db] =
                        pcn::conv2d_backward(t[0], t[1], t[2], {2, 2}, {1, 1}, 2, true, version);
                    return Ts{dx, dw, db};
                  });
  }
  const Tensor lx = random_tensor({5, 37}, 5), lw = random_tensor({11, 37}, 6),
               lb = random_tensor({11}, 7), ldy = random_tensor({5, 11}, 8);
  for (int v = 1; v <= 3; ++v) {
    const std::string name = "linear v" + std::to_string(v);
    ok &= compare(name + " forward (bias + ReLU)", v, {lx, lw, lb}, [](const Ts& t, int version) {
      return Ts{pcn::linear_forward(t[0], t[1], t[2], true, version)};
    });
    ok &= compare(name + " backward (data, weight, bias)", v, {ldy, lx, lw},
                  [](const Ts& t, int version) {
                    auto [dx, dw, db] = pcn::linear_backward(t[0], t[1], t[2], true, version);
                    return Ts{dx, dw, db};
                  });
  }
  const Tensor nx = random_tensor({2, 8, 5, 5}, 9), ndy = random_tensor({2, 8, 5, 5}, 10);
  pcn::LrnParams lrn;
  lrn.size = 3;
  lrn.groups = 2;
  for (int v = 1; v <= 2; ++v)
    ok &= compare("lrn v" + std::to_string(v) + " forward, backward", v, {nx, ndy},
                  [lrn](const Ts& t, int version) {
                    const Tensor y = pcn::lrn_forward(t[0], lrn, version);
                    return Ts{y, pcn::lrn_backward(t[1], t[0], y, lrn, version)};
                  });
  const Tensor px = random_tensor({2, 3, 9, 9}, 11), pdy = random_tensor({2, 3, 4, 4}, 12);
  ok &= compare("max_pool2d v1 forward, taps, backward", 1, {px, pdy},
                [](const Ts& t, int version) {
                  const auto [y, taps] = pcn::max_pool2d_forward_taps(t[0], 3, 2, version);
                  return Ts{y, taps, pcn::max_pool2d_backward(t[1], taps, {9, 9}, 3, 2, version)};
                });
  ok &= compare("relu v1 forward, backward", 1, {px, px}, [](const Ts& t, int version) {
    const Tensor y = pcn::relu_forward(t[0], version);
    return Ts{y, pcn::relu_backward(t[1], y, version)};
  });
  const Tensor sx = random_tensor({5, 70}, 13);
  const std::vector<int32_t> labels = {0, 69, 3, 17, 42};
  const Tensor sl = Tensor::from_host(labels.data(), {5}, DType::Int32, Device::cpu());
  for (int v = 1; v <= 2; ++v) {
    ok &= compare("softmax v" + std::to_string(v) + " forward", v, {sx},
                  [](const Ts& t, int version) { return Ts{pcn::softmax_forward(t[0], version)}; });
    ok &= compare("cross_entropy v" + std::to_string(v) + " gradient", v, {sx, sl},
                  [](const Ts& t, int version) {
                    return Ts{pcn::cross_entropy(t[0], t[1], version).dlogits};
                  });
  }
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s (kernels | SELFTEST)...\n", argv[0]);
    return 2;
  }
  bool ok = true;
  for (int i = 1; i < argc; ++i) {
    const std::string name = argv[i];
    std::printf("pcn_sim_tsan: %s\n", name.c_str());
    std::fflush(stdout);
    try {
      if (name == "kernels") {
        ok &= run_kernels();
      } else {
        const std::vector<double> r = pcn_sim::selftest(name);
        std::printf("  %zu values, first %g, last %g\n", r.size(), r.empty() ? 0.0 : r.front(),
                    r.empty() ? 0.0 : r.back());
      }
    } catch (const std::exception& e) {
      std::printf("  failed: %s\n", e.what());
      ok = false;
    }
    std::fflush(stdout);
  }
  return ok ? 0 : 1;
}
