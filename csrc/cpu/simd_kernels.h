// The pointwise kernels of every instruction-set path (isa.h), written as plain loops for the
// compiler to vectorise with the flags of the including file: simd_baseline.cpp, simd_avx2.cpp
// and simd_avx512.cpp each include this header once, inside their own namespace, so each gets
// its own copy with internal linkage (no inline function of one path can stand in for
// another's at link time). Those files are compiled with -ffp-contract=off: every path rounds
// the same operations in the same order, so the pointwise results are bit-identical across paths.
// Only <cstdint>, <cmath>, <immintrin.h> and csrc/philox.h (whose functions have internal
// linkage too), included by those files first, may be used here.

// Inputs and outputs never overlap (the ops allocate their outputs), hence __restrict.
static void relu_forward(const float* __restrict x, float* __restrict y, int64_t n) {
  // NaN stays NaN: (v > 0 ? v : 0) would turn it into 0, so compare the other way round.
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] < 0.0f ? 0.0f : x[i];
}

static void relu_backward(const float* __restrict dy, const float* __restrict y,
                          float* __restrict dx, int64_t n) {
  // Both loads unconditional, so the select becomes a vector blend.
  for (int64_t i = 0; i < n; ++i) {
    const float g = dy[i];
    dx[i] = y[i] > 0.0f ? g : 0.0f;
  }
}

// Non-temporal stores of whole aligned vectors, plain stores for the ends (streaming.h).
#if defined(__AVX512F__) || defined(__AVX2__)
static void stream_copy(const float* __restrict src, float* __restrict dst, int64_t n) {
#if defined(__AVX512F__)
  constexpr int64_t kLanes = 16;
#else
  constexpr int64_t kLanes = 8;
#endif
  int64_t i = 0;
  for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & (kLanes * 4 - 1)) != 0; ++i) {
    dst[i] = src[i];
  }
  for (; i + kLanes <= n; i += kLanes) {
#if defined(__AVX512F__)
    _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
#else
    _mm256_stream_ps(dst + i, _mm256_loadu_ps(src + i));
#endif
  }
  for (; i < n; ++i) dst[i] = src[i];
}
#define PCN_STREAM_COPY stream_copy
#else
#define PCN_STREAM_COPY nullptr
#endif

static void dropout_backward(const float* __restrict dy, const uint8_t* __restrict keep,
                             float scale, float* __restrict dx, int64_t n) {
  // dy * 0 keeps a NaN in dy a NaN, as the forward does.
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (keep[i] != 0 ? scale : 0.0f);
}

// Dropout's forward (the rule: csrc/ops/dropout.h) over n elements of one row of x: element i
// draws word word0 + i of Philox row `row` of the stream (seed, kStreamDropout), is kept when that
// word >= threshold (a 64-bit integer up to 2^32, which keeps none), and becomes
// x * (kept ? scale : 0) (a NaN stays NaN). The words come four at a time, one philox4x32 block
// (csrc/philox.h): word w is word w % 4 of block w / 4. The AVX2 and AVX-512 paths run the
// generator's ten rounds on 8 or 16 blocks at once, one in each 32-bit lane of four registers,
// with the 32 x 32 -> 64-bit products' high halves from vpmuludq on the even and the odd lanes
// (and their low halves from vpmulld). They are integer operations: every path draws the same
// words, so the masks and outputs are the same bits. Blocks go into the lanes so that the usual
// 4 x 4 transposes within 128-bit lanes leave each register holding consecutive words. On a
// 2-core Zen 5, one thread, fc6's output at batch 16 (16 x 4096), fastest of 50 calls: 0.436 ms
// before (one block at a time on every path), now 0.024 ms on AVX-512, 0.059 on AVX2, 0.395 on
// the baseline.
static void dropout_forward_scalar(const float* __restrict x, float* __restrict y,
                                   uint8_t* __restrict keep, int64_t n, uint64_t word0,
                                   uint32_t row, uint64_t seed, uint64_t threshold,
                                   float scale) {
  for (int64_t i = 0; i < n;) {
    const uint64_t block = (word0 + static_cast<uint64_t>(i)) >> 2;
    const ::pcn::Philox4 r = ::pcn::philox4x32(
        static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), ::pcn::kStreamDropout,
        row, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
    for (uint64_t lane = (word0 + static_cast<uint64_t>(i)) & 3; lane < 4 && i < n; ++lane, ++i) {
      const bool kept = r.v[lane] >= threshold;
      keep[i] = kept;
      y[i] = x[i] * (kept ? scale : 0.0f);
    }
  }
}

#if defined(__AVX512F__)
static constexpr int64_t kPhiloxLanes = 16;
using PhiloxReg = __m512i;
static inline PhiloxReg philox_mulhi(PhiloxReg a, PhiloxReg m) {
  const __m512i even = _mm512_mul_epu32(a, m), odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
  return _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}
static inline PhiloxReg philox_mullo(PhiloxReg a, PhiloxReg m) { return _mm512_mullo_epi32(a, m); }
static inline PhiloxReg philox_xor3(PhiloxReg a, PhiloxReg b, PhiloxReg c) {
  return _mm512_ternarylogic_epi32(a, b, c, 0x96);
}
static inline PhiloxReg philox_set1(uint32_t v) { return _mm512_set1_epi32(static_cast<int>(v)); }
// Lane l holds block 4 * (l % 4) + l / 4 of the 16.
static inline PhiloxReg philox_lane_blocks(uint32_t first) {
  return _mm512_add_epi32(philox_set1(first), _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6,
                                                                10, 14, 3, 7, 11, 15));
}
#define PCN_PHILOX_OP(name) _mm512_##name
#elif defined(__AVX2__)
static constexpr int64_t kPhiloxLanes = 8;
using PhiloxReg = __m256i;
static inline PhiloxReg philox_mulhi(PhiloxReg a, PhiloxReg m) {
  const __m256i even = _mm256_mul_epu32(a, m), odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  return _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}
static inline PhiloxReg philox_mullo(PhiloxReg a, PhiloxReg m) { return _mm256_mullo_epi32(a, m); }
static inline PhiloxReg philox_xor3(PhiloxReg a, PhiloxReg b, PhiloxReg c) {
  return _mm256_xor_si256(_mm256_xor_si256(a, b), c);
}
static inline PhiloxReg philox_set1(uint32_t v) { return _mm256_set1_epi32(static_cast<int>(v)); }
// Lane l holds block 2 * (l % 4) + l / 4 of the 8.
static inline PhiloxReg philox_lane_blocks(uint32_t first) {
  return _mm256_add_epi32(philox_set1(first), _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
}
#define PCN_PHILOX_OP(name) _mm256_##name
#endif

#ifdef PCN_PHILOX_OP
// The 4 * kPhiloxLanes words of the kPhiloxLanes blocks from `block` on (its low word at most
// 2^32 - kPhiloxLanes, so that no lane's low counter word wraps): w[j] holds the words
// j * kPhiloxLanes .. (j + 1) * kPhiloxLanes - 1, in order.
static inline void philox_blocks(uint64_t block, uint32_t c2, uint32_t c3, uint64_t key,
                                 PhiloxReg w[4]) {
  PhiloxReg a = philox_lane_blocks(static_cast<uint32_t>(block));
  PhiloxReg b = philox_set1(static_cast<uint32_t>(block >> 32)), c = philox_set1(c2);
  PhiloxReg d = philox_set1(c3);
  const PhiloxReg m0 = philox_set1(0xD2511F53u), m1 = philox_set1(0xCD9E8D57u);
  uint32_t k0 = static_cast<uint32_t>(key), k1 = static_cast<uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {  // the rounds of philox4x32, lane by lane
    const PhiloxReg hi0 = philox_mulhi(a, m0), lo0 = philox_mullo(a, m0);
    const PhiloxReg hi1 = philox_mulhi(c, m1), lo1 = philox_mullo(c, m1);
    a = philox_xor3(hi1, b, philox_set1(k0));
    c = philox_xor3(hi0, d, philox_set1(k1));
    b = lo1;
    d = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  // Within each 128-bit lane, the 4 x 4 transpose of (a, b, c, d): lane j of it then holds the
  // four words of the block in lane 4k + j, which philox_lane_blocks made block
  // (kPhiloxLanes / 4) * j + k: register j holds blocks j * kPhiloxLanes / 4 on, in order.
  const PhiloxReg ab_lo = PCN_PHILOX_OP(unpacklo_epi32)(a, b);
  const PhiloxReg ab_hi = PCN_PHILOX_OP(unpackhi_epi32)(a, b);
  const PhiloxReg cd_lo = PCN_PHILOX_OP(unpacklo_epi32)(c, d);
  const PhiloxReg cd_hi = PCN_PHILOX_OP(unpackhi_epi32)(c, d);
  w[0] = PCN_PHILOX_OP(unpacklo_epi64)(ab_lo, cd_lo);
  w[1] = PCN_PHILOX_OP(unpackhi_epi64)(ab_lo, cd_lo);
  w[2] = PCN_PHILOX_OP(unpacklo_epi64)(ab_hi, cd_hi);
  w[3] = PCN_PHILOX_OP(unpackhi_epi64)(ab_hi, cd_hi);
}
#undef PCN_PHILOX_OP
#endif

static void dropout_forward(const float* __restrict x, float* __restrict y,
                            uint8_t* __restrict keep, int64_t n, uint64_t word0, uint32_t row,
                            uint64_t seed, uint64_t threshold, float scale) {
  int64_t i = 0;
#ifdef __AVX2__
  if (threshold <= 0xFFFFFFFFu) {
    constexpr int64_t kWords = 4 * kPhiloxLanes;
    // Up to the first whole block scalar, then kWords words at a time.
    i = static_cast<int64_t>(-word0 & 3);
    if (i > n) i = n;
    dropout_forward_scalar(x, y, keep, i, word0, row, seed, threshold, scale);
    for (; i + kWords <= n; i += kWords) {
      const uint64_t block = (word0 + static_cast<uint64_t>(i)) >> 2;
      if (static_cast<uint32_t>(block) > 0xFFFFFFFFu - (kPhiloxLanes - 1)) {  // a low word wraps
        dropout_forward_scalar(x + i, y + i, keep + i, kWords, word0 + i, row, seed, threshold,
                               scale);
        continue;
      }
      PhiloxReg w[4];
      philox_blocks(block, ::pcn::kStreamDropout, row, seed, w);
#if defined(__AVX512F__)
      const __m512i t = _mm512_set1_epi32(static_cast<int>(threshold));
      const __m512 s = _mm512_set1_ps(scale);
      for (int j = 0; j < 4; ++j) {
        const __mmask16 k = _mm512_cmpge_epu32_mask(w[j], t);
        const int64_t e = i + 16 * j;
        _mm512_storeu_ps(y + e, _mm512_mul_ps(_mm512_loadu_ps(x + e), _mm512_maskz_mov_ps(k, s)));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(keep + e), _mm_maskz_set1_epi8(k, 1));
      }
#else
      const __m256i t = _mm256_set1_epi32(static_cast<int>(threshold));
      const __m256 s = _mm256_set1_ps(scale);
      for (int j = 0; j < 4; ++j) {
        // w >= t, unsigned: max(w, t) == w.
        const __m256i k = _mm256_cmpeq_epi32(_mm256_max_epu32(w[j], t), w[j]);
        const int64_t e = i + 8 * j;
        _mm256_storeu_ps(y + e, _mm256_mul_ps(_mm256_loadu_ps(x + e),
                                              _mm256_and_ps(_mm256_castsi256_ps(k), s)));
        const __m256i one = _mm256_and_si256(k, _mm256_set1_epi32(1));
        const __m128i halves = _mm_packus_epi32(_mm256_castsi256_si128(one),
                                                _mm256_extracti128_si256(one, 1));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(keep + e), _mm_packus_epi16(halves, halves));
      }
#endif
    }
  }
#endif
  dropout_forward_scalar(x + i, y + i, keep + i, n - i, word0 + i, row, seed, threshold, scale);
}

// One output row of the augmentation (csrc/ops/augment.h): the crop's row of `crop` pixels,
// interleaved RGB at src (uint8) and mean (float), becomes row j of the three planes at dst,
// dst + plane and dst + 2 * plane: (float(src[3 * jj + c]) - mean[3 * jj + c]) + light[c], with
// jj = flip ? crop - 1 - j : j. The AVX2 and AVX-512 paths take 8 or 16 pixels at a time: three
// registers of interleaved values, split into channels by two blends and a permutation each
// (3 is prime to the lane count, so the pixels' values of one channel fall into distinct
// lanes), reversed by a permutation when flipped. The same subtraction and addition on every
// path: the same bits. On a 2-core Zen 5, one thread, 16 crops of 224 from 256 x 256 images,
// fastest of 100 calls: 0.59-0.81 ms before (a row's values centred into a buffer, then copied
// out a channel at a time, on the baseline), now 0.26-0.33 ms on AVX-512, 0.36-0.49 on AVX2.
static void augment_row_scalar(const uint8_t* __restrict src, const float* __restrict mean,
                               int64_t j0, int64_t j1, int64_t crop, bool flip,
                               const float* __restrict light, float* __restrict dst,
                               int64_t plane) {
  for (int64_t c = 0; c < 3; ++c) {
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t e = 3 * (flip ? crop - 1 - j : j) + c;
      dst[c * plane + j] = (static_cast<float>(src[e]) - mean[e]) + light[c];
    }
  }
}

static void augment_row(const uint8_t* __restrict src, const float* __restrict mean,
                        int64_t crop, bool flip, const float* __restrict light,
                        float* __restrict dst, int64_t plane) {
  int64_t j = 0;
#if defined(__AVX512F__)
  // Channel c of pixel q is value 3q + c, lane (3q + c) % 16 of register (3q + c) / 16.
  const __m512i lane_of[3] = {
      _mm512_setr_epi32(0, 3, 6, 9, 12, 15, 2, 5, 8, 11, 14, 1, 4, 7, 10, 13),
      _mm512_setr_epi32(1, 4, 7, 10, 13, 0, 3, 6, 9, 12, 15, 2, 5, 8, 11, 14),
      _mm512_setr_epi32(2, 5, 8, 11, 14, 1, 4, 7, 10, 13, 0, 3, 6, 9, 12, 15)};
  // Lanes of channel c taken from the second and the third register.
  constexpr __mmask16 from1[3] = {0x4924, 0x9249, 0x2492}, from2[3] = {0x2492, 0x4924, 0x9249};
  const __m512i reverse = _mm512_setr_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  for (; j + 16 <= crop; j += 16) {
    const int64_t q = flip ? crop - 16 - j : j;  // the first of the 16 source pixels
    __m512 t[3];
    for (int r = 0; r < 3; ++r) {
      const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 3 * q + 16 * r));
      t[r] = _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes)),
                           _mm512_loadu_ps(mean + 3 * q + 16 * r));
    }
    for (int c = 0; c < 3; ++c) {
      const __m512 mixed = _mm512_mask_blend_ps(from2[c], _mm512_mask_blend_ps(from1[c], t[0], t[1]), t[2]);
      __m512 v = _mm512_permutexvar_ps(lane_of[c], mixed);
      if (flip) v = _mm512_permutexvar_ps(reverse, v);
      _mm512_storeu_ps(dst + c * plane + j, _mm512_add_ps(v, _mm512_set1_ps(light[c])));
    }
  }
#elif defined(__AVX2__)
  const __m256i lane_of[3] = {_mm256_setr_epi32(0, 3, 6, 1, 4, 7, 2, 5),
                              _mm256_setr_epi32(1, 4, 7, 2, 5, 0, 3, 6),
                              _mm256_setr_epi32(2, 5, 0, 3, 6, 1, 4, 7)};
  const __m256i reverse = _mm256_setr_epi32(7, 6, 5, 4, 3, 2, 1, 0);
  for (; j + 8 <= crop; j += 8) {
    const int64_t q = flip ? crop - 8 - j : j;
    __m256 t[3];
    for (int r = 0; r < 3; ++r) {
      const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src + 3 * q + 8 * r));
      t[r] = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)),
                           _mm256_loadu_ps(mean + 3 * q + 8 * r));
    }
    // _mm256_blend_ps takes an immediate: the three channels' masks spelled out.
    const __m256 mixed[3] = {
        _mm256_blend_ps(_mm256_blend_ps(t[0], t[1], 0x92), t[2], 0x24),
        _mm256_blend_ps(_mm256_blend_ps(t[0], t[1], 0x24), t[2], 0x49),
        _mm256_blend_ps(_mm256_blend_ps(t[0], t[1], 0x49), t[2], 0x92)};
    for (int c = 0; c < 3; ++c) {
      __m256 v = _mm256_permutevar8x32_ps(mixed[c], lane_of[c]);
      if (flip) v = _mm256_permutevar8x32_ps(v, reverse);
      _mm256_storeu_ps(dst + c * plane + j, _mm256_add_ps(v, _mm256_set1_ps(light[c])));
    }
  }
#endif
  augment_row_scalar(src, mean, j, crop, crop, flip, light, dst, plane);
}

static void sgd_update(float* __restrict w, const float* __restrict dw, float* __restrict v,
                       float momentum, float decay, float lr, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float vi = momentum * v[i] - decay * w[i] - lr * dw[i];
    v[i] = vi;
    w[i] += vi;
  }
}

// Local response normalisation (the maths: csrc/ops/lrn.h) over one tile of w <= kLrnTile
// (isa.h) pixels of a group of cg channels, channel rows hw floats apart from x (lrn.cpp cuts
// the work so). s_i = k + a * (the sum of x_j^2 over the window, in ascending channel order, as
// the CUDA kernels add it).

static constexpr int64_t kLrnLanes = 16;  // pixels summed at once, in registers

// s[0..w) = k + a * (the sum of x_j^2 over the window lo..hi, in ascending channel order),
// kLrnLanes pixels at a time, their sums in registers across the window's channels. Summing
// into s in memory (a load and a store of s more a term) took a third of the forward's time;
// so did making each row's squares once into a ring of rows, summed from there (1.9x against
// 2.1x faster than powf's version, one thread).
static void lrn_window(const float* __restrict x, int64_t hw, int64_t lo, int64_t hi, int64_t w,
                       float k, float a, float* __restrict s) {
  int64_t p0 = 0;
  for (; p0 + kLrnLanes <= w; p0 += kLrnLanes) {
    float acc[kLrnLanes] = {};
    for (int64_t j = lo; j <= hi; ++j) {
      const float* xj = x + j * hw + p0;
      for (int l = 0; l < kLrnLanes; ++l) acc[l] += xj[l] * xj[l];
    }
    for (int l = 0; l < kLrnLanes; ++l) s[p0 + l] = k + a * acc[l];
  }
  for (int64_t p = p0; p < w; ++p) {
    float acc = 0.0f;
    for (int64_t j = lo; j <= hi; ++j) acc += x[j * hw + p] * x[j * hw + p];
    s[p] = k + a * acc;
  }
}

// Fetches channel row j of the tile (w floats from x + j*hw) into L2 while the current one is
// worked on: the rows are hw floats apart, and each starts a new stream for the prefetchers.
static inline void lrn_prefetch_row(const float* x, int64_t hw, int64_t j, int64_t cg, int64_t w) {
  if (j >= cg) return;
  const float* r = x + j * hw;
  for (int64_t p = 0; p < w; p += 16) __builtin_prefetch(r + p, 0, 2);
  __builtin_prefetch(r + w - 1, 0, 2);
}

// out[p] = s[p]^e for the LRN's scales (s >= k > 0, or inf or NaN from the input), computed in
// double as 2^(e * log2 s):
//   - s = 2^n * m with m in [sqrt(1/2), sqrt(2)), from the bits (integer selects, and the 2^52
//     trick for n: a floating-point select of a product, or a clamp, GCC keeps as a branch,
//     which stops the vectorisation);
//   - log m = 2 atanh(u), u = (m - 1) / (m + 1), |u| <= 0.172, by its series to u^11 (the first
//     term left out, 2 u^13 / 13, < 2e-11);
//   - y = e * log2 s, |y| <= 149 * 6 for |e| <= kLrnPowMaxExponent (other exponents take std::pow
//     for the whole row);
//   - 2^y = 2^i * exp(f ln2), i = round(y), |f| <= 1/2: exp by its Taylor polynomial to the 8th
//     power (the first term left out, (ln2 / 2)^9 / 9!, < 2e-10), 2^i built in the exponent
//     field.
// Rounded to float once, so the result is s^e correctly rounded except within ~3e-10 (relative)
// of a rounding boundary: almost always the bits of powf. Plain double arithmetic without fused
// multiply-adds: the compiler vectorises it on every path (4 or 8 doubles a vector), and every
// path gives the same bits. The few lanes with s infinite or NaN then take std::pow. This
// replaces one powf call per element, which bound the LRN passes: at batch 16, one thread, Zen 5
// AVX-512, alternated in one process with the powf build, lrn1 forward 19.5 -> 9.6 ms, backward
// 26.1 -> 13.0, lrn2 12.4 -> 6.2 and 17.9 -> 8.8; the forward's bits unchanged on those inputs
// (Estrin's scheme for both polynomials and an OR of the special lanes: with Horner's chains and
// a scalar scan for them, 1.6x the profile's samples in lrn_pow).
static constexpr double kLrnPowMaxExponent = 6.0;
static constexpr double kLrnLog2e = 1.4426950408889634, kLrnLn2 = 0.6931471805599453;
static constexpr double kLrnRound = 6755399441055744.0, kLrnTwo52 = 4503599627370496.0;

static void lrn_pow(const float* __restrict s, float e, float* __restrict out, int64_t n) {
  const double ed = e;
  if (!(ed >= -kLrnPowMaxExponent && ed <= kLrnPowMaxExponent)) {
    for (int64_t p = 0; p < n; ++p) out[p] = std::pow(s[p], e);
    return;
  }
  int special = 0;  // any lane infinite or NaN
  for (int64_t p = 0; p < n; ++p) {
    special |= s[p] <= 3.40282347e38f ? 0 : 1;
    const uint64_t bits = __builtin_bit_cast(uint64_t, static_cast<double>(s[p]));
    const uint64_t mant = bits & 0x000fffffffffffffull;
    const bool big = mant > 0x6a09e667f3bcdull;  // m past sqrt(2): halve it
    const double m =
        __builtin_bit_cast(double, mant | (big ? 0x3fe0000000000000ull : 0x3ff0000000000000ull));
    const uint64_t nbits = (bits >> 52) + (big ? 1 : 0);  // 1023 + n
    const double ex = (__builtin_bit_cast(double, 0x4330000000000000ull | nbits) - kLrnTwo52) - 1023.0;
    const double u = (m - 1.0) / (m + 1.0), u2 = u * u, u4 = u2 * u2;
    // 1 + u2/3 + ... + u2^5/11 (Estrin's scheme: short dependency chains).
    const double q = ((1.0 + u2 * (1.0 / 3.0)) + u4 * ((1.0 / 5.0) + u2 * (1.0 / 7.0))) +
                     (u4 * u4) * ((1.0 / 9.0) + u2 * (1.0 / 11.0));
    const double y = ed * (ex + (2.0 * kLrnLog2e) * (u * q));
    const double t = y + kLrnRound, i = t - kLrnRound, g = (y - i) * kLrnLn2;
    const double g2 = g * g, g4 = g2 * g2;
    // 1 + g + ... + g^8/8! (Estrin).
    const double r = ((1.0 + g) + g2 * (0.5 + g * (1.0 / 6.0))) +
                     g4 * (((1.0 / 24.0) + g * (1.0 / 120.0)) + g2 * ((1.0 / 720.0) + g * (1.0 / 5040.0))) +
                     (g4 * g4) * (1.0 / 40320.0);
    // i as an integer (the low bits of t, two's complement), then 2^i's exponent field.
    const uint64_t ib = __builtin_bit_cast(uint64_t, t) - __builtin_bit_cast(uint64_t, kLrnRound);
    out[p] = static_cast<float>(r * __builtin_bit_cast(double, (ib + 1023) << 52));
  }
  if (special == 0) return;
  for (int64_t p = 0; p < n; ++p) {
    if (!(s[p] <= 3.40282347e38f)) out[p] = std::pow(s[p], e);  // inf, NaN
  }
}

// y = x * s^-beta (nbeta = -beta) for each channel of the tile.
static void lrn_forward(const float* __restrict x, float* __restrict y, int64_t hw, int64_t cg,
                        int64_t w, int64_t half, float k, float a, float nbeta) {
  float s[kLrnTile], pw[kLrnTile];
  for (int64_t i = 0; i < cg; ++i) {
    lrn_prefetch_row(x, hw, i + half + 1, cg, w);
    lrn_window(x, hw, i < half ? 0 : i - half, i + half < cg ? i + half : cg - 1, w, k, a, s);
    lrn_pow(s, nbeta, pw, w);
    const float* xi = x + i * hw;
    float* yi = y + i * hw;
    for (int64_t p = 0; p < w; ++p) yi[p] = xi[p] * pw[p];
  }
}

// dx_m = dy_m s_m^-beta - coef x_m sum over the window of t_i, t_i = dy_i x_i s_i^-beta / s_i,
// coef = 2 beta alpha / size: a first pass over the channels stores s^-beta and t for the tile,
// the second sums t over each window in ascending order. scratch: 2 * cg * kLrnTile floats
// (s^-beta and t).
static void lrn_backward(const float* __restrict x, const float* __restrict dy,
                         float* __restrict dx, int64_t hw, int64_t cg, int64_t w, int64_t half,
                         float k, float a, float nbeta, float coef, float* __restrict scratch) {
  float* const pw = scratch;
  float* const tt = scratch + cg * kLrnTile;
  float s[kLrnTile];
  for (int64_t i = 0; i < cg; ++i) {
    lrn_prefetch_row(x, hw, i + half + 1, cg, w);
    lrn_prefetch_row(dy, hw, i + 1, cg, w);
    lrn_window(x, hw, i < half ? 0 : i - half, i + half < cg ? i + half : cg - 1, w, k, a, s);
    float* pi = pw + i * kLrnTile;
    float* ti = tt + i * kLrnTile;
    lrn_pow(s, nbeta, pi, w);
    const float* xi = x + i * hw;
    const float* dyi = dy + i * hw;
    for (int64_t p = 0; p < w; ++p) ti[p] = dyi[p] * xi[p] * pi[p] / s[p];
  }
  for (int64_t m = 0; m < cg; ++m) {
    for (int64_t p = 0; p < w; ++p) s[p] = 0.0f;
    const int64_t lo = m < half ? 0 : m - half, hi = m + half < cg ? m + half : cg - 1;
    for (int64_t i = lo; i <= hi; ++i) {
      const float* ti = tt + i * kLrnTile;
      for (int64_t p = 0; p < w; ++p) s[p] += ti[p];
    }
    const float* xm = x + m * hw;
    const float* dym = dy + m * hw;
    const float* pm = pw + m * kLrnTile;
    float* dxm = dx + m * hw;
    for (int64_t p = 0; p < w; ++p) dxm[p] = dym[p] * pm[p] - coef * xm[p] * s[p];
  }
}

#ifdef __AVX2__
static inline __m256i lanes_below(int64_t n) {  // lane l set when l < n
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#endif

// Max-pooling of one (n, c) plane, x (h x w) -> y (ho x wo), windows k x k at stride st. The
// running maximum takes v when v > m or v is NaN, visiting each window in row-major order (what
// the CUDA kernel does), so a NaN wins and ties keep the first element. With TAPS the tap moves
// to element id = r*k + s when v raises the maximum (v > m) or is the window's first NaN (v NaN,
// m not), so it ends on the first element equal to the maximum, or the first NaN. For a run of up
// to 64 windows of an output row the window's elements are the outer loops and the output
// columns the inner one: with the window and stride known at compile time the column loop
// becomes strided vector loads and blends. The run's taps are int32 (the width of the floats they
// are selected with), then stored as uint8. With AVX2, AlexNet's 3 x 3 windows at stride 2 run
// max_pool_forward_3x3s2 instead: the same selects, 8 windows in registers.

static inline float max_keep_nan(float m, float v) { return (v > m) | (v != v) ? v : m; }

template <int K, int ST, bool TAPS>
static void max_pool_rows(const float* __restrict x, int64_t w, float* __restrict y,
                          uint8_t* __restrict taps, int64_t ho, int64_t wo, int64_t k,
                          int64_t st) {
  const int64_t kk = K > 0 ? K : k, ss = ST > 0 ? ST : st;
  constexpr int64_t kRun = 64;
  int32_t tap[kRun];
  for (int64_t i = 0; i < ho; ++i) {
    for (int64_t j0 = 0; j0 < wo; j0 += kRun) {
      const int64_t n = wo - j0 < kRun ? wo - j0 : kRun;
      const float* xr = x + i * ss * w + j0 * ss;
      float* yr = y + i * wo + j0;
      for (int64_t j = 0; j < n; ++j) yr[j] = xr[j * ss];
      if (TAPS) {
        for (int64_t j = 0; j < n; ++j) tap[j] = 0;
      }
      for (int64_t r = 0; r < kk; ++r) {
        for (int64_t s = r == 0 ? 1 : 0; s < kk; ++s) {
          const float* xs = xr + r * w + s;
          const int32_t id = static_cast<int32_t>(r * kk + s);
          for (int64_t j = 0; j < n; ++j) {
            const float v = xs[j * ss], m = yr[j];
            if (TAPS) tap[j] = (v > m) | ((v != v) & (m == m)) ? id : tap[j];
            yr[j] = max_keep_nan(m, v);
          }
        }
      }
      if (TAPS) {
        uint8_t* tr = taps + i * wo + j0;
        for (int64_t j = 0; j < n; ++j) tr[j] = static_cast<uint8_t>(tap[j]);
      }
    }
  }
}

#ifdef __AVX2__
// 8 windows of 3 x 3 at stride 2, the first x row of the first at xr (row stride w; columns
// 0..16 of 3 rows are read): their maxima and taps by max_pool_rows' rule, in registers (lane j:
// window j, columns 2j..2j+2; the taps as float ids until the end).
static inline void pool3s2_forward8(const float* xr, int64_t w, __m256& max, __m128i& tap_bytes) {
  const __m256i next = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 0);
  __m256 m = _mm256_setzero_ps(), t = _mm256_setzero_ps();
#pragma GCC unroll 3
  for (int r = 0; r < 3; ++r) {
    const float* p = xr + r * w;
    const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
    __m256 v[3];
    v[0] = _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0x88)), 0xD8));
    v[1] = _mm256_castpd_ps(
        _mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(a, b, 0xDD)), 0xD8));
    v[2] = _mm256_blend_ps(_mm256_permutevar8x32_ps(v[0], next), _mm256_broadcast_ss(p + 16),
                           0x80);
#pragma GCC unroll 3
    for (int s = 0; s < 3; ++s) {
      if (r == 0 && s == 0) {
        m = v[0];
        continue;
      }
      const __m256 up = _mm256_cmp_ps(v[s], m, _CMP_GT_OQ);
      const __m256 nan = _mm256_cmp_ps(v[s], v[s], _CMP_UNORD_Q);
      const __m256 m_number = _mm256_cmp_ps(m, m, _CMP_ORD_Q);
      t = _mm256_blendv_ps(t, _mm256_set1_ps(static_cast<float>(r * 3 + s)),
                           _mm256_or_ps(up, _mm256_and_ps(nan, m_number)));
      m = _mm256_blendv_ps(m, v[s], _mm256_or_ps(up, nan));
    }
  }
  max = m;
  const __m256i ti = _mm256_cvtps_epi32(t);
  const __m128i t16 = _mm_packus_epi32(_mm256_castsi256_si128(ti), _mm256_extracti128_si256(ti, 1));
  tap_bytes = _mm_packus_epi16(t16, t16);  // bytes 0..7: the 8 taps
}

// The forward of AlexNet's 3 x 3 windows at stride 2, with the taps unless taps is null, 8
// windows of a row at a time (the last block of a row ending at its end, overlapping the one
// before: the same values again; block j reads x up to column 2j + 16 <= 2(wo - 8) + 16 < w). A
// row of fewer than 8 windows is one block, which reads 17 columns: where that would pass x_end,
// from a copy of its columns.
static void max_pool_forward_3x3s2(const float* x, int64_t w, float* y, uint8_t* taps,
                                   int64_t ho, int64_t wo, const float* x_end) {
  __m256 m;
  __m128i t;
  for (int64_t i = 0; i < ho; ++i) {
    const float* xr = x + 2 * i * w;
    float* yr = y + i * wo;
    uint8_t* tr = taps == nullptr ? nullptr : taps + i * wo;
    if (wo >= 8) {
      for (int64_t j = 0;; j += 8) {
        if (j > wo - 8) j = wo - 8;
        pool3s2_forward8(xr + 2 * j, w, m, t);
        _mm256_storeu_ps(yr + j, m);
        if (tr != nullptr) _mm_storel_epi64(reinterpret_cast<__m128i*>(tr + j), t);
        if (j == wo - 8) break;
      }
      continue;
    }
    if (xr + 2 * w + 17 <= x_end) {
      pool3s2_forward8(xr, w, m, t);
    } else {
      float xs[3 * 17] = {};
      for (int r = 0; r < 3; ++r) {
        for (int64_t c = 0; c < 2 * wo + 1; ++c) xs[r * 17 + c] = xr[r * w + c];
      }
      pool3s2_forward8(xs, 17, m, t);
    }
    _mm256_maskstore_ps(yr, lanes_below(wo), m);
    if (tr == nullptr) continue;
    uint8_t bytes[16];
    _mm_storeu_si128(reinterpret_cast<__m128i*>(bytes), t);
    for (int64_t e = 0; e < wo; ++e) tr[e] = bytes[e];
  }
}
#endif

static void max_pool_forward_plane(const float* x, int64_t h, int64_t w, float* y,
                                   uint8_t* taps, int64_t ho, int64_t wo, int64_t k, int64_t st,
                                   int64_t planes_after) {
  const bool k3s2 = k == 3 && st == 2;
#ifdef __AVX2__
  if (k3s2) {
    max_pool_forward_3x3s2(x, w, y, taps, ho, wo, x + (1 + planes_after) * h * w);
    return;
  }
#endif
  if (taps != nullptr) {
    if (k3s2) {
      max_pool_rows<3, 2, true>(x, w, y, taps, ho, wo, k, st);
    } else {
      max_pool_rows<0, 0, true>(x, w, y, taps, ho, wo, k, st);
    }
  } else if (k3s2) {
    max_pool_rows<3, 2, false>(x, w, y, taps, ho, wo, k, st);
  } else {
    max_pool_rows<0, 0, false>(x, w, y, taps, ho, wo, k, st);
  }
}

// The backward from the taps: window (i, j)'s gradient goes to element (i*st + t / k,
// j*st + t % k) for its tap t < k*k, nowhere for a larger t. Other windows than 3 x 3 at stride 2
// scatter into the zeroed plane in row-major window order, so a position's contributions add up
// in window order.
static void max_pool_backward_scatter(const uint8_t* __restrict taps, const float* __restrict dy,
                                      float* __restrict dx, int64_t h, int64_t w, int64_t ho,
                                      int64_t wo, int64_t k, int64_t st) {
  for (int64_t e = 0; e < h * w; ++e) dx[e] = 0.0f;
  for (int64_t i = 0; i < ho; ++i) {
    for (int64_t j = 0; j < wo; ++j) {
      const int64_t t = taps[i * wo + j];
      if (t >= k * k) continue;
      dx[(i * st + t / k) * w + j * st + t % k] += dy[i * wo + j];
    }
  }
}

// AlexNet's 3 x 3 windows at stride 2 as a gather: every element of dx is written once, with the
// sum of the gradients of the windows (at most 4) whose tap it is, added to 0 in window order.
// Window (i, j) covers rows 2i..2i+2 and columns 2j..2j+2, so dx row 2i + r (r = 0, 1; r = 2 for
// the row 2i + 2 it shares with window row i + 1) takes from window row i the taps 3r + s: at
// an even column 2m the tap s = 2 of window m - 1, then s = 0 of window m; at an odd column
// 2m + 1 the tap s = 1 of window m. For a run of up to 64 windows of a row (and the one before
// it, for its s = 2 taps) the taps (as floats, the width of the gradients they select) and the
// gradients of each window row go to a buffer; each dx row is then selects and adds over one or
// two of them, written interleaved. A tap above 8 equals none of the ids and selects nothing.
// (h, w) = (2ho + 1 or 2ho + 2, likewise): the row and column after 2ho, 2wo are covered by no
// window. With AVX2 the same selects and adds, 8 windows at a time.
static constexpr int64_t kPoolRun = 64, kPoolBuf = kPoolRun + 16;

// tap[1 + jj], grad[1 + jj] for the windows j0 + jj (jj < n) of window row i, tap[0], grad[0]
// for window j0 - 1 when j0 > 0 (with AVX2, 8 at a time).
static void pool3s2_load(const uint8_t* __restrict taps, const float* __restrict dy, int64_t wo,
                         int64_t i, int64_t j0, int64_t n, float* __restrict tap,
                         float* __restrict grad) {
  const int64_t j_begin = j0 == 0 ? 0 : j0 - 1, cnt = j0 + n - j_begin;
  const uint8_t* tr = taps + i * wo + j_begin;
  const float* gr = dy + i * wo + j_begin;
  float* t = tap + j_begin - j0 + 1;
  float* g = grad + j_begin - j0 + 1;
  int64_t e = 0;
#ifdef __AVX2__
  for (; e + 8 <= cnt; e += 8) {
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(tr + e));
    _mm256_storeu_ps(t + e, _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)));
    _mm256_storeu_ps(g + e, _mm256_loadu_ps(gr + e));
  }
#endif
  for (; e < cnt; ++e) {
    t[e] = static_cast<float>(tr[e]);
    g[e] = gr[e];
  }
}

static inline float pool_pick(float tap, float id, float g) { return tap == id ? g : 0.0f; }

// `count` columns of one dx row from the first `sources` (1 or 2) of (tap, grad, r): column 2m
// of the run is sum over sources of pick(tap[m], 3r + 2) + pick(tap[m + 1], 3r), column 2m + 1
// pick(tap[m + 1], 3r + 1). With AVX2 whole blocks of 16 are stored while they end within
// `room` floats of out (what follows the row there is written later).
static void pool3s2_row(int sources, const float* const* tap, const float* const* grad,
                        const float* r, int64_t count, int64_t room, float* __restrict out) {
  int64_t m = 0;
#ifdef __AVX2__
  const auto pick = [](const float* t, const float* g, float id) {
    return _mm256_and_ps(_mm256_cmp_ps(_mm256_loadu_ps(t), _mm256_set1_ps(id), _CMP_EQ_OQ),
                         _mm256_loadu_ps(g));
  };
  for (; 2 * m < count; m += 8) {
    __m256 even = _mm256_setzero_ps(), odd = _mm256_setzero_ps();
    for (int k = 0; k < sources; ++k) {
      const float* t = tap[k] + m;
      const float* g = grad[k] + m;
      const float s0 = 3.0f * r[k];
      even = _mm256_add_ps(_mm256_add_ps(even, pick(t, g, s0 + 2.0f)), pick(t + 1, g + 1, s0));
      odd = _mm256_add_ps(odd, pick(t + 1, g + 1, s0 + 1.0f));
    }
    const __m256 lo = _mm256_unpacklo_ps(even, odd), hi = _mm256_unpackhi_ps(even, odd);
    const __m256 first = _mm256_permute2f128_ps(lo, hi, 0x20);
    const __m256 second = _mm256_permute2f128_ps(lo, hi, 0x31);
    if (2 * m + 16 <= room) {
      _mm256_storeu_ps(out + 2 * m, first);
      _mm256_storeu_ps(out + 2 * m + 8, second);
    } else {  // the row's last columns
      float* o = out + 2 * m;
      int64_t rest = count - 2 * m;
      __m256 part = first;
      if (rest >= 8) {
        _mm256_storeu_ps(o, first);
        o += 8;
        rest -= 8;
        part = second;
      }
      float tile[8];
      _mm256_storeu_ps(tile, part);
#pragma GCC unroll 8
      for (int c = 0; c < 8; ++c) {
        if (c < rest) o[c] = tile[c];
      }
    }
  }
#endif
  for (; 2 * m < count; ++m) {
    float even = 0.0f, odd = 0.0f;
    for (int k = 0; k < sources; ++k) {
      const float* t = tap[k];
      const float* g = grad[k];
      const float s0 = 3.0f * r[k];
      even = (even + pool_pick(t[m], s0 + 2.0f, g[m])) + pool_pick(t[m + 1], s0, g[m + 1]);
      odd = odd + pool_pick(t[m + 1], s0 + 1.0f, g[m + 1]);
    }
    out[2 * m] = even;
    if (2 * m + 1 < count) out[2 * m + 1] = odd;
  }
}

static void max_pool_backward_3x3s2(const uint8_t* taps, const float* dy, float* dx, int64_t h,
                                    int64_t w, int64_t ho, int64_t wo) {
  // Three window rows' buffers: row i's taps are loaded one step before the dx rows that read
  // them are written (a load right after the stores it reads would wait for them).
  float tap[3][kPoolBuf], grad[3][kPoolBuf];
  for (int64_t j0 = 0; j0 < wo; j0 += kPoolRun) {
    const int64_t n = wo - j0 < kPoolRun ? wo - j0 : kPoolRun;
    // The run's columns: up to the next run's first, or (the last run) to the row's end.
    const int64_t count = j0 + n == wo ? w - 2 * j0 : 2 * n;
    float* out = dx + 2 * j0;
    // Room after a row's columns: with one run, up to the plane's end (the rows after it are
    // written later); with several, none.
    const float* dx_end = dx + h * w;
    const auto room = [&](int64_t row) {
      return wo <= kPoolRun ? dx_end - (out + row * w) : count;
    };
    for (int b = 0; b < 3; ++b) {
      for (int64_t e = 0; e < n + 10; ++e) {  // what the rows read: up to entry n + 9
        tap[b][e] = -1.0f;                    // no window (j0 - 1 when j0 == 0; after the run)
        grad[b][e] = 0.0f;
      }
    }
    for (int64_t i = 0; i <= ho; ++i) {
      if (i < ho) pool3s2_load(taps, dy, wo, i, j0, n, tap[i % 3], grad[i % 3]);
      if (i == 0) continue;
      // Window row k = i - 1: dx row 2k takes taps row 2 of window row k - 1, then row 0 of
      // window row k; row 2k + 1 takes row 1.
      const int64_t k = i - 1;
      const float* t2[2] = {tap[(k + 2) % 3], tap[k % 3]};
      const float* g2[2] = {grad[(k + 2) % 3], grad[k % 3]};
      const float r2[2] = {2.0f, 0.0f}, r1 = 1.0f;
      if (k == 0) {
        pool3s2_row(1, t2 + 1, g2 + 1, r2 + 1, count, room(0), out);
      } else {
        pool3s2_row(2, t2, g2, r2, count, room(2 * k), out + 2 * k * w);
      }
      pool3s2_row(1, t2 + 1, g2 + 1, &r1, count, room(2 * k + 1), out + (2 * k + 1) * w);
    }
    // Row 2ho: row 2 of the last window row; a row after it is covered by none.
    const float* tl = tap[(ho - 1) % 3];
    const float* gl = grad[(ho - 1) % 3];
    const float rl = 2.0f;
    pool3s2_row(1, &tl, &gl, &rl, count, room(2 * ho), out + 2 * ho * w);
    for (int64_t row = 2 * ho + 1; row < h; ++row) {
      for (int64_t c = 0; c < count; ++c) out[row * w + c] = 0.0f;
    }
  }
}

#ifdef __AVX2__
// Planes of at most 7 windows a row (AlexNet's pool5: 6 x 6 windows of 13 x 13): every dx row
// (w <= 16 columns) is one pair of registers, its even columns 2m in `even` lane m and its odd
// ones in `odd`, so the gather runs on registers: for each window row its taps and gradients are
// loaded straight into lanes 0..wo-1 (the lanes after them: tap -1 and gradient 0, no window),
// then per tap row r the gradients picked by taps 3r, 3r + 1, 3r + 2, the last moved one lane up
// (window m - 1's third tap is column 2m). The sums are pool3s2_row's, term for term and in its
// order (row 2i: window row i - 1's r = 2 terms, then window row i's r = 0 terms), so the
// results are the same bits. taps_end: how far the taps may be read (8 bytes a row).
static void max_pool_backward_3x3s2_narrow(const uint8_t* taps, const float* dy, float* dx,
                                           int64_t h, int64_t w, int64_t ho, int64_t wo,
                                           const uint8_t* taps_end) {
  const __m256 zero = _mm256_setzero_ps();
  const __m256i up = _mm256_setr_epi32(0, 0, 1, 2, 3, 4, 5, 6);
  const __m256i first_lanes = lanes_below(w < 8 ? w : 8), second_lanes = lanes_below(w - 8);
  const __m256i windows = lanes_below(wo);
  __m256 t, g;
  const auto pick = [&](int id) {
    return _mm256_and_ps(_mm256_cmp_ps(t, _mm256_set1_ps(static_cast<float>(id)), _CMP_EQ_OQ), g);
  };
  // Tap row r's terms of the window row in t, g added to (even, odd) in pool3s2_row's order.
  const auto add_row = [&](int r, __m256& even, __m256& odd) {
    const __m256 third = _mm256_blend_ps(_mm256_permutevar8x32_ps(pick(3 * r + 2), up), zero, 1);
    even = _mm256_add_ps(_mm256_add_ps(even, third), pick(3 * r));
    odd = _mm256_add_ps(odd, pick(3 * r + 1));
  };
  const auto store_row = [&](int64_t row, __m256 even, __m256 odd) {
    const __m256 lo = _mm256_unpacklo_ps(even, odd), hi = _mm256_unpackhi_ps(even, odd);
    const __m256 first = _mm256_permute2f128_ps(lo, hi, 0x20);
    const __m256 second = _mm256_permute2f128_ps(lo, hi, 0x31);
    float* out = dx + row * w;
    if (row * w + 16 <= h * w) {  // 16 floats from out stay within the plane
      _mm256_storeu_ps(out, first);
      _mm256_storeu_ps(out + 8, second);  // columns past w: the next row's, written later
    } else {
      _mm256_maskstore_ps(out, first_lanes, first);
      _mm256_maskstore_ps(out + 8, second_lanes, second);
    }
  };
  __m256 even_next = zero, odd_next = zero;  // row 2i's terms from window row i - 1
  for (int64_t i = 0; i < ho; ++i) {
    const uint8_t* tr = taps + i * wo;
    __m128i bytes;
    if (tr + 8 <= taps_end) {
      bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(tr));
    } else {  // the last rows of the last plane: from a copy
      uint8_t last[8] = {};
      for (int64_t e = 0; e < wo; ++e) last[e] = tr[e];
      bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(last));
    }
    t = _mm256_blendv_ps(_mm256_set1_ps(-1.0f), _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)),
                         _mm256_castsi256_ps(windows));
    g = _mm256_maskload_ps(dy + i * wo, windows);  // lanes from wo on: 0, not read
    __m256 even = even_next, odd = odd_next;
    add_row(0, even, odd);
    store_row(2 * i, even, odd);
    even = odd = zero;
    add_row(1, even, odd);
    store_row(2 * i + 1, even, odd);
    even_next = odd_next = zero;
    add_row(2, even_next, odd_next);
  }
  store_row(2 * ho, even_next, odd_next);
  for (int64_t e = (2 * ho + 1) * w; e < h * w; ++e) dx[e] = 0.0f;  // a row after 2ho: no window
}
#endif

// Prefetches `bytes` bytes from p, for reading or writing.
static inline void pool_prefetch(const void* p, int64_t bytes, bool write) {
  const char* c = static_cast<const char*>(p);
  for (int64_t i = 0; i < bytes; i += 64) {
    if (write) {
      __builtin_prefetch(c + i, 1);
    } else {
      __builtin_prefetch(c + i);
    }
  }
}

static void max_pool_backward_plane(const uint8_t* taps, const float* dy, float* dx, int64_t h,
                                    int64_t w, int64_t ho, int64_t wo, int64_t k, int64_t st,
                                    int64_t planes_after) {
  // A small plane (pool5's dx: 676 bytes; at most kPoolSmall floats) is over before the hardware
  // prefetchers have found its stream: the next plane's taps, dy and dx are fetched while this
  // one is computed, so that memory and arithmetic overlap.
  constexpr int64_t kPoolSmall = 256;
  if (planes_after > 0 && h * w <= kPoolSmall) {
    pool_prefetch(taps + ho * wo, ho * wo, false);
    pool_prefetch(dy + ho * wo, ho * wo * 4, false);
    pool_prefetch(dx + h * w, h * w * 4, true);
  }
  if (k == 3 && st == 2) {
#ifdef __AVX2__
    if (wo <= 7) {
      max_pool_backward_3x3s2_narrow(taps, dy, dx, h, w, ho, wo,
                                     taps + (1 + planes_after) * ho * wo);
      return;
    }
#endif
    max_pool_backward_3x3s2(taps, dy, dx, h, w, ho, wo);
    return;
  }
  max_pool_backward_scatter(taps, dy, dx, h, w, ho, wo, k, st);
}

// exp(v) for softmax's shifted logits v = x - max <= 0 (NaN stays NaN; below -87, where exp is
// under float32's smallest normal number, 0). v = n ln2 + t with n = round(v / ln2) (the 1.5 * 2^23
// trick: adding and subtracting it rounds to an integer) and |t| <= ln2 / 2 (ln2 split in two,
// so that n * ln2_hi is exact); exp(t) by its Taylor polynomial to t^7 (truncation < 3e-9,
// relative), times 2^n built in the exponent field. exp8 (AVX2) and exp16 (AVX-512) are the same
// operations on 8 and 16 lanes, so all three give the same bits.
static constexpr float kExpLog2e = 1.44269504f, kExpRound = 12582912.0f;
static constexpr float kExpLn2Hi = 0.693359375f, kExpLn2Lo = -2.12194440e-4f;
static constexpr float kExpTaylor[8] = {1.0f / 5040.0f, 1.0f / 720.0f, 1.0f / 120.0f, 1.0f / 24.0f,
                                        1.0f / 6.0f,    0.5f,           1.0f,           1.0f};

static inline float exp_nonpositive(float v) {
  const bool tiny = v < -87.0f;
  const float vc = (tiny | (v != v)) ? 0.0f : v;
  const float n = (vc * kExpLog2e + kExpRound) - kExpRound;
  const float t = (vc - n * kExpLn2Hi) - n * kExpLn2Lo;
  float e = kExpTaylor[0];
  for (int i = 1; i < 8; ++i) e = e * t + kExpTaylor[i];
  const float r = e * __builtin_bit_cast(float, (static_cast<int32_t>(n) + 127) << 23);
  return v != v ? v : (tiny ? 0.0f : r);
}

#ifdef __AVX2__
static inline __m256 exp8_nonpositive(__m256 v) {
  const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
  const __m256 tiny = _mm256_cmp_ps(v, _mm256_set1_ps(-87.0f), _CMP_LT_OQ);
  const __m256 vc = _mm256_andnot_ps(_mm256_or_ps(tiny, nan), v);
  const __m256 round = _mm256_set1_ps(kExpRound);
  const __m256 n =
      _mm256_sub_ps(_mm256_add_ps(_mm256_mul_ps(vc, _mm256_set1_ps(kExpLog2e)), round), round);
  const __m256 t = _mm256_sub_ps(_mm256_sub_ps(vc, _mm256_mul_ps(n, _mm256_set1_ps(kExpLn2Hi))),
                                 _mm256_mul_ps(n, _mm256_set1_ps(kExpLn2Lo)));
  __m256 e = _mm256_set1_ps(kExpTaylor[0]);
  for (int i = 1; i < 8; ++i) e = _mm256_add_ps(_mm256_mul_ps(e, t), _mm256_set1_ps(kExpTaylor[i]));
  const __m256i bits =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 r = _mm256_andnot_ps(tiny, _mm256_mul_ps(e, _mm256_castsi256_ps(bits)));
  return _mm256_blendv_ps(r, v, nan);
}
#endif

#ifdef __AVX512F__
// K vectors at a time, each step of the K in turn: one exp is a chain of some 20 dependent
// operations, and K of them side by side keep the pipes busy. The same operations as
// exp_nonpositive on the lanes whose result is kept; a NaN or tiny v is clamped to -87 instead
// of 0 before them (one vmaxps instead of mask-register arithmetic), its result replaced all the
// same; 2^n scales e by vscalefps (e * 2^n rounded once, as the multiplication by the 2^n built
// in the exponent field is). Checked on every float in [-100, -0], -inf and NaN: the same bits as
// exp_nonpositive and exp8. The exp pass of a row of 1000, one thread: 0.41 us one vector at a
// time with masks, 0.33 us with K = 4, 0.26 us with the clamp and vscalefps (K = 2: 0.33 us;
// K = 8 runs out of registers: 0.47 us).
template <int K>
static inline void exp16_nonpositive(__m512* v) {
  __m512 vc[K], n[K], t[K], e[K];
  const __m512 lowest = _mm512_set1_ps(-87.0f), round = _mm512_set1_ps(kExpRound);
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k) vc[k] = _mm512_max_ps(v[k], lowest);
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k)
    n[k] = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(vc[k], _mm512_set1_ps(kExpLog2e)), round),
                         round);
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k)
    t[k] = _mm512_sub_ps(_mm512_sub_ps(vc[k], _mm512_mul_ps(n[k], _mm512_set1_ps(kExpLn2Hi))),
                         _mm512_mul_ps(n[k], _mm512_set1_ps(kExpLn2Lo)));
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k) e[k] = _mm512_set1_ps(kExpTaylor[0]);
#pragma GCC unroll 8
  for (int i = 1; i < 8; ++i) {
#pragma GCC unroll 4
    for (int k = 0; k < K; ++k)
      e[k] = _mm512_add_ps(_mm512_mul_ps(e[k], t[k]), _mm512_set1_ps(kExpTaylor[i]));
  }
#pragma GCC unroll 4
  for (int k = 0; k < K; ++k) {
    const __mmask16 keep = _mm512_cmp_ps_mask(v[k], lowest, _CMP_GE_OQ);  // not tiny, not NaN
    const __mmask16 nan = _mm512_cmp_ps_mask(v[k], v[k], _CMP_UNORD_Q);
    v[k] = _mm512_mask_mov_ps(_mm512_maskz_scalef_ps(keep, e[k], n[k]), nan, v[k]);
  }
}

#endif

// Softmax and cross-entropy rows, in three passes over a row (all of it in L1: AlexNet's 1000
// classes are 4 KB): the maximum; e_i = exp(x_i - max), stored, and summed; the scaling.
//
// The maximum is taken over the row's numbers only (v > m ? v : m from -inf, the vmaxps rule:
// a NaN is never taken), in as many independent lanes as a path likes: the maximum of numbers is
// the same whatever the order (up to the sign of a zero maximum, which changes no exp(x - max)
// and no x_label - max == 0). A row holding a NaN still comes out NaN: its e_i is NaN, so is the
// sum, and with it every output.
//
// The sum is in double, in kRowLanes = 16 partial sums: element i goes into partial sum i % 16,
// in order of i (on AVX-512 the lanes of two registers, on AVX2 of four, on the baseline an
// array), and the 16 are then added pairwise: s[j] += s[j + w] for w = 8, 4, 2, 1. An element
// left out (the tail of a register past the row's end, cross-entropy's label) adds +0.0, which
// leaves a partial sum of non-negative terms as it was. So every path rounds the same additions
// in the same order and gives the same bits, and 16 lanes (two AVX-512 registers, each add
// independent of the other) keep the additions off the critical path.
//
// Measured on a 2-core Zen 5 (AVX-512), one thread, the ops at (16, 1000) and (128, 1000), min of
// 2000 calls: softmax 1.06 us a row before (8 lanes on every path, the maximum one blend chain, a
// division per element), 0.37 us after; cross-entropy 6.1 us a row before (std::exp, the sums in
// double one element at a time, scalar maximum and rank loops), 0.41 us after. Of softmax's row,
// the exp pass is about 0.26 us, the maximum and the scaling 0.03 us each.
static constexpr int kRowLanes = 16;

static inline float max_number(float m, float v) { return v > m ? v : m; }

static float row_max(const float* __restrict x, int64_t c) {
  const float lowest = -__builtin_inff();
#if defined(__AVX512F__)
  __m512 m0 = _mm512_set1_ps(lowest), m1 = m0, m2 = m0, m3 = m0;
  int64_t i = 0;
  for (; i + 64 <= c; i += 64) {
    m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0);
    m1 = _mm512_max_ps(_mm512_loadu_ps(x + i + 16), m1);
    m2 = _mm512_max_ps(_mm512_loadu_ps(x + i + 32), m2);
    m3 = _mm512_max_ps(_mm512_loadu_ps(x + i + 48), m3);
  }
  for (; i + 16 <= c; i += 16) m0 = _mm512_max_ps(_mm512_loadu_ps(x + i), m0);
  if (i < c) {
    const __mmask16 k = static_cast<__mmask16>((1u << (c - i)) - 1);
    m1 = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(lowest), k, x + i), m1);
  }
  return _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
#elif defined(__AVX2__)
  __m256 m0 = _mm256_set1_ps(lowest), m1 = m0, m2 = m0, m3 = m0;
  int64_t i = 0;
  for (; i + 32 <= c; i += 32) {
    m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
    m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
    m2 = _mm256_max_ps(_mm256_loadu_ps(x + i + 16), m2);
    m3 = _mm256_max_ps(_mm256_loadu_ps(x + i + 24), m3);
  }
  for (; i + 8 <= c; i += 8) m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
  float lane[8];
  _mm256_storeu_ps(lane, _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
  float m = lane[0];
  for (int j = 1; j < 8; ++j) m = max_number(m, lane[j]);
  for (; i < c; ++i) m = max_number(m, x[i]);
  return m;
#else
  float lane[kRowLanes];
  for (int j = 0; j < kRowLanes; ++j) lane[j] = lowest;
  int64_t i = 0;
  for (; i + kRowLanes <= c; i += kRowLanes) {
    for (int j = 0; j < kRowLanes; ++j) lane[j] = max_number(lane[j], x[i + j]);
  }
  for (; i < c; ++i) lane[0] = max_number(lane[0], x[i]);
  float m = lane[0];
  for (int j = 1; j < kRowLanes; ++j) m = max_number(m, lane[j]);
  return m;
#endif
}

static inline double add_lanes(double* s) {  // the pairwise order above
  for (int w = kRowLanes / 2; w >= 1; w /= 2) {
    for (int j = 0; j < w; ++j) s[j] += s[j + w];
  }
  return s[0];
}

// e[i] = exp(x[i] - m) for i < c; returns the sum of e[i] over i != skip (skip outside [0, c):
// all of them) in the order above.
static double exp_row(const float* __restrict x, float m, float* __restrict e, int64_t c,
                      int64_t skip) {
  double s[kRowLanes];
#if defined(__AVX512F__)
  const __m512 mb = _mm512_set1_ps(m);
  __m512d lo = _mm512_setzero_pd(), hi = _mm512_setzero_pd();
  const auto add = [&](__m512 v) {
    lo = _mm512_add_pd(lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    hi = _mm512_add_pd(
        hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
  };
  const auto drop = [](__m512 v, int64_t lane) {  // v with lane `lane` zeroed
    return _mm512_maskz_mov_ps(static_cast<__mmask16>(~(1u << lane)), v);
  };
  int64_t i = 0;
  for (; i + 64 <= c; i += 64) {
    __m512 v[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) v[k] = _mm512_sub_ps(_mm512_loadu_ps(x + i + 16 * k), mb);
    exp16_nonpositive<4>(v);
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) _mm512_storeu_ps(e + i + 16 * k, v[k]);
    if (static_cast<uint64_t>(skip - i) < 64) {
      const int64_t at = skip - i;
      v[at / 16] = drop(v[at / 16], at % 16);
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; ++k) add(v[k]);
  }
  for (; i < c; i += 16) {  // then 16 at a time, the last block masked
    const __mmask16 k =
        static_cast<__mmask16>(c - i >= 16 ? 0xFFFFu : (1u << (c - i)) - 1);
    __m512 v = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), mb);
    exp16_nonpositive<1>(&v);
    _mm512_mask_storeu_ps(e + i, k, v);
    v = _mm512_maskz_mov_ps(k, v);
    if (static_cast<uint64_t>(skip - i) < 16) v = drop(v, skip - i);
    add(v);
  }
  _mm512_storeu_pd(s, lo);
  _mm512_storeu_pd(s + 8, hi);
#elif defined(__AVX2__)
  const __m256 mb = _mm256_set1_ps(m);
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  const auto add = [&](__m256 v0, __m256 v1) {
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(v0)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(v0, 1)));
    a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm256_castps256_ps128(v1)));
    a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm256_extractf128_ps(v1, 1)));
  };
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const auto drop = [&](__m256 v, int64_t lane) {  // v with lane `lane` (if in 0..7) zeroed
    const __m256i at = _mm256_set1_epi32(static_cast<int>(lane));
    return _mm256_andnot_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(iota, at)), v);
  };
  int64_t i = 0;
  for (; i + 16 <= c; i += 16) {
    __m256 v0 = exp8_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + i), mb));
    __m256 v1 = exp8_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mb));
    _mm256_storeu_ps(e + i, v0);
    _mm256_storeu_ps(e + i + 8, v1);
    if (static_cast<uint64_t>(skip - i) < 16) {
      v0 = drop(v0, skip - i);
      v1 = drop(v1, skip - i - 8);
    }
    add(v0, v1);
  }
  if (i < c) {
    const __m256i k0 = lanes_below(c - i), k1 = lanes_below(c - i - 8);
    __m256 v0 = exp8_nonpositive(_mm256_sub_ps(_mm256_maskload_ps(x + i, k0), mb));
    __m256 v1 = exp8_nonpositive(_mm256_sub_ps(_mm256_maskload_ps(x + i + 8, k1), mb));
    _mm256_maskstore_ps(e + i, k0, v0);
    _mm256_maskstore_ps(e + i + 8, k1, v1);
    v0 = _mm256_and_ps(v0, _mm256_castsi256_ps(k0));
    v1 = _mm256_and_ps(v1, _mm256_castsi256_ps(k1));
    if (static_cast<uint64_t>(skip - i) < 16) {
      v0 = drop(v0, skip - i);
      v1 = drop(v1, skip - i - 8);
    }
    add(v0, v1);
  }
  _mm256_storeu_pd(s, a0);
  _mm256_storeu_pd(s + 4, a1);
  _mm256_storeu_pd(s + 8, a2);
  _mm256_storeu_pd(s + 12, a3);
#else
  for (int j = 0; j < kRowLanes; ++j) s[j] = 0.0;
  for (int64_t i = 0; i < c; i += kRowLanes) {
    const int n = c - i < kRowLanes ? static_cast<int>(c - i) : kRowLanes;
    for (int j = 0; j < n; ++j) e[i + j] = exp_nonpositive(x[i + j] - m);
    for (int j = 0; j < n; ++j) s[j] += i + j == skip ? 0.0 : static_cast<double>(e[i + j]);
  }
#endif
  return add_lanes(s);
}

// p[i] *= r (one rounding each: the same on every width).
static void scale_row(float* __restrict p, int64_t c, float r) {
  int64_t i = 0;
#if defined(__AVX512F__)
  const __m512 rb = _mm512_set1_ps(r);
  for (; i + 16 <= c; i += 16) _mm512_storeu_ps(p + i, _mm512_mul_ps(_mm512_loadu_ps(p + i), rb));
  if (i < c) {
    const __mmask16 k = static_cast<__mmask16>((1u << (c - i)) - 1);
    _mm512_mask_storeu_ps(p + i, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, p + i), rb));
  }
#else
  for (; i < c; ++i) p[i] *= r;
#endif
}

// One row of softmax: p = exp(x - max) / S, as p_i = e_i * (1 / S): a multiplication instead of
// a division per element (within 1.5 ulp of the quotient instead of 0.5; the tests' rtol is 1e-5).
static void softmax_row(const float* __restrict x, float* __restrict p, int64_t c) {
  const float m = row_max(x, c);
  const float s = static_cast<float>(exp_row(x, m, p, c, -1));
  scale_row(p, c, 1.0f / s);
}

// How many logits of the row rank ahead of x[label] (csrc/kernels/softmax_cross_entropy.h: a
// larger one, or an equal one at a lower index; NaN behind every number), all of them counted
// (the caller caps the count): for a number x[label], those before it that are >= it and those
// after it that are > it; for a NaN, all before it and the numbers after it. Comparisons and
// counts: exact in any order.
template <int kOp>  // 0: x >= v, 1: x > v, 2: x is a number
static int64_t count_where(const float* __restrict x, int64_t begin, int64_t end, float v) {
  int64_t n = 0, i = begin;
#if defined(__AVX512F__)
  constexpr int kPred = kOp == 0 ? _CMP_GE_OQ : kOp == 1 ? _CMP_GT_OQ : _CMP_ORD_Q;
  const __m512 vb = _mm512_set1_ps(v);
  for (; i + 16 <= end; i += 16) {
    const __m512 xv = _mm512_loadu_ps(x + i);
    n += __builtin_popcount(_mm512_cmp_ps_mask(xv, kOp == 2 ? xv : vb, kPred));
  }
  if (i < end) {
    const __mmask16 k = static_cast<__mmask16>((1u << (end - i)) - 1);
    const __m512 xv = _mm512_maskz_loadu_ps(k, x + i);
    n += __builtin_popcount(_mm512_mask_cmp_ps_mask(k, xv, kOp == 2 ? xv : vb, kPred));
    i = end;
  }
#elif defined(__AVX2__)
  constexpr int kPred = kOp == 0 ? _CMP_GE_OQ : kOp == 1 ? _CMP_GT_OQ : _CMP_ORD_Q;
  const __m256 vb = _mm256_set1_ps(v);
  for (; i + 8 <= end; i += 8) {
    const __m256 xv = _mm256_loadu_ps(x + i);
    n += __builtin_popcount(_mm256_movemask_ps(_mm256_cmp_ps(xv, kOp == 2 ? xv : vb, kPred)));
  }
#endif
  for (; i < end; ++i) n += kOp == 0 ? x[i] >= v : kOp == 1 ? x[i] > v : x[i] == x[i];
  return n;
}

static int64_t rank_ahead(const float* x, int64_t c, int64_t label) {
  const float xl = x[label];
  if (xl != xl) return label + count_where<2>(x, label + 1, c, xl);
  return count_where<0>(x, 0, label, xl) + count_where<1>(x, label + 1, c, xl);
}

// The path-dependent part of one cross-entropy row (softmax_cross_entropy.cpp does the rest):
// d_i = e_i * (inv_n / S) for every i (the caller overwrites d[label]), S and S_other (the sum
// without the label's e, in the order above; S = S_other + e_label, added in double), the
// maximum, and rank_ahead. e is exp_row's, the same exp as softmax's.
static void cross_entropy_row(const float* __restrict x, int64_t c, int64_t label, float inv_n,
                              float* __restrict d, CrossEntropyRow* out) {
  out->ahead = rank_ahead(x, c, label);
  const float m = row_max(x, c);
  const double other = exp_row(x, m, d, c, label);
  const float s = static_cast<float>(other + static_cast<double>(d[label]));
  scale_row(d, c, inv_n / s);
  out->max = m;
  out->sum = s;
  out->sum_other = static_cast<float>(other);
}

// dst[p*ldd + j] = src[j*ld + p] for j < rows, p < cols: the transposing copy that packs a
// transposed GEMM operand into panels. With AVX2, 8 x 8 blocks go through registers.
#ifdef __AVX2__
static inline __m256i lanes_from(int t) {  // lane l set when l >= t
  return _mm256_cmpgt_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(t - 1));
}

// r[i] (row i of an 8 x 8 block) becomes column i of it, in registers.
static inline void transpose_8x8_regs(__m256* r) {
  __m256 t[8];
#pragma GCC unroll 4
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);      // a(i,0) a(i+1,0) a(i,1) a(i+1,1) | 4, 5
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);  // columns 2, 3 | 6, 7
  }
  __m256 u[8];
#pragma GCC unroll 2
  for (int h = 0; h < 8; h += 4) {  // rows h..h+3: column c of them in the low (c < 4) or high half
    u[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);      // columns 0 | 4
    u[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xEE);  // columns 1 | 5
    u[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
    u[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    r[c] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x20);
    r[c + 4] = _mm256_permute2f128_ps(u[c], u[c + 4], 0x31);
  }
}

static inline void transpose_8x8(const float* src, int64_t ld, float* dst, int64_t ldd) {
  __m256 r[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld);
  transpose_8x8_regs(r);
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + i * ldd, r[i]);
}
#endif

static void transpose(const float* __restrict src, int64_t ld, int64_t rows, int64_t cols,
                      float* __restrict dst, int64_t ldd) {
  int64_t j0 = 0;
#ifdef __AVX2__
  for (; j0 + 8 <= rows; j0 += 8) {
    int64_t p = 0;
    for (; p + 8 <= cols; p += 8) transpose_8x8(src + j0 * ld + p, ld, dst + p * ldd + j0, ldd);
    for (; p < cols; ++p) {
      for (int64_t j = j0; j < j0 + 8; ++j) dst[p * ldd + j] = src[j * ld + p];
    }
  }
  if (j0 < rows) {  // the last m < 8 rows (an SGEMM's 6-row panels): zero rows, masked stores
    const int64_t m = rows - j0;
    const __m256i first = lanes_below(m);
    int64_t p = 0;
    for (; p + 8 <= cols; p += 8) {
      __m256 r[8];
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        r[i] = i < m ? _mm256_loadu_ps(src + (j0 + i) * ld + p) : _mm256_setzero_ps();
      }
      transpose_8x8_regs(r);
#pragma GCC unroll 8
      for (int t = 0; t < 8; ++t) _mm256_maskstore_ps(dst + (p + t) * ldd + j0, first, r[t]);
    }
    for (; p < cols; ++p) {
      for (int64_t j = j0; j < rows; ++j) dst[p * ldd + j] = src[j * ld + p];
    }
    return;
  }
#endif
  for (int64_t j = j0; j < rows; ++j) {
    for (int64_t p = 0; p < cols; ++p) dst[p * ldd + j] = src[j * ld + p];
  }
}

// The NR-column panels of nc columns of kc rows of op(B): panel q (columns q*NR ..) at bp + q*ldp,
// element (p, j) of it at [p*NR + j], zero beyond column nc. op(B) is B (row p at B + p*ldb) or,
// with trans, B's transpose (B's row j is op(B)'s column j), transposed panel by panel (a panel's
// NR rows of B are each read contiguously; the next panel's are prefetched meanwhile). Without trans the rows are walked once each, all
// panels' pieces of a row in turn: B's rows may be far apart (fc6's data gradient: 36 KiB), and
// one contiguous stretch of each row is what the memory system serves best; the row kPackAhead
// rows ahead is prefetched meanwhile (the hardware prefetchers do not follow rows so far apart).
static constexpr int64_t kPackAhead = 8;

template <int NR>
static void pack_b_panels(bool trans, const float* __restrict B, int64_t ldb, int64_t nc,
                          int64_t kc, float* __restrict bp, int64_t ldp) {
  if (trans) {
    for (int64_t j = 0; j < nc; j += NR) {
      const int64_t cols = nc - j < NR ? nc - j : NR;
      float* panel = bp + j / NR * ldp;
      for (int64_t r = j + NR; r < j + 2 * NR && r < nc; ++r) {  // the next panel's rows
        for (int64_t c = 0; c < kc; c += 16) __builtin_prefetch(B + r * ldb + c);
      }
      if (cols < NR) {
        for (int64_t i = 0; i < kc * NR; ++i) panel[i] = 0.0f;
      }
      transpose(B + j * ldb, ldb, cols, kc, panel, NR);
    }
    return;
  }
  const int64_t full = nc / NR * NR;
  for (int64_t p = 0; p < kc; ++p) {
    const float* row = B + p * ldb;
    if (p + kPackAhead < kc) {
      for (int64_t c = 0; c < nc; c += 16) __builtin_prefetch(row + kPackAhead * ldb + c);
    }
    for (int64_t j = 0; j < full; j += NR) {  // NR contiguous floats, a fixed-length vector copy
      float* dst = bp + j / NR * ldp + p * NR;
#pragma GCC unroll 32
      for (int c = 0; c < NR; ++c) dst[c] = row[j + c];
    }
    if (full < nc) {
      float* dst = bp + full / NR * ldp + p * NR;
      for (int64_t c = 0; c < NR; ++c) dst[c] = full + c < nc ? row[full + c] : 0.0f;
    }
  }
}

// bp[p*NR + j] = x[rows[p] + cols[j]] for p < kc, j < n, and 0 for n <= j < NR: one panel of a
// B operand gathered through two offset tables (a convolution's im2col matrix, or its transpose,
// read from a zero-padded image). x[rows[p] + cols[j]] is read for every j < NR (the caller makes
// those readable), never used for j >= n.
static void gather_scalar(const float* __restrict x, const int32_t* __restrict rows, int64_t p0,
                          int64_t p1, const int32_t* __restrict cols, int64_t j0, int64_t j1,
                          int64_t n, int64_t nr, float* __restrict bp) {
  for (int64_t p = p0; p < p1; ++p) {
    const float* xr = x + rows[p];
    for (int64_t j = j0; j < j1; ++j) bp[p * nr + j] = j < n ? xr[cols[j]] : 0.0f;
  }
}

#ifdef __AVX2__
// Offsets o[0..7] as at most kMaxRuns contiguous runs: run k covers lanes start_k.. (start_0 = 0),
// where o[t] = o[0] + jump_k + t, with 0 = jump_0 < jump_1 < ... (so that each run's vector load,
// src + jump_k .. src + jump_k + 7, stays between o[0] and o[7]). An im2col row's 8 consecutive
// columns are so when the output rows are at least 8 / kMaxRuns + 1 wide (one or two runs from
// 8 wide on; AlexNet's 13 x 13 layers; up to 4 at 3 wide, the small network's 3 x 3); so are 8
// consecutive (c, r, s) taps of filter rows at least that wide.
static constexpr int kMaxRuns = 4;
struct Runs8 {
  int n = 1;
  int32_t jump[kMaxRuns] = {};
  __m256 from[kMaxRuns];  // lanes start_k.. of run k (run 0: unused)
};

static inline bool runs_of_8(const int32_t* o, Runs8& r) {
  r.n = 1;
  r.jump[0] = r.jump[1] = 0;
  r.from[1] = _mm256_setzero_ps();  // a one-run group read as two: the second blends no lane
  for (int t = 1; t < 8; ++t) {
    const int32_t jump = o[t] - o[0] - t;
    if (jump == r.jump[r.n - 1]) continue;
    if (jump < r.jump[r.n - 1] || r.n == kMaxRuns) return false;
    r.jump[r.n] = jump;
    r.from[r.n] = _mm256_castsi256_ps(lanes_from(t));
    ++r.n;
  }
  return true;
}

// 8 floats src[jump_k + t] (t in run k) in a register: a load per run, blended in order.
static inline __m256 load_runs(const float* src, const Runs8& r) {
  static_assert(kMaxRuns == 4, "the runs below, spelled out");
  __m256 v = _mm256_loadu_ps(src);
  if (r.n > 1) v = _mm256_blendv_ps(v, _mm256_loadu_ps(src + r.jump[1]), r.from[1]);
  if (r.n > 2) v = _mm256_blendv_ps(v, _mm256_loadu_ps(src + r.jump[2]), r.from[2]);
  if (r.n > 3) v = _mm256_blendv_ps(v, _mm256_loadu_ps(src + r.jump[3]), r.from[3]);
  return v;
}
#endif

template <int NR>
static void gather_panel(const float* __restrict x, const int32_t* __restrict rows, int64_t kc,
                         const int32_t* __restrict cols, int64_t n, float* __restrict bp) {
#ifdef __AVX2__
  // Each group of 8 columns whose 8 offsets are at most kMaxRuns runs (the image side of an
  // im2col panel): a load per run and the blends per row p, all such groups of a row together
  // (one panel row, one cache line, written at once). The others, where 8 consecutive rows'
  // offsets are such runs (the transposed panel of the filter gradient): 8 columns of 8 rows
  // loaded so and transposed in registers. Anything else element by element. Groups past
  // column n are zeros. With up to two runs only, the small network's 3 x 3 layers (three or
  // four runs) went element by element; with up to four, one thread, batch 64, alternated in
  // one process: conv3-5's forward 1.04-1.28x, input gradient 1.02-1.09x; AlexNet's unchanged.
  constexpr int kGroups = NR / 8;
  enum Kind { kZero, kOneRun, kTwoRuns, kRuns, kByRows };
  Kind kind[kGroups];
  int64_t valid[kGroups];
  bool any_by_rows = false;
  const float* base[kGroups];
  Runs8 runs[kGroups];
  __m256 keep[kGroups];
#pragma GCC unroll 4
  for (int g = 0; g < kGroups; ++g) {
    const int h = 8 * g;
    valid[g] = n - h < 0 ? 0 : (n - h > 8 ? 8 : n - h);
    if (valid[g] == 0) {
      kind[g] = kZero;
    } else if (!runs_of_8(cols + h, runs[g])) {
      kind[g] = kByRows;
      any_by_rows = true;
    } else {
      kind[g] = runs[g].n == 1 && valid[g] == 8 ? kOneRun : runs[g].n <= 2 ? kTwoRuns : kRuns;
    }
    base[g] = x + cols[h];
    keep[g] = _mm256_castsi256_ps(lanes_below(valid[g]));
  }
  for (int64_t p = 0; p < kc; ++p) {
    const int32_t r = rows[p];
    float* out = bp + p * NR;
#pragma GCC unroll 4
    for (int g = 0; g < kGroups; ++g) {
      if (kind[g] == kOneRun) {
        _mm256_storeu_ps(out + 8 * g, _mm256_loadu_ps(base[g] + r));
      } else if (kind[g] == kTwoRuns) {  // the common case spelled out (n == 1: jump 0)
        const __m256 v = _mm256_blendv_ps(_mm256_loadu_ps(base[g] + r),
                                          _mm256_loadu_ps(base[g] + r + runs[g].jump[1]),
                                          runs[g].from[1]);
        _mm256_storeu_ps(out + 8 * g, _mm256_and_ps(v, keep[g]));
      } else if (kind[g] == kRuns) {
        _mm256_storeu_ps(out + 8 * g, _mm256_and_ps(load_runs(base[g] + r, runs[g]), keep[g]));
      } else if (kind[g] == kZero) {
        _mm256_storeu_ps(out + 8 * g, _mm256_setzero_ps());
      }
    }
  }
  if (!any_by_rows) return;
  int64_t p = 0;
  for (; p + 8 <= kc; p += 8) {
    Runs8 row_runs;
    const bool by_runs = runs_of_8(rows + p, row_runs);
    for (int g = 0; g < kGroups; ++g) {
      if (kind[g] != kByRows) continue;
      const int h = 8 * g;
      if (!by_runs) {
        gather_scalar(x, rows, p, p + 8, cols, h, h + 8, n, NR, bp);
        continue;
      }
      __m256 r[8];
#pragma GCC unroll 8
      for (int j = 0; j < 8; ++j) {
        r[j] = j < valid[g] ? load_runs(x + cols[h + j] + rows[p], row_runs) : _mm256_setzero_ps();
      }
      transpose_8x8_regs(r);
#pragma GCC unroll 8
      for (int t = 0; t < 8; ++t) _mm256_storeu_ps(bp + (p + t) * NR + h, r[t]);
    }
  }
  for (int g = 0; g < kGroups; ++g) {
    if (kind[g] == kByRows) gather_scalar(x, rows, p, kc, cols, 8 * g, 8 * g + 8, n, NR, bp);
  }
#else
  gather_scalar(x, rows, 0, kc, cols, 0, NR, n, NR, bp);
#endif
}

// The portable SGEMM micro-kernel (MR x NR accumulators the compiler keeps in registers when
// the loops are fully unrolled; GCC keeps acc in memory, 10x slower, when left to decide).
template <int MR, int NR>
static void gemm_micro_generic(int64_t kc, const float* __restrict ap, const float* __restrict bp,
                               float* __restrict c, int64_t ldc, int64_t rows, int64_t cols,
                               bool add) {
  float acc[MR][NR] = {};
  for (int64_t p = 0; p < kc; ++p) {
    const float* a = ap + p * MR;
    const float* b = bp + p * NR;
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
    }
  }
  for (int64_t i = 0; i < rows; ++i) {
    float* ci = c + i * ldc;
    if (add) {
      for (int64_t j = 0; j < cols; ++j) ci[j] += acc[i][j];
    } else {
      for (int64_t j = 0; j < cols; ++j) ci[j] = acc[i][j];
    }
  }
}

// Stores an MR x NR tile held in `tile` (row-major, NR floats a row) into C's rows x cols corner.
template <int MR, int NR>
static void store_partial(const float* tile, float* c, int64_t ldc, int64_t rows, int64_t cols,
                          bool add) {
  for (int64_t i = 0; i < rows; ++i) {
    float* ci = c + i * ldc;
    const float* ti = tile + i * NR;
    if (add) {
      for (int64_t j = 0; j < cols; ++j) ci[j] += ti[j];
    } else {
      for (int64_t j = 0; j < cols; ++j) ci[j] = ti[j];
    }
  }
}

// The FMA micro-kernel of the AVX2 and AVX-512 paths: MR x 2 vector accumulators, so the panel
// is NR = 2 * V::kWidth columns wide. V wraps one register type's intrinsics (load, store, add,
// fma, broadcast, zero). Every loop over acc is fully unrolled, so it lives in registers (an
// indexed access anywhere would put it on the stack and store it on every k step).
#ifdef __FMA__
// kRows: A is read in place, mr rows of stride lda (a row repeated past `rows`: computed, never
// stored), instead of from a packed panel; the same operations in the same order.
template <class V, int MR, bool kRows>
static void gemm_micro_fma_impl(int64_t kc, const float* ap, int64_t lda, const float* bp,
                                float* c, int64_t ldc, int64_t rows, int64_t cols, bool add) {
  constexpr int W = V::kWidth, NR = 2 * W;
  // C's rows are fetched for writing while the k loop runs: C may be far from the caches (fc6's
  // filter gradient: 151 MB, rows 36 KiB apart), and its stores would otherwise wait for it.
  for (int64_t i = 0; i < rows; ++i) {
    __builtin_prefetch(c + i * ldc, 1);
    __builtin_prefetch(c + i * ldc + cols - 1, 1);
  }
  typename V::Reg acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = V::zero();
  // Row i of the panel, element p at ar[i] + p * kStep.
  constexpr int64_t kStep = kRows ? 1 : MR;
  const float* ar[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) ar[i] = kRows ? ap + (i < rows ? i : 0) * lda : ap + i;
  if (cols <= W) {
    // A panel's last columns, at most half of it (a convolution's 169 output pixels are 5
    // panels and 9 columns on AVX-512): the right half's multiply-adds would only meet zeros.
    // The same operations on the left half, so the same results.
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; ++p, bp += NR) {
      const typename V::Reg b0 = V::load(bp);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) acc[i][0] = V::fma(V::broadcast(ar[i] + p * kStep), b0, acc[i][0]);
    }
  } else {
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; ++p, bp += NR) {
      const typename V::Reg b0 = V::load(bp), b1 = V::load(bp + W);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const typename V::Reg a = V::broadcast(ar[i] + p * kStep);
        acc[i][0] = V::fma(a, b0, acc[i][0]);
        acc[i][1] = V::fma(a, b1, acc[i][1]);
      }
    }
  }
  if (rows == MR && cols == NR) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      float* ci = c + i * ldc;
      if (add) {
        acc[i][0] = V::add(V::load(ci), acc[i][0]);
        acc[i][1] = V::add(V::load(ci + W), acc[i][1]);
      }
      V::store(ci, acc[i][0]);
      V::store(ci + W, acc[i][1]);
    }
    return;
  }
  float tile[MR * NR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    V::store(tile + i * NR, acc[i][0]);
    V::store(tile + i * NR + W, acc[i][1]);
  }
  store_partial<MR, NR>(tile, c, ldc, rows, cols, add);
}

template <class V, int MR>
static void gemm_micro_fma(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                           int64_t rows, int64_t cols, bool add) {
  gemm_micro_fma_impl<V, MR, false>(kc, ap, 0, bp, c, ldc, rows, cols, add);
}

template <class V, int MR>
static void gemm_micro_rows_fma(int64_t kc, const float* a, int64_t lda, const float* bp,
                                float* c, int64_t ldc, int64_t rows, int64_t cols, bool add) {
  gemm_micro_fma_impl<V, MR, true>(kc, a, lda, bp, c, ldc, rows, cols, add);
}
#endif

// The peak probes. 12 chains: a multiply-add's latency (4-5 cycles) times the 2 pipes that
// issue it is at most 10 operations in flight, so 12 independent chains keep both pipes busy
// with nothing else in the loop. acc -> acc * m + a converges to a / (1 - m), never a denormal.
static constexpr int kChains = 12;

[[maybe_unused]] static int64_t mul_add_chains(int64_t steps, float* sink) {
  constexpr int W = 4;  // one SSE register per chain
  float acc[kChains][W];
#pragma GCC unroll 16
  for (int i = 0; i < kChains; ++i) {
    for (int j = 0; j < W; ++j) acc[i][j] = 1.0f + 0.125f * i + 0.01f * j;
  }
  const float m = 0.999f, a = 0.001f;
  for (int64_t t = 0; t < steps; ++t) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) {
#pragma GCC unroll 4
      for (int j = 0; j < W; ++j) acc[i][j] = acc[i][j] * m + a;
    }
  }
  float sum = 0.0f;
  for (int i = 0; i < kChains; ++i) {
    for (int j = 0; j < W; ++j) sum += acc[i][j];
  }
  *sink = sum;
  return steps * kChains * W * 2;
}

#ifdef __FMA__
template <class V>
static int64_t fma_chains_vec(int64_t steps, float* sink) {
  const float m_value = 0.999f, a_value = 0.001f;
  const typename V::Reg m = V::broadcast(&m_value), a = V::broadcast(&a_value);
  typename V::Reg acc[kChains];
#pragma GCC unroll 16
  for (int i = 0; i < kChains; ++i) {
    const float init = 1.0f + 0.125f * i;
    acc[i] = V::broadcast(&init);
  }
  for (int64_t t = 0; t < steps; ++t) {
#pragma GCC unroll 16
    for (int i = 0; i < kChains; ++i) acc[i] = V::fma(acc[i], m, a);
  }
#pragma GCC unroll 16
  for (int i = 1; i < kChains; ++i) acc[0] = V::add(acc[0], acc[i]);
  float lanes[V::kWidth];
  V::store(lanes, acc[0]);
  *sink = lanes[0];
  return steps * kChains * V::kWidth * 2;
}
#endif

#define PCN_SIMD_TABLE(isa_name, MR, NR, micro, rows, peak_probe)                         \
  const SimdKernels table = {isa_name,     MR,           NR,            micro,      rows,   \
                             pack_b_panels<NR>, gather_panel<NR>, transpose, relu_forward, \
                             relu_backward, PCN_STREAM_COPY,                                \
                             max_pool_forward_plane, max_pool_backward_plane,               \
                             dropout_forward, dropout_backward, augment_row, sgd_update,   \
                             softmax_row,                                                   \
                             cross_entropy_row, lrn_forward, lrn_backward, peak_probe};
