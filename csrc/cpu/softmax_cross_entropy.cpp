#include "csrc/kernels/softmax_cross_entropy.h"
#include "isa.h"
#include "parallel.h"

#include <cmath>
#include <vector>

namespace pcn::cpu {

namespace {

// The row maximum; NaN if the row holds one (std::max would drop it).
inline float row_max(const float* x, int64_t c) {
  float m = x[0];
  for (int64_t i = 1; i < c; ++i)
    if (x[i] > m || std::isnan(x[i])) m = x[i];
  return m;
}

// How many logits of the row rank ahead of the label's (the rule: csrc/kernels/
// softmax_cross_entropy.h), counted up to kTopK.
inline int label_rank(const float* x, int64_t c, int32_t label) {
  const float xl = x[label];
  const bool nan_label = std::isnan(xl);
  int rank = 0;
  for (int64_t i = 0; i < c && rank < kTopK; ++i) {
    if (i == label) continue;
    rank += nan_label ? (!std::isnan(x[i]) || i < label) : (x[i] > xl || (x[i] == xl && i < label));
  }
  return rank;
}

// A logit costs about as much as kExpWork pointwise element operations (an exp, a division, the
// maximum and the sum): what parallel_for_work weighs the rows by.
constexpr int64_t kExpWork = 8;

}  // namespace

// One task per row, run by the active instruction-set path (simd_kernels.h: a vectorised exp,
// the sum in double).
void softmax_forward(const Tensor& x, Tensor& probs, int /*version*/) {
  const int64_t c = x.size(1);
  if (c == 0) return;
  const float* in = x.data<float>();
  float* out = probs.data<float>();
  parallel_for_work(x.size(0), x.numel() * kExpWork,
                    [&](int64_t n) { simd().softmax_row(in + n * c, out + n * c, c); });
}

// As softmax_forward, plus per row: S_other = sum of e_i over i != label, so that
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
  std::vector<int> rank(n);
  parallel_for_work(n, logits.numel() * kExpWork, [&](int64_t r) {
    const float* xr = in + r * c;
    float* dr = out + r * c;
    const int32_t label = lab[r];
    rank[r] = label_rank(xr, c, label);
    const float m = row_max(xr, c);
    double sum = 0.0, other = 0.0;
    for (int64_t i = 0; i < c; ++i) {
      dr[i] = std::exp(xr[i] - m);
      sum += dr[i];
      other += i == label ? 0.0f : dr[i];
    }
    const float s = static_cast<float>(sum), s_other = static_cast<float>(other);
    for (int64_t i = 0; i < c; ++i) dr[i] = dr[i] / s * inv_n;
    dr[label] = -(s_other / s) * inv_n;
    const float d = xr[label] - m;
    row_loss[r] = d == 0.0f ? std::log1p(s_other) : std::log(s) - d;
  });
  double total = 0.0;
  for (int64_t r = 0; r < n; ++r) {
    total += row_loss[r];
    stats.top1_hits += rank[r] < 1;
    stats.top5_hits += rank[r] < 5;
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
