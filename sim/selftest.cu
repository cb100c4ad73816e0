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

// ThreadSanitizer: every thread stores the block's sum into one shared word and reads it back.
// All threads store the same value, so the result is right in every order; without `sync` no
// barrier separates the stores from each other and from the loads, which only the TSan build
// reports. With it, thread 0 stores and a barrier precedes the loads.
__global__ void bug_shared_race(float* out, bool sync) {
  __shared__ float tile[64];
  __shared__ float total;
  tile[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncthreads();
  float sum = 0.0f;
  for (int i = 0; i < 64; ++i) sum += tile[i];
  if (!sync || threadIdx.x == 0) total = sum;
  if (sync) __syncthreads();
  out[threadIdx.x] = total;
}

// Atomics are ordered: shared and global atomics from every thread, read after a barrier.
__global__ void atomics_kernel(float* out, int* counter) {
  __shared__ int count;
  __shared__ float sum;
  if (threadIdx.x == 0) {
    count = 0;
    sum = 0.0f;
  }
  __syncthreads();
  atomicAdd(&count, 1);
  atomicAdd(&sum, static_cast<float>(threadIdx.x));
  atomicAdd(counter, 1);
  __syncthreads();
  out[blockIdx.x * blockDim.x + threadIdx.x] = static_cast<float>(count) + sum;
}

// Lanes exchange through shared memory, ordered by __syncwarp, then by shuffles.
__global__ void warp_exchange_kernel(float* out) {
  __shared__ float slot[64];
  const unsigned lane = threadIdx.x % 32;
  slot[threadIdx.x] = static_cast<float>(threadIdx.x);
  __syncwarp();
  float v = slot[threadIdx.x ^ 1u];
  __syncwarp();
  slot[threadIdx.x] = v + 1.0f;  // overwrites what lane ^ 1 read before the __syncwarp
  __syncwarp();
  v = slot[(threadIdx.x & ~31u) | ((lane + 1) % 32)];
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, v, 2);
}

// Writes v to out[0..blockDim.x).
__global__ void fill_kernel(float* out, float v) { out[threadIdx.x] = v; }

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

// Dynamic shared memory: each thread writes its slot, then reads its neighbour's (the launch
// gives blockDim.x floats or more). For the launch-limit tests, and memcheck: with `past_end`,
// thread 0 writes the float after blockDim.x.
__global__ void dynamic_shared_kernel(float* out, bool past_end) {
  PCN_EXTERN_SHARED(float, s);
  s[threadIdx.x] = 2.0f * static_cast<float>(threadIdx.x);
  if (past_end && threadIdx.x == 0) s[blockDim.x] = 0.0f;
  __syncthreads();
  out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
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
  // On the current device, or on `device`.
  explicit Buffer(size_t floats) { CUDA_CHECK(cudaMalloc(&p, floats * sizeof(float))); }
  Buffer(size_t floats, int device) {
    pcn::cuda::DeviceGuard guard(device);
    CUDA_CHECK(cudaMalloc(&p, floats * sizeof(float)));
  }
  ~Buffer() { cudaFree(p); }
  std::vector<double> read(size_t n) const {
    std::vector<float> h(n);
    CUDA_CHECK(cudaMemcpyAsync(h.data(), p, n * sizeof(float), cudaMemcpyDeviceToHost, stream(0)));
    return std::vector<double>(h.begin(), h.end());
  }
};

void sync() { CUDA_CHECK(cudaStreamSynchronize(stream(0))); }

// Peer access from cuda:0 to cuda:1 off for the life of a test, then as it was: other code in
// the process (the two-column transfers) may have enabled it.
struct PeerAccessOff {
  bool was_enabled;
  PeerAccessOff() {
    pcn::cuda::DeviceGuard guard(0);
    was_enabled = cudaDeviceDisablePeerAccess(1) == cudaSuccess;
    cudaGetLastError();
  }
  ~PeerAccessOff() {
    pcn::cuda::DeviceGuard guard(0);
    cudaDeviceDisablePeerAccess(1);
    if (was_enabled) cudaDeviceEnablePeerAccess(1, 0);
    cudaGetLastError();
  }
};

// A kernel on cuda:0 copies 32 floats from a buffer on `from` to one on `to` (devices 0 or 1);
// returns the copy. With `enable`, cuda:0 has peer access to cuda:1 during the copy.
std::vector<double> cross_device_copy(int from, int to, bool enable) {
  PeerAccessOff off;
  Buffer in(32, from), out(32, to);
  {
    pcn::cuda::DeviceGuard guard(from);  // filled by a kernel of the device that owns it
    PCN_LAUNCH(fill_kernel, 1, 32, 0, stream(from), in.p, 3.0f);
    CUDA_CHECK(cudaStreamSynchronize(stream(from)));
  }
  if (enable) CUDA_CHECK(cudaDeviceEnablePeerAccess(1, 0));
  PCN_LAUNCH(copy_kernel, 1, 32, 0, stream(0), in.p, out.p, 32);
  sync();
  if (enable) CUDA_CHECK(cudaDeviceDisablePeerAccess(1));
  std::vector<float> h(32);
  CUDA_CHECK(cudaMemcpyAsync(h.data(), out.p, sizeof(float) * 32, cudaMemcpyDeviceToHost, stream(0)));
  return std::vector<double>(h.begin(), h.end());
}

// The error codes of the peer-access calls, in order (clearing each from cudaGetLastError).
std::vector<double> peer_calls() {
  std::vector<double> r;
  PeerAccessOff off;
  auto code = [&](cudaError_t e) {
    r.push_back(static_cast<double>(e));
    cudaGetLastError();
  };
  int can = -1;
  code(cudaDeviceCanAccessPeer(&can, 0, 1));
  r.push_back(can);
  code(cudaDeviceCanAccessPeer(&can, 0, 0));
  r.push_back(can);
  code(cudaDeviceEnablePeerAccess(1, 0));
  code(cudaDeviceEnablePeerAccess(1, 0));  // already enabled
  code(cudaDeviceDisablePeerAccess(1));
  code(cudaDeviceDisablePeerAccess(1));    // not enabled
  code(cudaDeviceEnablePeerAccess(0, 0));  // itself
  code(cudaDeviceEnablePeerAccess(1, 1));  // bad flags
  return r;
}

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
      {"shared_race", [] {
         Buffer out(64);
         PCN_LAUNCH(bug_shared_race, 1, 64, 0, stream(0), out.p, false);
         return out.read(64);
       }},
      {"shared_race_fixed", [] {
         Buffer out(64);
         PCN_LAUNCH(bug_shared_race, 1, 64, 0, stream(0), out.p, true);
         return out.read(64);
       }},
      {"atomics", [] {
         Buffer out(4 * 64), counter(1);
         CUDA_CHECK(cudaMemsetAsync(counter.p, 0, sizeof(int), stream(0)));
         PCN_LAUNCH(atomics_kernel, 4, 64, 0, stream(0), out.p, reinterpret_cast<int*>(counter.p));
         std::vector<double> r = out.read(4 * 64);
         int n = 0;
         CUDA_CHECK(cudaMemcpyAsync(&n, counter.p, sizeof n, cudaMemcpyDeviceToHost, stream(0)));
         r.push_back(n);
         return r;
       }},
      {"warp_exchange", [] {
         Buffer out(64);
         PCN_LAUNCH(warp_exchange_kernel, 1, 64, 0, stream(0), out.p);
         return out.read(64);
       }},
      {"extern_shared", [] {
         Buffer out(64);
         PCN_LAUNCH(dynamic_shared_kernel, 1, 64, 64 * sizeof(float), stream(0), out.p, false);
         return out.read(64);
       }},
      {"extern_shared_past_end", [] {
         Buffer out(64);
         PCN_LAUNCH(dynamic_shared_kernel, 1, 64, 64 * sizeof(float), stream(0), out.p, true);
         sync();
         return std::vector<double>{};
       }},
      {"peer_read_disabled", [] { return cross_device_copy(1, 0, false); }},
      {"peer_write_disabled", [] { return cross_device_copy(0, 1, false); }},
      {"peer_enabled", [] {
         std::vector<double> r = cross_device_copy(1, 0, true), w = cross_device_copy(0, 1, true);
         r.insert(r.end(), w.begin(), w.end());
         return r;
       }},
      {"peer_calls", [] { return peer_calls(); }},
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
         PCN_LAUNCH(dynamic_shared_kernel, 1, 64, (48 << 10) + 4, stream(0), out.p, false);
         return std::vector<double>{};
       }},
      {"shared_opt_in", [] {
         Buffer out(64);
         CUDA_CHECK(cudaFuncSetAttribute(dynamic_shared_kernel,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, 227 << 10));
         PCN_LAUNCH(dynamic_shared_kernel, 1, 64, 227 << 10, stream(0), out.p, false);
         return out.read(64);
       }},
      {"shared_opt_in_too_large", [] {
         CUDA_CHECK(cudaFuncSetAttribute(dynamic_shared_kernel,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         (227 << 10) + 4));
         return std::vector<double>{};
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
