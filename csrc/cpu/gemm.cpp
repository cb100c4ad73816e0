// Cache-blocked SGEMM in the style of GotoBLAS/BLIS:
//   - op(A) is packed once per product (or once per layer: PackedA), every KC-deep slice into
//     mr-row panels, zero-padded at the edges, so the micro-kernel never branches;
//   - C is cut into mc x nc tiles (nc <= NC), one parallel task each (static schedule, no
//     shared sums);
//     mc covers up to MC_MAX rows, so in most products each element of op(B) is packed once;
//   - for each KC slice, a task packs its KC x NC block of op(B) into nr-column panels (an
//     L2-sized block starting on a cache line; one panel, KC*nr floats, stays in L1 while it
//     meets every A panel), by copying op(B) or, for a convolution, straight from the image
//     (PackB); with a single slice the tiles go column block by column block and a thread
//     reuses the block it packed last; the plain SGEMM (op(B) in memory) prefetches the next
//     slice's block into L2 a part after each micro-kernel call, so that packing it does not
//     wait for memory;
//   - the tiles of a row of tiles share its nr-column panels evenly, so that with few tiles
//     every thread gets the same work to a panel;
//   - with several slices and a row stride of C that is a multiple of 1 KiB, the task's tile of
//     C lives in a dense buffer until the last one;
//   - the micro-kernel of the active instruction-set path (isa.h: AVX-512 6x32, AVX2 6x16, or
//     the portable 4x8) keeps an mr x nr block of C in registers for a whole slice; its k loop
//     is unrolled by 4 (without, loop overhead held the AVX2 kernel at ~82% of the measured
//     FMA peak with its panels in L1; with, ~98%); a panel's last columns, when they are at most
//     half of it, take half the multiply-adds (conv3-5's 169 output pixels: 5 panels of 32 and
//     9 columns on AVX-512; one thread, alternated in one process: their forward and input
//     gradient 4-6% faster);
//   - an operand A may also be left in place (rows_of_a, on the AVX2 and AVX-512 paths), its
//     rows read along k by the micro-kernel for rows of A: a convolution's filter gradient takes
//     each image's dy so, the same products as when packed without the copy;
//   - C = A * B^T with B too large to stay cached and at most MC_MAX rows (fc6's and fc7's
//     forward: x against w) runs sgemm_rows_of_a (below) on the AVX2 and AVX-512 paths: w is
//     read in place by a micro-kernel that broadcasts from its rows, x^T is the packed operand;
//     with few rows of x, or on the portable path, sgemm_streamed packs w instead, a panel at a
//     time between the micro-kernel calls.
// The slices are visited in order and each adds its partial sums to C, so every element's
// summation order depends only on K and the path, never on the thread count or on M.
//
// fc6 at batch 128 (x (128, 9216), w (4096, 9216); 2-core EPYC Zen 5, AVX-512, 2 threads,
// 510 GFLOP/s measured peak; ms per pass, bench_kernels.py):
//   - forward: 29.9 (65% of the peak) with w packed (a profile on one thread: 13% of the
//     samples in transposing w against 63% in the micro-kernel), 24-25 (75-79%) with w read in
//     place (later, the machine slowed by other tenants: 27-28 against 33-35 alternated, 1.22x);
//     the micro-kernel reading w's rows in place runs at 90% of the peak with its x^T panel in
//     L1, as the packed one (87-94%).
//   - input gradient (w as stored, B not transposed): 33.4 (58%) streamed, 28.6 (69%) tiled
//     (later, under load: 29.4 against 38.5-39.1 alternated);
//     on the Zen 3 this was tuned on before, the two were within the scatter, so only the
//     tiled path remains for it. Its w is packed: a micro-kernel reading w's rows in place would
//     walk down its columns, rows 36 KiB apart in the same cache sets. The tiled path's packing
//     (a profile, one thread: 10% of the samples against 54% in the micro-kernel) waits on
//     loads that the prefetch of the next block did not bring in time: its rows fall into 16
//     groups of L2 sets, 16 rows to a group, all 16 ways of a Zen 5 L2. Packing the next block
//     a few rows at a time between the micro-kernel calls instead (the streamed order, 192
//     columns wide) took 77 ms on one thread against the tiled path's 56.5 (again later:
//     sgemm_streamed taught to pack B's rows so, its next rows prefetched 32 ahead, 64-69 ms
//     against 51-52). Leaving out the prefetch of the next block, or issuing it only in the
//     block's last half or quarter, or as prefetchnta, changed nothing beyond the scatter
//     (49.5-53.5 ms); nor did the pack's own prefetch 8 to 64 rows ahead, into L1 or L2. A
//     test outside the engine agrees: copying 768-byte pieces of rows 36 KiB apart between
//     stretches of multiply-adds (320 ns of them a piece) stalled ~127 ns a piece whether or not
//     each piece was prefetched 8 to 128 pieces ahead; so the copy stays where it is, in one
//     step before each block.
//   - a dot-product kernel reading both x and w along k (4 x 6 and 8 x 3 register blocks, lane
//     sums at the end) reached only 59-68% of the peak with x streaming from L2 (80% with
//     both in L1): each x vector serves 4-8 multiply-adds, against 32 for a broadcast.
// On a Zen 4 (AVX-512 on 256-bit units, 2 x 118 GFLOP/s; L1 32 KiB, L2 1 MiB, L3 32 MiB), one
// thread: forward 94-103 ms (80-87%), input gradient 104-116 ms (71-79%), filter gradient 88-90
// ms (91-93%). The input gradient's pack of w takes 17.5% of the samples even with w in L3
// (4096 x 1024: 16 MB; 70% of the peak) against 9-11% with fc6's from memory, so its loads
// wait on latency, not bandwidth (the rows of a block, 4 or 36 KiB apart, share the same L1
// sets). Tried there, with no gain beyond the scatter: issuing the next block's prefetch in the
// first 32 micro-kernel calls instead of spread over all 132 (the pack's time, by the time-stamp
// counter, 9.6 -> 5.5 ms a pass, but the micro-kernel's grew as much); the pack's own prefetch
// 0, 8, 16 or 32 rows ahead, into L1 or L2; blocks 64 x 768, 128 x 384 or 128 x 192 (A's panels
// read part by part) instead of 256 x 192; the micro-kernel calls row panel by row panel.
// On Zen 3 (AVX2, 2 x 96 GFLOP/s), with w packed and the input gradient streamed: forward 81 ms
// (60%), input gradient 89 ms (57%), filter gradient 68.5 ms (71%), idle, three runs.
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "csrc/allocator.h"
#include "csrc/error.h"
#include "isa.h"
#include "parallel.h"

namespace pcn::cpu {
namespace {

// NC is a multiple of every path's nr (8, 16, 32). The B block (KC*NC*4 = 192 KiB) and an A
// block (at most MC_MAX*KC*4 = 192 KiB) fit in L2 together.
constexpr int64_t NC = 192, KC = 256, MC_MAX = 192;
// op(B)s of at least this many floats (16 MiB, half the L3 of the CPUs this was tuned on) go
// through sgemm_streamed or sgemm_rows_of_a when C has one row of tiles (reads_b_once).
constexpr int64_t kStreamedB = int64_t{1} << 22;

// Whether C = A * B^T (M x N, k K deep) reads B from memory once: one row of tiles and a B of at
// least kStreamedB floats, more than one slice deep (sgemm_streamed, sgemm_rows_of_a).
bool reads_b_once(int64_t M, int64_t N, int64_t K) {
  return M > 0 && M <= MC_MAX && K > KC && K * N >= kStreamedB;
}

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// The packed B block starts on a cache line (kAlign floats = 64 bytes); a panel's row is nr = 8,
// 16 or 32 floats, so no vector load of the micro-kernel straddles two lines (a vector's
// malloc'd data is only 16-byte aligned: every second 32-byte load of a 6x16 step would).
constexpr int64_t kAlign = 16;
float* aligned(float* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  return p + (-a & (kAlign * sizeof(float) - 1)) / sizeof(float);
}

// ap[p*mr + i] = op(A)[i0 + i][k0 + p] for one mr-row panel, zero beyond row `rows`.
void pack_a_panel(bool trans, const float* A, int64_t lda, int64_t i0, int64_t rows, int64_t k0,
                  int64_t kc, int64_t mr, float* ap) {
  if (rows < mr) std::fill(ap, ap + kc * mr, 0.0f);
  if (trans) {  // op(A)[i][p] = A[p][i]: each k's mr values are contiguous
    for (int64_t p = 0; p < kc; ++p) std::memcpy(ap + p * mr, A + (k0 + p) * lda + i0, rows * 4);
    return;
  }
  simd().transpose(A + i0 * lda + k0, lda, rows, kc, ap, mr);
}

// Layout: slice s (k0 = s*KC, kc deep) starts at k0 * round_up(M, mr); in it, the panel of rows
// i..i+mr starts at i * kc, so a task's mc rows of one slice are contiguous. panel(i, rows, k0,
// kc, mr, ap) packs one panel.
// An operand's shape and tiling: M rows in tiles of mc (at most MC_MAX, a multiple of mr).
PackedA operand_shape(int64_t M, int64_t K) {
  PackedA a;
  a.M = M;
  a.K = K;
  a.mr = simd().mr;
  const int64_t tiles = (M + MC_MAX - 1) / MC_MAX;
  a.mc = round_up((M + tiles - 1) / std::max<int64_t>(tiles, 1), a.mr);
  return a;
}

template <class Panel>
PackedA pack_a_panels(int64_t M, int64_t K, const Panel& panel) {
  PackedA a = operand_shape(M, K);
  const int64_t m_pad = round_up(M, a.mr), panels = m_pad / a.mr, slices = (K + KC - 1) / KC;
  a.storage = allocate(static_cast<size_t>(m_pad * K) * sizeof(float), Device::cpu());
  parallel_for(panels * slices, [&](int64_t t) {
    const int64_t k0 = (t / panels) * KC, i = (t % panels) * a.mr, kc = std::min(KC, K - k0);
    panel(i, std::min(a.mr, M - i), k0, kc, a.mr, a.data() + k0 * m_pad + i * kc);
  });
  return a;
}

// The plain SGEMM with one row of tiles (M <= mc) and op(B) = B^T of at least kStreamedB floats
// (fc6's and fc7's weights in the forward, read from memory once per pass; fc8's 4096 x 1000
// stay below), where sgemm_rows_of_a does not take it (fewer rows than half a panel, or a path
// without gemm_micro_rows):
//   - each thread takes a contiguous share of C's columns (whole nr-column panels, shares
//     differing by one at most) and walks its blocks of op(B) (KC deep, as sgemm_sum's, NC
//     columns wide: NC rows of B) in the order B lies in memory, column block by column block,
//     each through all the slices;
//   - the next block is packed into a second buffer a panel at a time between the micro-kernel
//     calls of the current one, its rows prefetched a panel ahead, instead of in one step
//     between blocks;
//   - C's column block lives in a dense buffer while slices add into it when C's row stride is
//     a multiple of 1 KiB, as in sgemm_sum.
// The slices are added in order as in sgemm_sum, with the same blocks, so the results are
// bit-identical to it and independent of the thread count.
void sgemm_streamed(const PackedA& a, int64_t N, const float* B, int64_t ldb, float* C,
                    int64_t ldc, bool accumulate) {
  const SimdKernels& kern = simd();
  PCN_REQUIRE(kern.mr == a.mr, ValueError, "sgemm: operand packed for the ", a.mr,
              "-row micro-kernel; the active CPU path '", kern.name, "' uses ", kern.mr);
  const int64_t M = a.M, K = a.K, mr = a.mr, nr = kern.nr, m_pad = round_up(M, mr);
  const int64_t panels = (N + nr - 1) / nr, threads = parallel_threads();
  const int64_t slices = (K + KC - 1) / KC;
  const bool buffered = ldc % 256 == 0;
  parallel_for(threads, [&](int64_t q) {
    const int64_t c0 = std::min(N, q * panels / threads * nr);
    const int64_t c1 = std::min(N, (q + 1) * panels / threads * nr);
    if (c0 == c1) return;
    const int64_t col_blocks = (c1 - c0 + NC - 1) / NC, count = col_blocks * slices;
    struct Block {
      int64_t k0, kc, j0, nc;
    };
    const auto block = [&](int64_t n) {
      const int64_t k0 = n % slices * KC, j0 = c0 + n / slices * NC;
      return Block{k0, std::min(KC, K - k0), j0, std::min(NC, c1 - j0)};
    };
    // A block's source: nc rows of B, kc floats each, packed nr rows (a panel) at a time.
    const auto row = [&](const Block& b, int64_t r) { return B + (b.j0 + r) * ldb + b.k0; };
    const auto pack_rows = [&](const Block& b, int64_t r0, int64_t r1, float* bp) {
      kern.pack_b(true, row(b, r0), ldb, r1 - r0, b.kc, bp + r0 * b.kc, b.kc * nr);
    };
    const auto prefetch_rows = [&](const Block& b, int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const float* src = row(b, r);
        for (int64_t e = 0; e < b.kc; e += 16) __builtin_prefetch(src + e, 0, 2);
        __builtin_prefetch(src + b.kc - 1, 0, 2);
      }
    };
    thread_local std::vector<float> bufs, ctile;
    bufs.resize(2 * KC * NC + kAlign);
    float* const buf[2] = {aligned(bufs.data()), aligned(bufs.data()) + KC * NC};
    // The dense buffer's row stride: NC, plus 16 floats so that it is no multiple of 1 KiB.
    constexpr int64_t ldt = NC + 16;
    if (buffered) ctile.resize(static_cast<size_t>(M * ldt));
    Block cur = block(0);
    pack_rows(cur, 0, cur.nc, buf[0]);
    for (int64_t n = 0; n < count; ++n) {
      float* const bp = buf[n & 1];
      const bool first = cur.k0 == 0, last = cur.k0 + cur.kc == K;
      if (buffered && first && accumulate) {
        for (int64_t i = 0; i < M; ++i) {
          std::copy(C + i * ldc + cur.j0, C + i * ldc + cur.j0 + cur.nc, ctile.data() + i * ldt);
        }
      }
      float* const c = buffered ? ctile.data() : C + cur.j0;
      const int64_t ld = buffered ? ldt : ldc;
      const bool add = accumulate || cur.k0 > 0;
      const bool has_next = n + 1 < count;
      const Block next = has_next ? block(n + 1) : cur;
      const int64_t rows = next.nc;
      const int64_t parts = (cur.nc + nr - 1) / nr * ((M + mr - 1) / mr);
      int64_t packed = 0, fetched = 0, part = 0;
      if (has_next) {
        fetched = std::min(rows, nr);
        prefetch_rows(next, 0, fetched);
      }
      const float* const apack = a.data() + cur.k0 * m_pad;
      for (int64_t j = 0; j < cur.nc; j += nr) {
        for (int64_t i = 0; i < M; i += mr) {
          kern.gemm_micro(cur.kc, apack + i * cur.kc, bp + j * cur.kc, c + i * ld + j, ld,
                          std::min(mr, M - i), std::min(nr, cur.nc - j), add);
          if (!has_next) continue;
          const int64_t target = rows * ++part / parts;
          const int64_t to_fetch = std::min(rows, target + nr);
          if (to_fetch > fetched) {
            prefetch_rows(next, fetched, to_fetch);
            fetched = to_fetch;
          }
          const int64_t to_pack = target < rows ? target / nr * nr : target;
          if (to_pack > packed) {
            pack_rows(next, packed, to_pack, buf[(n + 1) & 1]);
            packed = to_pack;
          }
        }
      }
      if (buffered && last) {
        for (int64_t i = 0; i < M; ++i) {
          const float* t = ctile.data() + i * ldt;
          std::copy(t, t + cur.nc, C + i * ldc + cur.j0);
        }
      }
      cur = next;
    }
  });
}

// C = A * B^T (A: M x K, B: N x K, both along k) with B read from memory once (at least
// kStreamedB floats, M <= MC_MAX: fc6's and fc7's forward, x (M, in) against w (out, in)), on a
// path with SimdKernels::gemm_micro_rows. Packing w as op(B) meant transposing all of it on
// every pass (fc6, one thread: 13% of the samples in the transpose against 63% in the
// micro-kernel); instead C^T = B * A^T is computed with w as the A operand read in place (the
// micro-kernel broadcasts from mr rows of w, each along k) and x^T, small, as the packed B:
//   - x^T is packed once, all slices (KC deep, as everywhere, so the bits match the packed
//     path's), into nr-column panels;
//   - each thread takes a contiguous share of w's rows (C's columns), mr at a time, in blocks of
//     kRowsBlock rows; for each block, slice by slice, each panel of x^T (kc x nr, in L1) meets
//     every mr rows of the block (in L2), adding into the block's C^T, a dense buffer (in L2);
//     meanwhile the block's next slice of w is prefetched into L2, a share after each call;
//   - after the last slice the buffer is transposed into C (with `accumulate`, it starts as
//     C's block, transposed).
// Each element of C is summed as in sgemm_sum: the same k order within a slice (a fused
// multiply-add's two factors commute), the slices added in order: the same bits, whatever the
// thread count.
constexpr int64_t kRowsBlock = 192;

void sgemm_rows_of_a(int64_t M, int64_t N, int64_t K, const float* A, int64_t lda,
                     const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  const SimdKernels& kern = simd();
  const int64_t mr = kern.mr, nr = kern.nr, m_pad = round_up(M, nr), slices = (K + KC - 1) / KC;
  // allocate's blocks start on a cache line, as the packed B blocks do (kAlign).
  const std::shared_ptr<void> xbuf =
      allocate(static_cast<size_t>(m_pad * K) * sizeof(float), Device::cpu());
  float* const xp = static_cast<float*>(xbuf.get());
  parallel_for(slices, [&](int64_t s) {
    const int64_t k0 = s * KC, kc = std::min(KC, K - k0);
    kern.pack_b(true, A + k0, lda, M, kc, xp + k0 * m_pad, kc * nr);
  });
  const int64_t panels = (N + mr - 1) / mr, threads = parallel_threads();
  const int64_t xpanels = m_pad / nr, ldt = m_pad + 16;
  parallel_for(threads, [&](int64_t t) {
    const int64_t j_begin = std::min(N, t * panels / threads * mr);
    const int64_t j_end = std::min(N, (t + 1) * panels / threads * mr);
    thread_local std::vector<float> ctile;
    ctile.resize(static_cast<size_t>(kRowsBlock * ldt));
    float* const ct = ctile.data();
    for (int64_t jb = j_begin; jb < j_end; jb += kRowsBlock) {
      const int64_t jrows = std::min(kRowsBlock, j_end - jb);
      if (accumulate) kern.transpose(C + jb, ldc, M, jrows, ct, ldt);
      // The next slice of w to fetch: this block's, then the next block's first.
      const int64_t next_jb = jb + kRowsBlock;
      const int64_t next_rows = std::clamp<int64_t>(j_end - next_jb, 0, kRowsBlock);
      for (int64_t s = 0; s < slices; ++s) {
        const int64_t k0 = s * KC, kc = std::min(KC, K - k0);
        const bool last = s + 1 == slices;
        const int64_t fj = last ? next_jb : jb, frows = last ? next_rows : jrows;
        const int64_t fk0 = last ? 0 : k0 + KC, fkc = std::min(KC, K - fk0);
        const int64_t row_lines = (fkc + 15) / 16, fetch_lines = frows * row_lines;
        const int64_t calls = xpanels * ((jrows + mr - 1) / mr);
        int64_t call = 0, fetched = 0, frow = 0, fline = 0;  // fetched = frow * row_lines + fline
        const bool add = accumulate || s > 0;
        for (int64_t q = 0; q < xpanels; ++q) {
          const float* bp = xp + k0 * m_pad + q * kc * nr;
          const int64_t cols = std::min(nr, M - q * nr);
          for (int64_t r = 0; r < jrows; r += mr) {
            kern.gemm_micro_rows(kc, B + (jb + r) * ldb + k0, ldb, bp, ct + r * ldt + q * nr, ldt,
                                 std::min(mr, jrows - r), cols, add);
            const int64_t to = fetch_lines * ++call / calls;
            for (; fetched < to; ++fetched) {  // row by row, each along k
              __builtin_prefetch(B + (fj + frow) * ldb + fk0 + fline * 16, 0, 2);
              if (++fline == row_lines) fline = 0, ++frow;
            }
          }
        }
      }
      kern.transpose(ct, ldt, jrows, M, C + jb, ldc);
    }
  });
}

}  // namespace

PackedA pack_a(bool trans_a, int64_t M, int64_t K, const float* A, int64_t lda) {
  return pack_a_panels(M, K, [&](int64_t i, int64_t rows, int64_t k0, int64_t kc, int64_t mr,
                                 float* ap) {
    pack_a_panel(trans_a, A, lda, i, rows, k0, kc, mr, ap);
  });
}

PackedA rows_of_a(int64_t M, int64_t K, const float* A, int64_t lda) {
  if (simd().gemm_micro_rows == nullptr) return pack_a(false, M, K, A, lda);
  PackedA a = operand_shape(M, K);
  a.in_place = A;
  a.lda = lda;
  return a;
}

PackedA pack_a_gathered(int64_t M, int64_t K, const float* A, const int64_t* row_off,
                        const int64_t* col_off) {
  return pack_a_panels(M, K, [&](int64_t i, int64_t rows, int64_t k0, int64_t kc, int64_t mr,
                                 float* ap) {
    for (int64_t p = 0; p < kc; ++p) {
      const float* a = A + col_off[k0 + p];
      for (int64_t r = 0; r < mr; ++r) ap[p * mr + r] = r < rows ? a[row_off[i + r]] : 0.0f;
    }
  });
}

void sgemm_sum(const PackedA* a, int64_t batches, int64_t N, const PackBatchB& pack, float* C,
               int64_t ldc, bool accumulate, const PrefetchB& ahead) {
  const int64_t M = batches == 0 ? 0 : a[0].M;
  if (M == 0 || N == 0) return;
  int64_t K = 0;
  for (int64_t b = 0; b < batches; ++b) K += a[b].K;
  if (K == 0) {
    if (!accumulate) {
      for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
    }
    return;
  }
  const SimdKernels& kern = simd();
  const int64_t mr = a[0].mr, mc_max = a[0].mc, nr = kern.nr, m_pad = round_up(M, mr);
  for (int64_t b = 0; b < batches; ++b) {
    PCN_REQUIRE(kern.mr == a[b].mr && a[b].M == M && a[b].mc == mc_max, ValueError,
                "sgemm: operand ", b, " packed for the ", a[b].mr, "-row micro-kernel with ",
                a[b].M, " rows; the active CPU path '", kern.name, "' uses ", kern.mr,
                ", the first operand has ", M);
  }
  // Tiles of at most NC columns; when there are few, as many as makes every thread's count
  // equal, and tile t of a row of tiles takes the panels [t*panels/tiles_n, (t+1)*panels/tiles_n)
  // of nr columns, so that the threads' shares differ by a panel at most (the tile sizes change
  // no result: each element's sum depends only on K's slicing).
  const int64_t tiles_m = (M + mc_max - 1) / mc_max, threads = parallel_threads();
  const int64_t panels = (N + nr - 1) / nr;
  int64_t tiles_n = (panels + NC / nr - 1) / (NC / nr);
  if (tiles_m * tiles_n < 8 * threads && (tiles_m * tiles_n) % threads != 0) {
    while ((tiles_m * tiles_n) % threads != 0 && tiles_n < panels) ++tiles_n;
  }
  const auto tile_column = [&](int64_t t) { return std::min(N, t * panels / tiles_n * nr); };
  int64_t slices = 0;
  for (int64_t b = 0; b < batches; ++b) slices += (a[b].K + KC - 1) / KC;
  // With more than one KC slice every slice reads and writes the tile of C: when C's row stride
  // is a multiple of 1 KiB (fc6: 4096 or 9216 floats), the tile is kept meanwhile in a dense
  // per-thread buffer (rows kTileLd floats apart), so that its rows cannot pile onto a few sets
  // of the caches; other strides (a convolution's P*Q) are used in place, saving the copy. The
  // same additions in the same order, so the same results.
  const bool buffered = slices > 1 && ldc % 256 == 0;
  constexpr int64_t kTileLd = NC + 16;
  // With one KC slice (K <= KC: fc6's filter gradient at batch 128, M = 4096 rows) a column
  // block of op(B) serves every row tile: the tiles are then visited column block by column
  // block, and a thread that already holds this call's packed block for its next tile skips
  // packing it again (with one tile row, or several slices, every tile packs its own).
  static std::atomic<int64_t> calls{0};
  const int64_t call = calls.fetch_add(1) + 1;
  const bool reuse_b = slices == 1 && tiles_m > 1;
  parallel_for(tiles_m * tiles_n, [&](int64_t t) {
    // Per-thread packing buffers, kept between calls (they only ever grow to one block).
    thread_local std::vector<float> bpack, ctile;
    thread_local int64_t packed_call = 0, packed_j0 = -1;  // what bpack holds
    bpack.resize(KC * NC + kAlign);
    float* const bp = aligned(bpack.data());
    const int64_t ti = reuse_b ? t % tiles_m : t / tiles_n;
    const int64_t tj = reuse_b ? t / tiles_m : t % tiles_n;
    const int64_t i0 = ti * mc_max, j0 = tile_column(tj);
    const int64_t mc = std::min(mc_max, M - i0), nc = tile_column(tj + 1) - j0;
    float* c = C + i0 * ldc + j0;
    int64_t ld = ldc;
    if (buffered) {
      ctile.resize(static_cast<size_t>(mc * kTileLd));
      if (accumulate) {
        for (int64_t i = 0; i < mc; ++i) {
          std::copy(c + i * ldc, c + i * ldc + nc, ctile.data() + i * kTileLd);
        }
      }
      c = ctile.data();
      ld = kTileLd;
    }
    bool add = accumulate;
    for (int64_t b = 0; b < batches; ++b) {
      for (int64_t k0 = 0; k0 < a[b].K; k0 += KC) {
        const int64_t kc = std::min(KC, a[b].K - k0);
        if (!reuse_b || packed_call != call || packed_j0 != j0) {
          pack(b, k0, kc, j0, nc, bp);
          packed_call = call;
          packed_j0 = j0;
        }
        const float* apack = a[b].in_place ? nullptr : a[b].data() + k0 * m_pad + i0 * kc;
        const float* arows = a[b].in_place ? a[b].in_place + i0 * a[b].lda + k0 : nullptr;
        // The next slice's block of op(B), fetched a part after each micro-kernel call.
        int64_t nb = b, nk = k0 + KC;
        while (nb < batches && nk >= a[nb].K) {
          ++nb;
          nk = 0;
        }
        const bool fetch = ahead && nb < batches;
        const int64_t parts = (nc + nr - 1) / nr * ((mc + mr - 1) / mr);
        int64_t part = 0;
        for (int64_t j = 0; j < nc; j += nr) {
          for (int64_t i = 0; i < mc; i += mr) {
            if (arows) {
              kern.gemm_micro_rows(kc, arows + i * a[b].lda, a[b].lda, bp + j * kc,
                                   c + i * ld + j, ld, std::min(mr, mc - i), std::min(nr, nc - j),
                                   add);
            } else {
              kern.gemm_micro(kc, apack + i * kc, bp + j * kc, c + i * ld + j, ld,
                              std::min(mr, mc - i), std::min(nr, nc - j), add);
            }
            if (fetch) ahead(nb, nk, std::min(KC, a[nb].K - nk), j0, nc, part++, parts);
          }
        }
        add = true;
      }
    }
    if (buffered) {
      float* out = C + i0 * ldc + j0;
      for (int64_t i = 0; i < mc; ++i) {
        const float* row = ctile.data() + i * kTileLd;
        std::copy(row, row + nc, out + i * ldc);
      }
    }
  });
}

void sgemm_packed(const PackedA& a, int64_t N, const PackB& pack, float* C, int64_t ldc,
                  bool accumulate) {
  sgemm_sum(&a, 1, N, [&](int64_t, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* bp) {
    pack(k0, kc, j0, nc, bp);
  }, C, ldc, accumulate);
}

void sgemm_packed(const PackedA& a, bool trans_b, int64_t N, const float* B, int64_t ldb,
                  float* C, int64_t ldc, bool accumulate) {
  PCN_REQUIRE(a.in_place == nullptr, ValueError,
              "sgemm: an operand left in place (rows_of_a) is for sgemm_sum only");
  if (trans_b && reads_b_once(a.M, N, a.K)) {
    sgemm_streamed(a, N, B, ldb, C, ldc, accumulate);
    return;
  }
  const SimdKernels& kern = simd();
  const auto block = [&](int64_t k0, int64_t j0) {
    return trans_b ? B + j0 * ldb + k0 : B + k0 * ldb + j0;
  };
  // op(B)'s block is kc rows of nc floats, or (trans_b) nc rows of kc floats, of B; each part
  // of the prefetch is a share of those rows, into L2.
  const PrefetchB ahead = [&](int64_t, int64_t k0, int64_t kc, int64_t j0, int64_t nc,
                              int64_t part, int64_t parts) {
    const int64_t rows = trans_b ? nc : kc, len = trans_b ? kc : nc;
    const float* base = block(k0, j0);
    for (int64_t r = rows * part / parts; r < rows * (part + 1) / parts; ++r) {
      for (int64_t e = 0; e < len; e += 16) __builtin_prefetch(base + r * ldb + e, 0, 2);
      __builtin_prefetch(base + r * ldb + len - 1, 0, 2);
    }
  };
  sgemm_sum(
      &a, 1, N,
      [&](int64_t, int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* bp) {
        kern.pack_b(trans_b, block(k0, j0), ldb, nc, kc, bp, kc * kern.nr);
      },
      C, ldc, accumulate, ahead);
}

void sgemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A,
           int64_t lda, const float* B, int64_t ldb, float* C, int64_t ldc, bool accumulate) {
  if (M == 0 || N == 0) return;
  // w read in place when x fills at least half of the micro-kernel's nr-wide panel (fewer
  // rows, as the forward at batch 8, pack instead: the panel's padding would cost more).
  const SimdKernels& kern = simd();
  if (!trans_a && trans_b && kern.gemm_micro_rows != nullptr && 2 * M >= kern.nr &&
      reads_b_once(M, N, K)) {
    sgemm_rows_of_a(M, N, K, A, lda, B, ldb, C, ldc, accumulate);
    return;
  }
  sgemm_packed(pack_a(trans_a, M, K, A, lda), trans_b, N, B, ldb, C, ldc, accumulate);
}

}  // namespace pcn::cpu
