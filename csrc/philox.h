// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): a
// counter-based generator. philox4x32(counter, key) is a pure function, so any element of a
// random stream can be computed independently, in any order, on any device: the CPU and CUDA
// kernels that draw from it (dropout masks, and the per-image draws of the augmentation) get
// bit-identical numbers for the same seed. Checked against the Random123 known-answer vectors in
// tests/test_philox.py.
#pragma once
#include <cstdint>

// Internal linkage (static): every file gets its own copy, compiled with its own flags. The CPU
// kernels' instruction-set files (csrc/cpu/simd_*.cpp, one built with AVX-512) call these too, and
// an inline function with external linkage would let the linker keep any one file's copy for all.
#ifdef __CUDACC__
#define PCN_HD static __host__ __device__ __forceinline__
#else
#define PCN_HD static inline
#endif

namespace pcn {

struct Philox4 {
  uint32_t v[4];
};

PCN_HD void philox_mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// Counter (c0..c3), key (k0, k1) -> four independent uniformly distributed 32-bit words.
PCN_HD Philox4 philox4x32(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                          uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    philox_mulhilo(0xD2511F53u, c0, hi0, lo0);
    philox_mulhilo(0xCD9E8D57u, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// The 32-bit word number `index` of the stream keyed by `seed` (64 bits) and `stream` (a
// purpose tag, so different uses of one seed never share numbers). Word i is word i % 4 of
// block i / 4.
PCN_HD uint32_t philox_word(uint64_t seed, uint32_t stream, uint64_t index) {
  const uint64_t block = index >> 2;
  const Philox4 r = philox4x32(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                               stream, 0u, static_cast<uint32_t>(seed),
                               static_cast<uint32_t>(seed >> 32));
  return r.v[index & 3];
}

// Word `index` of row `row` of the stream: the words of row r come from the blocks with counter
// word c3 = r, so row 0 is philox_word's stream and every row has 2^64 words of its own.
PCN_HD uint32_t philox_row_word(uint64_t seed, uint32_t stream, uint32_t row, uint64_t index) {
  const uint64_t block = index >> 2;
  const Philox4 r = philox4x32(static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                               stream, row, static_cast<uint32_t>(seed),
                               static_cast<uint32_t>(seed >> 32));
  return r.v[index & 3];
}

// Stream tags: one per use of the generator.
enum PhiloxStream : uint32_t {
  kStreamDropout = 1,
  kStreamAugment = 2,
  kStreamShuffle = 3,
  kStreamSplit = 4,  // the seeded train/val split of pyconvnet.prepare
};

}  // namespace pcn
