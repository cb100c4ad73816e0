// Self-test kernels for the simulator (see selftest.h). Each "bug_*" kernel carries the one
// defect its check must report; the others measure or show the schedule.
#include "selftest.h"

#include <chrono>
#include <map>

#include "csrc/cuda_check.h"
#include "cuda/launch.cuh"
#include "cuda/ptx.cuh"

namespace pcn_sim {
namespace {

using pcn::cuda::stream;

// synccheck: thread 5 leaves before the barrier the others wait at.
__global__ void bug_barrier_exit(float* out) {
  if (threadIdx.x == 5) return;
  __syncthreads();
  out[threadIdx.x] = 1.0f;
}

// synccheck: odd and even threads wait at different barriers.
__global__ void bug_barrier_divergent(float* out) {
  if (threadIdx.x % 2) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1.0f;
}

// synccheck: lane 3 exits, the others shuffle with a full mask.
__global__ void bug_warp_exited(float* out) {
  if (threadIdx.x == 3) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

// synccheck: the two half-warps call different shuffles, each naming the whole warp.
__global__ void bug_warp_divergent(float* out) {
  float v = 1.0f;
  if (threadIdx.x < 16) v = __shfl_down_sync(0xffffffffu, v, 1);
  else v = __shfl_up_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}

// synccheck: lane 7 exits, the others run a warp-wide mma.sync.
__global__ void bug_mma_exited(float* out) {
  if (threadIdx.x == 7) return;
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  const float a[4] = {1.0f, 1.0f, 1.0f, 1.0f}, b[2] = {1.0f, 1.0f};
  pcn::cuda::mma_m16n8k8_tf32(acc, a, b);
  out[threadIdx.x] = acc[0];
}

// memcheck: thread n writes one element past the end.
__global__ void bug_out_of_bounds(float* out, int n) {
  if (static_cast<int>(threadIdx.x) <= n) out[threadIdx.x] = 1.0f;
}

// memcheck (use after free) and initcheck: copies `in` to `out`.
__global__ void copy_kernel(const float* in, float* out, int n) {
  if (static_cast<int>(threadIdx.x) < n) out[threadIdx.x] = in[threadIdx.x];
}

// racecheck: each thread writes its slot, then reads its neighbour's; `sync` decides whether a
// barrier separates the two. Without it the result depends on the order threads run in.
__global__ void neighbour_kernel(float* out, bool sync) {
  __shared__ float slot[64];
  slot[threadIdx.x] = static_cast<float>(threadIdx.x);
  if (sync) __syncthreads();
  out[threadIdx.x] = slot[(threadIdx.x + 1) % blockDim.x];
}

// Warp operations against their definitions (results checked in the test).
__global__ void warp_ops_kernel(float* out) {
  const int lane = static_cast<int>(threadIdx.x);
  const float v = static_cast<float>(lane);
  out[0 * 32 + lane] = __shfl_sync(0xffffffffu, v, 7);
  out[1 * 32 + lane] = __shfl_up_sync(0xffffffffu, v, 2);
  out[2 * 32 + lane] = __shfl_down_sync(0xffffffffu, v, 3, 16);
  out[3 * 32 + lane] = __shfl_xor_sync(0xffffffffu, v, 5);
  out[4 * 32 + lane] = static_cast<float>(__ballot_sync(0xffffffffu, lane % 3 == 0) & 0xffff);
  out[5 * 32 + lane] = static_cast<float>(__any_sync(0xffffffffu, lane == 31));
  out[6 * 32 + lane] = static_cast<float>(__all_sync(0xffffffffu, lane < 31));
  out[7 * 32 + lane] = static_cast<float>(__syncthreads_count(lane % 4 == 0));
}

// Barrier cost: `rounds` barriers per thread.
__global__ void barrier_kernel(int rounds, float* out) {
  float acc = 0.0f;
  for (int r = 0; r < rounds; ++r) {
    acc += static_cast<float>(r);
    __syncthreads();
  }
  if (threadIdx.x == 0) out[blockIdx.x] = acc;
}

// Uses `bytes` of dynamic shared memory (for the launch-limit tests).
__global__ void dynamic_shared_kernel(float* out) {
  auto* s = static_cast<float*>(pcn_sim::dynamic_shared());
  s[threadIdx.x] = 2.0f;
  __syncthreads();
  out[threadIdx.x] = s[threadIdx.x];
}

// Two streams of cuda:0 besides the engine's, for the stream-ordering self-tests.
cudaStream_t side_stream(int i) {
  static cudaStream_t streams[2] = {nullptr, nullptr};
  if (streams[i] == nullptr) CUDA_CHECK(cudaStreamCreateWithFlags(&streams[i], cudaStreamNonBlocking));
  return streams[i];
}

// A slow kernel (blocks of 256 threads, 400 barriers each) writes out[0..63] on one stream and
// a copy on the other stream reads it into pinned memory, after an event wait or without one.
// Without it the copy runs while the kernel still runs: the last block's value is unwritten.
std::vector<double> cross_stream_copy(bool wait) {
  float* out = nullptr;
  float* host = nullptr;
  CUDA_CHECK(cudaMalloc(&out, 64 * sizeof(float)));
  CUDA_CHECK(cudaMallocHost(&host, 64 * sizeof(float)));
  cudaEvent_t done;
  CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  PCN_LAUNCH(barrier_kernel, 64, 256, 0, side_stream(0), 400, out);
  CUDA_CHECK(cudaEventRecord(done, side_stream(0)));
  if (wait) CUDA_CHECK(cudaStreamWaitEvent(side_stream(1), done, 0));
  CUDA_CHECK(cudaMemcpyAsync(host, out, 64 * sizeof(float), cudaMemcpyDeviceToHost, side_stream(1)));
  CUDA_CHECK(cudaStreamSynchronize(side_stream(1)));
  std::vector<double> r(host, host + 64);
  CUDA_CHECK(cudaStreamSynchronize(side_stream(0)));
  CUDA_CHECK(cudaEventDestroy(done));
  CUDA_CHECK(cudaFreeHost(host));
  CUDA_CHECK(cudaFree(out));
  return r;
}

struct Buffer {
  float* p = nullptr;
  explicit Buffer(size_t floats) { CUDA_CHECK(cudaMalloc(&p, floats * sizeof(float))); }
  ~Buffer() { cudaFree(p); }
  std::vector<double> read(size_t n) const {
    std::vector<float> h(n);
    CUDA_CHECK(cudaMemcpyAsync(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost, stream(0)));
    return std::vector<double>(h.begin(), h.end());
  }
};

void sync() { CUDA_CHECK(cudaStreamSynchronize(stream(0))); }

using Test = std::vector<double> (*)();
const std::map<std::string, Test>& tests() {
  static const std::map<std::string, Test> t = {
      {"barrier_exit", [] {
         Buffer out(64);
         PCN_LAUNCH(bug_barrier_exit, 1, 64, 0, stream(0), out.p);
         sync();
         return std::vector<double>{};
       }},
      {"barrier_divergent", [] {
         Buffer out(64);
         PCN_LAUNCH(bug_barrier_divergent, 1, 64, 0, stream(0), out.p);
         sync();
         return std::vector<double>{};
       }},
      {"warp_exited", [] {
         Buffer out(32);
         PCN_LAUNCH(bug_warp_exited, 1, 32, 0, stream(0), out.p);
         sync();
         return std::vector<double>{};
       }},
      {"warp_divergent", [] {
         Buffer out(32);
         PCN_LAUNCH(bug_warp_divergent, 1, 32, 0, stream(0), out.p);
         sync();
         return std::vector<double>{};
       }},
      {"mma_exited", [] {
         Buffer out(32);
         PCN_LAUNCH(bug_mma_exited, 1, 32, 0, stream(0), out.p);
         sync();
         return std::vector<double>{};
       }},
      {"out_of_bounds", [] {
         Buffer out(250);  // 1000 bytes: the allocation is 1024, its end touches the guard
         PCN_LAUNCH(bug_out_of_bounds, 1, 512, 0, stream(0), out.p, 256);
         sync();
         return std::vector<double>{};
       }},
      {"use_after_free", [] {
         Buffer out(32);
         float* in = nullptr;
         CUDA_CHECK(cudaMalloc(&in, 32 * sizeof(float)));
         CUDA_CHECK(cudaFree(in));
         PCN_LAUNCH(copy_kernel, 1, 32, 0, stream(0), in, out.p, 32);
         sync();
         return std::vector<double>{};
       }},
      {"uninitialized", [] {
         Buffer in(32), out(32);  // `in` is never written
         PCN_LAUNCH(copy_kernel, 1, 32, 0, stream(0), in.p, out.p, 32);
         return out.read(32);
       }},
      {"race", [] {
         Buffer out(64);
         PCN_LAUNCH(neighbour_kernel, 1, 64, 0, stream(0), out.p, false);
         return out.read(64);
       }},
      {"race_fixed", [] {
         Buffer out(64);
         PCN_LAUNCH(neighbour_kernel, 1, 64, 0, stream(0), out.p, true);
         return out.read(64);
       }},
      {"warp_ops", [] {
         Buffer out(8 * 32);
         PCN_LAUNCH(warp_ops_kernel, 1, 32, 0, stream(0), out.p);
         return out.read(8 * 32);
       }},
      {"block_too_large", [] {
         Buffer out(1);
         PCN_LAUNCH(barrier_kernel, 1, 1025, 0, stream(0), 1, out.p);
         return std::vector<double>{};
       }},
      {"grid_too_large", [] {
         Buffer out(1);
         PCN_LAUNCH(barrier_kernel, dim3(1, 65536), 32, 0, stream(0), 1, out.p);
         return std::vector<double>{};
       }},
      {"shared_too_large", [] {
         Buffer out(64);
         PCN_LAUNCH(dynamic_shared_kernel, 1, 64, (48 << 10) + 4, stream(0), out.p);
         return std::vector<double>{};
       }},
      {"shared_opt_in", [] {
         Buffer out(64);
         CUDA_CHECK(cudaFuncSetAttribute(dynamic_shared_kernel,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, 227 << 10));
         PCN_LAUNCH(dynamic_shared_kernel, 1, 64, 227 << 10, stream(0), out.p);
         return out.read(64);
       }},
      {"streams_unordered", [] { return cross_stream_copy(false); }},
      {"streams_ordered", [] { return cross_stream_copy(true); }},
      {"barrier_cost", [] {
         // Nanoseconds per barrier arrival: 64 blocks x 256 threads x 200 barriers.
         Buffer out(64);
         const int rounds = 200;
         PCN_LAUNCH(barrier_kernel, 64, 256, 0, stream(0), 1, out.p);  // warm-up
         sync();
         const auto t0 = std::chrono::steady_clock::now();
         PCN_LAUNCH(barrier_kernel, 64, 256, 0, stream(0), rounds, out.p);
         sync();
         const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
         return std::vector<double>{s * 1e9 / (64.0 * 256 * rounds)};
       }},
  };
  return t;
}

}  // namespace

std::vector<double> selftest(const std::string& name) {
  auto it = tests().find(name);
  if (it == tests().end()) {
    std::string known;
    for (const auto& [n, f] : tests()) known += (known.empty() ? "" : ", ") + n;
    throw pcn::ValueError("_sim_selftest: unknown test '" + name + "'; known: " + known);
  }
  pcn::cuda::DeviceGuard guard(0);
  return it->second();
}

}  // namespace pcn_sim
