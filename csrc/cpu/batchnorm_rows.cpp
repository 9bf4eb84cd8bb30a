// Batch norm's row loops: R rows of w columns at stride W (the row layout
// of batchnorm_layout.h), vectorized over columns. Statistics (kFlushRows
// rows) and gradient sums (kSumRows rows) accumulate in the element type, then
// flush into double per-column accumulators. X is the storage type of the values, T =
// compute_t<X> the type they are computed in (16-bit values widened on load,
// results rounded once on store).
//
// The reductions (statistics, backward sums) take columns in chunks of K
// 32-byte vectors whose accumulators and per-column constants stay in
// registers while the loop walks down the rows (GCC's vector extensions, which
// each target_clones clone lowers to its own registers). Written as plain loops
// over per-column arrays, GCC kept the accumulators in memory. Columns past the
// last full chunk go one at a time (a scalar "vector"). Every column sees the
// same operations in the same order whichever way it is reached, so chunking
// changes no result (bit for bit the same as the plain loops).

// The header's element formulas take and return V by value; they are inlined
// into the cloned loops, so no call crosses a clone's ABI.
#pragma GCC diagnostic ignored "-Wpsabi"
#include <cstring>
#include <limits>
#include <type_traits>

#include "batchnorm_layout.h"
#include "isa.h"


// Loops over a chunk's K vectors: unrolled before scalar replacement, so
// that the vectors live in registers, not in a stack array.
#define FASTOPT_UNROLL _Pragma("GCC unroll 16")

namespace fastopt {
namespace bn {
namespace {

template <typename T>
struct Simd;
template <>
struct Simd<float> {
  typedef float V __attribute__((vector_size(32)));
};
template <>
struct Simd<double> {
  typedef double V __attribute__((vector_size(32)));
};

// Lanes of V, a Simd<T>::V or T itself (one column at a time).
template <typename V, typename T>
constexpr size_t lanes = sizeof(V) / sizeof(T);

template <typename V, typename X>
FASTOPT_LOOP void load(V& v, const X* p) {
  using T = compute_t<X>;
  if constexpr (lanes<V, T> == 1) {
    v = widen(*p);
  } else if constexpr (std::is_same_v<X, T>) {
    std::memcpy(&v, p, sizeof v);
  } else {
    T t[lanes<V, T>];
    for (size_t l = 0; l < lanes<V, T>; ++l) t[l] = widen(p[l]);
    std::memcpy(&v, t, sizeof v);
  }
}

template <typename V, typename X>
FASTOPT_LOOP void store(X* p, const V& v) {
  using T = compute_t<X>;
  if constexpr (lanes<V, T> == 1) {
    *p = narrow<X>(v);
  } else if constexpr (std::is_same_v<X, T>) {
    std::memcpy(p, &v, sizeof v);
  } else {
    T t[lanes<V, T>];
    std::memcpy(t, &v, sizeof v);
    for (size_t l = 0; l < lanes<V, T>; ++l) p[l] = narrow<X>(t[l]);
  }
}

// acc64[c] += double(acc[c]) for the chunk's K * lanes columns (through an
// array: GCC widens that loop with vcvtps2pd on full registers).
template <typename V, size_t K, typename T>
FASTOPT_LOOP void flush(const V (&acc)[K], double* __restrict acc64) {
  constexpr size_t L = lanes<V, T>;
  T t[K * L];
  FASTOPT_UNROLL
  for (size_t k = 0; k < K; ++k) std::memcpy(t + k * L, &acc[k], sizeof(V));
  for (size_t c = 0; c < K * L; ++c) acc64[c] += double(t[c]);
}

// s64 += sum of x (SUM_ONLY) or, shifted by `shift`, s64 += sum of d = x - shift
// and q64 += sum of d*d, over `rows` <= kFlushRows rows of one chunk, in the
// element type, flushed once into double.
template <typename V, size_t K, bool SUM_ONLY, typename X, typename T = compute_t<X>>
FASTOPT_LOOP void chunk_shifted(const X* __restrict x, size_t rows, size_t W,
                                const T* __restrict shift, double* __restrict s64,
                                double* __restrict q64) {
  constexpr size_t L = lanes<V, T>;
  V a[K], sd[K] = {}, sq[K] = {};
  FASTOPT_UNROLL
  for (size_t k = 0; k < K; ++k) {
    if constexpr (SUM_ONLY) a[k] = V{};
    else load(a[k], shift + k * L);
  }
  for (size_t r = 0; r < rows; ++r)
    FASTOPT_UNROLL
    for (size_t k = 0; k < K; ++k) {
      V d;
      load(d, x + r * W + k * L);
      d = d - a[k];
      sd[k] += d;
      if constexpr (!SUM_ONLY) sq[k] += d * d;
    }
  flush<V, K, T>(sd, s64);
  if constexpr (!SUM_ONLY) flush<V, K, T>(sq, q64);
}

// One chunk of columns of a sub-block of rb rows: the corrected two-pass of
// block_moments per column (pass A: approximate mean; pass B: sums of d = x -
// approx and d*d), each pass over element-type runs of kFlushRows rows flushed
// into double. The chunk's rows are in L1 for pass B. Writes the approximate
// mean and the double sums of d and d*d.
template <typename V, size_t K, typename X, typename T = compute_t<X>>
FASTOPT_LOOP void chunk_moments(const X* __restrict x, size_t rb, size_t W, double inv_n,
                                T* __restrict approx, double* __restrict s64,
                                double* __restrict q64) {
  constexpr size_t CW = K * lanes<V, T>;
  for (size_t c = 0; c < CW; ++c) s64[c] = 0.0;
  for (size_t f0 = 0; f0 < rb; f0 += kFlushRows)
    chunk_shifted<V, K, true>(x + f0 * W, std::min(kFlushRows, rb - f0), W, approx, s64, q64);
  for (size_t c = 0; c < CW; ++c) {
    approx[c] = T(s64[c] * inv_n);
    s64[c] = q64[c] = 0.0;
  }
  for (size_t f0 = 0; f0 < rb; f0 += kFlushRows)
    chunk_shifted<V, K, false>(x + f0 * W, std::min(kFlushRows, rb - f0), W, approx, s64, q64);
}

// A sub-block's (mean, M2) per column from chunk_moments' sums, merged in
// order into the running (mean, m2) of the na rows before it.
template <typename T>
FASTOPT_LOOP void finish_sub_block(size_t w, double n, double inv_n, double na,
                                   const T* __restrict approx, const double* __restrict s64,
                                   const double* __restrict q64, double* __restrict mean,
                                   double* __restrict m2) {
  if (na == 0.0) {
    for (size_t c = 0; c < w; ++c) {
      mean[c] = bn_block_mean(double(approx[c]), s64[c], n);
      m2[c] = bn_nonneg(q64[c] - s64[c] * s64[c] * inv_n);
    }
    return;
  }
  for (size_t c = 0; c < w; ++c) {
    const double bm = bn_block_mean(double(approx[c]), s64[c], n);
    const double bq = bn_nonneg(q64[c] - s64[c] * s64[c] * inv_n);
    double ma = mean[c], qa = m2[c];
    bn_merge_nonempty(ma, qa, na, bm, bq, n);
    mean[c] = ma;
    m2[c] = qa;
  }
}

constexpr size_t kMomentVecs = 4;  // pass B: K approx, K sums, K squares: 12 of AVX2's 16 ymm

// Rows per sub-block of the exact statistics: a function of the row width W,
// never of the tile width w, so a column's result does not depend on how
// columns are grouped.
FASTOPT_LOOP size_t moment_sub_block(size_t W) {
  return std::max<size_t>(kFlushRows, kSubBlockElems / W);
}

// The exact statistics of R rows: sub-blocks of rows, each a cache-resident
// corrected two-pass per column (chunk_moments), merged in order.
template <typename X, typename T>
FASTOPT_LOOP void rows_moments_exact(const X* __restrict x, size_t R, size_t W, size_t w,
                                     double* __restrict mean, double* __restrict m2,
                                     double* __restrict tmp_s, double* __restrict tmp_q,
                                     T* __restrict approx) {
  using V = typename Simd<T>::V;
  constexpr size_t CW = kMomentVecs * lanes<V, T>;
  const size_t sub = moment_sub_block(W);
  const size_t wb = w - w % CW;
  double na = 0.0;
  for (size_t r0 = 0; r0 < R; r0 += sub) {
    const size_t rb = std::min(sub, R - r0);
    const double n = double(rb), inv_n = 1.0 / n;
    const X* xs = x + r0 * W;
    for (size_t c0 = 0; c0 < wb; c0 += CW)
      chunk_moments<V, kMomentVecs>(xs + c0, rb, W, inv_n, approx + c0, tmp_s + c0, tmp_q + c0);
    for (size_t c0 = wb; c0 < w; ++c0)
      chunk_moments<T, 1>(xs + c0, rb, W, inv_n, approx + c0, tmp_s + c0, tmp_q + c0);
    finish_sub_block(w, n, inv_n, na, approx, tmp_s, tmp_q, mean, m2);
    na += n;
  }
}

// Groups of kFlushRows rows (row by row: at most kFlushRows streams at the
// 4 KiB-aliasing row stride, which the prefetchers follow), the chunks of
// each group in turn.
template <bool SUM_ONLY, typename X, typename T>
FASTOPT_LOOP void rows_shifted(const X* __restrict x, size_t R, size_t W, size_t w,
                               const T* __restrict shift, double* __restrict s64,
                               double* __restrict q64) {
  using V = typename Simd<T>::V;
  constexpr size_t CW = kMomentVecs * lanes<V, T>;
  const size_t wb = w - w % CW;
  for (size_t c = 0; c < w; ++c) s64[c] = q64[c] = 0.0;
  for (size_t f0 = 0; f0 < R; f0 += kFlushRows) {
    const size_t rows = std::min(kFlushRows, R - f0);
    const X* xs = x + f0 * W;
    for (size_t c0 = 0; c0 < wb; c0 += CW)
      chunk_shifted<V, kMomentVecs, SUM_ONLY>(xs + c0, rows, W, shift + c0, s64 + c0, q64 + c0);
    for (size_t c0 = wb; c0 < w; ++c0)
      chunk_shifted<T, 1, SUM_ONLY>(xs + c0, rows, W, shift + c0, s64 + c0, q64 + c0);
  }
}

// The shift a within one standard deviation of the mean, or within a few
// roundings of a itself, for s = sum(x - a) and M2 over n values: s^2 <=
// n * (M2 + n * slack^2). False for NaN.
template <typename T>
FASTOPT_LOOP bool shift_holds(T a, double s, double m2, double n) {
  const double slack = 4.0 * double(std::numeric_limits<T>::epsilon()) * double(a);
  return s * s <= n * (m2 + n * slack * slack);
}

// The statistics of R rows in one pass over x: sums of d = x - shift and d*d,
// with the shift the mean of the first kFlushRows rows (rounded to the element
// type), then mean = shift + sum(d)/R and M2 = sum(d*d) - sum(d)^2/R, as the
// corrected two-pass gives. The rounding of d*d in the element type is
// relative to d*d, so it stays within a few roundings of M2 while the shift
// is within one standard deviation of the mean (plus the shift's own
// rounding): columns where it is not (a drifting or non-finite column) take
// rows_moments_exact. The two-pass of every cache-resident sub-block cost 2.3
// instructions per element and ran at a third of the speed of a read of x at
// 10^7; this pass at three quarters of it (benchmarks/RESULTS.md, session 9).
template <typename X, typename T>
FASTOPT_LOOP void rows_moments_loop(const X* __restrict x, size_t R, size_t W, size_t w,
                                    double* __restrict mean, double* __restrict m2,
                                    double* __restrict tmp_s, double* __restrict tmp_q,
                                    T* __restrict approx) {
  if (R <= moment_sub_block(W)) return rows_moments_exact(x, R, W, w, mean, m2, tmp_s, tmp_q, approx);
  rows_shifted<true>(x, kFlushRows, W, w, approx, tmp_s, tmp_q);
  for (size_t c = 0; c < w; ++c) approx[c] = T(tmp_s[c] * (1.0 / double(kFlushRows)));
  rows_shifted<false>(x, R, W, w, approx, tmp_s, tmp_q);
  const double n = double(R), inv_n = 1.0 / n;
  size_t off = 0;
  for (size_t c = 0; c < w; ++c) {
    const double s = tmp_s[c];
    mean[c] = bn_block_mean(double(approx[c]), s, n);
    m2[c] = bn_nonneg(tmp_q[c] - s * s * inv_n);
    off += !shift_holds(approx[c], s, m2[c], n);
  }
  if (off == 0) return;
  for (size_t c = 0; c < w; ++c)
    if (!shift_holds(approx[c], tmp_s[c], m2[c], n))
      rows_moments_exact(x + c, R, W, 1, mean + c, m2 + c, tmp_s + c, tmp_q + c, approx + c);
}

// Rows per flush of the backward sums: each row brings two streams (dy and x)
// at the row stride, which aliases in the L1 sets; 8 rows (16 streams) ran at
// 52-57% of the speed of a read of dy and x at 10^7, 4 rows at 81-85%
// (benchmarks/RESULTS.md, session 9).
constexpr size_t kSumRows = 4;

// Backward sums over kSumRows rows of one chunk: s_dy += sum of dy,
// s_dyxmu += sum of dy * (x - mean); EVAL writes dx = k * dy.
template <typename V, size_t K, bool EVAL, typename X, typename T = compute_t<X>>
FASTOPT_LOOP void chunk_grad(const X* __restrict dy, const X* __restrict x, X* __restrict dx,
                             size_t rows, size_t W, const T* __restrict mean,
                             const T* __restrict k, double* __restrict s_dy,
                             double* __restrict s_dyxmu) {
  constexpr size_t L = lanes<V, T>;
  V m[K], kk[K], a[K] = {}, b[K] = {};
  FASTOPT_UNROLL
  for (size_t j = 0; j < K; ++j) {
    load(m[j], mean + j * L);
    if constexpr (EVAL) load(kk[j], k + j * L);
  }
  for (size_t r = 0; r < rows; ++r)
    FASTOPT_UNROLL
    for (size_t j = 0; j < K; ++j) {
      const size_t o = r * W + j * L;
      V g, v;
      load(g, dy + o);
      load(v, x + o);
      a[j] += g;
      b[j] += g * (v - m[j]);
      if constexpr (EVAL) store(dx + o, bn_backward_eval_element(g, kk[j]));
    }
  flush<V, K, T>(a, s_dy);
  flush<V, K, T>(b, s_dyxmu);
}

template <bool EVAL, typename X, typename T>
FASTOPT_LOOP void rows_sums_loop(const X* __restrict dy, const X* __restrict x, X* __restrict dx,
                                 size_t R, size_t W, size_t w, const T* __restrict mean,
                                 const T* __restrict k, double* __restrict s_dy,
                                 double* __restrict s_dyxmu) {
  using V = typename Simd<T>::V;
  constexpr size_t K = EVAL ? 3 : 4;  // eval also holds k: 4K + temporaries in 16 ymm
  constexpr size_t CW = K * lanes<V, T>;
  const size_t wb = w - w % CW;
  for (size_t c = 0; c < w; ++c) s_dy[c] = s_dyxmu[c] = 0.0;
  for (size_t f0 = 0; f0 < R; f0 += kSumRows) {
    const size_t rows = std::min(kSumRows, R - f0);
    const size_t o = f0 * W;
    for (size_t c0 = 0; c0 < wb; c0 += CW)
      chunk_grad<V, K, EVAL>(dy + o + c0, x + o + c0, dx + o + c0, rows, W, mean + c0, k + c0,
                             s_dy + c0, s_dyxmu + c0);
    for (size_t c0 = wb; c0 < w; ++c0)
      chunk_grad<T, 1, EVAL>(dy + o + c0, x + o + c0, dx + o + c0, rows, W, mean + c0, k + c0,
                             s_dy + c0, s_dyxmu + c0);
  }
}

// The elementwise passes: row-major loops over whole rows, which stream better
// than chunks of rows (measured: chunked, the normalize pass was slower), four
// rows per sweep of the columns: each column's four constants are loaded once
// for four elements. One row at a time, those loads made the pass 25-35% slower
// than four rows at 10^7 on a Zen 4 host (RESULTS.md, session 11). The same
// element function per element, so the same bits.
constexpr size_t kAffineRows = 4;

template <typename X, typename T>
FASTOPT_LOOP void rows_affine_loop(const X* __restrict x, X* __restrict y, size_t R, size_t W,
                                   size_t w, const T* __restrict mean_hi,
                                   const T* __restrict mean_lo, const T* __restrict scale,
                                   const T* __restrict beta) {
  size_t r = 0;
  for (; r + kAffineRows <= R; r += kAffineRows)
    for (size_t c = 0; c < w; ++c) {
      const T mh = mean_hi[c], ml = mean_lo[c], sc = scale[c], b = beta[c];
#pragma GCC unroll 4
      for (size_t q = 0; q < kAffineRows; ++q) {
        const size_t i = (r + q) * W + c;
        y[i] = narrow<X>(bn_normalize(widen(x[i]), mh, ml, sc, b));
      }
    }
  for (; r < R; ++r)
    for (size_t c = 0; c < w; ++c) {
      const size_t i = r * W + c;
      y[i] = narrow<X>(bn_normalize(widen(x[i]), mean_hi[c], mean_lo[c], scale[c], beta[c]));
    }
}

template <typename X, typename T>
FASTOPT_LOOP void rows_dx_loop(const X* __restrict dy, const X* __restrict x, X* __restrict dx, size_t R,
                          size_t W, size_t w, const T* __restrict mean, const T* __restrict k,
                          const T* __restrict proj, const T* __restrict mean_dy) {
  size_t r = 0;
  for (; r + kAffineRows <= R; r += kAffineRows)
    for (size_t c = 0; c < w; ++c) {
      const T mu = mean[c], kc = k[c], pc = proj[c], md = mean_dy[c];
#pragma GCC unroll 4
      for (size_t q = 0; q < kAffineRows; ++q) {
        const size_t i = (r + q) * W + c;
        dx[i] = narrow<X>(bn_backward_element(widen(dy[i]), widen(x[i]), mu, kc, pc, md));
      }
    }
  for (; r < R; ++r)
    for (size_t c = 0; c < w; ++c) {
      const size_t i = r * W + c;
      dx[i] = narrow<X>(
          bn_backward_element(widen(dy[i]), widen(x[i]), mean[c], k[c], proj[c], mean_dy[c]));
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
    for (size_t c = 0; c < w; ++c)                                                              \
      if (moments_not_finite(mean[c], m2[c])) moments_in_double(x + c, R, W, mean + c, m2 + c); \
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
