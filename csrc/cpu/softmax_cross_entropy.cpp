#include "csrc/kernels/softmax_cross_entropy.h"
#include "isa.h"
#include "parallel.h"

#include <cmath>
#include <vector>

namespace pcn::cpu {

namespace {

// A logit costs about as much as kExpWork pointwise element operations (the maximum, an exp, the
// sum and the scaling): what parallel_for_work weighs the rows by.
constexpr int64_t kExpWork = 8;

// Row r + kRowsAhead of the logits is fetched while row r is computed (when there is one), so
// that a batch coming from memory does not wait for it row by row (a row takes about 0.4 us).
// Measured with the inputs rotated through 100 MB (2 threads, min of 15 rounds, a busy machine):
// softmax at (128, 1000) 44 us without, 31-32 us with (one row ahead: 32-35 us); prefetching
// the output rows as well was slower (47-58 us).
constexpr int64_t kRowsAhead = 2;

inline void prefetch_row(const float* in, int64_t r, int64_t rows, int64_t c) {
  if (r + kRowsAhead >= rows) return;
  const char* x = reinterpret_cast<const char*>(in + (r + kRowsAhead) * c);
  for (int64_t b = 0; b < c * static_cast<int64_t>(sizeof(float)); b += 64) {
    __builtin_prefetch(x + b);
  }
}

}  // namespace

// One task per row, run by the active instruction-set path (simd_kernels.h: a vectorised exp,
// the sum in double).
void softmax_forward(const Tensor& x, Tensor& probs, int /*version*/) {
  const int64_t c = x.size(1);
  if (c == 0) return;
  const float* in = x.data<float>();
  float* out = probs.data<float>();
  parallel_for_work(x.size(0), x.numel() * kExpWork, [&](int64_t r) {
    prefetch_row(in, r, x.size(0), c);
    simd().softmax_row(in + r * c, out + r * c, c);
  });
}

// As softmax_forward (the active path's cross_entropy_row: the same exp, the rank count, the
// maximum and the sums vectorised), plus per row: S_other = sum of e_i over i != label, so that
// dlogits[label] = (p_label - 1) / N = -(S_other / S) / N suffers no cancellation when p_label is
// near 1, and loss_n = log S - d (d = x_label - max <= 0), computed as log1p(S_other) when the
// label holds the maximum (d == 0, e_label == 1) so that tiny losses keep their digits.
void cross_entropy(const Tensor& logits, const Tensor& labels, Tensor& dlogits,
                   CrossEntropyStats& stats, int /*version*/) {
  const int64_t n = logits.size(0), c = logits.size(1);
  const int32_t* lab = labels.data<int32_t>();
  for (int64_t r = 0; r < n; ++r) {
    if (lab[r] < 0 || lab[r] >= c) {
      stats.bad_row = r;
      stats.bad_label = lab[r];
      return;
    }
  }
  const float* in = logits.data<float>();
  float* out = dlogits.data<float>();
  const float inv_n = 1.0f / static_cast<float>(n);
  std::vector<float> row_loss(n);
  std::vector<int64_t> rank(n);
  const SimdKernels& kern = simd();
  parallel_for_work(n, logits.numel() * kExpWork, [&](int64_t r) {
    const float* xr = in + r * c;
    float* dr = out + r * c;
    const int32_t label = lab[r];
    prefetch_row(in, r, n, c);
    CrossEntropyRow row;
    kern.cross_entropy_row(xr, c, label, inv_n, dr, &row);
    rank[r] = row.ahead;
    dr[label] = -(row.sum_other / row.sum) * inv_n;
    const float d = xr[label] - row.max;
    row_loss[r] = d == 0.0f ? std::log1p(row.sum_other) : std::log(row.sum) - d;
  });
  double total = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    total += row_loss[r];
    stats.top1_hits += rank[r] < 1;
    stats.top5_hits += rank[r] < kTopK;
  }
  stats.loss_sum = total;
}

void cross_entropy_start(const Tensor& logits, const Tensor& labels, Tensor& dlogits,
                         CrossEntropyPending& pending, int version) {
  pending.rows = logits.size(0);
  cross_entropy(logits, labels, dlogits, pending.stats, version);
}

void cross_entropy_finish(CrossEntropyPending&) {}

}  // namespace pcn::cpu
