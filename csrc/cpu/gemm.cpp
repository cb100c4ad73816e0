// Cache-blocked SGEMM in the style of GotoBLAS/BLIS, written for the compiler to vectorise:
//   - C is cut into MC x NC tiles, one parallel task each (static schedule, no shared sums);
//   - for each KC-deep slice of the sum, the task packs op(A)'s MC x KC block into MR-row
//     panels and op(B)'s KC x NC block into NR-column panels (zero-padded at the edges, so the
//     inner kernel never branches), both contiguous and small enough to stay in L2/L1;
//   - the micro-kernel keeps an MR x NR block of C in registers and does rank-1 updates from
//     the two panels: its inner loop over NR columns is what the compiler turns into SIMD.
// The k-slices are visited in order and each adds its partial sums to C, so every element's
// summation order depends only on K, never on the thread count.
#include "gemm.h"

#include <algorithm>
#include <vector>

#include "parallel.h"

namespace pcn::cpu {
namespace {

// 4 x 8: 32 accumulators = 8 SSE registers (the baseline x86-64 build), leaving room for the B
// row and the broadcast A values; the fastest of 4x8, 4x16, 6x8, 6x16, 8x8 measured on the dev
// machine (about 45 GFLOP/s on 2 cores for conv2-5's shapes). MC/NC/KC keep a packed A block
// (MC*KC*4 = 96 KiB) and B block (192 KiB) in L2.
constexpr int64_t MR = 4, NR = 8;
constexpr int64_t MC = 96, NC = 192, KC = 256;

// ap[p*MR + i] = op(A)[i0 + i][k0 + p] for one MR-row panel, zero beyond row `rows`.
void pack_a(bool trans, const float* A, int64_t lda, int64_t i0, int64_t rows, int64_t k0,
            int64_t kc, float* ap) {
  for (int64_t p = 0; p < kc; ++p) {
    for (int64_t i = 0; i < MR; ++i) {
      const int64_t r = i0 + i;
      ap[p * MR + i] = i >= rows ? 0.0f : trans ? A[(k0 + p) * lda + r] : A[r * lda + k0 + p];
    }
  }
}

// bp[p*NR + j] = op(B)[k0 + p][j0 + j] for one NR-column panel, zero beyond column `cols`.
void pack_b(bool trans, const float* B, int64_t ldb, int64_t j0, int64_t cols, int64_t k0,
            int64_t kc, float* bp) {
  if (!trans && cols == NR) {
    for (int64_t p = 0; p < kc; ++p) {
      const float* src = B + (k0 + p) * ldb + j0;
      for (int64_t j = 0; j < NR; ++j) bp[p * NR + j] = src[j];
    }
    return;
  }
  for (int64_t p = 0; p < kc; ++p) {
    for (int64_t j = 0; j < NR; ++j) {
      const int64_t c = j0 + j;
      bp[p * NR + j] = j >= cols ? 0.0f : trans ? B[c * ldb + k0 + p] : B[(k0 + p) * ldb + c];
    }
  }
}

// acc = sum_p ap[p, :]^T bp[p, :] over one pair of packed panels; then C (rows x cols of it)
// is set to acc or has acc added.
inline void micro_kernel(int64_t kc, const float* __restrict ap, const float* __restrict bp,
                         float* __restrict C, int64_t ldc, int64_t rows, int64_t cols, bool add) {
  float acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const float* a = ap + p * MR;
    const float* b = bp + p * NR;
    // Fully unrolled, so acc lives in registers and each row update becomes SIMD multiply-adds
    // (GCC keeps acc in memory, 10x slower, when it is left to decide).
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
    }
  }
  for (int64_t i = 0; i < rows; ++i) {
    float* c = C + i * ldc;
    if (add) {
      for (int64_t j = 0; j < cols; ++j) c[j] += acc[i][j];
    } else {
      for (int64_t j = 0; j < cols; ++j) c[j] = acc[i][j];
    }
  }
}

// One packed MC x KC block of A times one packed KC x NC block of B into the C tile at C.
void block_product(int64_t kc, int64_t mc, int64_t nc, const float* apack, const float* bpack,
                   float* C, int64_t ldc, bool add) {
  for (int64_t j = 0; j < nc; j += NR) {
    for (int64_t i = 0; i < mc; i += MR) {
      micro_kernel(kc, apack + (i / MR) * kc * MR, bpack + (j / NR) * kc * NR, C + i * ldc + j,
                   ldc, std::min(MR, mc - i), std::min(NR, nc - j), add);
    }
  }
}

}  // namespace

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A,
           int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    if (!accumulate) {
      for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
    }
    return;
  }
  const int64_t tiles_m = (M + MC - 1) / MC, tiles_n = (N + NC - 1) / NC;
  parallel_for(tiles_m * tiles_n, [&](int64_t t) {
    // Per-thread packing buffers, kept between calls (they only ever grow to one block).
    thread_local std::vector<float> apack, bpack;
    apack.resize(MC * KC);
    bpack.resize(KC * NC);
    const int64_t i0 = (t / tiles_n) * MC, j0 = (t % tiles_n) * NC;
    const int64_t mc = std::min(MC, M - i0), nc = std::min(NC, N - j0);
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
      const int64_t kc = std::min(KC, K - k0);
      for (int64_t i = 0; i < mc; i += MR)
        pack_a(trans_a, A, lda, i0 + i, std::min(MR, mc - i), k0, kc, apack.data() + (i / MR) * kc * MR);
      for (int64_t j = 0; j < nc; j += NR)
        pack_b(trans_b, B, ldb, j0 + j, std::min(NR, nc - j), k0, kc, bpack.data() + (j / NR) * kc * NR);
      block_product(kc, mc, nc, apack.data(), bpack.data(), C + i0 * ldc + j0, ldc,
                    accumulate || k0 > 0);
    }
  });
}

}  // namespace pcn::cpu
