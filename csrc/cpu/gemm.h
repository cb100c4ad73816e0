// The CPU's one matrix product, used by convolution (after im2col) and by the linear layer.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace pcn::cpu {

// op(A) (M x K) packed into the micro-kernel's panels once, for products with many B's (a
// convolution's weights against every image of the batch). Built for the instruction-set path
// active when it was made (isa.h); sgemm_packed uses that path's micro-kernel.
// Its storage comes from the host allocator (allocator.h), as a tensor's does: cached between
// products, and on huge pages from 4 MiB (fc6's x at batch 128 packed: 4.9 MB).
struct PackedA {
  int64_t M = 0, K = 0, mr = 0, mc = 0;  // mc: rows of C per task, a multiple of mr
  std::shared_ptr<void> storage;
  float* data() const { return static_cast<float*>(storage.get()); }
  // Or A left where it is (rows lda floats apart, each along k), for the micro-kernel that reads
  // A's rows in place (SimdKernels::gemm_micro_rows); only sgemm_sum takes such an operand.
  const float* in_place = nullptr;
  int64_t lda = 0;
};
PackedA pack_a(bool trans_a, int64_t M, int64_t K, const float* A, int64_t lda);
// A (M x K, not transposed) for sgemm_sum: left in place on a path with gemm_micro_rows (no copy;
// the same products in the same order, so the same bits), else packed as pack_a packs it. A
// convolution's filter gradient takes each image's dy so.
PackedA rows_of_a(int64_t M, int64_t K, const float* A, int64_t lda);
// The same for op(A)[i][k] = A[row_off[i] + col_off[k]] (i < M, k < K): a matrix read through
// two offset tables, e.g. a convolution's flipped, transposed filters.
PackedA pack_a_gathered(int64_t M, int64_t K, const float* A, const int64_t* row_off,
                        const int64_t* col_off);

// C = op(A) * op(B), or C += op(A) * op(B) when `accumulate`; all row-major float32.
//   op(A) is M x K: A itself (M rows of stride lda) or, with trans_a, the transpose of A stored
//   as K rows of stride lda; likewise op(B) is K x N, B itself or (trans_b) B stored N x K.
//   C is M rows of stride ldc. With K == 0, C is zeroed (or left alone when accumulating).
// Multi-threaded over tiles of C (on the calling thread when called inside parallel_for). Each
// element's sum runs over k in a fixed order whatever the thread count, so results are
// bit-identical from run to run on one machine and instruction-set path.
void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A,
           int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate);
void sgemm_packed(const PackedA& a, bool trans_b, int64_t N, const float* B, int64_t ldb,
                  float* C, int64_t ldc, bool accumulate);

// The forward epilogue of the convolution and the linear layer: v + bias[i] (when bias is
// given), then ReLU when relu, computed as relu_forward does (NaN stays NaN), so that the fused
// forward is bit-identical to the forward followed by ops.relu.
inline float bias_relu(float v, const float* bias, int64_t i, bool relu) {
  if (bias) v += bias[i];
  return relu && v < 0.0f ? 0.0f : v;
}
// The SGEMM with op(B) never stored: pack(k0, kc, j0, nc, bp) writes op(B)'s rows k0..k0+kc-1,
// columns j0..j0+nc-1 into the micro-kernel's panels, nr = simd().nr columns each: the panel of
// columns j0+j..j0+j+nr-1 (j a multiple of nr) at bp + j*kc, element (p, jj) at [p*nr + jj],
// zero beyond column nc. A convolution packs its im2col matrix this way straight from the image.
// Called from the thread that runs the tile; the same blocks whatever the thread count.
using PackB = std::function<void(int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* bp)>;
void sgemm_packed(const PackedA& a, int64_t N, const PackB& pack, float* C, int64_t ldc,
                  bool accumulate);

// C = (or +=) the sum over b < batches of op(A_b) * op(B_b), in one parallel region over tiles
// of C; each tile adds the products in order of b, each over k in its KC slices, so an element's
// sum is what as many accumulating sgemm calls would give. All a[b] have the same M (packed by
// pack_a on the active path); pack(b, k0, kc, j0, nc, bp) packs op(B_b) as PackB does. A
// convolution's filter gradient sums its images so.
using PackBatchB =
    std::function<void(int64_t b, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* bp)>;
// ahead (optional): fetches part `part` of `parts` of the memory that pack(b, k0, kc, j0, nc, .)
// will read; called after each micro-kernel call of a slice for the next slice's block, so that
// its reads from memory overlap the arithmetic instead of stalling the pack (the plain SGEMM
// gives it; fc6's weights stream from memory once per pass).
using PrefetchB = std::function<void(int64_t b, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
                                     int64_t part, int64_t parts)>;
void sgemm_sum(const PackedA* a, int64_t batches, int64_t N, const PackBatchB& pack, float* C,
               int64_t ldc, bool accumulate, const PrefetchB& ahead = {});

}  // namespace pcn::cpu
