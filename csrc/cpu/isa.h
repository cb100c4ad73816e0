// Instruction-set paths of the CPU kernels. The hot inner loops (the SGEMM micro-kernel and the
// pointwise kernels) are compiled three times, each translation unit with its own flags
// (simd_baseline.cpp: x86-64 baseline / whatever the target is; simd_avx2.cpp: AVX2 + FMA;
// simd_avx512.cpp: AVX-512F/VL/BW/DQ), into one table of function pointers per path. The best
// path the CPU supports (__builtin_cpu_supports) is chosen once, at load; PYCONVNET_CPU_ISA
// forces a lower one. The rest of the engine is built for the baseline, so the module imports
// and runs on any x86-64 CPU.
//
// Every path computes the same float32 operations in the same order, except the SGEMM micro-
// kernels, which use fused multiply-adds on AVX2 and AVX-512 (one rounding per product-add
// instead of two) and tile C differently. Within a path nothing depends on the thread count.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pcn::cpu {

// The pixels of one LRN tile (SimdKernels::lrn_forward, lrn_backward).
inline constexpr int64_t kLrnTile = 256;

// What SimdKernels::cross_entropy_row reports of one row (softmax_cross_entropy.cpp).
struct CrossEntropyRow {
  int64_t ahead;    // logits ranked ahead of the label's (softmax_cross_entropy.h), uncapped
  float max;        // the row's maximum
  float sum;        // S = sum_i exp(x_i - max)
  float sum_other;  // S_other = the same sum without the label's term
};

// The kernels one path provides. Pointers take raw arrays and a count; threading stays with the
// callers (csrc/cpu/<op>.cpp), which cut the work into fixed chunks.
struct SimdKernels {
  const char* name;  // "avx512", "avx2", "baseline"
  // SGEMM micro-kernel: C (rows x cols, row stride ldc; rows <= mr, cols <= nr) = or += the
  // product of an mr-row panel of A (ap[p*mr + i]) and an nr-column panel of B (bp[p*nr + j]),
  // p = 0..kc-1 in order. The panels are zero beyond rows/cols.
  int64_t mr, nr;
  void (*gemm_micro)(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                     int64_t rows, int64_t cols, bool add);
  // The same with A read in place: element (i, p) of the panel at a[i*lda + p] (a row of A
  // for each of C's rows, those past `rows` not used), for products that read A from memory
  // once (gemm.cpp, sgemm_rows_of_a) and for operands left in place (rows_of_a: a convolution's
  // dy in its filter gradient). Null where a path has none (the others pack A).
  void (*gemm_micro_rows)(int64_t kc, const float* a, int64_t lda, const float* bp, float* c,
                          int64_t ldc, int64_t rows, int64_t cols, bool add);
  // Packs nc columns of op(B) whose first element is at B (op(B) = B, or B's transpose with
  // trans) for kc values of k into nr-column panels: panel q at bp + q*ldp, element (p, j) of
  // it at [p*nr + j], zero beyond column nc. ldp = nr*kc packs a whole block; a run of rows of
  // a deeper block (B at its first row, bp at that row of the first panel) takes the block's.
  void (*pack_b)(bool trans, const float* B, int64_t ldb, int64_t nc, int64_t kc, float* bp,
                 int64_t ldp);
  // Gathers one nr-column panel through two offset tables: bp[p*nr + j] = x[rows[p] + cols[j]]
  // for p < kc, j < cols_n, zero beyond column cols_n. cols has nr entries, and x[rows[p] +
  // cols[j]] must be readable for all of them (only the first cols_n are used).
  void (*pack_gather)(const float* x, const int32_t* rows, int64_t kc, const int32_t* cols,
                      int64_t cols_n, float* bp);
  // dst[p*ldd + j] = src[j*ld + p] for j < rows, p < cols (packs transposed GEMM operands).
  void (*transpose)(const float* src, int64_t ld, int64_t rows, int64_t cols, float* dst,
                    int64_t ldd);
  // y = max(x, 0), NaN kept.
  void (*relu_forward)(const float* x, float* y, int64_t n);
  // dx = y > 0 ? dy : 0.
  void (*relu_backward)(const float* dy, const float* y, float* dx, int64_t n);
  // dst[i] = src[i] for i < n, stored past the caches (non-temporal stores) where dst is
  // aligned to a vector; the caller fences (streaming.h). Null on the baseline path.
  void (*stream_copy)(const float* src, float* dst, int64_t n);
  // Max-pooling of one plane x (h x w) -> y (ho x wo), k x k windows at stride st, with the
  // window's taps (uint8, ho x wo) when taps is not null; and its backward from the taps and dy
  // (all of dx's plane written); the rules are in csrc/ops/max_pool2d.h. Both may read or
  // prefetch (never use) the planes_after planes that follow x's, taps', dy's and dx's.
  void (*max_pool_forward)(const float* x, int64_t h, int64_t w, float* y, uint8_t* taps,
                           int64_t ho, int64_t wo, int64_t k, int64_t st, int64_t planes_after);
  void (*max_pool_backward)(const uint8_t* taps, const float* dy, float* dx, int64_t h,
                            int64_t w, int64_t ho, int64_t wo, int64_t k, int64_t st,
                            int64_t planes_after);
  // Dropout's forward over n elements of one row: element i draws word word0 + i of Philox row
  // `row` of (seed, kStreamDropout), keep[i] = word >= threshold (at most 2^32),
  // y[i] = x[i] * (keep[i] ? scale : 0); csrc/ops/dropout.h.
  void (*dropout_forward)(const float* x, float* y, uint8_t* keep, int64_t n, uint64_t word0,
                          uint32_t row, uint64_t seed, uint64_t threshold, float scale);
  // dx = dy * (keep ? scale : 0).
  void (*dropout_backward)(const float* dy, const uint8_t* keep, float scale, float* dx,
                           int64_t n);
  // One output row of the augmentation: the crop's row of `crop` pixels, interleaved RGB at
  // src and mean, -> row j of planes dst, dst + plane, dst + 2 * plane:
  // (float(src[3 * jj + c]) - mean[3 * jj + c]) + light[c], jj = flip ? crop - 1 - j : j.
  void (*augment_row)(const uint8_t* src, const float* mean, int64_t crop, bool flip,
                      const float* light, float* dst, int64_t plane);
  // v = momentum*v - decay*w - lr*dw; w += v.
  void (*sgd_update)(float* w, const float* dw, float* v, float momentum, float decay, float lr,
                     int64_t n);
  // One row of softmax over c > 0 logits: p = exp(x - max(x)) / sum (softmax_cross_entropy.h).
  void (*softmax_row)(const float* x, float* p, int64_t c);
  // One row of cross-entropy over c > 0 logits, label in [0, c): d_i = p_i * inv_n with p =
  // softmax(x) (the same exp), for every i, and the row's CrossEntropyRow.
  void (*cross_entropy_row)(const float* x, int64_t c, int64_t label, float inv_n, float* d,
                            CrossEntropyRow* row);
  // Local response normalisation of one tile of w <= kLrnTile pixels of a group of cg channels
  // (rows hw floats apart from x, y, dy, dx; the window spans channels i-half..i+half of the
  // group), forward and backward (scratch: 2 * cg * kLrnTile floats); lrn.cpp, csrc/ops/lrn.h.
  void (*lrn_forward)(const float* x, float* y, int64_t hw, int64_t cg, int64_t w, int64_t half,
                      float k, float a, float nbeta);
  void (*lrn_backward)(const float* x, const float* dy, float* dx, int64_t hw, int64_t cg,
                       int64_t w, int64_t half, float k, float a, float nbeta, float coef,
                       float* scratch);
  // The arithmetic-peak probe (peak.h): `steps` rounds of 12 independent multiply-add chains,
  // each one vector (a fused multiply-add on AVX2 and AVX-512, a multiply and an add on the
  // baseline) wide; returns the FLOPs done and writes the chains' sum to *sink.
  int64_t (*fma_chains)(int64_t steps, float* sink);
};

// The active path's kernels (chosen at load; see set_isa).
const SimdKernels& simd();

// Paths this CPU can run, best first ("avx512", "avx2", "baseline", or a subset).
std::vector<std::string> supported_isas();
// The active path's name, and the PYCONVNET_CPU_ISA value that chose it ("" when unset).
std::string active_isa();
std::string isa_from_environment();
// Makes `name` the active path; ValueError naming the supported ones when the CPU cannot run it
// or it is unknown. Returns the previous path's name. Not for use while kernels run.
std::string set_isa(const std::string& name);

// The three tables; null where a path is not compiled in (a non-x86 build).
const SimdKernels* simd_baseline();
const SimdKernels* simd_avx2();
const SimdKernels* simd_avx512();

}  // namespace pcn::cpu
