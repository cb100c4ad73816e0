// Softmax over rows, and cross-entropy fused with its gradient (the maths:
// csrc/ops/softmax_cross_entropy.h).
// x, logits, probs, dlogits: (N, C) float32 row-major; labels: N int32.
//   version 1: one block of 256 threads per row (grid-stride over rows), any C: block reductions
//              for the row's max and sums, three passes over the row (the later two hit cache).
//   version 2: one warp per row with the row in registers (C <= 1024, templated on the values
//              per lane): one global read and one write per element. Wider rows run version 1.
// Reductions are fixed shuffle trees (no atomics on values), so results are deterministic.
// Cross-entropy also accumulates S_other = sum of e_i over i != label, giving the label's
// gradient -(S_other / S) / N without the cancellation of p_label - 1, and the row loss as
// log1p(S_other) when the label holds the maximum (see csrc/cpu/softmax_cross_entropy.cpp), and
// counts the logits ranked ahead of the label's (up to kTopK) for the top-1/top-5 hits.
#include <cmath>
#include <cstring>
#include <vector>

#include "csrc/kernels/softmax_cross_entropy.h"
#include "csrc/allocator.h"
#include "grid_stride.cuh"

namespace pcn::cuda {

namespace {

constexpr unsigned kFull = 0xffffffffu;

// max that keeps a NaN (fmaxf would drop it).
__device__ __forceinline__ float nan_max(float a, float b) { return (a > b || isnan(a)) ? a : b; }

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = nan_max(v, __shfl_xor_sync(kFull, v, off));
  return v;
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(kFull, v, off);
  return v;
}

// Block-wide reductions for blockDim.x a multiple of 32 (<= 1024); every thread gets the result.
// smem: 32 floats; the leading barrier lets consecutive calls reuse it.
__device__ float block_max(float v, float* smem) {
  v = warp_max(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) smem[threadIdx.x >> 5] = v;
  __syncthreads();
  const unsigned lane = threadIdx.x & 31;
  return warp_max(lane < (blockDim.x >> 5) ? smem[lane] : -INFINITY);
}

__device__ float block_sum(float v, float* smem) {
  v = warp_sum(v);
  __syncthreads();
  if ((threadIdx.x & 31) == 0) smem[threadIdx.x >> 5] = v;
  __syncthreads();
  const unsigned lane = threadIdx.x & 31;
  return warp_sum(lane < (blockDim.x >> 5) ? smem[lane] : 0.0f);
}

// Per-row loss from the row's sums (d = x_label - max <= 0, or NaN).
__device__ __forceinline__ float row_loss(float d, float s, float s_other) {
  return d == 0.0f ? log1pf(s_other) : logf(s) - d;
}

// 1 if logit xi (column i) ranks ahead of the label's xl (column label): larger, or equal at a
// lower index; NaN behind every number (csrc/kernels/softmax_cross_entropy.h).
__device__ __forceinline__ int ranks_ahead(float xi, long long i, float xl, int label) {
  if (i == label) return 0;
  return isnan(xl) ? (!isnan(xi) || i < label) : (xi > xl || (xi == xl && i < label));
}

// Records row as bad (first_bad keeps the smallest; an integer minimum is order-independent).
__device__ __forceinline__ void report_bad(unsigned long long* first_bad, long long row) {
  atomicMin(first_bad, static_cast<unsigned long long>(row));
}

// Layout: x, probs (n, c). Thread mapping: block b handles rows b, b + gridDim.x, ...; thread t
// covers columns t, t + blockDim.x, ... Precondition: c >= 1, blockDim.x a multiple of 32.
__global__ void softmax_kernel1(const float* __restrict__ x, float* __restrict__ probs,
                                long long n, long long c) {
  __shared__ float smem[32];
  for (long long row = blockIdx.x; row < n; row += gridDim.x) {
    const float* xr = x + row * c;
    float m = -INFINITY;
    for (long long i = threadIdx.x; i < c; i += blockDim.x) m = nan_max(m, xr[i]);
    m = block_max(m, smem);
    float s = 0.0f;
    for (long long i = threadIdx.x; i < c; i += blockDim.x) s += expf(xr[i] - m);
    s = block_sum(s, smem);
    for (long long i = threadIdx.x; i < c; i += blockDim.x) {
      probs[row * c + i] = expf(xr[i] - m) / s;
    }
  }
}

// Layout: logits, dlogits (n, c), labels n, row_loss n, row_rank n (the label's rank, up to
// kTopK), first_bad 1. Thread mapping as softmax_kernel1. A row with a label outside [0, c) is
// reported and skipped (the host raises).
__global__ void cross_entropy_kernel1(const float* __restrict__ x,
                                      const int32_t* __restrict__ labels,
                                      float* __restrict__ dx, float* __restrict__ row_loss_out,
                                      uint8_t* __restrict__ row_rank,
                                      unsigned long long* __restrict__ first_bad, long long n,
                                      long long c, float inv_n) {
  __shared__ float smem[32];
  for (long long row = blockIdx.x; row < n; row += gridDim.x) {
    const int32_t label = labels[row];
    if (label < 0 || label >= c) {  // uniform across the block: no thread reaches a barrier
      if (threadIdx.x == 0) report_bad(first_bad, row);
      continue;
    }
    const float* xr = x + row * c;
    const float xl = xr[label];
    float m = -INFINITY;
    int ahead = 0;  // capped at kTopK per thread: the block's sum stays exact in float
    for (long long i = threadIdx.x; i < c; i += blockDim.x) {
      m = nan_max(m, xr[i]);
      ahead = min(ahead + ranks_ahead(xr[i], i, xl, label), kTopK);
    }
    m = block_max(m, smem);
    const float rank = block_sum(static_cast<float>(ahead), smem);
    float s = 0.0f, other = 0.0f;
    for (long long i = threadIdx.x; i < c; i += blockDim.x) {
      const float e = expf(xr[i] - m);
      s += e;
      other += i == label ? 0.0f : e;
    }
    s = block_sum(s, smem);
    other = block_sum(other, smem);
    for (long long i = threadIdx.x; i < c; i += blockDim.x) {
      dx[row * c + i] = i == label ? -(other / s) * inv_n : expf(xr[i] - m) / s * inv_n;
    }
    if (threadIdx.x == 0) {
      row_loss_out[row] = row_loss(xl - m, s, other);
      row_rank[row] = static_cast<uint8_t>(fminf(rank, static_cast<float>(kTopK)));
    }
  }
}

// Loads row xr (c floats) into the warp's registers, lane l holding columns l, l + 32, ...
// (-INFINITY past the end), and returns the row's maximum (NaN if any), the same in every lane.
template <int V>
__device__ __forceinline__ float warp_load_row_max(const float* __restrict__ xr, long long c, int lane,
                                                   float (&v)[V]) {
  float m = -INFINITY;
#pragma unroll
  for (int q = 0; q < V; ++q) {
    const long long i = lane + 32 * q;
    v[q] = i < c ? xr[i] : -INFINITY;
    m = nan_max(m, v[q]);
  }
  return warp_max(m);
}

// Layout: x, probs (n, c). Thread mapping: warp w of the grid handles rows w, w + warps, ...;
// lane l holds columns l, l + 32, ..., l + 32 (V - 1). Precondition: 1 <= c <= 32 V.
template <int V>
__global__ void softmax_kernel2(const float* __restrict__ x, float* __restrict__ probs,
                                long long n, long long c) {
  const int lane = threadIdx.x & 31;
  const long long warps = static_cast<long long>(gridDim.x) * (blockDim.x >> 5);
  for (long long row = global_thread() >> 5; row < n; row += warps) {
    const float* xr = x + row * c;
    float v[V];
    const float m = warp_load_row_max<V>(xr, c, lane, v);
    float s = 0.0f;
#pragma unroll
    for (int q = 0; q < V; ++q) {
      v[q] = lane + 32 * q < c ? expf(v[q] - m) : 0.0f;
      s += v[q];
    }
    s = warp_sum(s);
#pragma unroll
    for (int q = 0; q < V; ++q) {
      const long long i = lane + 32 * q;
      if (i < c) probs[row * c + i] = v[q] / s;
    }
  }
}

// Layout as cross_entropy_kernel1; thread mapping as softmax_kernel2.
template <int V>
__global__ void cross_entropy_kernel2(const float* __restrict__ x,
                                      const int32_t* __restrict__ labels,
                                      float* __restrict__ dx, float* __restrict__ row_loss_out,
                                      uint8_t* __restrict__ row_rank,
                                      unsigned long long* __restrict__ first_bad, long long n,
                                      long long c, float inv_n) {
  const int lane = threadIdx.x & 31;
  const long long warps = static_cast<long long>(gridDim.x) * (blockDim.x >> 5);
  for (long long row = global_thread() >> 5; row < n; row += warps) {
    const int32_t label = labels[row];
    if (label < 0 || label >= c) {  // uniform across the warp
      if (lane == 0) report_bad(first_bad, row);
      continue;
    }
    const float* xr = x + row * c;
    float v[V];
    const float m = warp_load_row_max<V>(xr, c, lane, v);
    const float xl = xr[label];
    int ahead = 0;  // at most V per lane: the warp's sum is exact in float
#pragma unroll
    for (int q = 0; q < V; ++q) {
      const long long i = lane + 32 * q;
      if (i < c) ahead += ranks_ahead(v[q], i, xl, label);
    }
    const float rank = warp_sum(static_cast<float>(ahead));
    float s = 0.0f, other = 0.0f;
#pragma unroll
    for (int q = 0; q < V; ++q) {
      const long long i = lane + 32 * q;
      v[q] = i < c ? expf(v[q] - m) : 0.0f;
      s += v[q];
      other += i == label ? 0.0f : v[q];
    }
    s = warp_sum(s);
    other = warp_sum(other);
#pragma unroll
    for (int q = 0; q < V; ++q) {
      const long long i = lane + 32 * q;
      if (i < c) dx[row * c + i] = i == label ? -(other / s) * inv_n : v[q] / s * inv_n;
    }
    if (lane == 0) {
      row_loss_out[row] = row_loss(xl - m, s, other);
      row_rank[row] = static_cast<uint8_t>(fminf(rank, static_cast<float>(kTopK)));
    }
  }
}

constexpr int kBlock1 = 256;  // version 1: threads per row
constexpr int kBlock2 = 128;  // version 2: 4 rows (warps) per block

unsigned int row_blocks(long long rows) {
  return rows <= 0 ? 0u : static_cast<unsigned int>(std::min<long long>(rows, 65535LL * 16));
}

// Values per lane for version 2, or 0 when a row does not fit in a warp's registers.
int values_per_lane(long long c) {
  for (int v = 1; v <= 32; v *= 2)
    if (c <= 32LL * v) return v;
  return 0;
}

}  // namespace

void softmax_forward(const Tensor& x, Tensor& probs, int version) {
  const long long n = x.size(0), c = x.size(1);
  if (n == 0 || c == 0) return;
  cudaStream_t st = stream(x.device().index);
  const float* in = x.data<float>();
  float* out = probs.data<float>();
  const int v = version == 2 ? values_per_lane(c) : 0;
  const unsigned int blocks2 = grid_stride_blocks(n, kBlock2 / 32);
  switch (v) {
    case 1: PCN_LAUNCH(softmax_kernel2<1>, blocks2, kBlock2, 0, st, in, out, n, c); break;
    case 2: PCN_LAUNCH(softmax_kernel2<2>, blocks2, kBlock2, 0, st, in, out, n, c); break;
    case 4: PCN_LAUNCH(softmax_kernel2<4>, blocks2, kBlock2, 0, st, in, out, n, c); break;
    case 8: PCN_LAUNCH(softmax_kernel2<8>, blocks2, kBlock2, 0, st, in, out, n, c); break;
    case 16: PCN_LAUNCH(softmax_kernel2<16>, blocks2, kBlock2, 0, st, in, out, n, c); break;
    case 32: PCN_LAUNCH(softmax_kernel2<32>, blocks2, kBlock2, 0, st, in, out, n, c); break;
    default: PCN_LAUNCH(softmax_kernel1, row_blocks(n), kBlock1, 0, st, in, out, n, c); break;
  }
}

void cross_entropy_start(const Tensor& logits, const Tensor& labels, Tensor& dlogits,
                         CrossEntropyPending& pending, int version) {
  const long long n = logits.size(0), c = logits.size(1);
  pending.rows = n;
  if (n == 0) return;
  const int dev = logits.device().index;
  cudaStream_t st = stream(dev);
  // Everything the host needs back lives in one buffer, so one asynchronous copy brings it:
  // bytes [0, 8) the first bad row (all ones = none), then the n per-row losses, then the n
  // per-row label ranks (one byte each).
  const size_t bytes = static_cast<size_t>(8 + 5 * n);
  Tensor report = Tensor::empty({8 + 5 * n}, DType::UInt8, logits.device());
  uint8_t* base = report.data<uint8_t>();
  auto* first_bad = reinterpret_cast<unsigned long long*>(base);
  auto* row_loss_out = reinterpret_cast<float*>(base + 8);
  uint8_t* row_rank = base + 8 + 4 * n;
  CUDA_CHECK(cudaMemsetAsync(first_bad, 0xFF, 8, st));
  const float* in = logits.data<float>();
  const int32_t* lab = labels.data<int32_t>();
  float* out = dlogits.data<float>();
  const float inv_n = 1.0f / static_cast<float>(n);
  const int v = version == 2 ? values_per_lane(c) : 0;
  const unsigned int blocks2 = grid_stride_blocks(n, kBlock2 / 32);
#define PCN_CE_ARGS in, lab, out, row_loss_out, row_rank, first_bad, n, c, inv_n
  switch (v) {
    case 1: PCN_LAUNCH(cross_entropy_kernel2<1>, blocks2, kBlock2, 0, st, PCN_CE_ARGS); break;
    case 2: PCN_LAUNCH(cross_entropy_kernel2<2>, blocks2, kBlock2, 0, st, PCN_CE_ARGS); break;
    case 4: PCN_LAUNCH(cross_entropy_kernel2<4>, blocks2, kBlock2, 0, st, PCN_CE_ARGS); break;
    case 8: PCN_LAUNCH(cross_entropy_kernel2<8>, blocks2, kBlock2, 0, st, PCN_CE_ARGS); break;
    case 16: PCN_LAUNCH(cross_entropy_kernel2<16>, blocks2, kBlock2, 0, st, PCN_CE_ARGS); break;
    case 32: PCN_LAUNCH(cross_entropy_kernel2<32>, blocks2, kBlock2, 0, st, PCN_CE_ARGS); break;
    default: PCN_LAUNCH(cross_entropy_kernel1, row_blocks(n), kBlock1, 0, st, PCN_CE_ARGS); break;
  }
#undef PCN_CE_ARGS
  // The copy into page-locked memory (cached blocks: no allocation in steady state) and its
  // event; the report's device block returns to the caching allocator in stream order.
  cudaEvent_t event;
  CUDA_CHECK(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  pending.copied = std::shared_ptr<void>(event, [](void* e) {
    cudaEventDestroy(static_cast<cudaEvent_t>(e));  // a deleter cannot throw: errors dropped
  });
  // The pinned block goes back to its cache only after the copy into it is done, also when the
  // result is dropped unread (errors dropped: a deleter cannot throw).
  std::shared_ptr<void> block = allocate_pinned(bytes);
  pending.host = std::shared_ptr<void>(block.get(), [block, copied = pending.copied](void*) {
    cudaEventSynchronize(static_cast<cudaEvent_t>(copied.get()));
  });
  CUDA_CHECK(cudaMemcpyAsync(block.get(), base, bytes, cudaMemcpyDeviceToHost, st));
  CUDA_CHECK(cudaEventRecord(event, st));
  pending.labels = labels;
}

void cross_entropy_finish(CrossEntropyPending& pending) {
  const int64_t n = pending.rows;
  if (n == 0 || !pending.host) return;
  CUDA_CHECK(cudaEventSynchronize(static_cast<cudaEvent_t>(pending.copied.get())));
  const uint8_t* host = static_cast<const uint8_t*>(pending.host.get());
  CrossEntropyStats& stats = pending.stats;
  unsigned long long bad;
  std::memcpy(&bad, host, 8);
  if (bad != ~0ULL) {
    int32_t label = 0;
    cudaStream_t st = stream(pending.labels.device().index);
    CUDA_CHECK(cudaMemcpyAsync(&label, pending.labels.data<int32_t>() + bad, sizeof label,
                               cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    stats.bad_row = static_cast<int64_t>(bad);
    stats.bad_label = label;
  } else {
    std::vector<float> losses(static_cast<size_t>(n));
    std::memcpy(losses.data(), host + 8, 4 * static_cast<size_t>(n));
    double total = 0.0;
    for (float l : losses) total += l;
    stats.loss_sum = total;
    for (const uint8_t* r = host + 8 + 4 * n; r != host + 8 + 5 * n; ++r) {
      stats.top1_hits += *r < 1;
      stats.top5_hits += *r < 5;
    }
  }
  pending.host.reset();  // back to the pinned cache (the copy is done)
  pending.copied.reset();
  pending.labels = Tensor();
}

void cross_entropy(const Tensor& logits, const Tensor& labels, Tensor& dlogits,
                   CrossEntropyStats& stats, int version) {
  CrossEntropyPending pending;
  cross_entropy_start(logits, labels, dlogits, pending, version);
  cross_entropy_finish(pending);
  stats = pending.stats;
}

}  // namespace pcn::cuda
