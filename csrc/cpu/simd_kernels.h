// The pointwise kernels of every instruction-set path (isa.h), written as plain loops for the
// compiler to vectorise with the flags of the including file: simd_baseline.cpp, simd_avx2.cpp
// and simd_avx512.cpp each include this header once, inside their own namespace, so each gets
// its own copy with internal linkage (no inline function of one path can stand in for
// another's at link time). Those files are compiled with -ffp-contract=off: every path rounds
// the same operations in the same order, so the pointwise results are bit-identical across paths.
// Only <cstdint>, <cmath> and <immintrin.h> may be used here.

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

static void dropout_backward(const float* __restrict dy, const uint8_t* __restrict keep,
                             float scale, float* __restrict dx, int64_t n) {
  // dy * 0 keeps a NaN in dy a NaN, as the forward does.
  for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * (keep[i] != 0 ? scale : 0.0f);
}

static void sgd_update(float* __restrict w, const float* __restrict dw, float* __restrict v,
                       float momentum, float decay, float lr, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float vi = momentum * v[i] - decay * w[i] - lr * dw[i];
    v[i] = vi;
    w[i] += vi;
  }
}

// dst[p*ldd + j] = src[j*ld + p] for j < rows, p < cols: the transposing copy that packs a
// transposed GEMM operand into panels. With AVX2, 8 x 8 blocks go through registers.
#ifdef __AVX2__
static inline void transpose_8x8(const float* src, int64_t ld, float* dst, int64_t ldd) {
  __m256 r[8], t[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld);
#pragma GCC unroll 4
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);      // a(i,0) a(i+1,0) a(i,1) a(i+1,1) | 4, 5
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);  // columns 2, 3 | 6, 7
  }
#pragma GCC unroll 2
  for (int h = 0; h < 8; h += 4) {  // rows h..h+3: column c of them in the low (c < 4) or high half
    r[h] = _mm256_shuffle_ps(t[h], t[h + 2], 0x44);      // columns 0 | 4
    r[h + 1] = _mm256_shuffle_ps(t[h], t[h + 2], 0xEE);  // columns 1 | 5
    r[h + 2] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0x44);
    r[h + 3] = _mm256_shuffle_ps(t[h + 1], t[h + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int c = 0; c < 4; ++c) {
    _mm256_storeu_ps(dst + c * ldd, _mm256_permute2f128_ps(r[c], r[c + 4], 0x20));
    _mm256_storeu_ps(dst + (c + 4) * ldd, _mm256_permute2f128_ps(r[c], r[c + 4], 0x31));
  }
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
#endif
  for (int64_t j = j0; j < rows; ++j) {
    for (int64_t p = 0; p < cols; ++p) dst[p * ldd + j] = src[j * ld + p];
  }
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

#define PCN_SIMD_TABLE(isa_name, MR, NR, micro)                                          \
  const SimdKernels table = {isa_name,      MR,           NR,            micro,            \
                             transpose,     relu_forward, relu_backward, dropout_backward, \
                             sgd_update};
