// Dense SGEMM on CUDA (the linear layer's three products) and the fixed-order reductions that
// the linear and convolution gradients share.
//   sgemm version 1: one C element per thread, k in order; no shared memory. The oracle.
//   sgemm version 2: gemm_tiled_kernel2 (gemm.cuh) with dense loaders: 64x64x8 shared tiles,
//                    4x4 outputs per thread.
#include <algorithm>

#include "gemm.cuh"
#include "grid_stride.cuh"

namespace pcn::cuda {

// gemm_kernel1: C[m][n] = sum_k op(A)[m][k] op(B)[k][n] (+ bias[n]); row-major A (M x K, or
// K x M when trans_a), B (K x N, or N x K when trans_b), C (M x N, row stride ldc).
// Thread mapping: one C element per thread, flat index m*N + n, grid-stride loop; consecutive
// threads take consecutive n, so loads of B (when not transposed) and stores of C coalesce.
// Preconditions: none on the sizes: the flat index and every offset are formed in 64 bits.
__global__ void gemm_kernel1(bool trans_a, bool trans_b, int M, int N, int K,
                             const float* __restrict__ A, int lda, const float* __restrict__ B,
                             int ldb, float* __restrict__ C, int ldc,
                             const float* __restrict__ bias) {
  const long long total = static_cast<long long>(M) * N;
  for (long long idx = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<long long>(gridDim.x) * blockDim.x) {
    const long long m = idx / N, n = idx % N;
    float acc = 0.0f;
    for (long long k = 0; k < K; ++k) {
      const float a = trans_a ? A[k * lda + m] : A[m * lda + k];
      const float b = trans_b ? B[n * ldb + k] : B[k * ldb + n];
      acc += a * b;
    }
    C[m * ldc + n] = bias ? acc + bias[n] : acc;
  }
}

// bias_grad_kernel1: db[k] = sum_{n < N, i < PQ} dy[(n*K + k)*PQ + i]; dy is NCHW-like
// (N, K, PQ) (PQ = 1 for the linear layer's (N, K)).
// Thread mapping: block k (grid.x = K), 256 threads. Thread t adds the channel's elements
// j = t, t + 256, ... (j = n*PQ + i) in order, then the block adds the 256 partial sums along
// a fixed binary tree in shared memory. The order depends on nothing but the shape.
// Preconditions: blockDim.x == 256.
__global__ void __launch_bounds__(256)
    bias_grad_kernel1(const float* __restrict__ dy, float* __restrict__ db, int N, int K, int PQ) {
  __shared__ float partial[256];
  const int k = blockIdx.x;
  const long long count = static_cast<long long>(N) * PQ;
  float sum = 0.0f;
  for (long long j = threadIdx.x; j < count; j += 256) {
    const long long n = j / PQ, i = j - n * PQ;
    sum += dy[(n * K + k) * PQ + i];
  }
  partial[threadIdx.x] = sum;
  __syncthreads();
  for (int half = 128; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) db[k] = partial[0];
}

// sum_splits_kernel1: out[i] = sum_{s < splits} partial[s*len + i], s in increasing order.
// Thread mapping: one output per thread, grid-stride loop (coalesced along i).
__global__ void sum_splits_kernel1(const float* __restrict__ partial, float* __restrict__ out,
                                   int splits, long long len) {
  for (long long i = blockIdx.x * static_cast<long long>(blockDim.x) + threadIdx.x; i < len;
       i += static_cast<long long>(gridDim.x) * blockDim.x) {
    float sum = 0.0f;
    for (int s = 0; s < splits; ++s) sum += partial[s * len + i];
    out[i] = sum;
  }
}

namespace {
template <bool TransA, bool TransB>
void sgemm_tiled(int M, int N, int K, const float* A, int lda, const float* B, int ldb, float* C,
                 int ldc, const float* bias, cudaStream_t stream) {
  launch_gemm_tiled2(DenseA<TransA>{A, lda, M}, DenseB<TransB>{B, ldb, N}, DenseOut{C, ldc, bias},
                     1, M, N, K, 1, K, stream);
}
}  // namespace

void sgemm(int version, bool trans_a, bool trans_b, int M, int N, int K, const float* A, int lda,
           const float* B, int ldb, float* C, int ldc, const float* bias, cudaStream_t stream) {
  if (version == 1) {
    PCN_LAUNCH(gemm_kernel1, grid_stride_blocks(static_cast<long long>(M) * N, 256), 256, 0, stream,
               trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc, bias);
    return;
  }
  if (trans_a) {
    if (trans_b) sgemm_tiled<true, true>(M, N, K, A, lda, B, ldb, C, ldc, bias, stream);
    else sgemm_tiled<true, false>(M, N, K, A, lda, B, ldb, C, ldc, bias, stream);
  } else {
    if (trans_b) sgemm_tiled<false, true>(M, N, K, A, lda, B, ldb, C, ldc, bias, stream);
    else sgemm_tiled<false, false>(M, N, K, A, lda, B, ldb, C, ldc, bias, stream);
  }
}

void bias_grad(const float* dy, float* db, int N, int K, int PQ, cudaStream_t stream) {
  PCN_LAUNCH(bias_grad_kernel1, static_cast<unsigned int>(K), 256, 0, stream, dy, db, N, K, PQ);
}

void sum_splits(const float* partial, float* out, int splits, long long len, cudaStream_t stream) {
  PCN_LAUNCH(sum_splits_kernel1, grid_stride_blocks(len, 256), 256, 0, stream, partial, out, splits,
             len);
}

}  // namespace pcn::cuda
