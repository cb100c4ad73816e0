// Dense SGEMM on CUDA (the linear layer's three products) and the fixed-order reductions that
// the linear and convolution passes share: the split-K sums and the bias gradient.
//   sgemm version 1: one C element per thread, k in order; no shared memory. The oracle.
//   sgemm version 2: the version-2 core (gemm.cuh) with dense loaders: 64x64x8 shared tiles,
//                    4x4 outputs per thread.
// Every kernel's name carries its pass (gemm1_fprop_kernel, splitk_dgrad_reduce_kernel,
// bias_wgrad_rows_kernel, ...).
#include <algorithm>

#include "gemm.cuh"
#include "grid_stride.cuh"

namespace pcn::cuda {

// gemm1_body (the kernels gemm1_fprop_kernel, gemm1_dgrad_kernel, gemm1_wgrad_kernel):
// C[m][n] = bias_relu(sum_k op(A)[m][k] op(B)[k][n], bias, n, relu); row-major A (M x K, or
// K x M when trans_a), B (K x N, or N x K when trans_b), C (M x N, row stride ldc).
// Thread mapping: one C element per thread, flat index m*N + n, grid-stride loop; consecutive
// threads take consecutive n, so loads of B (when not transposed) and stores of C coalesce.
// Preconditions: none on the sizes: the flat index and every offset are formed in 64 bits.
__device__ __forceinline__ void gemm1_body(bool trans_a, bool trans_b, int M, int N, int K,
                                           const float* __restrict__ A, int lda,
                                           const float* __restrict__ B, int ldb,
                                           float* __restrict__ C, int ldc,
                                           const float* __restrict__ bias, bool relu) {
  const long long total = static_cast<long long>(M) * N;
  for (long long idx = global_thread(); idx < total; idx += grid_threads()) {
    const long long m = idx / N, n = idx % N;
    float acc = 0.0f;
    for (long long k = 0; k < K; ++k) {
      const float a = trans_a ? A[k * lda + m] : A[m * lda + k];
      const float b = trans_b ? B[n * ldb + k] : B[k * ldb + n];
      acc += a * b;
    }
    C[m * ldc + n] = bias_relu(acc, bias, static_cast<int>(n), relu);
  }
}

#define PCN_GEMM1_KERNEL(name)                                                                \
  __global__ void name(bool trans_a, bool trans_b, int M, int N, int K,                      \
                       const float* __restrict__ A, int lda, const float* __restrict__ B,     \
                       int ldb, float* __restrict__ C, int ldc, const float* __restrict__ bias, \
                       bool relu) {                                                           \
    gemm1_body(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, bias, relu);               \
  }
PCN_GEMM1_KERNEL(gemm1_fprop_kernel)
PCN_GEMM1_KERNEL(gemm1_dgrad_kernel)
PCN_GEMM1_KERNEL(gemm1_wgrad_kernel)
#undef PCN_GEMM1_KERNEL

// splitk_reduce_body (the kernels splitk_fprop_reduce_kernel, splitk_dgrad_reduce_kernel,
// splitk_wgrad_reduce_kernel): out[i] = bias_relu(sum_{s < splits} partial[s*len + i],
// bias, i % cols, relu), s in increasing order.
// Thread mapping: one output per thread, grid-stride loop (coalesced along i).
__device__ __forceinline__ void splitk_reduce_body(const float* __restrict__ partial,
                                                   float* __restrict__ out, int splits,
                                                   long long len, const float* __restrict__ bias,
                                                   int cols, bool relu) {
  for (long long i = global_thread(); i < len; i += grid_threads()) {
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) sum += partial[s * len + i];
    out[i] = bias_relu(sum, bias, bias ? static_cast<int>(i % cols) : 0, relu);
  }
}

#define PCN_SPLITK_KERNEL(name)                                                              \
  __global__ void name(const float* __restrict__ partial, float* __restrict__ out, int splits, \
                       long long len, const float* __restrict__ bias, int cols, bool relu) {  \
    splitk_reduce_body(partial, out, splits, len, bias, cols, relu);                         \
  }
PCN_SPLITK_KERNEL(splitk_fprop_reduce_kernel)
PCN_SPLITK_KERNEL(splitk_dgrad_reduce_kernel)
PCN_SPLITK_KERNEL(splitk_wgrad_reduce_kernel)
#undef PCN_SPLITK_KERNEL

// The bias gradient db[k] = sum_{n < N, i < PQ} dy[(n*K + k)*PQ + i] in two levels, each in an
// order fixed by the shape alone (no atomics: bit-identical reruns), all indices 32-bit (dy has
// fewer than 2^31 elements). dy is read as N "slabs" of slab = K*PQ contiguous floats.
constexpr int kBiasThreads = 256;
constexpr int kBiasTargetBlocks = 4 * 132;  // the first level's grid: about 4 blocks per SM

// bias_wgrad_rows_kernel (level 1): partial[c][e] = sum_{n in chunk c} dy[n*slab + e] for
// e < slab, chunk c = images [c*rows, min(N, (c+1)*rows)), n in increasing order.
// Thread mapping: grid (ceil(slab / 256), chunks); thread e of the slab, so that a warp reads
// 32 consecutive floats of one image; four images' loads are issued before they are added.
__global__ void __launch_bounds__(kBiasThreads)
    bias_wgrad_rows_kernel(const float* __restrict__ dy, float* __restrict__ partial, int N,
                           int slab, int rows) {
  const int e = blockIdx.x * kBiasThreads + threadIdx.x;
  if (e >= slab) return;
  const int c = blockIdx.y, n0 = c * rows, n1 = min(N, n0 + rows);
  const float* p = dy + e + static_cast<long long>(n0) * slab;
  float sum = 0.0f;
  int n = n0;
  for (; n + 4 <= n1; n += 4, p += 4LL * slab) {
    const float v0 = p[0], v1 = p[slab], v2 = p[2 * slab], v3 = p[3 * slab];
    sum += v0;
    sum += v1;
    sum += v2;
    sum += v3;
  }
  for (; n < n1; ++n, p += slab) sum += *p;
  partial[c * slab + e] = sum;
}

// bias_wgrad_sum_kernel (level 2): db[k] = sum over chunks c (in order) and pixels i of
// partial[c][k*PQ + i]: lane l adds i = l, l + 32, ... of each chunk in turn, then the warp adds
// its 32 sums along a fixed butterfly.
// Thread mapping: one warp per channel k, 8 warps per block.
__global__ void __launch_bounds__(kBiasThreads)
    bias_wgrad_sum_kernel(const float* __restrict__ partial, float* __restrict__ db, int K, int PQ,
                          int chunks) {
  const int lane = threadIdx.x % 32;
  const int k = blockIdx.x * (kBiasThreads / 32) + threadIdx.x / 32;
  if (k >= K) return;  // whole warps leave together
  const int slab = K * PQ;
  float sum = 0.0f;
  for (int c = 0; c < chunks; ++c) {
    const float* row = partial + c * slab + k * PQ;
    for (int i = lane; i < PQ; i += 32) sum += row[i];
  }
  for (int off = 16; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if (lane == 0) db[k] = sum;
}

namespace {
template <Pass P, bool TransA, bool TransB>
void sgemm2(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C,
            int ldc, const float* bias, bool relu, cudaStream_t stream) {
  launch_gemm2<P>(DenseA<TransA>{A, lda, M}, DenseB<TransB>{B, ldb, N},
                  DenseOut{C, ldc, bias, relu, 0}, 1, M, N, K, 1, K, stream);
}
}  // namespace

void sgemm(int version, Pass pass, int M, int N, int K, const float* A, int lda, const float* B,
           int ldb, float* C, int ldc, const float* bias, bool relu, cudaStream_t stream) {
  if (version == 1) {
    const unsigned int blocks = grid_stride_blocks(static_cast<long long>(M) * N, 256);
    const bool ta = pass == Pass::kWgrad, tb = pass == Pass::kFprop;
    if (pass == Pass::kFprop) {
      PCN_LAUNCH(gemm1_fprop_kernel, blocks, 256, 0, stream, ta, tb, M, N, K, A, lda, B, ldb, C,
                 ldc, bias, relu);
    } else if (pass == Pass::kDgrad) {
      PCN_LAUNCH(gemm1_dgrad_kernel, blocks, 256, 0, stream, ta, tb, M, N, K, A, lda, B, ldb, C,
                 ldc, bias, relu);
    } else {
      PCN_LAUNCH(gemm1_wgrad_kernel, blocks, 256, 0, stream, ta, tb, M, N, K, A, lda, B, ldb, C,
                 ldc, bias, relu);
    }
    return;
  }
  if (pass == Pass::kFprop) {
    sgemm2<Pass::kFprop, false, true>(M, N, K, A, lda, B, ldb, C, ldc, bias, relu, stream);
  } else if (pass == Pass::kDgrad) {
    sgemm2<Pass::kDgrad, false, false>(M, N, K, A, lda, B, ldb, C, ldc, bias, relu, stream);
  } else {
    sgemm2<Pass::kWgrad, true, false>(M, N, K, A, lda, B, ldb, C, ldc, bias, relu, stream);
  }
}

void bias_wgrad(const float* dy, float* db, int N, int K, int PQ, const Device& device,
                cudaStream_t stream) {
  const int slab = K * PQ;
  if (slab == 0) return;  // no channels
  const int blocks = static_cast<int>(ceil_div(slab, kBiasThreads));
  // Images per chunk: enough chunks for about kBiasTargetBlocks blocks, at most one per image.
  const int want = std::max(1, std::min(N, (kBiasTargetBlocks + blocks - 1) / blocks));
  const int rows = std::max(1, (N + want - 1) / want);
  const int chunks = std::max(1, (N + rows - 1) / rows);
  Tensor partial = Tensor::empty({chunks, slab}, DType::Float32, device);  // stream-ordered reuse
  PCN_LAUNCH(bias_wgrad_rows_kernel, dim3(blocks, chunks), kBiasThreads, 0, stream, dy,
             partial.data<float>(), N, slab, rows);
  PCN_LAUNCH(bias_wgrad_sum_kernel, ceil_div(K, kBiasThreads / 32), kBiasThreads, 0, stream,
             partial.data<float>(), db, K, PQ, chunks);
}

void reduce_splits(Pass pass, const float* partial, float* out, int splits, long long len,
                   const float* bias, int cols, bool relu, cudaStream_t stream) {
  const unsigned int blocks = grid_stride_blocks(len, 256);
  if (pass == Pass::kFprop) {
    PCN_LAUNCH(splitk_fprop_reduce_kernel, blocks, 256, 0, stream, partial, out, splits, len,
               bias, cols, relu);
  } else if (pass == Pass::kDgrad) {
    PCN_LAUNCH(splitk_dgrad_reduce_kernel, blocks, 256, 0, stream, partial, out, splits, len,
               bias, cols, relu);
  } else {
    PCN_LAUNCH(splitk_wgrad_reduce_kernel, blocks, 256, 0, stream, partial, out, splits, len,
               bias, cols, relu);
  }
}

}  // namespace pcn::cuda
