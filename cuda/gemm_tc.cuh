// The tensor-core cores of the version-3 GEMM pipeline (gemm_v3.cuh): versions 4 (TF32) and
// 5 (3xTF32) of the convolution and the linear layer. Device code and launchers only.
//
// Same loaders, tiles (128 x 128 with 8 warps, 64 x 128 with 4 for M <= 96; 8 along K per
// stage), two shared stages and epilogues as version 3; what changes is the math of a warp's
// 64 x 32 tile of C: 4 x 4 tiles of m16n8, each one mma.sync.m16n8k8 per k-slice of 8
// (cuda/ptx.cuh), instead of 8 x 8 FFMA per thread per k.
//   - TF32 (MmaCore<1>): each operand element is rounded to TF32 (tf32_round: 10-bit
//     mantissa, ties away from zero) when it is stored to shared memory; 16 mma per warp per
//     k-slice. The error is TF32's: about 2^-11 relative per operand (docs/kernels_tc.md).
//   - 3xTF32 (MmaCore<3>): each element x is stored as two planes, big = tf32(x) and
//     small = tf32(x - big) (x - big is exact in FP32, and small keeps its 11 leading bits, so
//     big + small carries 22 of x's 24); every product is big*big + big*small + small*big
//     (small*small, ~2^-22 relative, dropped), the two small terms first, into one FP32
//     accumulator: 48 mma per warp per k-slice, FP32-accurate.
// Fragments (ptx.cuh's layouts; groupID = lane >> 2, tig = lane % 4): for m-tile i and n-tile
// j of the warp (rows wm + 16i, columns wn + 8j of the block tile), lane reads
//   A: As[tig][r], As[tig][r + 8], As[tig + 4][r], As[tig + 4][r + 8] with r = wm + 16i + groupID
//   B: Bs[tig][c], Bs[tig + 4][c] with c = wn + 8j + groupID
// from the k-major stages (rows padded by 8 floats: the 32 lanes' addresses 8*tig + groupID
// fall in 32 different banks) and holds C[wm + 16i + groupID + 8(r >= 2)][wn + 8j + 2tig + (r & 1)]
// in acc[i][j][r].
// Determinism: each C element is one warp's fixed sequence of mma over the k-slices in
// increasing order, the same for any tile: reruns are bit-identical.
#pragma once
#include <type_traits>

#include "gemm_v3.cuh"
#include "ptx.cuh"

namespace pcn::cuda {

PCN_GEMM3_KERNELS(gemm_tf32)
PCN_GEMM3_KERNELS(gemm_3xtf32)

// Terms = 1: TF32; Terms = 3: 3xTF32 (above).
template <int Terms>
struct MmaCore {
  static_assert(Terms == 1 || Terms == 3, "TF32 (1 term) or 3xTF32 (3 terms)");
  static constexpr int kPad = 8, kPlanes = Terms == 1 ? 1 : 2;
  using Kernels = std::conditional_t<Terms == 1, gemm_tf32_kernels, gemm_3xtf32_kernels>;
  __device__ static void split(float v, float (&planes)[kPlanes]) {
    planes[0] = tf32_round(v);
    if constexpr (kPlanes == 2) planes[1] = tf32_round(v - planes[0]);
  }

  int wm, wn, group, tig;
  float acc[4][4][4];  // [m-tile][n-tile][fragment register]
  template <class Tile>
  __device__ MmaCore(Tile, int warp, int lane)
      : wm(warp / Tile::kWarpsN * 64), wn(warp % Tile::kWarpsN * 32), group(lane >> 2),
        tig(lane % 4) {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
#pragma unroll
        for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.0f;
      }
    }
  }

  template <class Tile>
  __device__ __forceinline__ void multiply(const float (&As)[kPlanes][Tile::kK][Tile::kLdA],
                                           const float (&Bs)[kPlanes][Tile::kK][Tile::kLdB]) {
    static_assert(Tile::kK == 8, "one mma.m16n8k8 per k-slice");
    float a[kPlanes][4][4], b[kPlanes][4][2];
#pragma unroll
    for (int p = 0; p < kPlanes; ++p) {
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int r = wm + 16 * i + group;
        a[p][i][0] = As[p][tig][r];
        a[p][i][1] = As[p][tig][r + 8];
        a[p][i][2] = As[p][tig + 4][r];
        a[p][i][3] = As[p][tig + 4][r + 8];
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int c = wn + 8 * j + group;
        b[p][j][0] = Bs[p][tig][c];
        b[p][j][1] = Bs[p][tig + 4][c];
      }
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        if constexpr (Terms == 3) {
          mma_m16n8k8_tf32(acc[i][j], a[kPlanes - 1][i], b[0][j]);  // small * big
          mma_m16n8k8_tf32(acc[i][j], a[0][i], b[kPlanes - 1][j]);  // big * small
        }
        mma_m16n8k8_tf32(acc[i][j], a[0][i], b[0][j]);  // big * big
      }
    }
  }

  template <class Tile, class Epilogue>
  __device__ __forceinline__ void store(const Epilogue& out, int g, int split, int m0, int n0,
                                        int M, int N) const {
#pragma unroll
    for (int i = 0; i < 4; ++i) {
#pragma unroll
      for (int r = 0; r < 4; r += 2) {
        const int m = m0 + wm + 16 * i + group + 4 * r;  // r = 2: row groupID + 8
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          const int n = n0 + wn + 8 * j + 2 * tig;
          if (n < N) out.store(g, split, m, n, acc[i][j][r]);
          if (n + 1 < N) out.store(g, split, m, n + 1, acc[i][j][r + 1]);
        }
      }
    }
  }
};
using Tf32Core = MmaCore<1>;
using Tf32x3Core = MmaCore<3>;

// launch_gemm3 (gemm_v3.cuh) on the core of `precision`: SimtCore3 (FP32), Tf32Core or
// Tf32x3Core.
template <Pass3 P, class ALoader, class BLoader, class Epilogue>
void launch_gemm3_precision(Precision precision, const ALoader& a, const BLoader& b,
                            const Epilogue& out, int groups, int M, int N, int K, int splits,
                            int k_chunk, cudaStream_t stream) {
  if (precision == Precision::kTf32) {
    launch_gemm3<P, Tf32Core>(a, b, out, groups, M, N, K, splits, k_chunk, stream);
  } else if (precision == Precision::kTf32x3) {
    launch_gemm3<P, Tf32x3Core>(a, b, out, groups, M, N, K, splits, k_chunk, stream);
  } else {
    launch_gemm3<P, SimtCore3>(a, b, out, groups, M, N, K, splits, k_chunk, stream);
  }
}

}  // namespace pcn::cuda
