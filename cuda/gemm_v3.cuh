// Version 3 of the GEMM core that every convolution pass and the linear layer run: the
// register-blocked FP32 SIMT kernel. Device code and launchers only; included by .cu files.
// The block's pipeline (loaders, shared stages, epilogue) is separate from the math of its tile
// (a Core): SimtCore3 here; the TF32 and 3xTF32 tensor-core cores of versions 4 and 5 in
// gemm_tc.cuh run in the same pipeline.
//
// Like version 2 (gemm.cuh) it computes C = op(A) op(B) through loaders, which return element
// (line, k) of an operand wherever it lives, and an epilogue, which stores C; what changes is
// the inside of the block:
//   - 128 x 128 block tiles (256 threads), or 64 x 128 (128 threads) for M <= 96, in steps
//     of 8 along K; each warp owns a 64 x 32 tile of C and (SimtCore3) each thread an
//     8 x 8 register tile, as four 4 x 4 blocks of it;
//   - shared tiles stored k-major (As[k][m], Bs[k][n]) and (SimtCore3) read as float4: per k, a
//     thread reads 2 float4 of A and 2 of B for 64 FFMA;
//   - two shared stages: the next slice's global loads are issued into registers before the
//     current slice's FFMAs and stored to the other stage after them, so one barrier per
//     k-step suffices and the loads' latency hides behind the math (register staging: no
//     cp.async, so the loaders can gather and zero-fill freely);
//   - loaders whose lines are clamped into the matrix by the kernel (a clamped line only feeds
//     rows or columns of C that are never stored), so they check nothing per element but the
//     bound they gather from; the convolutions' loaders read their per-k offsets from a table
//     built once per call (conv2d_v3.cu), so no division is left in the loop.
// Determinism: every C element is summed over the k-slices in increasing order by one thread
// (SimtCore3) or one warp's mma sequence (gemm_tc.cuh), whatever the tile shape, so the tile
// choice changes no bit of the result.
#pragma once
#include <algorithm>
#include <type_traits>

#include "csrc/tensor.h"  // before cuda_runtime.h: the simulator's macros follow it
#include "csrc/kernels/kernels.h"  // Precision; before cuda_runtime.h (the simulator's macros)
#include <cuda_runtime.h>

#include "gemm_common.cuh"
#include "launch.cuh"

namespace pcn::cuda {

// A block tile of WarpsM x WarpsN warps, each computing 64 x 32 outputs, its shared rows padded
// by Pad floats.
template <int WarpsM, int WarpsN, int Pad = 4>
struct Tile3 {
  static constexpr int kWarpsM = WarpsM, kWarpsN = WarpsN;
  static constexpr int kM = 64 * WarpsM, kN = 32 * WarpsN, kK = 8;
  static constexpr int kThreads = 32 * WarpsM * WarpsN;
  // Pad 4 (the SIMT core) keeps float4 alignment and spreads a warp's transposed stores of
  // 4 consecutive k (a fast-K loader) over all 32 banks: bank = (4k + line) % 32. Pad 8 (the
  // tensor-core cores, gemm_tc.cuh) makes their fragment reads conflict-free instead.
  static constexpr int kLdA = kM + Pad, kLdB = kN + Pad;
  static constexpr int kPerA = kM * kK / kThreads, kPerB = kN * kK / kThreads;
  // No register cap below ptxas' own: the accumulators, fragments, staged loads and loader
  // state take 141-157 registers (1 block of 256 / 3 blocks of 128 threads per SM); a cap of
  // 128 (2 large blocks per SM) spills inside the loop.
  static constexpr int kMinBlocks = 1;
};
using Tile3Large = Tile3<2, 4>;  // 128 x 128, 256 threads
using Tile3Small = Tile3<1, 4>;  // 64 x 128, 128 threads

// Loader interface (A and B alike; "line" = a row m of op(A) or a column n of op(B)):
//   static constexpr bool kFastK;  // consecutive threads load consecutive k (true) or
//                                  // consecutive lines (false)
//   struct Line;                   // what a thread needs to load from one line
//   __device__ Line line(int g, int i) const;         // line i < the line count of group g
//   __device__ float load(const Line&, int k) const;  // element k, k in [0, K) (the kernel
//                                                     // checks), 0 where it gathers padding
// Epilogue interface: __device__ void store(int g, int split, int m, int n, float v) const,
// called once per (g, split, m, n) with m < M, n < N.

// One operand's load slots for a thread: its line within the tile and the k offsets within
// the slice of the Per elements it loads each step. Fast-K: 8/Per threads share a line, each
// loading Per consecutive k; otherwise consecutive threads take consecutive lines and a thread
// loads k = k0, k0 + Threads/Lines, ...
template <int Lines, int Per, int Threads, bool FastK>
struct Slots3 {
  static constexpr int kStep = FastK ? 1 : Threads / Lines;
  int line, k0;
  __device__ explicit Slots3(int t)
      : line(FastK ? t / (8 / Per) : t % Lines), k0(FastK ? t % (8 / Per) * Per : t / Lines) {}
  __device__ int k(int j) const { return k0 + j * kStep; }
};

// Core interface: the math of a block's tile, between the shared stages and the epilogue.
//   static constexpr int kPad;     // the shared rows' padding (Tile3's Pad) the core reads best
//   static constexpr int kPlanes;  // shared copies of each operand per stage (1, or 2 for a
//                                  // high and a low part)
//   using Kernels;                 // the pass-named kernels (PCN_GEMM3_KERNELS) it runs in
//   __device__ static void split(float v, float (&planes)[kPlanes]);  // what a staged element
//                                  // becomes in each plane
//   template <class Tile> __device__ Core(Tile, int warp, int lane);   // zero accumulators
//   template <class Tile> __device__ void multiply(const float (&a)[kPlanes][8][Tile::kLdA],
//                                                  const float (&b)[kPlanes][8][Tile::kLdB]);
//                                  // acc += one k-slice of 8
//   template <class Tile, class Epilogue> __device__ void store(const Epilogue&, int g,
//       int split, int m0, int n0, int M, int N) const;   // each m < M, n < N of the tile once
// SimtCore3 below; the tensor-core cores in gemm_tc.cuh.

// gemm3_body: C[g][m][n] = sum_{k in [split*k_chunk, min(K, (split+1)*k_chunk))}
//   op(A_g)[m][k] * op(B_g)[k][n], for every group g < groups, multiplied by Core.
// Grid: x = groups * tiles_m * tiles_n (tile index = (g * tiles_m + tm) * tiles_n + tn),
//   y = split index; block: Tile::kThreads threads. Warp w computes rows
//   m0 + 64 * (w / WarpsN) + [0, 64) and columns n0 + 32 * (w % WarpsN) + [0, 32) of the block's
//   tile; which lane holds which of them is the Core's.
// Preconditions: M, N >= 1 (an empty grid is not launched); K, k_chunk >= 0, k_chunk a multiple
//   of 8; tiles_m = ceil(M / Tile::kM), tiles_n = ceil(N / Tile::kN); groups * tiles < 2^31;
//   every index the loaders and epilogue form fits in int.
template <class Tile, class Core, class ALoader, class BLoader, class Epilogue>
__device__ __forceinline__ void gemm3_body(const ALoader& a, const BLoader& b,
                                           const Epilogue& out, int M, int N, int K, int k_chunk,
                                           int tiles_m, int tiles_n) {
  constexpr int kK = Tile::kK, kPerA = Tile::kPerA, kPerB = Tile::kPerB;
  constexpr int kPlanes = Core::kPlanes;
  struct alignas(16) Stages {  // [stage][plane][k][line]; float4-aligned rows
    float a[2][kPlanes][kK][Tile::kLdA];
    float b[2][kPlanes][kK][Tile::kLdB];
  };
  __shared__ Stages smem;
  auto& As = smem.a;
  auto& Bs = smem.b;

  const int t = threadIdx.x, lane = t % 32, warp = t / 32;
  const BlockTile bt = block_tile(Tile::kM, Tile::kN, tiles_m, tiles_n, K, k_chunk);
  const int g = bt.g, m0 = bt.m0, n0 = bt.n0, split = bt.split;
  const int k_begin = bt.k_begin, k_end = bt.k_end;

  const Slots3<Tile::kM, kPerA, Tile::kThreads, ALoader::kFastK> sa(t);
  const Slots3<Tile::kN, kPerB, Tile::kThreads, BLoader::kFastK> sb(t);
  const typename ALoader::Line a_src = a.line(g, min(m0 + sa.line, M - 1));
  const typename BLoader::Line b_src = b.line(g, min(n0 + sb.line, N - 1));

  float ra[kPerA], rb[kPerB];  // the next slice, staged in registers
  // Loads slice k0 into ra, rb; Checked: zeros for k >= k_end (a partial last slice).
  auto fetch = [&](int k0, auto checked) {
#pragma unroll
    for (int j = 0; j < kPerA; ++j) {
      const int k = k0 + sa.k(j);
      ra[j] = !decltype(checked)::value || k < k_end ? a.load(a_src, k) : 0.0f;
    }
#pragma unroll
    for (int j = 0; j < kPerB; ++j) {
      const int k = k0 + sb.k(j);
      rb[j] = !decltype(checked)::value || k < k_end ? b.load(b_src, k) : 0.0f;
    }
  };
  auto stash = [&](int stage) {
#pragma unroll
    for (int j = 0; j < kPerA; ++j) {
      float v[kPlanes];
      Core::split(ra[j], v);
#pragma unroll
      for (int p = 0; p < kPlanes; ++p) As[stage][p][sa.k(j)][sa.line] = v[p];
    }
#pragma unroll
    for (int j = 0; j < kPerB; ++j) {
      float v[kPlanes];
      Core::split(rb[j], v);
#pragma unroll
      for (int p = 0; p < kPlanes; ++p) Bs[stage][p][sb.k(j)][sb.line] = v[p];
    }
  };

  Core core(Tile{}, warp, lane);
  auto multiply = [&](int stage) { core.template multiply<Tile>(As[stage], Bs[stage]); };

  // Slices start at k_begin + 8i; those before k_full are whole. The loop runs while the next
  // slice is whole (its loads need no bound); the last one or two slices are peeled after it.
  using Checked = std::true_type;
  using Unchecked = std::false_type;
  const int k_full = k_begin + (k_end - k_begin) / kK * kK;
  fetch(k_begin, Checked{});
  stash(0);
  __syncthreads();
  int stage = 0, k0 = k_begin;
  for (; k0 + kK < k_full; k0 += kK) {
    fetch(k0 + kK, Unchecked{});
    multiply(stage);
    // The other stage was last read before the previous barrier, so it can be overwritten
    // now; the barrier below publishes it and retires this stage's reads.
    stash(stage ^ 1);
    __syncthreads();
    stage ^= 1;
  }
  if (k0 < k_end) {  // slice k0 is in shared memory; a partial one may follow
    const bool last = k0 + kK >= k_end;
    if (!last) fetch(k0 + kK, Checked{});
    multiply(stage);
    if (!last) {
      stash(stage ^ 1);
      __syncthreads();
      multiply(stage ^ 1);
    }
  }
  core.template store<Tile>(out, g, split, m0, n0, M, N);
}

// The pass-named entry points (profiles and SASS reports read the pass from the name) of one
// core: prefix_fprop_kernel, prefix_dgrad_kernel, prefix_wgrad_kernel, the convolutions' and
// the linear layer's forward (fprop), data-gradient (dgrad) and weight-gradient (wgrad) GEMMs,
// and prefix_kernels::launch<P, Tile, Core>(grid, stream, args...), which launches P's.
using Pass3 = Pass;  // the pipeline's name for the pass (gemm_common.cuh)
#define PCN_GEMM3_KERNEL(name)                                                                 \
  template <class Tile, class Core, class ALoader, class BLoader, class Epilogue>             \
  __global__ void __launch_bounds__(Tile::kThreads, Tile::kMinBlocks)                         \
      name(ALoader a, BLoader b, Epilogue out, int M, int N, int K, int k_chunk, int tiles_m, \
           int tiles_n) {                                                                     \
    gemm3_body<Tile, Core>(a, b, out, M, N, K, k_chunk, tiles_m, tiles_n);                    \
  }
#define PCN_GEMM3_KERNELS(prefix)                                                              \
  PCN_GEMM3_KERNEL(prefix##_fprop_kernel)                                                     \
  PCN_GEMM3_KERNEL(prefix##_dgrad_kernel)                                                     \
  PCN_GEMM3_KERNEL(prefix##_wgrad_kernel)                                                     \
  struct prefix##_kernels {                                                                   \
    template <Pass3 P, class Tile, class Core, class ALoader, class BLoader, class Epilogue>  \
    static void launch(dim3 grid, cudaStream_t stream, const ALoader& a, const BLoader& b,    \
                       const Epilogue& out, int M, int N, int K, int k_chunk, int tiles_m,    \
                       int tiles_n) {                                                         \
      if constexpr (P == Pass3::kFprop) {                                                     \
        PCN_LAUNCH((prefix##_fprop_kernel<Tile, Core, ALoader, BLoader, Epilogue>), grid,     \
                   Tile::kThreads, 0, stream, a, b, out, M, N, K, k_chunk, tiles_m, tiles_n); \
      } else if constexpr (P == Pass3::kDgrad) {                                              \
        PCN_LAUNCH((prefix##_dgrad_kernel<Tile, Core, ALoader, BLoader, Epilogue>), grid,     \
                   Tile::kThreads, 0, stream, a, b, out, M, N, K, k_chunk, tiles_m, tiles_n); \
      } else {                                                                                \
        PCN_LAUNCH((prefix##_wgrad_kernel<Tile, Core, ALoader, BLoader, Epilogue>), grid,     \
                   Tile::kThreads, 0, stream, a, b, out, M, N, K, k_chunk, tiles_m, tiles_n); \
      }                                                                                       \
    }                                                                                         \
  };
PCN_GEMM3_KERNELS(gemm3)

// The FP32 SIMT core of version 3. Lane l (lm = l % 8, ln = l / 8) of a warp owns rows
// 4*lm + [0, 4) and 32 + 4*lm + [0, 4), columns 4*ln + [0, 4) and 16 + 4*ln + [0, 4) of its warp's
// 64 x 32 tile, as an 8 x 8 register tile: per k it reads A as 2 float4 (8 lanes of a phase read
// 128 contiguous bytes) and B as 2 float4 (one broadcast address per phase), for 64 FFMA.
// Every C element is summed by one thread over k in increasing order.
struct SimtCore3 {
  static constexpr int kPad = 4, kPlanes = 1;
  using Kernels = gemm3_kernels;
  __device__ static void split(float v, float (&planes)[1]) { planes[0] = v; }

  int wm, wn;
  float acc[8][8];
  template <class Tile>
  __device__ SimtCore3(Tile, int warp, int lane)
      : wm(warp / Tile::kWarpsN * 64 + lane % 8 * 4), wn(warp % Tile::kWarpsN * 32 + lane / 8 * 4) {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;
    }
  }

  template <class Tile>
  __device__ __forceinline__ void multiply(const float (&As)[1][Tile::kK][Tile::kLdA],
                                           const float (&Bs)[1][Tile::kK][Tile::kLdB]) {
#pragma unroll
    for (int kk = 0; kk < Tile::kK; ++kk) {
      float af[8], bf[8];
      *reinterpret_cast<float4*>(af) = *reinterpret_cast<const float4*>(&As[0][kk][wm]);
      *reinterpret_cast<float4*>(af + 4) = *reinterpret_cast<const float4*>(&As[0][kk][wm + 32]);
      *reinterpret_cast<float4*>(bf) = *reinterpret_cast<const float4*>(&Bs[0][kk][wn]);
      *reinterpret_cast<float4*>(bf + 4) = *reinterpret_cast<const float4*>(&Bs[0][kk][wn + 16]);
#pragma unroll
      for (int i = 0; i < 8; ++i) {
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(af[i], bf[j], acc[i][j]);
      }
    }
  }

  template <class Tile, class Epilogue>
  __device__ __forceinline__ void store(const Epilogue& out, int g, int split, int m0, int n0,
                                        int M, int N) const {
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      const int m = m0 + wm + i % 4 + i / 4 * 32;
      if (m >= M) continue;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const int n = n0 + wn + j % 4 + j / 4 * 16;
        if (n < N) out.store(g, split, m, n, acc[i][j]);
      }
    }
  }
};

// The tile for M rows of C: 64 x 128 for M <= 96 (M = 48 would waste 62% of a 128-row tile;
// M = 96 gets twice the blocks for the same waste), else 128 x 128. A function of the shape
// alone; grids too small for the GPU (the linear layers at small batch) need split-K, not a
// smaller tile.
inline bool gemm3_small_tile(int M) { return M <= 96; }

// Launches the Pass's kernel of Core on `Tile` over groups x M x N, K in `splits` chunks of
// k_chunk (a multiple of 8; splits * k_chunk >= K).
template <Pass3 P, class Tile, class Core = SimtCore3, class ALoader, class BLoader,
          class Epilogue>
void launch_gemm3_tile(const ALoader& a, const BLoader& b, const Epilogue& out, int groups, int M,
                       int N, int K, int splits, int k_chunk, cudaStream_t stream) {
  const int tiles_m = static_cast<int>(ceil_div(M, Tile::kM));
  const int tiles_n = static_cast<int>(ceil_div(N, Tile::kN));
  const dim3 grid(static_cast<unsigned int>(groups) * tiles_m * tiles_n, splits);
  Core::Kernels::template launch<P, Tile, Core>(grid, stream, a, b, out, M, N, K, k_chunk,
                                                tiles_m, tiles_n);
}

// The same, on the tile gemm3_small_tile chooses for M, padded for Core.
template <Pass3 P, class Core = SimtCore3, class ALoader, class BLoader, class Epilogue>
void launch_gemm3(const ALoader& a, const BLoader& b, const Epilogue& out, int groups, int M,
                  int N, int K, int splits, int k_chunk, cudaStream_t stream) {
  if (gemm3_small_tile(M)) {
    launch_gemm3_tile<P, Tile3<1, 4, Core::kPad>, Core>(a, b, out, groups, M, N, K, splits,
                                                        k_chunk, stream);
  } else {
    launch_gemm3_tile<P, Tile3<2, 4, Core::kPad>, Core>(a, b, out, groups, M, N, K, splits,
                                                        k_chunk, stream);
  }
}

// ---------------------------------------------------------------------------- dense operands

// op(A)[m][k] of a row-major matrix: A (M x K, row stride ld) or, Transposed, A^T with A stored
// K x M. Lines are always inside the matrix (the kernel clamps them).
template <bool Transposed>
struct DenseA3 {
  static constexpr bool kFastK = !Transposed;
  const float* __restrict__ p;
  int ld;
  struct Line {
    const float* __restrict__ p;
  };
  __device__ Line line(int, int m) const {
    return {p + (Transposed ? m : static_cast<long long>(m) * ld)};
  }
  __device__ float load(const Line& l, int k) const {
    return l.p[Transposed ? static_cast<long long>(k) * ld : k];
  }
};

// op(B)[k][n]: B (K x N, row stride ld) or, Transposed, B^T with B stored N x K.
template <bool Transposed>
struct DenseB3 {
  static constexpr bool kFastK = Transposed;
  const float* __restrict__ p;
  int ld;
  struct Line {
    const float* __restrict__ p;
  };
  __device__ Line line(int, int n) const {
    return {p + (Transposed ? static_cast<long long>(n) * ld : n)};
  }
  __device__ float load(const Line& l, int k) const {
    return l.p[Transposed ? k : static_cast<long long>(k) * ld];
  }
};

// Split-K for the dense GEMMs whose output has too few tiles to fill the GPU (the linear
// layers' forward and data gradient at batch 128: fc8's forward is 8 tiles of 128 x 128). The
// rule: an output of `tiles` tiles, fewer than kSplitSMs, is split along K into
// ceil(kSplitSMs / tiles) chunks, so that the grid fills the SMs at least once, but into fewer
// if a chunk would have under kSplitMinChunk terms (its tile loads and stores must be
// amortised); the chunk is a multiple of 8 (every core's k-step). kSplitSMs is the SM count of
// an H100/H200 SXM, a constant rather than the device's count, so the split (and every bit of
// the result) depends on the shape alone. Partial sums go to a workspace and are added in
// split order by reduce_splits (gemm.cu): no float atomics, bit-identical reruns.
constexpr int kSplitSMs = 132;
constexpr int kSplitMinChunk = 256;
inline SplitPlan gemm3_split_plan(long long tiles, int K) {
  if (tiles == 0 || tiles >= kSplitSMs || K < 2 * kSplitMinChunk) return {1, K};
  long long splits = (kSplitSMs + tiles - 1) / tiles;
  splits = std::min<long long>(splits, K / kSplitMinChunk);
  int chunk = static_cast<int>((K + splits - 1) / splits);
  chunk = (chunk + 7) / 8 * 8;
  return {(K + chunk - 1) / chunk, chunk};
}

// The tiles of an M x N output on the tile gemm3_small_tile chooses (the same for every core:
// the padding changes no tile size).
inline long long gemm3_tiles(int M, int N) {
  const bool small = gemm3_small_tile(M);
  return static_cast<long long>(ceil_div(M, small ? Tile3Small::kM : Tile3Large::kM)) *
         ceil_div(N, Tile3Large::kN);
}

// C (M x N, row stride ldc) = op(A) op(B), then bias[n] and ReLU (bias_relu; the forward only)
// on this pipeline with the core of `precision` (SimtCore3 for FP32, gemm_tc.cuh's for TF32 and
// 3xTF32), the transposes fixed by the linear layer's pass (gemm_v3.cu): forward A B^T (B stored
// N x K), data gradient A B, weight gradient A^T B (A stored K x M). The forward and the data
// gradient split K by gemm3_split_plan, with a workspace on `device`. Sizes and indices below
// 2^31.
void sgemm3(Pass pass, int M, int N, int K, const float* A, int lda, const float* B, int ldb,
            float* C, int ldc, const float* bias, bool relu, Precision precision,
            const Device& device, cudaStream_t stream);

}  // namespace pcn::cuda
