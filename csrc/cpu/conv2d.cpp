// Convolution on the CPU. Both versions are SGEMMs on the im2col matrix
// col[(c*R + r)*S + s][p*Q + q] = xpad[c][p*sh + r][q*sw + s] of each image and group:
//   forward:         y[n, g]  (Kg x PQ)    = W_g (Kg x CgRS) * col(x[n, g]) (CgRS x PQ)
//   backward data:   dcol     (CgRS x PQ)  = W_g^T * dy[n, g], scattered back by col2im
//   backward filter: dW_g     (Kg x CgRS) += dy[n, g] (Kg x PQ) * col(x[n, g])^T, n = 0, 1, ...
// Version 1 writes col (CgRS x PQ floats, 3.5 MB for conv2) to memory and packs it for the
// SGEMM from there. Version 2 (the default) never stores it: the SGEMM's B panels are gathered
// one L2-sized block at a time from a zero-padded copy of the image (Cg x Hp x Wp, made once per
// image and group) through two per-layer offset tables, col[k][j] = xpad[rows[k] + cols[j]]
// (Im2colTables; the active path's pack_gather, isa.h: at stride 1 eight consecutive columns of
// a row of col are a few runs of the padded image (two from 8 output columns wide, up to four
// from 3), so a vector load per run and blends; for col^T, 8 x 8 blocks of such loads transposed
// in registers). Where the padded copy would be
// larger than col itself (a stride above the kernel, huge padding), each row of col is built
// from the image instead (im2col_row, pack_im2col). At stride 1 the input gradient is itself such
// a convolution, of dy with the flipped, transposed filters (packed straight from w,
// pack_a_gathered) and padding R-1-pad (dx[c][h][w] = sum over k, r, s of
// dy_pad'[k][h + r][w + s] * W[k][c][R-1-r][S-1-s]), so it needs neither dcol nor col2im. Its
// filter gradient gathers col^T from padded copies of the group's images, and runs the sum over
// images as one SGEMM (sgemm_sum) per group and chunk of images (as many as fit 32 MiB of padded
// copies and dy: 18 at AlexNet's conv1, so a batch of 16 is one chunk and one of 128 eight, where
// the copies of all 128 would take 230 MB): one parallel region over tiles of dW per group and
// chunk, where version 1 starts three per image (im2col, packing, product). Its A operand, each
// image's dy, is read in place by the micro-kernel for rows of A on the AVX2 and AVX-512 paths
// (rows_of_a; packed on the baseline): the same bits as packing it, and no copy (one thread,
// alternated in one process with the packing build: conv1's filter gradient 1.28x, conv2's 1.09x,
// conv3-5's 1.01-1.04x), and its plane sums for db are taken as soon as it is first read.
// The weights are packed for the SGEMM once per call (pack_a), not once per image. Forward and
// backward data give each (image, group) pair to one thread, so a batch keeps every core busy
// with no synchronisation inside; with a single pair the SGEMM, im2col and col2im are parallel
// inside instead. Both ways compute each output with the same operations in the same order.
// Version 2 with fewer than 64 output pixels gives a thread a block of images for one product
// instead (gathered_products; the same bits): the small network's conv3-5 (3 x 3 outputs), one
// and two threads, batch 64, alternated in one process, forward and input gradient 1.43-1.78x,
// its conv2 (7 x 7) 1.12-1.22x; AlexNet's layers (169 pixels and more) unchanged. Its filter
// gradient there joins each chunk's images into one product, k over their pixels image after
// image (same measurements: conv3-5 1.4-1.8x, conv2 1.06-1.36x).
// Every sum has a fixed order: dW over images then pixels (the same in both versions, the
// packing only copies; below 64 pixels one product over a chunk's pixels, in KC slices, where
// version 1 adds an image at a time), col2im over taps in order, db over images, each image's
// pixels in 8 interleaved partial sums (plane_sum), an output of the SGEMM over k in its packed
// order.
#include "csrc/kernels/conv2d.h"

#include <algorithm>
#include <climits>
#include <vector>

#include "csrc/error.h"
#include "gemm.h"
#include "isa.h"
#include "parallel.h"

namespace pcn::cpu {
namespace {

// Output columns q in [q0, q1) of tap column s read inside the image (iw = q*sw - pw + s in
// [0, W)); the others read padding.
void valid_columns(const Conv2dParams& p, int64_t s, int64_t& q0, int64_t& q1) {
  q0 = std::min(p.Q, std::max<int64_t>(0, (p.pad_w - s + p.stride_w - 1) / p.stride_w));
  q1 = std::max(q0, std::min(p.Q, (p.W + p.pad_w - s + p.stride_w - 1) / p.stride_w));
}

// col[(c*R + r)*S + s][p*Q + q] = xpad[c][p*sh + r][q*sw + s] for one image's group of Cg
// channels starting at x (Cg x H x W).
void im2col(const Conv2dParams& p, const float* x, float* col) {
  const int64_t PQ = p.P * p.Q, RS = p.R * p.S;
  parallel_for(p.Cg() * RS, [&](int64_t row) {
    const int64_t c = row / RS, r = row / p.S % p.R, s = row % p.S;
    const float* xc = x + c * p.H * p.W;
    float* out = col + row * PQ;
    int64_t q0, q1;
    valid_columns(p, s, q0, q1);
    for (int64_t i = 0; i < p.P; ++i, out += p.Q) {
      const int64_t ih = i * p.stride_h - p.pad_h + r;
      if (ih < 0 || ih >= p.H) {
        std::fill(out, out + p.Q, 0.0f);
        continue;
      }
      const float* xr = xc + ih * p.W - p.pad_w + s;
      std::fill(out, out + q0, 0.0f);
      if (p.stride_w == 1) {
        std::copy(xr + q0, xr + q1, out + q0);
      } else {
        for (int64_t j = q0; j < q1; ++j) out[j] = xr[j * p.stride_w];
      }
      std::fill(out + q1, out + p.Q, 0.0f);
    }
  });
}

// out[j] = col(x)[k][j0 + j] for j < n: part of row k = (c*R + r)*S + s of one image's group's
// im2col matrix (x: Cg x H x W), one output row i at a time: a copy of the image row it reads
// (strided at stride_w > 1), zeros for the padding.
void im2col_row(const Conv2dParams& p, const float* x, int64_t k, int64_t j0, int64_t n,
                float* out) {
  const int64_t c = k / (p.R * p.S), r = k / p.S % p.R, s = k % p.S;
  int64_t q0, q1;
  valid_columns(p, s, q0, q1);
  const float* xc = x + c * p.H * p.W;
  for (int64_t j = 0; j < n;) {
    const int64_t i = (j0 + j) / p.Q, qa = (j0 + j) % p.Q, qb = std::min(p.Q, qa + n - j);
    float* o = out + j - qa;  // o[q]: column i*Q + q
    const int64_t ih = i * p.stride_h - p.pad_h + r;
    if (ih < 0 || ih >= p.H) {
      std::fill(o + qa, o + qb, 0.0f);
    } else {
      const float* xr = xc + ih * p.W - p.pad_w + s;
      const int64_t va = std::max(qa, q0), vb = std::max(va, std::min(qb, q1));
      std::fill(o + qa, o + va, 0.0f);
      if (p.stride_w == 1) {
        std::copy(xr + va, xr + vb, o + va);
      } else {
        for (int64_t q = va; q < vb; ++q) o[q] = xr[q * p.stride_w];
      }
      std::fill(o + vb, o + qb, 0.0f);
    }
    j += qb - qa;
  }
}

// Rows k0..k0+kc-1, columns j0..j0+nc-1 of col(x) in the SGEMM's nr-column panels (gemm.h,
// PackB): each row gathered into a buffer (im2col_row), then copied out in nr-float pieces.
// Everything stays in L1/L2.
void pack_im2col(const Conv2dParams& p, const float* x, int64_t k0, int64_t kc, int64_t j0,
                 int64_t nc, float* bp) {
  const int64_t nr = simd().nr;
  thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(nc));
  for (int64_t kk = 0; kk < kc; ++kk) {
    im2col_row(p, x, k0 + kk, j0, nc, row.data());
    for (int64_t j = 0; j < nc; j += nr) {
      float* dst = bp + j * kc + kk * nr;
      const int64_t cols = std::min(nr, nc - j);
      std::copy(row.data() + j, row.data() + j + cols, dst);
      std::fill(dst + cols, dst + nr, 0.0f);
    }
  }
}

// The same for col(x)^T (rows: output pixels k0..k0+kc-1; columns: col's rows j0..j0+nc-1), the
// B of the filter gradient: nr rows of col at a time gathered (im2col_row), then transposed into
// their panel by the active path's 8 x 8 register transposes.
void pack_im2col_transposed(const Conv2dParams& p, const float* x, int64_t k0, int64_t kc,
                            int64_t j0, int64_t nc, float* bp) {
  const SimdKernels& kern = simd();
  const int64_t nr = kern.nr;
  thread_local std::vector<float> rows;
  rows.resize(static_cast<size_t>(nr * kc));
  for (int64_t j = 0; j < nc; j += nr) {
    const int64_t cols = std::min(nr, nc - j);
    for (int64_t jj = 0; jj < cols; ++jj) {
      im2col_row(p, x, j0 + j + jj, k0, kc, rows.data() + jj * kc);
    }
    float* dst = bp + j * kc;
    if (cols < nr) std::fill(dst, dst + kc * nr, 0.0f);
    kern.transpose(rows.data(), kc, cols, kc, dst, nr);
  }
}

// Version 2's usual way: the im2col matrix of one image's group read from a zero-padded copy of
// it (Cg x Hp x Wp, Hp = (P-1)*sh + R, Wp = (Q-1)*sw + S) through two offset tables,
//   col[k][j] = xpad[rows[k] + cols[j]],  rows[(c*R + r)*S + s] = (c*Hp + r)*Wp + s,
//                                          cols[i*Q + q] = i*sh*Wp + q*sw,
// by the active path's gather (isa.h, pack_gather): at stride 1 eight consecutive columns of a
// row of col are at most two runs of the padded image when an output row is at least 8 wide
// (two vector loads), at most four when it is at least 3 wide (a load per run). Each table has
// kTableSlack entries more, continuing its last run, and the copy as many zeros more, so that a
// panel's last, partial group of columns reads inside the copy.
constexpr int64_t kTableSlack = 32;  // >= every path's nr

// The filter gradient's bound on a chunk of images' padded copies and dy (counted as if packed,
// which it is on the baseline path).
constexpr int64_t kFilterGradChunkBytes = int64_t{32} << 20;

struct Im2colTables {
  int64_t Hp = 0, Wp = 0, size = 0;  // size: floats of one padded copy, the slack included
  std::vector<int32_t> rows, cols;
};

int64_t padded_rows(const Conv2dParams& p) { return (p.P - 1) * p.stride_h + p.R; }
int64_t padded_cols(const Conv2dParams& p) { return (p.Q - 1) * p.stride_w + p.S; }

// Whether version 2 takes the tables: offsets fit in int32, and the padded copy is no larger
// than the im2col matrix (not so when the stride passes the kernel, or for huge padding).
bool use_tables(const Conv2dParams& p) {
  const int64_t plane = padded_rows(p) * padded_cols(p);
  return plane <= p.R * p.S * p.P * p.Q && p.Cg() * plane + kTableSlack <= INT32_MAX;
}

// table[n..n+kTableSlack) continue the run that ends at table[n-1].
void continue_last_run(int32_t* table, int64_t n) {
  for (int64_t e = 0; e < kTableSlack; ++e) {
    table[n + e] = table[n - 1] + static_cast<int32_t>(e + 1);
  }
}

Im2colTables im2col_tables(const Conv2dParams& p) {
  Im2colTables t;
  t.Hp = padded_rows(p);
  t.Wp = padded_cols(p);
  t.size = p.Cg() * t.Hp * t.Wp + kTableSlack;
  const int64_t CRS = p.Cg() * p.R * p.S, PQ = p.P * p.Q;
  t.rows.resize(static_cast<size_t>(CRS + kTableSlack));
  t.cols.resize(static_cast<size_t>(PQ + kTableSlack));
  for (int64_t k = 0; k < CRS; ++k) {
    const int64_t c = k / (p.R * p.S), r = k / p.S % p.R, s = k % p.S;
    t.rows[k] = static_cast<int32_t>((c * t.Hp + r) * t.Wp + s);
  }
  for (int64_t j = 0; j < PQ; ++j) {
    t.cols[j] = static_cast<int32_t>(j / p.Q * p.stride_h * t.Wp + j % p.Q * p.stride_w);
  }
  continue_last_run(t.rows.data(), CRS);
  continue_last_run(t.cols.data(), PQ);
  return t;
}

// The pixel table t.cols of `images` padded copies side by side (image i's entries + i*t.size;
// their pixels one after another), with its slack: the columns of one product over a block of
// images (gathered_products), or the rows of col^T over a chunk of them (the filter gradient).
std::vector<int32_t> pixels_of_images(const Conv2dParams& p, const Im2colTables& t,
                                      int64_t images) {
  const int64_t PQ = p.P * p.Q;
  PCN_REQUIRE(images * t.size <= INT32_MAX, ValueError, "conv2d: ", images,
              " padded images exceed int32 offsets");
  std::vector<int32_t> pixels(static_cast<size_t>(images * PQ + kTableSlack));
  for (int64_t i = 0; i < images; ++i) {
    for (int64_t j = 0; j < PQ; ++j) {
      pixels[i * PQ + j] = static_cast<int32_t>(i * t.size + t.cols[j]);
    }
  }
  continue_last_run(pixels.data(), images * PQ);
  return pixels;
}

constexpr int64_t kNarrowRow = 16;  // floats of an image row copied by a loop, not a call

// The padded copy of one image's group x (Cg x H x W) into xpad (t.size floats).
void pad_image(const Conv2dParams& p, const Im2colTables& t, const float* x, float* xpad) {
  const int64_t lead = std::min(p.pad_w, t.Wp), width = std::clamp(t.Wp - p.pad_w, int64_t{0}, p.W);
  if (width <= kNarrowRow) {
    // Narrow rows (a 3 x 3 layer's): the whole copy zeroed at once, then each image row copied
    // in by a short loop, instead of three library calls a row (small network, batch 64, one
    // thread: its conv2-5 passes 1.03-1.23x).
    std::fill(xpad, xpad + t.size, 0.0f);
    for (int64_t c = 0; c < p.Cg(); ++c) {
      for (int64_t ih = 0; ih < p.H && ih + p.pad_h < t.Hp; ++ih) {
        const float* in = x + (c * p.H + ih) * p.W;
        float* out = xpad + (c * t.Hp + ih + p.pad_h) * t.Wp + lead;
        for (int64_t i = 0; i < width; ++i) out[i] = in[i];
      }
    }
    return;
  }
  for (int64_t c = 0; c < p.Cg(); ++c) {
    for (int64_t hp = 0; hp < t.Hp; ++hp) {
      float* out = xpad + (c * t.Hp + hp) * t.Wp;
      const int64_t ih = hp - p.pad_h;
      if (ih < 0 || ih >= p.H) {
        std::fill(out, out + t.Wp, 0.0f);
        continue;
      }
      const float* in = x + (c * p.H + ih) * p.W;
      std::fill(out, out + lead, 0.0f);
      std::copy(in, in + width, out + lead);
      std::fill(out + lead + width, out + t.Wp, 0.0f);
    }
  }
  std::fill(xpad + t.size - kTableSlack, xpad + t.size, 0.0f);
}

// Fetches into L2 part `part` of `parts` of the padded copy's lines that a block of col(x)^T
// reads (its rows: output pixels k0..k0+kc-1; its columns: taps j0..j0+nc-1, (c*R + r)*S + s):
// for each channel of those taps, the padded rows that the pixels' output rows reach. The
// filter gradient's padded copies and packed dy of a chunk of images outgrow L2 (conv1's at
// batch 16: 29 MB), so its gather otherwise waits on L3 for each block; sgemm_sum calls this
// after each micro-kernel call for the next block.
void prefetch_transposed_block(const Conv2dParams& p, const Im2colTables& tab, const float* xpad,
                               int64_t k0, int64_t kc, int64_t j0, int64_t nc, int64_t part,
                               int64_t parts) {
  thread_local std::vector<const float*> lines;  // the block's lines, listed at its first part
  if (part == 0) {
    lines.clear();
    const int64_t RS = p.R * p.S, i0 = k0 / p.Q, i1 = (k0 + kc - 1) / p.Q;
    const int64_t begin = i0 * p.stride_h * tab.Wp, end = (i1 * p.stride_h + p.R) * tab.Wp;
    for (int64_t c = j0 / RS; c <= (j0 + nc - 1) / RS; ++c) {
      const float* plane = xpad + c * tab.Hp * tab.Wp;
      for (int64_t e = begin & ~int64_t{15}; e < end; e += 16) lines.push_back(plane + e);
    }
  }
  const auto total = static_cast<int64_t>(lines.size());
  for (int64_t l = total * part / parts; l < total * (part + 1) / parts; ++l) {
    __builtin_prefetch(lines[l], 0, 2);
  }
}

// The SGEMM's B block of rows k0..k0+kc-1, columns j0..j0+nc-1 of the matrix
// M[k][j] = xpad[rows[k] + cols[j]] (rows, cols: the tables from k0, j0 on): col(x) with
// (t.rows, t.cols), col(x)^T with (t.cols, t.rows).
void pack_gathered(const float* xpad, const int32_t* rows, int64_t kc, const int32_t* cols,
                   int64_t nc, float* bp) {
  const SimdKernels& kern = simd();
  for (int64_t j = 0; j < nc; j += kern.nr) {
    kern.pack_gather(xpad, rows, kc, cols + j, std::min(kern.nr, nc - j), bp + j * kc);
  }
}

// col(x) of one image's group x (Cg x H x W) as the SGEMM's B, version 2's way: with the tables
// (use_tables), gathered from x's padded copy, made here into `pad` (a buffer of the calling
// thread that outlives the product), else built row by row from x (pack_im2col).
PackB im2col_panels(const Conv2dParams& p, const Im2colTables* tab, const float* x,
                    std::vector<float>& pad) {
  if (tab == nullptr) {
    return [&p, x](int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* bp) {
      pack_im2col(p, x, k0, kc, j0, nc, bp);
    };
  }
  pad.resize(static_cast<size_t>(tab->size));
  pad_image(p, *tab, x, pad.data());
  const float* xp = pad.data();  // the pack may run on other threads: the pointer, not `pad`
  return [tab, xp](int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* bp) {
    pack_gathered(xp, tab->rows.data() + k0, kc, tab->cols.data() + j0, nc, bp);
  };
}

// The transpose of im2col: dx (Cg x H x W, one image's group) = sum over taps of dcol, padding
// dropped. One task per channel, so no two tasks touch the same element of dx.
void col2im(const Conv2dParams& p, const float* dcol, float* dx) {
  const int64_t PQ = p.P * p.Q, RS = p.R * p.S;
  parallel_for(p.Cg(), [&](int64_t c) {
    float* dxc = dx + c * p.H * p.W;
    std::fill(dxc, dxc + p.H * p.W, 0.0f);
    for (int64_t rs = 0; rs < RS; ++rs) {
      const int64_t r = rs / p.S, s = rs % p.S;
      int64_t q0, q1;
      valid_columns(p, s, q0, q1);
      const float* in = dcol + (c * RS + rs) * PQ;
      for (int64_t i = 0; i < p.P; ++i, in += p.Q) {
        const int64_t ih = i * p.stride_h - p.pad_h + r;
        if (ih < 0 || ih >= p.H) continue;
        float* dxr = dxc + ih * p.W - p.pad_w + s;
        if (p.stride_w == 1) {
          for (int64_t j = q0; j < q1; ++j) dxr[j] += in[j];
        } else {
          for (int64_t j = q0; j < q1; ++j) dxr[j * p.stride_w] += in[j];
        }
      }
    }
  });
}

// The weights of each group packed for the SGEMM: op(W_g) is W_g (forward) or W_g^T (backward
// data).
std::vector<PackedA> pack_weights(const Conv2dParams& p, const float* w, bool transposed) {
  const int64_t Kg = p.Kg(), CRS = p.Cg() * p.R * p.S;
  std::vector<PackedA> packed;
  for (int64_t g = 0; g < p.groups; ++g) {
    packed.push_back(transposed ? pack_a(true, CRS, Kg, w + g * Kg * CRS, CRS)
                                : pack_a(false, Kg, CRS, w + g * Kg * CRS, CRS));
  }
  return packed;
}

// Version 2's products with the tables, out[n, g] = A_g * col(in[n, g]) for every image n and
// group g (in: N x Cin x Hin x Win images as p describes them; out: N x (groups*M) x PQ, each
// written through epilogue(image, row of out, value) when `apply`). A task takes a block of
// `images` consecutive images of one group: their padded copies side by side in one buffer, and one
// product over all of their PQ output pixels (a cols table over the block: image i's offsets
// i*t.size on), so that a layer with few output pixels (the small network's 3 x 3 and 7 x 7
// outputs: 9 and 49) fills the micro-kernel's 32 columns instead of leaving most of its last
// panel to zeros; the block's product goes through a buffer into out. Every output is the same
// sum in the same order as with one image per task (each column of C is summed on its own), so
// the block size changes no bit: it is chosen for speed and balance only (images_per_task).
constexpr int64_t kBlockColumns = 128;  // output pixels a block aims at

int64_t images_per_task(const Conv2dParams& p) {
  const int64_t PQ = p.P * p.Q;
  if (PQ >= kBlockColumns / 2 || p.N <= 1) return 1;
  // At least 4 tasks (blocks x groups) a thread, so that the threads' shares stay even.
  const int64_t most = std::max<int64_t>(1, p.N * p.groups / (4 * parallel_threads()));
  return std::clamp<int64_t>((kBlockColumns + PQ - 1) / PQ, 1, most);
}

template <class Epilogue>
void gathered_products(const Conv2dParams& p, const Im2colTables& tab,
                       const std::vector<PackedA>& a, const float* in, float* out,
                       bool apply, const Epilogue& epilogue) {
  const int64_t PQ = p.P * p.Q, M = a[0].M, images = images_per_task(p);
  const int64_t in_image = p.C * p.H * p.W, in_group = p.Cg() * p.H * p.W;
  const int64_t out_image = p.groups * M * PQ, blocks = (p.N + images - 1) / images;
  const std::vector<int32_t> cols =  // the block's columns
      images > 1 ? pixels_of_images(p, tab, images) : std::vector<int32_t>();
  parallel_for(blocks * p.groups, [&](int64_t task) {
    const int64_t n0 = task / p.groups * images, g = task % p.groups;
    const int64_t count = std::min(images, p.N - n0), N = count * PQ;
    const float* ig = in + n0 * in_image + g * in_group;
    float* og = out + n0 * out_image + g * M * PQ;
    thread_local std::vector<float> pad, product;
    if (images == 1) {
      sgemm_packed(a[g], PQ, im2col_panels(p, &tab, ig, pad), og, PQ, false);
      if (!apply) return;
      for (int64_t m = 0; m < M; ++m) {
        for (int64_t j = 0; j < PQ; ++j) og[m * PQ + j] = epilogue(n0, g * M + m, og[m * PQ + j]);
      }
      return;
    }
    pad.resize(static_cast<size_t>(count * tab.size));
    product.resize(static_cast<size_t>(M * N));
    for (int64_t i = 0; i < count; ++i) {
      pad_image(p, tab, ig + i * in_image, pad.data() + i * tab.size);
    }
    const float* xp = pad.data();
    sgemm_packed(a[g], N, [&](int64_t k0, int64_t kc, int64_t j0, int64_t nc, float* bp) {
      pack_gathered(xp, tab.rows.data() + k0, kc, cols.data() + j0, nc, bp);
    }, product.data(), N, false);
    for (int64_t i = 0; i < count; ++i) {
      for (int64_t m = 0; m < M; ++m) {
        const float* src = product.data() + m * N + i * PQ;
        float* dst = og + i * out_image + m * PQ;
        if (!apply) {
          std::copy(src, src + PQ, dst);
          continue;
        }
        for (int64_t j = 0; j < PQ; ++j) dst[j] = epilogue(n0 + i, g * M + m, src[j]);
      }
    }
  });
}

}  // namespace

void conv2d_forward(const Conv2dParams& p, const Tensor& x, const Tensor& w, const Tensor& b,
                    Tensor& y, bool relu, int version) {
  const int64_t Cg = p.Cg(), Kg = p.Kg(), PQ = p.P * p.Q, CRS = Cg * p.R * p.S;
  const float* xd = x.data<float>();
  const float* bd = b.defined() ? b.data<float>() : nullptr;
  float* yd = y.data<float>();
  const std::vector<PackedA> wp = pack_weights(p, w.data<float>(), false);
  const bool tables = version != 1 && use_tables(p);
  const Im2colTables tab = tables ? im2col_tables(p) : Im2colTables();
  if (tables) {
    gathered_products(p, tab, wp, xd, yd, bd != nullptr || relu,
                      [&](int64_t, int64_t k, float v) { return bias_relu(v, bd, k, relu); });
    return;
  }
  parallel_for(p.N * p.groups, [&](int64_t ng) {
    const int64_t n = ng / p.groups, g = ng % p.groups;
    const float* xg = xd + (n * p.C + g * Cg) * p.H * p.W;
    float* yg = yd + (n * p.K + g * Kg) * PQ;
    if (version == 1) {
      thread_local std::vector<float> col;
      col.resize(static_cast<size_t>(CRS * PQ));
      im2col(p, xg, col.data());
      sgemm_packed(wp[g], false, PQ, col.data(), PQ, yg, PQ, false);
    } else {
      thread_local std::vector<float> xpad;
      sgemm_packed(wp[g], PQ, im2col_panels(p, nullptr, xg, xpad), yg, PQ, false);
    }
    if (bd != nullptr || relu) {
      for (int64_t k = 0; k < Kg; ++k) {
        for (int64_t i = 0; i < PQ; ++i) yg[k * PQ + i] = bias_relu(yg[k * PQ + i], bd, g * Kg + k, relu);
      }
    }
  });
}

namespace {

// Version 2's input gradient at stride 1 (see the top of this file): the convolution of dy
// (N, K, P, Q) with filters Wt_g[c][k][r][s] = W_g[k][c][R-1-r][S-1-s], padding R-1-pad_h,
// S-1-pad_w, whose output is dx (N, C, H, W).
void backward_data_as_forward(const Conv2dParams& p, const float* dyd, const float* wd,
                              float* dxd) {
  const int64_t Cg = p.Cg(), Kg = p.Kg(), RS = p.R * p.S, CRS = Cg * RS, HW = p.H * p.W;
  Conv2dParams t = p;
  t.C = p.K;
  t.H = p.P;
  t.W = p.Q;
  t.K = p.C;
  t.P = p.H;
  t.Q = p.W;
  t.pad_h = p.R - 1 - p.pad_h;
  t.pad_w = p.S - 1 - p.pad_w;
  // Wt_g[c][k*RS + rs] = W_g[(k*Cg + c)*RS + RS-1-rs] = W_g[c*RS + (k*Cg*RS + RS-1-rs)].
  std::vector<int64_t> row_off(static_cast<size_t>(Cg)), col_off(static_cast<size_t>(Kg * RS));
  for (int64_t c = 0; c < Cg; ++c) row_off[c] = c * RS;
  for (int64_t k = 0; k < Kg; ++k) {
    for (int64_t rs = 0; rs < RS; ++rs) col_off[k * RS + rs] = k * CRS + RS - 1 - rs;
  }
  std::vector<PackedA> wp;
  for (int64_t g = 0; g < p.groups; ++g) {
    wp.push_back(pack_a_gathered(Cg, Kg * RS, wd + g * Kg * CRS, row_off.data(), col_off.data()));
  }
  const bool tables = use_tables(t);
  const Im2colTables tab = tables ? im2col_tables(t) : Im2colTables();
  if (tables) {
    gathered_products(t, tab, wp, dyd, dxd, false, [](int64_t, int64_t, float v) { return v; });
    return;
  }
  parallel_for(p.N * p.groups, [&](int64_t ng) {
    const int64_t n = ng / p.groups, g = ng % p.groups;
    const float* dyg = dyd + (n * p.K + g * Kg) * p.P * p.Q;
    thread_local std::vector<float> dypad;
    sgemm_packed(wp[g], HW, im2col_panels(t, nullptr, dyg, dypad),
                 dxd + (n * p.C + g * Cg) * HW, HW, false);
  });
}

}  // namespace

void conv2d_backward_data(const Conv2dParams& p, const Tensor& dy, const Tensor& w, Tensor& dx,
                          int version) {
  const int64_t Cg = p.Cg(), Kg = p.Kg(), PQ = p.P * p.Q, CRS = Cg * p.R * p.S;
  const float* dyd = dy.data<float>();
  float* dxd = dx.data<float>();
  if (version != 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h < p.R && p.pad_w < p.S) {
    backward_data_as_forward(p, dyd, w.data<float>(), dxd);
    return;
  }
  const std::vector<PackedA> wp = pack_weights(p, w.data<float>(), true);
  parallel_for(p.N * p.groups, [&](int64_t ng) {
    const int64_t n = ng / p.groups, g = ng % p.groups;
    thread_local std::vector<float> dcol;
    dcol.resize(static_cast<size_t>(CRS * PQ));
    sgemm_packed(wp[g], false, PQ, dyd + (n * p.K + g * Kg) * PQ, PQ, dcol.data(), PQ, false);
    col2im(p, dcol.data(), dxd + (n * p.C + g * Cg) * p.H * p.W);
  });
}

namespace {

// The sum of v[0..n): 8 interleaved partial sums (element i into sum i % 8 of the first n / 8 * 8,
// the rest into sum 0), then those 8 in order. Independent chains, so it runs at the adder's
// throughput, not its latency; the same bits on every path and thread count.
float plane_sum(const float* v, int64_t n) {
  constexpr int L = 8;
  float lane[L] = {};
  const int64_t n8 = n / L * L;
  for (int64_t i = 0; i < n8; i += L) {
    for (int l = 0; l < L; ++l) lane[l] += v[i + l];
  }
  for (int64_t i = n8; i < n; ++i) lane[0] += v[i];
  float sum = lane[0];
  for (int l = 1; l < L; ++l) sum += lane[l];
  return sum;
}

}  // namespace

void conv2d_backward_filter(const Conv2dParams& p, const Tensor& dy, const Tensor& x, Tensor& dw,
                            Tensor& db, int version) {
  const int64_t Cg = p.Cg(), Kg = p.Kg(), PQ = p.P * p.Q, CRS = Cg * p.R * p.S;
  const float* dyd = dy.data<float>();
  const float* xd = x.data<float>();
  float* dwd = dw.data<float>();
  // The bias gradient: sums[n * K + k] = plane_sum of dy[n, k], then db[k] = the sum of those over
  // n in order. Version 2 takes each image's plane sums in the task that prepares its operands,
  // shortly before the product reads dy, instead of in a pass over all of dy at the end.
  std::vector<float> sums(static_cast<size_t>(p.N * p.K));
  const auto plane_sums = [&](int64_t n, int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) sums[n * p.K + k] = plane_sum(dyd + (n * p.K + k) * PQ, PQ);
  };
  if (version == 1) {
    parallel_for(p.N, [&](int64_t n) { plane_sums(n, 0, p.K); });
    std::vector<float> col(CRS * PQ);
    for (int64_t g = 0; g < p.groups; ++g) {
      for (int64_t n = 0; n < p.N; ++n) {
        im2col(p, xd + (n * p.C + g * Cg) * p.H * p.W, col.data());
        sgemm(false, true, Kg, CRS, PQ, dyd + (n * p.K + g * Kg) * PQ, PQ, col.data(), PQ,
              dwd + g * Kg * CRS, CRS, n > 0);
      }
    }
  } else {
    // The same sums as version 1 (image by image, each over its pixels in KC slices), run over
    // chunks of images: each chunk's dy[n, g] packed and images padded at once, then per group
    // one region over tiles of dW_g that adds the chunk's products to what the earlier chunks
    // summed (sgemm_sum accumulates in order of n, so the chunks give the same bits as one
    // call).
    const bool tables = use_tables(p);
    const Im2colTables tab = tables ? im2col_tables(p) : Im2colTables();
    const int64_t per_image = (Kg * PQ + (tables ? tab.size : 0)) * int64_t{sizeof(float)};
    const int64_t chunk =
        std::clamp<int64_t>(kFilterGradChunkBytes / per_image, 1, std::max<int64_t>(p.N, 1));
    std::vector<PackedA> dyp(static_cast<size_t>(chunk));
    std::vector<float> xpad(static_cast<size_t>(tables ? chunk * tab.size : 0));
    // Below 64 output pixels (the small network's 3 x 3 and 7 x 7 outputs) an image's k is too
    // short for the micro-kernel (9 multiply-adds a call, then C is loaded and stored): the
    // chunk's images are one product instead, k running over their pixels in turn, dy packed
    // from its images (pack_a_gathered) and col^T gathered through a pixel table over the
    // chunk's padded copies (image n's offsets n * tab.size on). Its sums run over the chunk's
    // pixels in KC slices, image after image: a fixed order, another than version 1's.
    const bool joined = tables && PQ < kBlockColumns / 2;
    const std::vector<int32_t> pixels =
        joined ? pixels_of_images(p, tab, chunk) : std::vector<int32_t>();
    std::vector<int64_t> dy_rows, dy_cols;
    if (joined) {
      dy_cols.resize(static_cast<size_t>(chunk * PQ));
      for (int64_t n = 0; n < chunk; ++n) {
        for (int64_t j = 0; j < PQ; ++j) dy_cols[n * PQ + j] = n * p.K * PQ + j;
      }
      dy_rows.resize(static_cast<size_t>(Kg));
      for (int64_t k = 0; k < Kg; ++k) dy_rows[k] = k * PQ;
    }
    for (int64_t g = 0; g < p.groups; ++g) {
      for (int64_t n0 = 0; n0 < p.N; n0 += chunk) {
        const int64_t nc = std::min(chunk, p.N - n0);
        const float* xg = xd + (n0 * p.C + g * Cg) * p.H * p.W;  // image n0's group g
        parallel_for(nc, [&](int64_t n) {
          if (!joined) dyp[n] = rows_of_a(Kg, PQ, dyd + ((n0 + n) * p.K + g * Kg) * PQ, PQ);
          plane_sums(n0 + n, g * Kg, (g + 1) * Kg);
          if (tables) pad_image(p, tab, xg + n * p.C * p.H * p.W, xpad.data() + n * tab.size);
        });
        if (joined) {
          const PackedA dy_joined = pack_a_gathered(Kg, nc * PQ, dyd + (n0 * p.K + g * Kg) * PQ,
                                                    dy_rows.data(), dy_cols.data());
          sgemm_packed(dy_joined, CRS, [&](int64_t k0, int64_t kc, int64_t j0, int64_t ncols,
                                           float* bp) {
            pack_gathered(xpad.data(), pixels.data() + k0, kc, tab.rows.data() + j0, ncols, bp);
          }, dwd + g * Kg * CRS, CRS, n0 > 0);
          continue;
        }
        sgemm_sum(
            dyp.data(), nc, CRS,
            [&](int64_t n, int64_t k0, int64_t kc, int64_t j0, int64_t ncols, float* bp) {
              if (tables) {
                pack_gathered(xpad.data() + n * tab.size, tab.cols.data() + k0, kc,
                              tab.rows.data() + j0, ncols, bp);
              } else {
                pack_im2col_transposed(p, xg + n * p.C * p.H * p.W, k0, kc, j0, ncols, bp);
              }
            },
            dwd + g * Kg * CRS, CRS, n0 > 0,
            tables ? PrefetchB([&](int64_t n, int64_t k0, int64_t kc, int64_t j0, int64_t ncols,
                                   int64_t part, int64_t parts) {
              prefetch_transposed_block(p, tab, xpad.data() + n * tab.size, k0, kc, j0, ncols,
                                        part, parts);
            })
                   : PrefetchB());
      }
    }
  }
  if (p.N == 0) dw.fill_zero();
  float* dbd = db.data<float>();
  for (int64_t k = 0; k < p.K; ++k) {
    float total = 0.0f;
    for (int64_t n = 0; n < p.N; ++n) total += sums[n * p.K + k];
    dbd[k] = total;
  }
}

}  // namespace pcn::cpu
