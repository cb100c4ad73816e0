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
//     FMA peak with its panels in L1; with, ~98%).
//   - the plain SGEMM with one row of tiles and an op(B) too large to stay cached (fc6's and
//     fc7's forward and input gradient up to mc rows) runs sgemm_streamed (below) instead: each
//     thread its own contiguous columns of C, B's blocks in B's memory order, the next block
//     packed between the micro-kernel calls of the current one.
// The slices are visited in order and each adds its partial sums to C, so every element's
// summation order depends only on K and the path, never on the thread count.
//
// fc6 at batch 128 (x (128, 9216), w (4096, 9216); 2-core EPYC Zen 3, AVX2, with two compilers
// running: bench_kernels.py at raised priority, the builds before and after sgemm_streamed
// alternated, five runs; ms per pass):
//   2 threads: forward 82.3-97.6 before, 81.7-104.1 after; input gradient 90.8-106.4 before,
//   86.3-103.7 after (lower in three runs, equal in one, higher in one); filter gradient (one
//   slice, the tiled path, unchanged) 75-121 either way. 1 thread: forward 167.7 / 171.9, input
//   gradient 177.2 / 162.0. No change beyond the scatter, then, short of an idle machine.
// Predicted was ~70% of the peak (~69 ms) at 2 threads, from hiding the ~25 ms a pass that
// packing w from memory cost one thread. Not reached: with packing skipped (wrong results, for
// the measurement only) the same loops take 61.5 ms (input gradient, 82%) and 67 ms (forward,
// 75%), so packing w still costs 15-25 ms a pass; prefetching its rows 2-32 rows ahead with
// any locality hint, blocks of 48-192 columns, or (forward) slice-outer order changed it by no
// more than the scatter. Streaming stores for the filter gradient's C did not help either.
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "csrc/error.h"
#include "isa.h"
#include "parallel.h"

namespace pcn::cpu {
namespace {

// NC is a multiple of every path's nr (8, 16, 32). The B block (KC*NC*4 = 192 KiB) and an A
// block (at most MC_MAX*KC*4 = 192 KiB) fit in L2 together.
constexpr int64_t NC = 192, KC = 256, MC_MAX = 192;
// op(B)s of at least this many floats (16 MiB, half the L3 of the CPUs this was tuned on) go
// through sgemm_streamed when C has one row of tiles.
constexpr int64_t kStreamedB = int64_t{1} << 22;

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
template <class Panel>
PackedA pack_a_panels(int64_t M, int64_t K, const Panel& panel) {
  PackedA a;
  a.M = M;
  a.K = K;
  a.mr = simd().mr;
  const int64_t tiles = (M + MC_MAX - 1) / MC_MAX;
  a.mc = round_up((M + tiles - 1) / std::max<int64_t>(tiles, 1), a.mr);
  const int64_t m_pad = round_up(M, a.mr), panels = m_pad / a.mr, slices = (K + KC - 1) / KC;
  a.data.resize(static_cast<size_t>(m_pad * K));
  parallel_for(panels * slices, [&](int64_t t) {
    const int64_t k0 = (t / panels) * KC, i = (t % panels) * a.mr, kc = std::min(KC, K - k0);
    panel(i, std::min(a.mr, M - i), k0, kc, a.mr, a.data.data() + k0 * m_pad + i * kc);
  });
  return a;
}

// The plain SGEMM with one row of tiles (M <= mc) and an op(B) of at least kStreamedB floats
// (fc6's and fc7's weights, read from memory once per pass; fc8's 4096 x 1000 stay below):
//   - each thread takes a contiguous share of C's columns (whole nr-column panels, shares
//     differing by one at most) and walks its blocks of op(B) (KC deep, as sgemm_sum's, NC or
//     NC / 2 columns wide) in the order B lies in memory: with trans_b (B's rows run along k)
//     column block by column block, each through all the slices; without (B's rows run along
//     n) slice by slice, each across the thread's column blocks, so that consecutive blocks
//     continue the same rows of B and their pages (the tiled order went through all 4096 rows of
//     fc6's w, 36 KiB apart, a page each, for every 192 columns);
//   - the next block is packed into a second buffer a share at a time between the micro-kernel
//     calls of the current one, its rows prefetched a few calls ahead, instead of in one step
//     between blocks; so only a few of its rows are fetched at a time, rather than a whole block
//     of rows 36 KiB apart (a multiple of 4 KiB, fc6's) into the few cache sets they share;
//   - C's part of the thread (with trans_b, one column block at a time) lives in a dense buffer
//     while slices add into it when C's row stride is a multiple of 1 KiB, as in sgemm_sum.
// The slices are added in order as in sgemm_sum, with the same blocks, so the results are
// bit-identical to it and independent of the thread count.
void sgemm_streamed(const PackedA& a, bool trans_b, int64_t N, const float* B, int64_t ldb,
                    float* C, int64_t ldc, bool accumulate) {
  const SimdKernels& kern = simd();
  PCN_REQUIRE(kern.mr == a.mr, ValueError, "sgemm: operand packed for the ", a.mr,
              "-row micro-kernel; the active CPU path '", kern.name, "' uses ", kern.mr);
  const int64_t M = a.M, K = a.K, mr = a.mr, nr = kern.nr, m_pad = round_up(M, mr);
  const int64_t panels = (N + nr - 1) / nr, threads = parallel_threads();
  const int64_t slices = (K + KC - 1) / KC;
  const bool buffered = ldc % 256 == 0;
  // Blocks NC wide with trans_b; NC / 2 without (two alternated runs, fc6, 2 threads: the input
  // gradient 86 ms a pass against 93 at NC, the forward 85 against 93 the other way round).
  const int64_t block_nc = trans_b ? NC : NC / 2;
  parallel_for(threads, [&](int64_t q) {
    const int64_t c0 = std::min(N, q * panels / threads * nr);
    const int64_t c1 = std::min(N, (q + 1) * panels / threads * nr);
    if (c0 == c1) return;
    const int64_t col_blocks = (c1 - c0 + block_nc - 1) / block_nc, count = col_blocks * slices;
    struct Block {
      int64_t k0, kc, j0, nc;
    };
    const auto block = [&](int64_t n) {
      const int64_t s = trans_b ? n % slices : n / col_blocks;
      const int64_t cb = trans_b ? n / slices : n % col_blocks;
      const int64_t k0 = s * KC, j0 = c0 + cb * block_nc;
      return Block{k0, std::min(KC, K - k0), j0, std::min(block_nc, c1 - j0)};
    };
    // A block's source: `rows` rows of B (with trans_b, nc rows of kc floats; else kc rows of
    // nc floats), packed in order: row by row, or (trans_b) nr rows, one panel, at a time.
    const auto rows_of = [&](const Block& b) { return trans_b ? b.nc : b.kc; };
    const auto row = [&](const Block& b, int64_t r) {
      return trans_b ? B + (b.j0 + r) * ldb + b.k0 : B + (b.k0 + r) * ldb + b.j0;
    };
    const auto pack_rows = [&](const Block& b, int64_t r0, int64_t r1, float* bp) {
      if (trans_b) {
        kern.pack_b(true, row(b, r0), ldb, r1 - r0, b.kc, bp + r0 * b.kc, b.kc * nr);
      } else {
        kern.pack_b(false, row(b, r0), ldb, b.nc, r1 - r0, bp + r0 * nr, b.kc * nr);
      }
    };
    const auto prefetch_rows = [&](const Block& b, int64_t r0, int64_t r1) {
      const int64_t len = trans_b ? b.kc : b.nc;
      for (int64_t r = r0; r < r1; ++r) {
        const float* src = row(b, r);
        for (int64_t e = 0; e < len; e += 16) __builtin_prefetch(src + e, 0, 2);
        __builtin_prefetch(src + len - 1, 0, 2);
      }
    };
    // Rows prefetched ahead of the packing: one panel's with trans_b, else kLeadRows.
    constexpr int64_t kLeadRows = 8;
    const int64_t lead = trans_b ? nr : kLeadRows;
    thread_local std::vector<float> bufs, ctile;
    bufs.resize(2 * KC * NC + kAlign);
    float* const buf[2] = {aligned(bufs.data()), aligned(bufs.data()) + KC * NC};
    // The dense buffer's row stride: the widest region, plus 16 floats so that it is no
    // multiple of 1 KiB.
    const int64_t ldt = (trans_b ? block_nc : round_up(c1 - c0, 16)) + 16;
    const auto region = [&](const Block& b, int64_t& j, int64_t& w) {
      j = trans_b ? b.j0 : c0;
      w = trans_b ? b.nc : c1 - c0;
    };
    if (buffered) ctile.resize(static_cast<size_t>(M * ldt));
    Block cur = block(0);
    pack_rows(cur, 0, rows_of(cur), buf[0]);
    for (int64_t n = 0; n < count; ++n) {
      float* const bp = buf[n & 1];
      int64_t rj, rw;  // C's columns [rj, rj + rw) are in ctile
      region(cur, rj, rw);
      const bool first = trans_b ? cur.k0 == 0 : n == 0;
      const bool last = trans_b ? cur.k0 + cur.kc == K : n + 1 == count;
      if (buffered && first && accumulate) {
        for (int64_t i = 0; i < M; ++i) {
          std::copy(C + i * ldc + rj, C + i * ldc + rj + rw, ctile.data() + i * ldt);
        }
      }
      float* const c = buffered ? ctile.data() + (cur.j0 - rj) : C + cur.j0;
      const int64_t ld = buffered ? ldt : ldc;
      const bool add = accumulate || cur.k0 > 0;
      const bool has_next = n + 1 < count;
      const Block next = has_next ? block(n + 1) : cur;
      const int64_t rows = rows_of(next);
      const int64_t parts = (cur.nc + nr - 1) / nr * ((M + mr - 1) / mr);
      int64_t packed = 0, fetched = 0, part = 0;
      if (has_next) {
        fetched = std::min(rows, lead);
        prefetch_rows(next, 0, fetched);
      }
      const float* const apack = a.data.data() + cur.k0 * m_pad;
      for (int64_t j = 0; j < cur.nc; j += nr) {
        for (int64_t i = 0; i < M; i += mr) {
          kern.gemm_micro(cur.kc, apack + i * cur.kc, bp + j * cur.kc, c + i * ld + j, ld,
                          std::min(mr, M - i), std::min(nr, cur.nc - j), add);
          if (!has_next) continue;
          const int64_t target = rows * ++part / parts;
          const int64_t to_fetch = std::min(rows, target + lead);
          if (to_fetch > fetched) {
            prefetch_rows(next, fetched, to_fetch);
            fetched = to_fetch;
          }
          const int64_t to_pack = trans_b && target < rows ? target / nr * nr : target;
          if (to_pack > packed) {
            pack_rows(next, packed, to_pack, buf[(n + 1) & 1]);
            packed = to_pack;
          }
        }
      }
      if (buffered && last) {
        for (int64_t i = 0; i < M; ++i) {
          const float* t = ctile.data() + i * ldt;
          std::copy(t, t + rw, C + i * ldc + rj);
        }
      }
      cur = next;
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
        const float* apack = a[b].data.data() + k0 * m_pad + i0 * kc;
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
            kern.gemm_micro(kc, apack + i * kc, bp + j * kc, c + i * ld + j, ld,
                            std::min(mr, mc - i), std::min(nr, nc - j), add);
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
  if (a.M > 0 && a.M <= a.mc && a.K > KC && a.K * N >= kStreamedB) {
    sgemm_streamed(a, trans_b, N, B, ldb, C, ldc, accumulate);
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
  sgemm_packed(pack_a(trans_a, M, K, A, lda), trans_b, N, B, ldb, C, ldc, accumulate);
}

}  // namespace pcn::cpu
