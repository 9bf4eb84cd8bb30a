// Batch norm's row loops: R rows of w columns at stride W (the row layout
// of batchnorm_layout.h), vectorized over columns. Statistics and gradient
// sums accumulate in the element type over kFlushRows rows, then flush into
// double per-column accumulators. X is the storage type of the values, T =
// compute_t<X> the type they are computed in (16-bit values widened on load,
// results rounded once on store).
#include "batchnorm_layout.h"
#include "isa.h"

namespace fastopt {
namespace bn {
namespace {

// R rows of w columns at stride W (pointers already at the tile's start).
// Per column, the same corrected two-pass as block_moments over
// cache-resident sub-blocks of rows, merged in order. Within a group of
// kFlushRows rows, a chunk of CW columns accumulates in registers in the
// element type, then flushes into the double sums in memory; columns past
// the last full chunk go one at a time (CW = 1), which changes no result.

// pass A: tmp_s[c] += sum over the group's rows of x
template <size_t CW, typename X, typename T = compute_t<X>>
FASTOPT_LOOP void rows_group_sum(const X* __restrict x, size_t rows, size_t W, size_t c0,
                                 double* __restrict tmp_s) {
  T acc[CW] = {};
  for (size_t r = 0; r < rows; ++r)
    for (size_t l = 0; l < CW; ++l) acc[l] += widen(x[r * W + c0 + l]);
  for (size_t l = 0; l < CW; ++l) tmp_s[c0 + l] += double(acc[l]);
}

// pass B: sums of d = x - approx and d*d
template <size_t CW, typename X, typename T>
FASTOPT_LOOP void rows_group_dev(const X* __restrict x, size_t rows, size_t W, size_t c0,
                                 const T* __restrict approx, double* __restrict tmp_s,
                                 double* __restrict tmp_q) {
  T a[CW], sd[CW] = {}, sq[CW] = {};
  for (size_t l = 0; l < CW; ++l) a[l] = approx[c0 + l];
  for (size_t r = 0; r < rows; ++r)
    for (size_t l = 0; l < CW; ++l) {
      const T d = widen(x[r * W + c0 + l]) - a[l];
      sd[l] += d;
      sq[l] += d * d;
    }
  for (size_t l = 0; l < CW; ++l) {
    tmp_s[c0 + l] += double(sd[l]);
    tmp_q[c0 + l] += double(sq[l]);
  }
}

// backward: sums of dy and dy * (x - mean); EVAL writes dx = k * dy
template <size_t CW, bool EVAL, typename X, typename T>
FASTOPT_LOOP void rows_group_grad(const X* __restrict dy, const X* __restrict x, X* __restrict dx,
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
      const T g = widen(dy[r * W + c0 + l]);
      a[l] += g;
      b[l] += g * (widen(x[r * W + c0 + l]) - m[l]);
      if (EVAL) dx[r * W + c0 + l] = narrow<X>(bn_backward_eval_element(g, kk[l]));
    }
  for (size_t l = 0; l < CW; ++l) {
    s_dy[c0 + l] += double(a[l]);
    s_dyxmu[c0 + l] += double(b[l]);
  }
}

constexpr size_t kChunk = 32;  // columns per register chunk

template <typename X, typename T>
FASTOPT_LOOP void rows_moments_loop(const X* __restrict x, size_t R, size_t W, size_t w,
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
      const X* xg = x + f0 * W;
      for (size_t c0 = 0; c0 < wb; c0 += kChunk) rows_group_sum<kChunk>(xg, rows, W, c0, tmp_s);
      for (size_t c0 = wb; c0 < w; ++c0) rows_group_sum<1>(xg, rows, W, c0, tmp_s);
    }
    const double n = double(rb), inv_n = 1.0 / n;
    for (size_t c = 0; c < w; ++c) approx[c] = T(tmp_s[c] * inv_n);
    for (size_t c = 0; c < w; ++c) tmp_s[c] = tmp_q[c] = 0.0;
    for (size_t f0 = r0; f0 < r0 + rb; f0 += kFlushRows) {
      const size_t rows = std::min(kFlushRows, r0 + rb - f0);
      const X* xg = x + f0 * W;
      for (size_t c0 = 0; c0 < wb; c0 += kChunk)
        rows_group_dev<kChunk>(xg, rows, W, c0, approx, tmp_s, tmp_q);
      for (size_t c0 = wb; c0 < w; ++c0) rows_group_dev<1>(xg, rows, W, c0, approx, tmp_s, tmp_q);
    }
    // block (mean, M2) into tmp_s, tmp_q, then merged in order
    for (size_t c = 0; c < w; ++c) {
      const double sd = tmp_s[c];
      tmp_s[c] = bn_block_mean(double(approx[c]), sd, n);
      tmp_q[c] = bn_nonneg(tmp_q[c] - sd * sd * inv_n);
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

template <bool EVAL, typename X, typename T>
FASTOPT_LOOP void rows_sums_loop(const X* __restrict dy, const X* __restrict x, X* __restrict dx,
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

template <typename X, typename T>
FASTOPT_LOOP void rows_affine_loop(const X* __restrict x, X* __restrict y, size_t R, size_t W,
                                   size_t w, const T* __restrict mean_hi,
                                   const T* __restrict mean_lo, const T* __restrict scale,
                                   const T* __restrict beta) {
  for (size_t r = 0; r < R; ++r) {
    const X* __restrict xr = x + r * W;
    X* __restrict yr = y + r * W;
    for (size_t c = 0; c < w; ++c)
      yr[c] = narrow<X>(bn_normalize(widen(xr[c]), mean_hi[c], mean_lo[c], scale[c], beta[c]));
  }
}

template <typename X, typename T>
FASTOPT_LOOP void rows_dx_loop(const X* __restrict dy, const X* __restrict x, X* __restrict dx, size_t R,
                          size_t W, size_t w, const T* __restrict mean, const T* __restrict k,
                          const T* __restrict proj, const T* __restrict mean_dy) {
  for (size_t r = 0; r < R; ++r) {
    const X* __restrict g = dy + r * W;
    const X* __restrict xr = x + r * W;
    X* __restrict o = dx + r * W;
    for (size_t c = 0; c < w; ++c)
      o[c] = narrow<X>(bn_backward_element(widen(g[c]), widen(xr[c]), mean[c], k[c], proj[c],
                                           mean_dy[c]));
  }
}

FASTOPT_LOOP void merge_columns_loop(double* __restrict mean, double* __restrict m2, double na,
                                const double* __restrict mean_b, const double* __restrict m2_b,
                                double nb, size_t w) {
  for (size_t c = 0; c < w; ++c) bn_merge_nonempty(mean[c], m2[c], na, mean_b[c], m2_b[c], nb);
}

}  // namespace

#define FASTOPT_BN_ROW_FUNCTIONS(X, T)                                                           \
  FASTOPT_CLONES void rows_moments(const X* x, size_t R, size_t W, size_t w, double* mean,      \
                                   double* m2, double* tmp_s, double* tmp_q, T* approx) {       \
    rows_moments_loop(x, R, W, w, mean, m2, tmp_s, tmp_q, approx);                              \
  }                                                                                             \
  FASTOPT_CLONES void rows_sums(const X* dy, const X* x, X* dx, size_t R, size_t W, size_t w,    \
                                const T* mean, const T* k, bool eval, double* s_dy,             \
                                double* s_dyxmu) {                                              \
    eval ? rows_sums_loop<true>(dy, x, dx, R, W, w, mean, k, s_dy, s_dyxmu)                     \
         : rows_sums_loop<false>(dy, x, dx, R, W, w, mean, k, s_dy, s_dyxmu);                   \
  }                                                                                             \
  FASTOPT_CLONES void rows_affine(const X* x, X* y, size_t R, size_t W, size_t w,               \
                                  const T* mean_hi, const T* mean_lo, const T* scale,           \
                                  const T* beta) {                                              \
    rows_affine_loop(x, y, R, W, w, mean_hi, mean_lo, scale, beta);                             \
  }                                                                                             \
  FASTOPT_CLONES void rows_dx(const X* dy, const X* x, X* dx, size_t R, size_t W, size_t w,      \
                              const T* mean, const T* k, const T* proj, const T* mean_dy) {     \
    rows_dx_loop(dy, x, dx, R, W, w, mean, k, proj, mean_dy);                                   \
  }
FASTOPT_BN_ROW_FUNCTIONS(float, float)
FASTOPT_BN_ROW_FUNCTIONS(double, double)
FASTOPT_BN_ROW_FUNCTIONS(Bf16, float)
FASTOPT_BN_ROW_FUNCTIONS(F16, float)

FASTOPT_CLONES void merge_columns(double* mean, double* m2, double na, const double* mean_b,
                                  const double* m2_b, double nb, size_t w) {
  merge_columns_loop(mean, m2, na, mean_b, m2_b, nb, w);
}

}  // namespace bn
}  // namespace fastopt
