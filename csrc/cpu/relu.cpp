#include "csrc/kernels/relu.h"
#include "isa.h"
#include "parallel.h"
#include "streaming.h"

namespace pcn::cpu {

// Chunks of about 16K elements, as many per thread (parallel_chunks), each vectorised by the
// active instruction-set path (simd_kernels.h). The forward writes its output past the caches
// when x and y are larger than the last-level cache (streaming.h). Measured on a 2-core Zen 4
// (32 MiB L3; inputs cycled through copies, alternated in one process): conv1's output at batch
// 16 (18.6 MB) 1.03-1.09 -> 0.79-0.82 ms. conv2's (12 MB) gains as much when made to stream
// (0.67-0.71 -> 0.52-0.61 ms), but x and y fit in the cache together then, and the next op
// would have to read y back from memory. The backward (dy and y read, dx written) keeps
// ordinary stores: streamed, those two sizes took 10-17% longer (1.49-1.58 -> 1.63-1.86 ms,
// 1.03-1.15 -> 1.19-1.28 ms).

void relu_forward(const Tensor& x, Tensor& y) {
  const float* in = x.data<float>();
  float* out = y.data<float>();
  const bool stream = stream_outputs(2 * x.numel() * int64_t{sizeof(float)});
  parallel_chunks(x.numel(), [&](int64_t begin, int64_t end) {
    write_outputs(out + begin, end - begin, stream, [&](int64_t i0, int64_t m, float* o) {
      simd().relu_forward(in + begin + i0, o, m);
    });
  });
}

void relu_backward(const Tensor& dy, const Tensor& y, Tensor& dx) {
  const float* g = dy.data<float>();
  const float* out = y.data<float>();
  float* d = dx.data<float>();
  parallel_chunks(y.numel(), [&](int64_t begin, int64_t end) {
    simd().relu_backward(g + begin, out + begin, d + begin, end - begin);
  });
}

}  // namespace pcn::cpu
