// The simulator's twins of the inline-PTX functions of cuda/ptx.cuh, written from the PTX ISA's
// definitions: what each instruction computes, not how a GPU schedules it. Included at the end
// of pcn_sim_device.h (the thread indices and warp_gather come from there).
#pragma once
#include <cstdint>
#include <cstring>

namespace pcn_sim {

// cvt.rna.tf32.f32: round to the nearest value with a 10-bit mantissa, ties away from zero.
// On the magnitude's bits that is "add half of the dropped 13 bits' unit, then clear them"
// (a carry into the exponent is the correct rounding up; past the largest finite value it
// gives the infinity); subnormals round the same way (no flush to zero). Infinity and NaN are
// not rounded, only their 13 low bits cleared: a NaN whose payload lies only there becomes an
// infinity. That is the instruction as ptxas 13.0 compiles it for sm_90 (FSETP.GEU |x|, +INF;
// IADD 0x1000 unless; LOP3 & 0xffffe000: benchmarks/results/2026-12-01-sass-sm90-tc.txt).
__forceinline__ float tf32_round(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  if ((u & 0x7f800000u) != 0x7f800000u) u += 0x1000u;
  u &= 0xffffe000u;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// mov.b64 of a pointer (cuda/ptx.cuh's opaque_pointer): the pointer itself.
__forceinline__ const float* opaque_pointer(const float* p) { return p; }

// The TF32 value a tensor core reads from a register: its sign, exponent and the 10 high
// mantissa bits (the low 13 ignored). Our reading of the ISA, which requires .tf32 operands
// and leaves other bit patterns' treatment to the implementation; the engine only passes values
// from tf32_round, for which this is the identity.
__forceinline__ float tf32_operand(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  u &= 0xffffe000u;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 for the calling lane: acc += A B over the
// warp's fragments (layouts in cuda/ptx.cuh). The lanes exchange their fragments through
// warp_gather, a scheduling point like a shuffle: synccheck reports a lane that is missing, has
// exited or waits at another instruction. Each output is acc + sum over k = 0..7 of
// A[row][k] * B[k][col], the products exact (two 11-bit significands fit FP32's 24), summed in
// FP32 in increasing k; a GPU's tensor core sums in its own order and internal precision, so
// the two may differ in the last bits of the FP32 accumulation.
__forceinline__ void mma_m16n8k8_tf32(float (&acc)[4], const float (&a)[4], const float (&b)[2],
                                      const char* file = __builtin_FILE(),
                                      int line = __builtin_LINE()) {
  struct Fragments {
    float a[4], b[2];
  };
  const Fragments mine{{tf32_operand(a[0]), tf32_operand(a[1]), tf32_operand(a[2]),
                        tf32_operand(a[3])},
                       {tf32_operand(b[0]), tf32_operand(b[1])}};
  const auto* all = static_cast<const Fragments*>(
      warp_gather(Sync::kMma, 0xffffffffu, &mine, sizeof mine, file, line));
  const unsigned lane = (threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)) % 32;
  const int group = static_cast<int>(lane >> 2), tig = static_cast<int>(lane % 4);
  // Who holds what (the inverse of the layouts): A[r][k] is register (r >= 8) + 2 * (k >= 4)
  // of lane 4 * (r % 8) + k % 4; B[k][n] is register (k >= 4) of lane 4 * n + k % 4.
  auto A = [&](int r, int k) { return all[4 * (r % 8) + k % 4].a[(r >= 8) + 2 * (k >= 4)]; };
  auto B = [&](int k, int n) { return all[4 * n + k % 4].b[k >= 4]; };
  for (int i = 0; i < 4; ++i) {
    const int row = group + 8 * (i >= 2), col = 2 * tig + (i & 1);
    float sum = acc[i];
    for (int k = 0; k < 8; ++k) sum += A(row, k) * B(k, col);
    acc[i] = sum;
  }
}

}  // namespace pcn_sim
