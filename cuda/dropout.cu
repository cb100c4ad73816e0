// Inverted dropout, forward and backward; csrc/ops/dropout.h has the rule. x, y, dy, dx: n
// float32, rows of p.row_len; mask: n uint8 (1 = kept). Element j of row r is kept iff word
// offset + j of Philox row first_row + r of (seed, kStreamDropout) >= threshold, the same integer
// test as the CPU kernel, so both draw the identical mask.
//   version 1: one element per thread; one philox4x32 call per element (3 of its 4 words unused).
//   version 2: four elements of a row per thread: one philox4x32 call gives the words 4q .. 4q+3
//              of the row, so a quarter of the generator's arithmetic.
// A slice of a wider tensor's features (p.offset != 0) reads words offset .. offset + row_len of
// each row: version 2 walks the blocks those words fall in, the first and last possibly partial.
#include "csrc/kernels/dropout.h"
#include "csrc/philox.h"
#include "grid_stride.cuh"

namespace pcn::cuda {

namespace {

// Layout: flat arrays of n, rows of p.row_len. Thread mapping: grid-stride over elements; element
// i = r * row_len + j draws word offset + j of row first_row + r.
__global__ void dropout_forward_kernel1(const float* __restrict__ x, float* __restrict__ y,
                                        uint8_t* __restrict__ mask, long long n,
                                        DropoutParams p) {
  for (long long i = global_thread(); i < n; i += grid_threads()) {
    const long long r = i / p.row_len, j = i - r * p.row_len;
    const bool kept = dropout_word(p, r, j) >= p.threshold;
    mask[i] = kept;
    y[i] = x[i] * (kept ? p.scale : 0.0f);  // x * 0 keeps a NaN a NaN
  }
}

// Layout: flat arrays of n, rows of p.row_len. Thread mapping: grid-stride over the Philox blocks
// that words offset .. offset + row_len - 1 of each row fall in (blocks_per_row of them); block q
// of the row handles words 4q .. 4q + 3, word w being element w - offset of x's row (those in
// [0, row_len)).
__global__ void dropout_forward_kernel2(const float* __restrict__ x, float* __restrict__ y,
                                        uint8_t* __restrict__ mask, long long rows,
                                        long long blocks_per_row, DropoutParams p) {
  const long long first_block = p.offset / 4, blocks = rows * blocks_per_row;
  for (long long b = global_thread(); b < blocks; b += grid_threads()) {
    const long long r = b / blocks_per_row, q = first_block + (b - r * blocks_per_row);
    const uint64_t block = static_cast<uint64_t>(q);
    const Philox4 w = philox4x32(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                                 kStreamDropout, p.first_row + static_cast<uint32_t>(r),
                                 static_cast<uint32_t>(p.seed), static_cast<uint32_t>(p.seed >> 32));
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const long long j = 4 * q + e - p.offset, i = r * p.row_len + j;
      if (j >= 0 && j < p.row_len) {
        const bool kept = w.v[e] >= p.threshold;
        mask[i] = kept;
        y[i] = x[i] * (kept ? p.scale : 0.0f);
      }
    }
  }
}

// Layout: flat arrays of n. Thread mapping: grid-stride over elements; dx = dy * scale where the
// mask is nonzero, dy * 0 (NaN stays NaN) elsewhere.
__global__ void dropout_backward_kernel1(const float* __restrict__ dy,
                                         const uint8_t* __restrict__ mask,
                                         float* __restrict__ dx, long long n, float scale) {
  for (long long i = global_thread(); i < n; i += grid_threads()) {
    dx[i] = dy[i] * (mask[i] ? scale : 0.0f);
  }
}

constexpr int kThreads = 256;

}  // namespace

void dropout_forward(const Tensor& x, Tensor& y, Tensor& mask, const DropoutParams& p,
                     int version) {
  const long long n = x.numel();
  if (n == 0) return;
  cudaStream_t s = stream(x.device().index);
  if (version == 1) {
    PCN_LAUNCH(dropout_forward_kernel1, grid_stride_blocks(n, kThreads), kThreads, 0, s,
               x.data<float>(), y.data<float>(), mask.data<uint8_t>(), n, p);
  } else {
    const long long rows = n / p.row_len;
    const long long per_row = (p.offset + p.row_len + 3) / 4 - p.offset / 4;
    PCN_LAUNCH(dropout_forward_kernel2, grid_stride_blocks(rows * per_row, kThreads), kThreads, 0,
               s, x.data<float>(), y.data<float>(), mask.data<uint8_t>(), rows, per_row, p);
  }
}

void dropout_backward(const Tensor& dy, const Tensor& mask, Tensor& dx, const DropoutParams& p,
                      int /*version*/) {
  const long long n = dy.numel();
  PCN_LAUNCH(dropout_backward_kernel1, grid_stride_blocks(n, kThreads), kThreads, 0,
             stream(dy.device().index), dy.data<float>(), mask.data<uint8_t>(), dx.data<float>(),
             n, p.scale);
}

}  // namespace pcn::cuda
