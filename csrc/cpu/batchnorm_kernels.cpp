// Loops of batch normalization over contiguous memory. x is (N, C, S).
//
// Two layouts, picked from the shape alone:
//  - planes (S >= kPlaneMinS): each (n, c) plane of S contiguous values is cut
//    into blocks of kPlaneBlock; a block is one unit of work with one partial
//    result (count, mean, M2 or two sums).
//  - rows (S < kPlaneMinS, e.g. (N, C) input): x is a matrix of N rows of
//    W = C*S columns; a unit is a range of rows times a tile of columns, with
//    one partial per column, and the loops run along rows so they vectorize
//    over columns.
// Units are spread over threads, but which elements a unit covers, and the
// order partials are merged in (unit order, then s order within a channel),
// depend on the shape only: results are bit-identical for any thread count.
// Statistics and gradient sums accumulate in the element type over short
// runs (kFlush lane sets, kFlushRows rows) that are flushed into double
// accumulators; block reductions keep kLanes independent accumulators combined
// in a fixed tree, which vectorizes without reassociating anything.
#include "batchnorm_kernels.h"

#include <algorithm>
#include <vector>

#include "isa.h"
#include "parallel.h"

#define FASTOPT_LOOP inline __attribute__((always_inline))

namespace fastopt {
namespace {

using std::size_t;

constexpr size_t kLanes = 32;             // independent accumulators of a block reduction
constexpr size_t kFlush = 4;              // element-type lane sets per flush to double (blocks)
constexpr size_t kFlushRows = 8;          // element-type rows per flush to double (row tiles)
constexpr size_t kPlaneBlock = 16384;     // elements per block of a plane
constexpr size_t kPlaneMinS = 256;        // shorter planes use the row layout
constexpr size_t kTileCols = 4096;        // columns per tile (row layout)
constexpr size_t kSubBlockElems = 32768;  // rows x tile width of one cache-resident sub-block
constexpr size_t kRowUnitsMax = 16;       // row ranges (row layout)
constexpr size_t kRowUnitElems = 32768;   // at least this many elements per row range
constexpr size_t kScratchCols = 1 << 18;  // row ranges x W, bounds the partials' memory

FASTOPT_LOOP double lane_sum(const double* a) {
  double t[kLanes];
  for (size_t l = 0; l < kLanes; ++l) t[l] = a[l];
  for (size_t w = kLanes / 2; w >= 1; w /= 2)
    for (size_t l = 0; l < w; ++l) t[l] += t[l + w];
  return t[0];
}

// ------------------------------------------------------------ plane blocks
// Block statistics by the corrected two-pass algorithm (Chan, Golub & LeVeque
// 1983): pass A gives an approximate mean a; pass B sums d = x - a and d*d,
// and mean = a + sum(d)/n, M2 = sum(d*d) - sum(d)^2/n. Pass B's correction
// makes the result as good as an exact-mean two-pass even though a is only
// approximate, so both passes can run in the element type (twice the SIMD
// width of double) over short runs that are flushed into double accumulators
// every kFlush vector steps. The block is cache-resident during pass B.
template <typename T>
FASTOPT_LOOP void block_moments(const T* __restrict x, size_t len, double* mean, double* m2) {
  const size_t body = len - len % kLanes;
  // pass A: approximate mean
  double a64[kLanes] = {};
  for (size_t i0 = 0; i0 < body; i0 += kLanes * kFlush) {
    T acc[kLanes] = {};
    const size_t i1 = std::min(body, i0 + kLanes * kFlush);
    for (size_t i = i0; i < i1; i += kLanes)
      for (size_t l = 0; l < kLanes; ++l) acc[l] += x[i + l];
    for (size_t l = 0; l < kLanes; ++l) a64[l] += double(acc[l]);
  }
  for (size_t i = body, l = 0; i < len; ++i, ++l) a64[l] += double(x[i]);
  const T a = T(lane_sum(a64) / double(len));
  // pass B: sums of d = x - a and d*d
  double s64[kLanes] = {}, q64[kLanes] = {};
  for (size_t i0 = 0; i0 < body; i0 += kLanes * kFlush) {
    T s[kLanes] = {}, q[kLanes] = {};
    const size_t i1 = std::min(body, i0 + kLanes * kFlush);
    for (size_t i = i0; i < i1; i += kLanes)
      for (size_t l = 0; l < kLanes; ++l) {
        const T d = x[i + l] - a;
        s[l] += d;
        q[l] += d * d;
      }
    for (size_t l = 0; l < kLanes; ++l) {
      s64[l] += double(s[l]);
      q64[l] += double(q[l]);
    }
  }
  for (size_t i = body, l = 0; i < len; ++i, ++l) {
    const double d = double(x[i] - a);
    s64[l] += d;
    q64[l] += d * d;
  }
  const double n = double(len), sd = lane_sum(s64);
  *mean = double(a) + sd / n;
  *m2 = fo_max(lane_sum(q64) - sd * sd / n, 0.0);  // rounding never makes it negative
}

// sum(dy) and sum(dy * (x - mean)), element-type runs flushed to double;
// EVAL also writes dx = k * dy in the same pass.
template <bool EVAL, typename T>
FASTOPT_LOOP void block_sums(const T* __restrict dy, const T* __restrict x, T* __restrict dx,
                             size_t len, T mean, T k, double* s_dy, double* s_dyxmu) {
  const size_t body = len - len % kLanes;
  double a64[kLanes] = {}, b64[kLanes] = {};
  for (size_t i0 = 0; i0 < body; i0 += kLanes * kFlush) {
    T a[kLanes] = {}, b[kLanes] = {};
    const size_t i1 = std::min(body, i0 + kLanes * kFlush);
    for (size_t i = i0; i < i1; i += kLanes)
      for (size_t l = 0; l < kLanes; ++l) {
        const T g = dy[i + l];
        a[l] += g;
        b[l] += g * (x[i + l] - mean);
        if (EVAL) dx[i + l] = bn_backward_eval_element(g, k);
      }
    for (size_t l = 0; l < kLanes; ++l) {
      a64[l] += double(a[l]);
      b64[l] += double(b[l]);
    }
  }
  for (size_t i = body, l = 0; i < len; ++i, ++l) {
    a64[l] += double(dy[i]);
    b64[l] += double(dy[i] * (x[i] - mean));
    if (EVAL) dx[i] = bn_backward_eval_element(dy[i], k);
  }
  *s_dy = lane_sum(a64);
  *s_dyxmu = lane_sum(b64);
}

template <typename T>
FASTOPT_LOOP void block_affine(const T* __restrict x, T* __restrict y, size_t len, T scale,
                               T shift) {
  for (size_t i = 0; i < len; ++i) y[i] = bn_normalize(x[i], scale, shift);
}

template <typename T>
FASTOPT_LOOP void block_dx(const T* __restrict dy, const T* __restrict x, T* __restrict dx,
                           size_t len, T mean, T k, T proj, T mean_dy) {
  for (size_t i = 0; i < len; ++i) dx[i] = bn_backward_element(dy[i], x[i], mean, k, proj, mean_dy);
}

// ------------------------------------------------------------ row tiles
// R rows of w columns at stride W (pointers already at the tile's start).
// Per column, the same corrected two-pass as block_moments over
// cache-resident sub-blocks of rows, merged in order. Within a group of
// kFlushRows rows, a chunk of CW columns accumulates in registers in the
// element type, then flushes into the double sums in memory; columns past
// the last full chunk go one at a time (CW = 1), which changes no result.

// pass A: tmp_s[c] += sum over the group's rows of x
template <size_t CW, typename T>
FASTOPT_LOOP void rows_group_sum(const T* __restrict x, size_t rows, size_t W, size_t c0,
                                 double* __restrict tmp_s) {
  T acc[CW] = {};
  for (size_t r = 0; r < rows; ++r)
    for (size_t l = 0; l < CW; ++l) acc[l] += x[r * W + c0 + l];
  for (size_t l = 0; l < CW; ++l) tmp_s[c0 + l] += double(acc[l]);
}

// pass B: sums of d = x - approx and d*d
template <size_t CW, typename T>
FASTOPT_LOOP void rows_group_dev(const T* __restrict x, size_t rows, size_t W, size_t c0,
                                 const T* __restrict approx, double* __restrict tmp_s,
                                 double* __restrict tmp_q) {
  T a[CW], sd[CW] = {}, sq[CW] = {};
  for (size_t l = 0; l < CW; ++l) a[l] = approx[c0 + l];
  for (size_t r = 0; r < rows; ++r)
    for (size_t l = 0; l < CW; ++l) {
      const T d = x[r * W + c0 + l] - a[l];
      sd[l] += d;
      sq[l] += d * d;
    }
  for (size_t l = 0; l < CW; ++l) {
    tmp_s[c0 + l] += double(sd[l]);
    tmp_q[c0 + l] += double(sq[l]);
  }
}

// backward: sums of dy and dy * (x - mean); EVAL writes dx = k * dy
template <size_t CW, bool EVAL, typename T>
FASTOPT_LOOP void rows_group_grad(const T* __restrict dy, const T* __restrict x, T* __restrict dx,
                                  size_t rows, size_t W, size_t c0, const T* __restrict mean,
                                  const T* __restrict k, double* __restrict s_dy,
                                  double* __restrict s_dyxmu) {
  T m[CW], kk[CW], a[CW] = {}, b[CW] = {};
  for (size_t l = 0; l < CW; ++l) {
    m[l] = mean[c0 + l];
    kk[l] = k[c0 + l];
  }
  for (size_t r = 0; r < rows; ++r)
    for (size_t l = 0; l < CW; ++l) {
      const T g = dy[r * W + c0 + l];
      a[l] += g;
      b[l] += g * (x[r * W + c0 + l] - m[l]);
      if (EVAL) dx[r * W + c0 + l] = bn_backward_eval_element(g, kk[l]);
    }
  for (size_t l = 0; l < CW; ++l) {
    s_dy[c0 + l] += double(a[l]);
    s_dyxmu[c0 + l] += double(b[l]);
  }
}

constexpr size_t kChunk = 32;  // columns per register chunk

template <typename T>
FASTOPT_LOOP void rows_moments(const T* __restrict x, size_t R, size_t W, size_t w,
                               double* __restrict mean, double* __restrict m2,
                               double* __restrict tmp_s, double* __restrict tmp_q,
                               T* __restrict approx) {
  // Sub-blocks of rows depend on the row width W, never on the tile width w,
  // so a column's result does not depend on how columns are grouped.
  const size_t sub = std::max<size_t>(kFlushRows, kSubBlockElems / W);
  const size_t wb = w - w % kChunk;
  double na = 0.0;
  for (size_t r0 = 0; r0 < R; r0 += sub) {
    const size_t rb = std::min(sub, R - r0);
    for (size_t c = 0; c < w; ++c) tmp_s[c] = 0.0;
    for (size_t f0 = r0; f0 < r0 + rb; f0 += kFlushRows) {
      const size_t rows = std::min(kFlushRows, r0 + rb - f0);
      const T* xg = x + f0 * W;
      for (size_t c0 = 0; c0 < wb; c0 += kChunk) rows_group_sum<kChunk>(xg, rows, W, c0, tmp_s);
      for (size_t c0 = wb; c0 < w; ++c0) rows_group_sum<1>(xg, rows, W, c0, tmp_s);
    }
    const double n = double(rb), inv_n = 1.0 / n;
    for (size_t c = 0; c < w; ++c) approx[c] = T(tmp_s[c] * inv_n);
    for (size_t c = 0; c < w; ++c) tmp_s[c] = tmp_q[c] = 0.0;
    for (size_t f0 = r0; f0 < r0 + rb; f0 += kFlushRows) {
      const size_t rows = std::min(kFlushRows, r0 + rb - f0);
      const T* xg = x + f0 * W;
      for (size_t c0 = 0; c0 < wb; c0 += kChunk)
        rows_group_dev<kChunk>(xg, rows, W, c0, approx, tmp_s, tmp_q);
      for (size_t c0 = wb; c0 < w; ++c0) rows_group_dev<1>(xg, rows, W, c0, approx, tmp_s, tmp_q);
    }
    // block (mean, M2) into tmp_s, tmp_q, then merged in order
    for (size_t c = 0; c < w; ++c) {
      const double sd = tmp_s[c];
      tmp_s[c] = double(approx[c]) + sd * inv_n;
      tmp_q[c] = fo_max(tmp_q[c] - sd * sd * inv_n, 0.0);
    }
    if (na == 0.0) {
      for (size_t c = 0; c < w; ++c) {
        mean[c] = tmp_s[c];
        m2[c] = tmp_q[c];
      }
    } else {
      for (size_t c = 0; c < w; ++c) bn_merge_nonempty(mean[c], m2[c], na, tmp_s[c], tmp_q[c], n);
    }
    na += n;
  }
}

template <bool EVAL, typename T>
FASTOPT_LOOP void rows_sums(const T* __restrict dy, const T* __restrict x, T* __restrict dx,
                            size_t R, size_t W, size_t w, const T* __restrict mean,
                            const T* __restrict k, double* __restrict s_dy,
                            double* __restrict s_dyxmu) {
  const size_t wb = w - w % kChunk;
  for (size_t c = 0; c < w; ++c) s_dy[c] = s_dyxmu[c] = 0.0;
  for (size_t f0 = 0; f0 < R; f0 += kFlushRows) {
    const size_t rows = std::min(kFlushRows, R - f0);
    const size_t o = f0 * W;
    for (size_t c0 = 0; c0 < wb; c0 += kChunk)
      rows_group_grad<kChunk, EVAL>(dy + o, x + o, dx + o, rows, W, c0, mean, k, s_dy, s_dyxmu);
    for (size_t c0 = wb; c0 < w; ++c0)
      rows_group_grad<1, EVAL>(dy + o, x + o, dx + o, rows, W, c0, mean, k, s_dy, s_dyxmu);
  }
}

template <typename T>
FASTOPT_LOOP void rows_affine(const T* __restrict x, T* __restrict y, size_t R, size_t W, size_t w,
                              const T* __restrict scale, const T* __restrict shift) {
  for (size_t r = 0; r < R; ++r) {
    const T* __restrict xr = x + r * W;
    T* __restrict yr = y + r * W;
    for (size_t c = 0; c < w; ++c) yr[c] = bn_normalize(xr[c], scale[c], shift[c]);
  }
}

template <typename T>
FASTOPT_LOOP void rows_dx(const T* __restrict dy, const T* __restrict x, T* __restrict dx, size_t R,
                          size_t W, size_t w, const T* __restrict mean, const T* __restrict k,
                          const T* __restrict proj, const T* __restrict mean_dy) {
  for (size_t r = 0; r < R; ++r) {
    const T* __restrict g = dy + r * W;
    const T* __restrict xr = x + r * W;
    T* __restrict o = dx + r * W;
    for (size_t c = 0; c < w; ++c) o[c] = bn_backward_element(g[c], xr[c], mean[c], k[c], proj[c], mean_dy[c]);
  }
}

// Merges per-column partials of a later row range into the running ones.
FASTOPT_LOOP void merge_columns(double* __restrict mean, double* __restrict m2, double na,
                                const double* __restrict mean_b, const double* __restrict m2_b,
                                double nb, size_t w) {
  for (size_t c = 0; c < w; ++c) bn_merge_nonempty(mean[c], m2[c], na, mean_b[c], m2_b[c], nb);
}

// One cloned entry point per loop and dtype (target_clones does not apply to templates).
#define FASTOPT_BN_RANGE_FUNCTIONS(T)                                                            \
  FASTOPT_CLONES void bn_block_moments(const T* x, size_t len, double* mean, double* m2) {       \
    block_moments(x, len, mean, m2);                                                           \
  }                                                                                             \
  FASTOPT_CLONES void bn_block_sums(const T* dy, const T* x, T* dx, size_t len, T mean, T k,     \
                                    bool eval, double* s_dy, double* s_dyxmu) {                 \
    eval ? block_sums<true>(dy, x, dx, len, mean, k, s_dy, s_dyxmu)                             \
         : block_sums<false>(dy, x, dx, len, mean, k, s_dy, s_dyxmu);                           \
  }                                                                                             \
  FASTOPT_CLONES void bn_block_affine(const T* x, T* y, size_t len, T scale, T shift) {         \
    block_affine(x, y, len, scale, shift);                                                      \
  }                                                                                             \
  FASTOPT_CLONES void bn_block_dx(const T* dy, const T* x, T* dx, size_t len, T mean, T k,      \
                                  T proj, T mean_dy) {                                          \
    block_dx(dy, x, dx, len, mean, k, proj, mean_dy);                                           \
  }                                                                                             \
  FASTOPT_CLONES void bn_rows_moments(const T* x, size_t R, size_t W, size_t w, double* mean,   \
                                      double* m2, double* tmp_s, double* tmp_q, T* approx) {    \
    rows_moments(x, R, W, w, mean, m2, tmp_s, tmp_q, approx);                                   \
  }                                                                                             \
  FASTOPT_CLONES void bn_rows_sums(const T* dy, const T* x, T* dx, size_t R, size_t W, size_t w, \
                                   const T* mean, const T* k, bool eval, double* s_dy,          \
                                   double* s_dyxmu) {                                           \
    eval ? rows_sums<true>(dy, x, dx, R, W, w, mean, k, s_dy, s_dyxmu)                          \
         : rows_sums<false>(dy, x, dx, R, W, w, mean, k, s_dy, s_dyxmu);                        \
  }                                                                                             \
  FASTOPT_CLONES void bn_rows_affine(const T* x, T* y, size_t R, size_t W, size_t w,            \
                                     const T* scale, const T* shift) {                          \
    rows_affine(x, y, R, W, w, scale, shift);                                                   \
  }                                                                                             \
  FASTOPT_CLONES void bn_rows_dx(const T* dy, const T* x, T* dx, size_t R, size_t W, size_t w,  \
                                 const T* mean, const T* k, const T* proj, const T* mean_dy) {  \
    rows_dx(dy, x, dx, R, W, w, mean, k, proj, mean_dy);                                        \
  }

FASTOPT_BN_RANGE_FUNCTIONS(float)
FASTOPT_BN_RANGE_FUNCTIONS(double)

FASTOPT_CLONES void bn_merge_columns(double* mean, double* m2, double na, const double* mean_b,
                                     const double* m2_b, double nb, size_t w) {
  merge_columns(mean, m2, na, mean_b, m2_b, nb, w);
}

// Per-channel finalization of (N, C) input (S = 1: a column is a channel), as
// column loops the compiler vectorizes; with a thousand channels the scalar
// form cost as much as a pass over a (64, 1024) batch.
template <typename T>
FASTOPT_LOOP void finish_forward_columns(size_t c0, size_t c1, double n, const double* mean,
                                         const double* m2, const T* gamma, const T* beta,
                                         T* running_mean, T* running_var, T* save_mean,
                                         T* save_invstd, T* scale, T* shift, double momentum,
                                         double eps) {
  for (size_t c = c0; c < c1; ++c) {
    const BnChannel ch = bn_channel_train(BnMoments{n, mean[c], m2[c]}, double(gamma[c]),
                                          double(beta[c]), eps);
    save_mean[c] = T(ch.mean);
    save_invstd[c] = T(ch.invstd);
    scale[c] = T(ch.scale);
    shift[c] = T(ch.shift);
  }
  if (running_mean)
    for (size_t c = c0; c < c1; ++c)
      bn_update_running(running_mean[c], running_var[c], BnMoments{n, mean[c], m2[c]}, momentum);
}

template <typename T>
FASTOPT_LOOP void finish_backward_columns(size_t c0, size_t c1, double count, const double* s_dy,
                                          const double* s_dyxmu, const T* gamma,
                                          const T* save_mean, const T* save_invstd, T* dgamma,
                                          T* dbeta, T* k, T* proj, T* mean_dy) {
  for (size_t c = c0; c < c1; ++c) {
    const BnBackwardChannel h = bn_backward_channel(s_dy[c], s_dyxmu[c], double(save_mean[c]),
                                                    double(save_invstd[c]), double(gamma[c]),
                                                    count, true);
    dgamma[c] = T(h.dgamma);
    dbeta[c] = T(h.dbeta);
    k[c] = T(h.k);
    proj[c] = T(h.proj);
    mean_dy[c] = T(h.mean_dy);
  }
}

#define FASTOPT_BN_FINISH_FUNCTIONS(T)                                                           \
  FASTOPT_CLONES void bn_finish_forward_columns(                                                 \
      size_t c0, size_t c1, double n, const double* mean, const double* m2, const T* gamma,      \
      const T* beta, T* rm, T* rv, T* sm, T* si, T* scale, T* shift, double momentum,            \
      double eps) {                                                                              \
    finish_forward_columns(c0, c1, n, mean, m2, gamma, beta, rm, rv, sm, si, scale, shift,       \
                           momentum, eps);                                                       \
  }                                                                                              \
  FASTOPT_CLONES void bn_finish_backward_columns(                                                \
      size_t c0, size_t c1, double count, const double* s_dy, const double* s_dyxmu,             \
      const T* gamma, const T* sm, const T* si, T* dgamma, T* dbeta, T* k, T* proj, T* mdy) {    \
    finish_backward_columns(c0, c1, count, s_dy, s_dyxmu, gamma, sm, si, dgamma, dbeta, k, proj, \
                            mdy);                                                                \
  }
FASTOPT_BN_FINISH_FUNCTIONS(float)
FASTOPT_BN_FINISH_FUNCTIONS(double)

// --------------------------------------------------------------- layout
struct Layout {
  bool planes = false;
  size_t units = 0;
  size_t J = 0;              // planes: blocks per plane
  size_t W = 0, RU = 0, CT = 0;  // rows: row width, row ranges, column tiles

  explicit Layout(const BnShape& s) {
    if (s.S >= kPlaneMinS) {
      planes = true;
      J = (s.S + kPlaneBlock - 1) / kPlaneBlock;
      units = s.N * s.C * J;
    } else {
      W = s.C * s.S;
      if (W == 0 || s.N == 0) return;
      CT = (W + kTileCols - 1) / kTileCols;
      RU = std::min({kRowUnitsMax, s.N, std::max<size_t>(1, s.N * W / kRowUnitElems),
                     std::max<size_t>(1, kScratchCols / W)});
      units = RU * CT;
    }
  }
  // Planes: unit u is block j of plane p = n*C + c.
  size_t block_len(const BnShape& s, size_t j) const {
    return std::min(kPlaneBlock, s.S - j * kPlaneBlock);
  }
  // Rows: unit u is row range ru times column tile ct.
  size_t row_begin(const BnShape& s, size_t ru) const { return s.N * ru / RU; }
  size_t col_begin(size_t ct) const { return ct * kTileCols; }
  size_t col_width(size_t ct) const { return std::min(kTileCols, W - ct * kTileCols); }
};

// Runs f(u) for every unit, units spread over threads in contiguous ranges.
template <typename F>
void for_units(size_t units, size_t elements, const F& f) {
  if (units == 0) return;
  const size_t parts = std::min<size_t>(parallel_parts(elements, kElementwiseGrain), units);
  if (parts <= 1) {
    for (size_t u = 0; u < units; ++u) f(u);
    return;
  }
  // parallel_for over parts*64 items of grain 64 gives exactly `parts` parts.
  parallel_for(parts * 64, 64, [&](size_t b, size_t e) {
    for (size_t p = b / 64; p < e / 64; ++p)
      for (size_t u = units * p / parts; u < units * (p + 1) / parts; ++u) f(u);
  });
}

// Scratch reused across calls by the calling thread (workers only write into
// it through pointers), so a call allocates nothing once warm. Slots 0-1 hold
// double partials, 2-3 per-column T constants (distinct even when T = double).
template <typename T>
std::vector<T>& scratch(size_t n, int which) {
  thread_local std::vector<T> bufs[4];
  std::vector<T>& v = bufs[which];
  if (v.size() < n) v.resize(n);
  return v;
}

// Per-column copies of per-channel constants (row layout, W = C*S columns).
template <typename T>
void expand(T* col, const double* per_channel, const BnShape& s) {
  for (size_t c = 0; c < s.C; ++c)
    for (size_t k = 0; k < s.S; ++k) col[c * s.S + k] = T(per_channel[c]);
}

// ------------------------------------------------ channel-group layout
// Training calls on the row layout whose channels are small run as ONE
// parallel region over groups of whole channels: a unit computes its channels'
// statistics, finalizes them and then normalizes (forward), or sums dy and
// dy*(x-mean), finalizes and writes dx (backward), while its columns are still
// in its core's cache. That reads x (and dy) from memory once instead of twice
// and wakes the pool once per call. Units take wide column ranges (one per
// thread when it fits the cache budget): short row segments at a large stride
// defeat the prefetchers. Per-column results do not depend on the group width
// (rows_moments' sub-blocks depend on W only) and whether this layout is used
// depends on the shape only, so results stay bit-identical for any thread
// count. Planes keep the block layout: a channel's planes lie C*S apart, and
// walking them channel by channel hops pages faster than the prefetchers
// follow (measured 1.6x slower on (32, 64, 32, 32)).
constexpr size_t kGroupBytes = 512 * 1024;  // a unit's share of x, at most
constexpr size_t kGroupMinCols = 64;        // columns per unit, at least

struct Groups {
  size_t per_unit = 0;  // channels per unit; 0: use the two-region layout
  size_t units = 0;
  Groups(const BnShape& s, const Layout& L, size_t elem) {
    if (L.planes || s.N == 0 || s.C == 0 || s.S == 0) return;
    const size_t channel_bytes = s.N * s.S * elem;
    const size_t min_g = std::min(s.C, (kGroupMinCols + s.S - 1) / s.S);
    if (channel_bytes * min_g > kGroupBytes || s.C * s.S < 2 * kGroupMinCols) return;
    // Two units per thread (measured best on (256, 1024): a unit's x and dy
    // then stay in L2 between the passes), on whole cache lines of columns.
    const size_t units_wanted = 2 * size_t(num_threads());
    const size_t line = std::max<size_t>(1, 64 / (s.S * elem));
    size_t want = (s.C + units_wanted - 1) / units_wanted;
    want = (want + line - 1) / line * line;
    per_unit = std::min(std::max(want, min_g), kGroupBytes / channel_bytes);
    units = (s.C + per_unit - 1) / per_unit;
  }
  size_t first(size_t u) const { return u * per_unit; }
  size_t last(const BnShape& s, size_t u) const { return std::min(s.C, (u + 1) * per_unit); }
};

}  // namespace

// ============================================================== forward
namespace {

// One channel's finalization: saved statistics, running update, folded constants.
template <typename T>
FASTOPT_LOOP BnChannel finish_channel(const BnMoments& m, size_t c, const T* gamma, const T* beta,
                                      T* running_mean, T* running_var, T* save_mean,
                                      T* save_invstd, double momentum, double eps) {
  const BnChannel ch = bn_channel_train(m, double(gamma[c]), double(beta[c]), eps);
  save_mean[c] = T(ch.mean);
  save_invstd[c] = T(ch.invstd);
  if (running_mean) bn_update_running(running_mean[c], running_var[c], m, momentum);
  return ch;
}

template <typename T>
void forward_by_groups(const T* x, T* y, const T* gamma, const T* beta, T* running_mean,
                       T* running_var, T* save_mean, T* save_invstd, const BnShape& s,
                       const Layout& L, const Groups& G, double momentum, double eps) {
  const size_t C = s.C, S = s.S, numel = s.N * s.C * s.S;
  if (L.planes) {
    for_units(G.units, numel, [&](size_t u) {
      for (size_t c = G.first(u); c < G.last(s, u); ++c) {
        BnMoments m = bn_moments_empty();
        for (size_t n = 0; n < s.N; ++n)
          for (size_t j = 0; j < L.J; ++j) {
            const size_t len = L.block_len(s, j);
            BnMoments b{double(len), 0.0, 0.0};
            bn_block_moments(x + (n * C + c) * S + j * kPlaneBlock, len, &b.mean, &b.m2);
            bn_merge(m, b);
          }
        const BnChannel ch = finish_channel(m, c, gamma, beta, running_mean, running_var,
                                            save_mean, save_invstd, momentum, eps);
        for (size_t n = 0; n < s.N; ++n)
          for (size_t j = 0; j < L.J; ++j) {
            const size_t off = (n * C + c) * S + j * kPlaneBlock;
            bn_block_affine(x + off, y + off, L.block_len(s, j), T(ch.scale), T(ch.shift));
          }
      }
    });
    return;
  }
  // Rows: unit u owns the columns [c0*S, c1*S) of every row.
  const size_t W = L.W;
  std::vector<double>& ws = scratch<double>(4 * W, 0);
  double* mean = ws.data();
  double* m2 = mean + W;
  double* tmp_s = m2 + W;
  double* tmp_q = tmp_s + W;
  std::vector<T>& ts = scratch<T>(3 * W, 2);
  T* approx = ts.data();
  T* scale = approx + W;
  T* shift = scale + W;
  for_units(G.units, numel, [&](size_t u) {
    const size_t c0 = G.first(u), c1 = G.last(s, u), a = c0 * S, w = (c1 - c0) * S;
    bn_rows_moments(x + a, s.N, W, w, mean + a, m2 + a, tmp_s + a, tmp_q + a, approx + a);
    if (S == 1) {
      bn_finish_forward_columns(c0, c1, double(s.N), mean, m2, gamma, beta, running_mean,
                                running_var, save_mean, save_invstd, scale, shift, momentum, eps);
      bn_rows_affine(x + a, y + a, s.N, W, w, scale + a, shift + a);
      return;
    }
    for (size_t c = c0; c < c1; ++c) {
      BnMoments m{double(s.N), mean[c * S], m2[c * S]};
      for (size_t k = 1; k < S; ++k) bn_merge(m, BnMoments{double(s.N), mean[c * S + k], m2[c * S + k]});
      const BnChannel ch = finish_channel(m, c, gamma, beta, running_mean, running_var, save_mean,
                                          save_invstd, momentum, eps);
      for (size_t k = 0; k < S; ++k) {
        scale[c * S + k] = T(ch.scale);
        shift[c * S + k] = T(ch.shift);
      }
    }
    bn_rows_affine(x + a, y + a, s.N, W, w, scale + a, shift + a);
  });
}

}  // namespace
template <typename T>
void batch_norm_forward_cpu(const T* x, T* y, const T* gamma, const T* beta, T* running_mean,
                            T* running_var, T* save_mean, T* save_invstd, BnShape s,
                            bool training, double momentum, double eps) {
  const Layout L(s);
  const size_t C = s.C, S = s.S, numel = s.N * s.C * s.S;
  if (training) {
    const Groups G(s, L, sizeof(T));
    if (G.per_unit) {
      forward_by_groups(x, y, gamma, beta, running_mean, running_var, save_mean, save_invstd, s,
                        L, G, momentum, eps);
      return;
    }
  }
  // Double scratch: [scale C][shift C] then the partials.
  const size_t partials = L.planes ? 2 * L.units : 4 * L.RU * L.W;
  std::vector<double>& ws = scratch<double>(2 * C + partials, 0);
  double* scale = ws.data();
  double* shift = scale + C;
  double* part = shift + C;

  if (training) {
    if (L.planes) {
      double* pm = part;
      double* pq = part + L.units;
      for_units(L.units, numel, [&](size_t u) {
        const size_t p = u / L.J, j = u % L.J;
        bn_block_moments(x + p * S + j * kPlaneBlock, L.block_len(s, j), pm + u, pq + u);
      });
      for (size_t c = 0; c < C; ++c) {
        BnMoments m = bn_moments_empty();
        for (size_t n = 0; n < s.N; ++n)
          for (size_t j = 0; j < L.J; ++j) {
            const size_t u = (n * C + c) * L.J + j;
            bn_merge(m, BnMoments{double(L.block_len(s, j)), pm[u], pq[u]});
          }
        const BnChannel ch = bn_channel_train(m, double(gamma[c]), double(beta[c]), eps);
        save_mean[c] = T(ch.mean);
        save_invstd[c] = T(ch.invstd);
        scale[c] = ch.scale;
        shift[c] = ch.shift;
        if (running_mean) bn_update_running(running_mean[c], running_var[c], m, momentum);
      }
    } else if (L.units) {
      const size_t W = L.W;
      double* pm = part;                 // RU x W means
      double* pq = pm + L.RU * W;        // RU x W M2
      double* tm = pq + L.RU * W;        // scratch per unit
      double* tq = tm + L.RU * W;
      std::vector<T>& tscratch = scratch<T>(L.RU * W, 2);
      T* ta = tscratch.data();           // approximate means per unit
      for_units(L.units, numel, [&](size_t u) {
        const size_t ru = u / L.CT, ct = u % L.CT;
        const size_t r0 = L.row_begin(s, ru), r1 = L.row_begin(s, ru + 1);
        const size_t c0 = L.col_begin(ct), off = ru * W + c0;
        bn_rows_moments(x + r0 * W + c0, r1 - r0, W, L.col_width(ct), pm + off, pq + off, tm + off,
                        tq + off, ta + off);
      });
      // Row ranges in order, vectorized over columns (into range 0's partials).
      double na = double(L.row_begin(s, 1));
      for (size_t ru = 1; ru < L.RU; ++ru) {
        const double nb = double(L.row_begin(s, ru + 1) - L.row_begin(s, ru));
        bn_merge_columns(pm, pq, na, pm + ru * W, pq + ru * W, nb, W);
        na += nb;
      }
      // Then the S columns of a channel, in order.
      for (size_t c = 0; c < C; ++c) {
        BnMoments m{double(s.N), pm[c * S], pq[c * S]};
        for (size_t k = 1; k < S; ++k) bn_merge(m, BnMoments{double(s.N), pm[c * S + k], pq[c * S + k]});
        const BnChannel ch = bn_channel_train(m, double(gamma[c]), double(beta[c]), eps);
        save_mean[c] = T(ch.mean);
        save_invstd[c] = T(ch.invstd);
        scale[c] = ch.scale;
        shift[c] = ch.shift;
        if (running_mean) bn_update_running(running_mean[c], running_var[c], m, momentum);
      }
    }
  } else {
    for (size_t c = 0; c < C; ++c) {
      const double invstd = bn_invstd(double(running_var[c]), eps);
      const BnChannel ch = bn_channel(double(running_mean[c]), invstd, double(gamma[c]), double(beta[c]));
      save_mean[c] = running_mean[c];
      save_invstd[c] = T(invstd);
      scale[c] = ch.scale;
      shift[c] = ch.shift;
    }
  }

  // The normalize pass: y = x * scale + shift.
  if (L.planes) {
    for_units(L.units, numel, [&](size_t u) {
      const size_t p = u / L.J, j = u % L.J, c = p % C, off = p * S + j * kPlaneBlock;
      bn_block_affine(x + off, y + off, L.block_len(s, j), T(scale[c]), T(shift[c]));
    });
  } else if (L.units) {
    const size_t W = L.W;
    std::vector<T>& cols = scratch<T>(2 * W, 2);
    T* scale_col = cols.data();
    T* shift_col = scale_col + W;
    expand(scale_col, scale, s);
    expand(shift_col, shift, s);
    for_units(L.units, numel, [&](size_t u) {
      const size_t ru = u / L.CT, ct = u % L.CT;
      const size_t r0 = L.row_begin(s, ru), r1 = L.row_begin(s, ru + 1), c0 = L.col_begin(ct);
      bn_rows_affine(x + r0 * W + c0, y + r0 * W + c0, r1 - r0, W, L.col_width(ct), scale_col + c0,
                     shift_col + c0);
    });
  }
}

// ============================================================= backward
namespace {

template <typename T>
void backward_by_groups(const T* dy, const T* x, const T* gamma, const T* save_mean,
                        const T* save_invstd, T* dx, T* dgamma, T* dbeta, const BnShape& s,
                        const Layout& L, const Groups& G) {
  const size_t C = s.C, S = s.S, numel = s.N * s.C * s.S;
  const double count = double(s.N) * double(S);
  auto finish = [&](size_t c, double sum_dy, double sum_dyxmu) {
    const BnBackwardChannel h = bn_backward_channel(sum_dy, sum_dyxmu, double(save_mean[c]),
                                                    double(save_invstd[c]), double(gamma[c]),
                                                    count, true);
    dgamma[c] = T(h.dgamma);
    dbeta[c] = T(h.dbeta);
    return h;
  };
  if (L.planes) {
    for_units(G.units, numel, [&](size_t u) {
      for (size_t c = G.first(u); c < G.last(s, u); ++c) {
        const T mean = save_mean[c], k = T(double(gamma[c]) * double(save_invstd[c]));
        double a = 0.0, b = 0.0;
        for (size_t n = 0; n < s.N; ++n)
          for (size_t j = 0; j < L.J; ++j) {
            const size_t off = (n * C + c) * S + j * kPlaneBlock;
            double pa, pb;
            bn_block_sums(dy + off, x + off, dx + off, L.block_len(s, j), mean, k, false, &pa, &pb);
            a += pa;
            b += pb;
          }
        const BnBackwardChannel h = finish(c, a, b);
        for (size_t n = 0; n < s.N; ++n)
          for (size_t j = 0; j < L.J; ++j) {
            const size_t off = (n * C + c) * S + j * kPlaneBlock;
            bn_block_dx(dy + off, x + off, dx + off, L.block_len(s, j), T(h.mean), T(h.k),
                        T(h.proj), T(h.mean_dy));
          }
      }
    });
    return;
  }
  // Rows: unit u owns the columns [c0*S, c1*S) of every row.
  const size_t W = L.W;
  std::vector<double>& ws = scratch<double>(2 * W, 1);
  double* p1 = ws.data();
  double* p2 = p1 + W;
  std::vector<T>& tcols = scratch<T>(4 * W, 3);
  T* m_col = tcols.data();
  T* hk_col = m_col + W;
  T* proj_col = hk_col + W;
  T* mdy_col = proj_col + W;
  for_units(G.units, numel, [&](size_t u) {
    const size_t c0 = G.first(u), c1 = G.last(s, u), a0 = c0 * S, w = (c1 - c0) * S;
    // Training only: rows_sums reads its k argument only in the eval form.
    if (S == 1) {  // columns are channels
      bn_rows_sums(dy + a0, x + a0, dx + a0, s.N, W, w, save_mean + a0, save_mean + a0, false,
                   p1 + a0, p2 + a0);
      bn_finish_backward_columns(c0, c1, count, p1, p2, gamma, save_mean, save_invstd, dgamma,
                                 dbeta, hk_col, proj_col, mdy_col);
      bn_rows_dx(dy + a0, x + a0, dx + a0, s.N, W, w, save_mean + a0, hk_col + a0, proj_col + a0,
                 mdy_col + a0);
      return;
    }
    for (size_t c = c0; c < c1; ++c)
      for (size_t q = 0; q < S; ++q) m_col[c * S + q] = save_mean[c];
    bn_rows_sums(dy + a0, x + a0, dx + a0, s.N, W, w, m_col + a0, m_col + a0, false, p1 + a0,
                 p2 + a0);
    for (size_t c = c0; c < c1; ++c) {
      double a = 0.0, b = 0.0;
      for (size_t q = 0; q < S; ++q) {
        a += p1[c * S + q];
        b += p2[c * S + q];
      }
      const BnBackwardChannel h = finish(c, a, b);
      for (size_t q = 0; q < S; ++q) {
        hk_col[c * S + q] = T(h.k);
        proj_col[c * S + q] = T(h.proj);
        mdy_col[c * S + q] = T(h.mean_dy);
      }
    }
    bn_rows_dx(dy + a0, x + a0, dx + a0, s.N, W, w, m_col + a0, hk_col + a0, proj_col + a0,
               mdy_col + a0);
  });
}

}  // namespace

template <typename T>
void batch_norm_backward_cpu(const T* dy, const T* x, const T* gamma, const T* save_mean,
                             const T* save_invstd, T* dx, T* dgamma, T* dbeta, BnShape s,
                             bool training) {
  const Layout L(s);
  const size_t C = s.C, S = s.S, numel = s.N * s.C * s.S;
  if (training) {
    const Groups G(s, L, sizeof(T));
    if (G.per_unit) {
      backward_by_groups(dy, x, gamma, save_mean, save_invstd, dx, dgamma, dbeta, s, L, G);
      return;
    }
  }
  const double count = double(s.N) * double(S);
  // Double scratch: [sum_dy C][sum_dy_xmu C] then partials.
  const size_t partials = L.planes ? 2 * L.units : 2 * L.RU * L.W;
  std::vector<double>& ws = scratch<double>(2 * C + partials, 1);
  double* sum_dy = ws.data();
  double* sum_dyxmu = sum_dy + C;
  double* part = sum_dyxmu + C;
  // T scratch (row layout): k, mean, proj, mean_dy per column.
  std::vector<T>& tcols = scratch<T>(4 * L.W, 3);
  T* k_col = tcols.data();
  T* m_col = k_col + L.W;
  T* proj_col = m_col + L.W;
  T* mdy_col = proj_col + L.W;
  std::vector<double> k(C);
  for (size_t c = 0; c < C; ++c) k[c] = double(gamma[c]) * double(save_invstd[c]);

  // Reduction pass (eval: dx = k * dy written in the same pass).
  const bool eval = !training;
  if (L.planes) {
    double* p1 = part;
    double* p2 = part + L.units;
    for_units(L.units, numel, [&](size_t u) {
      const size_t p = u / L.J, j = u % L.J, c = p % C, off = p * S + j * kPlaneBlock;
      bn_block_sums(dy + off, x + off, dx + off, L.block_len(s, j), save_mean[c], T(k[c]), eval,
                    p1 + u, p2 + u);
    });
    for (size_t c = 0; c < C; ++c) {
      double a = 0.0, b = 0.0;
      for (size_t n = 0; n < s.N; ++n)
        for (size_t j = 0; j < L.J; ++j) {
          const size_t u = (n * C + c) * L.J + j;
          a += p1[u];
          b += p2[u];
        }
      sum_dy[c] = a;
      sum_dyxmu[c] = b;
    }
  } else if (L.units) {
    const size_t W = L.W;
    double* p1 = part;
    double* p2 = part + L.RU * W;
    for (size_t c = 0; c < C; ++c)
      for (size_t q = 0; q < S; ++q) {
        m_col[c * S + q] = save_mean[c];
        k_col[c * S + q] = T(k[c]);
      }
    for_units(L.units, numel, [&](size_t u) {
      const size_t ru = u / L.CT, ct = u % L.CT;
      const size_t r0 = L.row_begin(s, ru), r1 = L.row_begin(s, ru + 1), c0 = L.col_begin(ct);
      const size_t off = r0 * W + c0;
      const size_t poff = ru * W + c0;
      bn_rows_sums(dy + off, x + off, dx + off, r1 - r0, W, L.col_width(ct), m_col + c0,
                   k_col + c0, eval, p1 + poff, p2 + poff);
    });
    for (size_t ru = 1; ru < L.RU; ++ru)
      for (size_t q = 0; q < W; ++q) {
        p1[q] += p1[ru * W + q];
        p2[q] += p2[ru * W + q];
      }
    for (size_t c = 0; c < C; ++c) {
      double a = 0.0, b = 0.0;
      for (size_t q = 0; q < S; ++q) {
        a += p1[c * S + q];
        b += p2[c * S + q];
      }
      sum_dy[c] = a;
      sum_dyxmu[c] = b;
    }
  } else {
    for (size_t c = 0; c < C; ++c) sum_dy[c] = sum_dyxmu[c] = 0.0;
  }

  std::vector<BnBackwardChannel> ch(C);
  for (size_t c = 0; c < C; ++c) {
    ch[c] = bn_backward_channel(sum_dy[c], sum_dyxmu[c], double(save_mean[c]),
                                double(save_invstd[c]), double(gamma[c]), count, training);
    dgamma[c] = T(ch[c].dgamma);
    dbeta[c] = T(ch[c].dbeta);
  }
  if (eval) return;

  // Elementwise pass: dx = (dy - (x - mean) * proj - mean_dy) * k.
  if (L.planes) {
    for_units(L.units, numel, [&](size_t u) {
      const size_t p = u / L.J, j = u % L.J, c = p % C, off = p * S + j * kPlaneBlock;
      const BnBackwardChannel& h = ch[c];
      bn_block_dx(dy + off, x + off, dx + off, L.block_len(s, j), T(h.mean), T(h.k), T(h.proj),
                  T(h.mean_dy));
    });
  } else if (L.units) {
    const size_t W = L.W;
    for (size_t c = 0; c < C; ++c)
      for (size_t q = 0; q < S; ++q) {
        m_col[c * S + q] = T(ch[c].mean);
        proj_col[c * S + q] = T(ch[c].proj);
        mdy_col[c * S + q] = T(ch[c].mean_dy);
      }
    for_units(L.units, numel, [&](size_t u) {
      const size_t ru = u / L.CT, ct = u % L.CT;
      const size_t r0 = L.row_begin(s, ru), r1 = L.row_begin(s, ru + 1), c0 = L.col_begin(ct);
      const size_t off = r0 * W + c0;
      bn_rows_dx(dy + off, x + off, dx + off, r1 - r0, W, L.col_width(ct), m_col + c0, k_col + c0,
                 proj_col + c0, mdy_col + c0);
    });
  }
}

#define FASTOPT_BN_INSTANTIATE(T)                                                              \
  template void batch_norm_forward_cpu<T>(const T*, T*, const T*, const T*, T*, T*, T*, T*,     \
                                          BnShape, bool, double, double);                       \
  template void batch_norm_backward_cpu<T>(const T*, const T*, const T*, const T*, const T*, T*, \
                                           T*, T*, BnShape, bool);
FASTOPT_BN_INSTANTIATE(float)
FASTOPT_BN_INSTANTIATE(double)

}  // namespace fastopt
