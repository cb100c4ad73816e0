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

// Max-pooling of one (n, c) plane, x (h x w) -> y (ho x wo), windows k x k at stride st. The
// running maximum takes v when v > m or v is NaN, visiting each window in row-major order (what
// the CUDA kernel does), so a NaN wins and ties keep the first element. For each output row the
// window taps are the outer loops and the output columns the inner one: with the window and
// stride known at compile time (AlexNet's 3 x 3 at stride 2) the column loop becomes strided
// vector loads and blends.

static inline float max_keep_nan(float m, float v) { return (v > m) | (v != v) ? v : m; }

template <int K, int ST>
static void max_pool_rows(const float* __restrict x, int64_t w, float* __restrict y, int64_t ho,
                          int64_t wo, int64_t k, int64_t st) {
  const int64_t kk = K > 0 ? K : k, ss = ST > 0 ? ST : st;
  for (int64_t i = 0; i < ho; ++i) {
    const float* xr = x + i * ss * w;
    float* yr = y + i * wo;
    for (int64_t j = 0; j < wo; ++j) yr[j] = xr[j * ss];
    for (int64_t r = 0; r < kk; ++r) {
      for (int64_t s = r == 0 ? 1 : 0; s < kk; ++s) {
        const float* xs = xr + r * w + s;
        for (int64_t j = 0; j < wo; ++j) yr[j] = max_keep_nan(yr[j], xs[j * ss]);
      }
    }
  }
}

static void max_pool_forward_plane(const float* x, int64_t h, int64_t w, float* y, int64_t ho,
                                   int64_t wo, int64_t k, int64_t st) {
  if (k == 3 && st == 2) {
    max_pool_rows<3, 2>(x, w, y, ho, wo, k, st);
  } else {
    max_pool_rows<0, 0>(x, w, y, ho, wo, k, st);
  }
}

// The gradient of each window goes to its first element (row-major) equal to y, or its first
// NaN when y is NaN; nowhere when none matches (y not computed from x). For a run of up to 64
// windows of an output row, the matching tap of each is found with vector compares and blends,
// visiting the taps backwards so the first match is the one that stays; then the
// windows' gradients are added in row-major window order, so a position's contributions add up
// in window order.
template <int K, int ST>
static void max_pool_backward_rows(const float* __restrict x, const float* __restrict y,
                                   const float* __restrict dy, float* __restrict dx, int64_t w,
                                   int64_t ho, int64_t wo, int64_t k, int64_t st) {
  const int64_t kk = K > 0 ? K : k, ss = ST > 0 ? ST : st;
  constexpr int64_t kRun = 64;
  int32_t tap[kRun];
  for (int64_t i = 0; i < ho; ++i) {
    const float* xr = x + i * ss * w;
    const float* yr = y + i * wo;
    for (int64_t j0 = 0; j0 < wo; j0 += kRun) {
      const int64_t n = wo - j0 < kRun ? wo - j0 : kRun;
      for (int64_t j = 0; j < n; ++j) tap[j] = -1;
      for (int64_t r = kk - 1; r >= 0; --r) {
        for (int64_t s = kk - 1; s >= 0; --s) {
          const float* xs = xr + r * w + s + j0 * ss;
          const int32_t id = static_cast<int32_t>(r * kk + s);
          for (int64_t j = 0; j < n; ++j) {
            const float v = xs[j * ss], m = yr[j0 + j];
            const bool hit = (v == m) | ((m != m) & (v != v));
            tap[j] = hit ? id : tap[j];
          }
        }
      }
      for (int64_t j = 0; j < n; ++j) {
        if (tap[j] < 0) continue;
        const int64_t r = tap[j] / kk, s = tap[j] % kk;
        dx[(i * ss + r) * w + (j0 + j) * ss + s] += dy[i * wo + j0 + j];
      }
    }
  }
}

static void max_pool_backward_plane(const float* x, const float* y, const float* dy, float* dx,
                                    int64_t h, int64_t w, int64_t ho, int64_t wo, int64_t k,
                                    int64_t st) {
  for (int64_t e = 0; e < h * w; ++e) dx[e] = 0.0f;
  if (k == 3 && st == 2) {
    max_pool_backward_rows<3, 2>(x, y, dy, dx, w, ho, wo, k, st);
  } else {
    max_pool_backward_rows<0, 0>(x, y, dy, dx, w, ho, wo, k, st);
  }
}

// exp(v) for softmax's shifted logits v = x - max <= 0 (NaN stays NaN; below -87, where exp is
// under float32's smallest normal number, 0). v = n ln2 + t with n = round(v / ln2) (the 1.5 * 2^23
// trick: adding and subtracting it rounds to an integer) and |t| <= ln2 / 2 (ln2 split in two,
// so that n * ln2_hi is exact); exp(t) by its Taylor polynomial to t^7 (truncation < 3e-9,
// relative), times 2^n built in the exponent field. exp8 is the same operations on 8 lanes
// (AVX2), so both give the same bits.
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

// One row of softmax: p = exp(x - max) / S. The maximum is NaN if the row holds one; S is summed
// in double in 8 interleaved partial sums (element i into sum i % 8; the 8 added in order at the
// end). The maximum, too, is taken in those 8 lanes, then across them. On AVX2 the lanes are
// the lanes of a register, the same operations in the same order: the same bits on every path.
static void softmax_row(const float* __restrict x, float* __restrict p, int64_t c) {
  constexpr int L = 8;
  float lane_max[L];
  double lane_sum[L];
  const int64_t c8 = c / L * L;
#ifdef __AVX2__
  __m256 mv = _mm256_set1_ps(x[0]);
  for (int64_t i = 0; i < c8; i += L) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 take =
        _mm256_or_ps(_mm256_cmp_ps(v, mv, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    mv = _mm256_blendv_ps(mv, v, take);
  }
  _mm256_storeu_ps(lane_max, mv);
#else
  for (int j = 0; j < L; ++j) lane_max[j] = x[0];
  for (int64_t i = 0; i < c8; i += L) {
    for (int j = 0; j < L; ++j) lane_max[j] = max_keep_nan(lane_max[j], x[i + j]);
  }
#endif
  for (int64_t i = c8; i < c; ++i) lane_max[0] = max_keep_nan(lane_max[0], x[i]);
  float m = lane_max[0];
  for (int j = 1; j < L; ++j) m = max_keep_nan(m, lane_max[j]);
#ifdef __AVX2__
  const __m256 mb = _mm256_set1_ps(m);
  __m256d lo = _mm256_setzero_pd(), hi = _mm256_setzero_pd();
  for (int64_t i = 0; i < c8; i += L) {
    const __m256 e = exp8_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + i), mb));
    _mm256_storeu_ps(p + i, e);
    lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  _mm256_storeu_pd(lane_sum, lo);
  _mm256_storeu_pd(lane_sum + 4, hi);
#else
  for (int j = 0; j < L; ++j) lane_sum[j] = 0.0;
  for (int64_t i = 0; i < c8; i += L) {
    for (int j = 0; j < L; ++j) {
      p[i + j] = exp_nonpositive(x[i + j] - m);
      lane_sum[j] += static_cast<double>(p[i + j]);
    }
  }
#endif
  for (int64_t i = c8; i < c; ++i) {
    p[i] = exp_nonpositive(x[i] - m);
    lane_sum[i - c8] += static_cast<double>(p[i]);
  }
  double sum = lane_sum[0];
  for (int j = 1; j < L; ++j) sum += lane_sum[j];
  const float s = static_cast<float>(sum);
  for (int64_t k = 0; k < c; ++k) p[k] /= s;
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

// bp[p*NR + j] = op(B)[p][j] for one NR-column panel of a KC slice, zero beyond column `cols`:
// op(B) is B (row p at B + p*ldb) or, with trans, B's transpose (B's row j is op(B)'s column j).
template <int NR>
static void pack_b_panel(bool trans, const float* __restrict B, int64_t ldb, int64_t cols,
                         int64_t kc, float* __restrict bp) {
  if (trans) {
    if (cols < NR) {
      for (int64_t i = 0; i < kc * NR; ++i) bp[i] = 0.0f;
    }
    transpose(B, ldb, cols, kc, bp, NR);
    return;
  }
  if (cols == NR) {  // the common case: NR contiguous floats per k, a fixed-length vector copy
    for (int64_t p = 0; p < kc; ++p) {
#pragma GCC unroll 32
      for (int j = 0; j < NR; ++j) bp[p * NR + j] = B[p * ldb + j];
    }
    return;
  }
  for (int64_t p = 0; p < kc; ++p) {
    for (int64_t j = 0; j < NR; ++j) bp[p * NR + j] = j < cols ? B[p * ldb + j] : 0.0f;
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

// The FMA micro-kernel of the AVX2 and AVX-512 paths: MR x 2 vector accumulators, so the panel
// is NR = 2 * V::kWidth columns wide. V wraps one register type's intrinsics (load, store, add,
// fma, broadcast, zero). Every loop over acc is fully unrolled, so it lives in registers (an
// indexed access anywhere would put it on the stack and store it on every k step).
#ifdef __FMA__
template <class V, int MR>
static void gemm_micro_fma(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                           int64_t rows, int64_t cols, bool add) {
  constexpr int W = V::kWidth, NR = 2 * W;
  typename V::Reg acc[MR][2];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) acc[i][0] = acc[i][1] = V::zero();
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p, ap += MR, bp += NR) {
    const typename V::Reg b0 = V::load(bp), b1 = V::load(bp + W);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const typename V::Reg a = V::broadcast(ap + i);
      acc[i][0] = V::fma(a, b0, acc[i][0]);
      acc[i][1] = V::fma(a, b1, acc[i][1]);
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

#define PCN_SIMD_TABLE(isa_name, MR, NR, micro, peak_probe)                               \
  const SimdKernels table = {isa_name,     MR,           NR,            micro,              \
                             pack_b_panel<NR>, transpose, relu_forward, relu_backward,      \
                             max_pool_forward_plane, max_pool_backward_plane,               \
                             dropout_backward, sgd_update, softmax_row, peak_probe};
