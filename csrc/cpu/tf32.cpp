// The CPU twins of the tensor-core check ops (csrc/kernels/tf32.h): the PTX ISA's definitions.
#include <cstdint>
#include <cstring>

#include "csrc/kernels/tf32.h"

namespace pcn::cpu {

namespace {

uint32_t bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
float from_bits(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

// Round to nearest with a 10-bit mantissa, ties away from zero: half of the 13 dropped bits'
// unit added to the magnitude of a finite value, those bits cleared (of infinity and NaN too).
float round_tf32(float x) {
  const uint32_t u = bits(x);
  return from_bits(((u & 0x7f800000u) == 0x7f800000u ? u : u + 0x1000u) & 0xffffe000u);
}

}  // namespace

void tf32_round(const Tensor& x, Tensor& y) {
  const float* in = x.data<float>();
  float* out = y.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) out[i] = round_tf32(in[i]);
}

// A tensor core reads an operand's sign, exponent and 10 high mantissa bits; the products of two
// such values are exact in FP32, summed in increasing k.
void mma_m16n8k8_tf32(const Tensor& a, const Tensor& b, const Tensor& c, Tensor& d) {
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  const float* pc = c.data<float>();
  float* pd = d.data<float>();
  for (int64_t t = 0; t < a.size(0); ++t, pa += 128, pb += 64, pc += 128, pd += 128) {
    for (int m = 0; m < 16; ++m) {
      for (int n = 0; n < 8; ++n) {
        float sum = pc[m * 8 + n];
        for (int k = 0; k < 8; ++k) {
          sum += from_bits(bits(pa[m * 8 + k]) & 0xffffe000u) *
                 from_bits(bits(pb[k * 8 + n]) & 0xffffe000u);
        }
        pd[m * 8 + n] = sum;
      }
    }
  }
}

}  // namespace pcn::cpu
