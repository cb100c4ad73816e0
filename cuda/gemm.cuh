// The tiled GEMM skeleton shared by the linear layer (gemm.cu, linear.cu) and the implicit-GEMM
// convolutions (conv2d.cu), and the fixed-order reductions they need (split-K sums, the bias
// gradient: gemm.cu). Device code and launchers only; included by .cu files.
//
// One kernel body, launched under a pass-named entry point (gemm2_fprop_kernel,
// gemm2_dgrad_kernel, gemm2_wgrad_kernel), computes C = op(A) * op(B) for M x N x K problems whose operands are not
// necessarily matrices in memory: an operand is a "loader" that returns element (row, k) of A
// or (k, column) of B, or 0 outside the matrix. A dense (optionally transposed) matrix is one
// loader; the convolutions' loaders gather from the unpadded NCHW input in place (implicit
// GEMM: no im2col buffer), reading the zero padding as 0. The output goes through an
// "epilogue" functor that stores (and may add a bias and apply ReLU).
#pragma once
#include "csrc/tensor.h"  // before cuda_runtime.h: the simulator's macros follow it
#include <cuda_runtime.h>

#include "launch.cuh"
#include "gemm_common.cuh"

namespace pcn::cuda {

// Version-2 tile: a block of 256 threads computes a 64 x 64 tile of C in steps of 8 along K;
// each thread owns a 4 x 4 register tile.
constexpr int kTileM = 64, kTileN = 64, kTileK = 8, kTileThreads = 256;
// Shared rows are padded from 64 to 68 floats so that a warp storing 8 consecutive k of 4
// rows (a "fast-K" loader) hits 32 different banks: bank = (68*k + row) % 32 = (4k + row) % 32.
constexpr int kTileLd = kTileM + 4;

// Loader interface (A and B alike; "line" = a row m of op(A) or a column n of op(B)):
//   static constexpr bool kFastK;            // consecutive threads load consecutive k (true)
//                                            // or consecutive lines (false): the direction in
//                                            // which the operand is contiguous in memory
//   struct Line;                             // what a thread needs to load from one line
//   __device__ Line line(int g, int i) const;  // line i of group g; i may be >= the line count
//   __device__ float load(const Line&, int k) const;  // element k of it, 0 if out of range;
//                                            // k is in [0, K) (the kernel checks)
// Epilogue interface: __device__ void store(int g, int split, int m, int n, float v) const,
// called once per (g, split, m, n) with m < M, n < N.

// gemm2_body (the kernels gemm2_fprop_kernel, gemm2_dgrad_kernel, gemm2_wgrad_kernel): C[g][m][n] = sum_{k in [split*k_chunk, min(K, (split+1)*k_chunk))}
//   op(A_g)[m][k] * op(B_g)[k][n], for every group g < groups (independent GEMMs of one size).
// Grid: x = groups * tiles_m * tiles_n tiles (tile index = (g * tiles_m + tm) * tiles_n + tn),
//   y = split index (1 without split-K); block: 256 threads.
// Thread mapping: the block's tile is rows m0 + [0, 64), columns n0 + [0, 64). Thread t
//   (tx = t % 16, ty = t / 16) accumulates rows m0 + ty + 16i and columns n0 + tx + 16j,
//   i, j < 4, so that a warp's 16 consecutive tx read 16 consecutive shared words of B
//   (no bank conflict), its two ty read one word of A each (broadcast), and its stores to C
//   are 16-wide runs along n. Each K step the block loads an 8 x 64 slice of A and of B
//   (2 elements per thread, in the loader's contiguous direction) into shared memory.
// Determinism: every C element is summed by one thread over k in increasing order.
// Preconditions: M, N, K, k_chunk >= 0; tiles_m = ceil(M/64), tiles_n = ceil(N/64);
//   groups * tiles_m * tiles_n < 2^31; every index the loaders and epilogue form fits in int.
template <class ALoader, class BLoader, class Epilogue>
__device__ __forceinline__ void gemm2_body(const ALoader& a, const BLoader& b, const Epilogue& out,
                                           int M, int N, int K, int k_chunk, int tiles_m,
                                           int tiles_n) {
  __shared__ float As[kTileK][kTileLd];
  __shared__ float Bs[kTileK][kTileLd];

  const int t = threadIdx.x, tx = t % 16, ty = t / 16;
  const BlockTile bt = block_tile(kTileM, kTileN, tiles_m, tiles_n, K, k_chunk);
  const int g = bt.g, m0 = bt.m0, n0 = bt.n0, split = bt.split;
  const int k_begin = bt.k_begin, k_end = bt.k_end;

  // This thread's two load slots for each operand: (line within the tile, k within the slice).
  int a_line[2], a_k[2], b_line[2], b_k[2];
  typename ALoader::Line a_src[2];
  typename BLoader::Line b_src[2];
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const int e = t + i * kTileThreads;  // 0..511 over the 64 x 8 slice
    a_line[i] = ALoader::kFastK ? e / kTileK : e % kTileM;
    a_k[i] = ALoader::kFastK ? e % kTileK : e / kTileM;
    b_line[i] = BLoader::kFastK ? e / kTileK : e % kTileN;
    b_k[i] = BLoader::kFastK ? e % kTileK : e / kTileN;
    a_src[i] = a.line(g, m0 + a_line[i]);
    b_src[i] = b.line(g, n0 + b_line[i]);
  }

  float acc[4][4] = {};
  for (int k0 = k_begin; k0 < k_end; k0 += kTileK) {
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int ka = k0 + a_k[i], kb = k0 + b_k[i];
      As[a_k[i]][a_line[i]] = ka < k_end ? a.load(a_src[i], ka) : 0.0f;
      Bs[b_k[i]][b_line[i]] = kb < k_end ? b.load(b_src[i], kb) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      float af[4], bf[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) af[i] = As[kk][ty + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) bf[j] = Bs[kk][tx + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += af[i] * bf[j];
      }
    }
    __syncthreads();  // the slice is overwritten by the next iteration's loads
  }

#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const int m = m0 + ty + 16 * i;
    if (m >= M) continue;
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int n = n0 + tx + 16 * j;
      if (n < N) out.store(g, split, m, n, acc[i][j]);
    }
  }
}

// The pass-named entry points of the version-2 core.
#define PCN_GEMM2_KERNEL(name)                                                                \
  template <class ALoader, class BLoader, class Epilogue>                                    \
  __global__ void __launch_bounds__(kTileThreads)                                            \
      name(ALoader a, BLoader b, Epilogue out, int M, int N, int K, int k_chunk, int tiles_m, \
           int tiles_n) {                                                                    \
    gemm2_body(a, b, out, M, N, K, k_chunk, tiles_m, tiles_n);                               \
  }
PCN_GEMM2_KERNEL(gemm2_fprop_kernel)
PCN_GEMM2_KERNEL(gemm2_dgrad_kernel)
PCN_GEMM2_KERNEL(gemm2_wgrad_kernel)
#undef PCN_GEMM2_KERNEL

// Launches the pass's version-2 kernel over groups x M x N with K split into `splits` chunks
// of k_chunk (a multiple of kTileK; splits * k_chunk >= K).
template <Pass P, class ALoader, class BLoader, class Epilogue>
void launch_gemm2(const ALoader& a, const BLoader& b, const Epilogue& out, int groups, int M,
                  int N, int K, int splits, int k_chunk, cudaStream_t stream) {
  const int tiles_m = static_cast<int>(ceil_div(M, kTileM));
  const int tiles_n = static_cast<int>(ceil_div(N, kTileN));
  const dim3 grid(static_cast<unsigned int>(groups) * tiles_m * tiles_n, splits);
  if constexpr (P == Pass::kFprop) {
    PCN_LAUNCH((gemm2_fprop_kernel<ALoader, BLoader, Epilogue>), grid, kTileThreads, 0, stream,
               a, b, out, M, N, K, k_chunk, tiles_m, tiles_n);
  } else if constexpr (P == Pass::kDgrad) {
    PCN_LAUNCH((gemm2_dgrad_kernel<ALoader, BLoader, Epilogue>), grid, kTileThreads, 0, stream,
               a, b, out, M, N, K, k_chunk, tiles_m, tiles_n);
  } else {
    PCN_LAUNCH((gemm2_wgrad_kernel<ALoader, BLoader, Epilogue>), grid, kTileThreads, 0, stream,
               a, b, out, M, N, K, k_chunk, tiles_m, tiles_n);
  }
}

// ---------------------------------------------------------------------------- dense operands

// op(A)[m][k] of a row-major matrix: A (M x K, row stride ld) or, Transposed, A^T with A stored
// K x M. Contiguous along k unless transposed.
template <bool Transposed>
struct DenseA {
  static constexpr bool kFastK = !Transposed;
  const float* p;
  int ld, rows;
  struct Line {
    const float* p;  // nullptr for a row beyond the matrix
  };
  __device__ Line line(int, int m) const {
    return {m < rows ? p + (Transposed ? m : static_cast<long long>(m) * ld) : nullptr};
  }
  __device__ float load(const Line& l, int k) const {
    return l.p ? l.p[Transposed ? static_cast<long long>(k) * ld : k] : 0.0f;
  }
};

// op(B)[k][n]: B (K x N, row stride ld) or, Transposed, B^T with B stored N x K.
template <bool Transposed>
struct DenseB {
  static constexpr bool kFastK = Transposed;
  const float* p;
  int ld, cols;
  struct Line {
    const float* p;  // nullptr for a column beyond the matrix
  };
  __device__ Line line(int, int n) const {
    return {n < cols ? p + (Transposed ? static_cast<long long>(n) * ld : n) : nullptr};
  }
  __device__ float load(const Line& l, int k) const {
    return l.p ? l.p[Transposed ? k : static_cast<long long>(k) * ld] : 0.0f;
  }
};

// C[m][n] = bias_relu(v, bias, n, relu); C row-major with row stride ld. For split-K partial
// sums, split s goes to C + s*split_stride (a workspace; then bias is nullptr and relu false:
// the reduction applies them).
struct DenseOut {
  float* c;
  int ld;
  const float* bias;  // may be nullptr
  bool relu;
  long long split_stride;  // 0 without split-K
  __device__ void store(int, int split, int m, int n, float v) const {
    c[split * split_stride + static_cast<long long>(m) * ld + n] = bias_relu(v, bias, n, relu);
  }
};

// ------------------------------------------------------------------------------ host helpers

// The linear layer's pass as C (M x N, row stride ldc) = op(A) op(B), then bias[n] and ReLU
// (bias_relu; the forward only), on version 1 (one output per thread) or 2 (the tiled core
// above). The pass fixes the transposes: forward A B^T (B stored N x K), data gradient A B,
// weight gradient A^T B (A stored K x M). Sizes and every index below 2^31.
void sgemm(int version, Pass pass, int M, int N, int K, const float* A, int lda, const float* B,
           int ldb, float* C, int ldc, const float* bias, bool relu, cudaStream_t stream);

// db[k] = sum_{n < N, i < PQ} dy[(n*K + k)*PQ + i] for dy (N, K, PQ) (PQ = 1: the linear
// layer's (N, K)): a two-level reduction in an order fixed by the shape (bit-identical reruns),
// its small workspace on `device`.
void bias_wgrad(const float* dy, float* db, int N, int K, int PQ, const Device& device,
                cudaStream_t stream);

// The split-K results of `pass`: out[i] = bias_relu(sum_{s < splits} partial[s*len + i],
// bias, i % cols, relu), s in increasing order (bias nullptr and relu false but for the
// forward).
void reduce_splits(Pass pass, const float* partial, float* out, int splits, long long len,
                   const float* bias, int cols, bool relu, cudaStream_t stream);

}  // namespace pcn::cuda
