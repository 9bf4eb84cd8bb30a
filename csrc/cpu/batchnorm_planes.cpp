// Batch norm's plane loops: one block of kPlaneBlock (or fewer) contiguous
// values of an (n, c) plane (batchnorm_layout.h). Statistics and gradient sums
// accumulate in the element type over short runs (kFlush lane sets) flushed
// into double accumulators; kLanes independent accumulators are combined in a
// fixed tree, which vectorizes without reassociating anything. X is the
// storage type of the values, T = compute_t<X> the type they are computed in
// (16-bit values widened on load, results rounded once on store).
#include "batchnorm_layout.h"
#include "isa.h"

namespace fastopt {
namespace bn {
namespace {

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
template <typename X, typename T = compute_t<X>>
FASTOPT_LOOP void block_moments_loop(const X* __restrict x, size_t len, double* mean, double* m2) {
  const size_t body = len - len % kLanes;
  // pass A: approximate mean
  double a64[kLanes] = {};
  for (size_t i0 = 0; i0 < body; i0 += kLanes * kFlush) {
    T acc[kLanes] = {};
    const size_t i1 = std::min(body, i0 + kLanes * kFlush);
    for (size_t i = i0; i < i1; i += kLanes)
      for (size_t l = 0; l < kLanes; ++l) acc[l] += widen(x[i + l]);
    for (size_t l = 0; l < kLanes; ++l) a64[l] += double(acc[l]);
  }
  for (size_t i = body, l = 0; i < len; ++i, ++l) a64[l] += double(widen(x[i]));
  const T a = T(lane_sum(a64) / double(len));
  // pass B: sums of d = x - a and d*d
  double s64[kLanes] = {}, q64[kLanes] = {};
  for (size_t i0 = 0; i0 < body; i0 += kLanes * kFlush) {
    T s[kLanes] = {}, q[kLanes] = {};
    const size_t i1 = std::min(body, i0 + kLanes * kFlush);
    for (size_t i = i0; i < i1; i += kLanes)
      for (size_t l = 0; l < kLanes; ++l) {
        const T d = widen(x[i + l]) - a;
        s[l] += d;
        q[l] += d * d;
      }
    for (size_t l = 0; l < kLanes; ++l) {
      s64[l] += double(s[l]);
      q64[l] += double(q[l]);
    }
  }
  for (size_t i = body, l = 0; i < len; ++i, ++l) {
    const double d = double(widen(x[i]) - a);
    s64[l] += d;
    q64[l] += d * d;
  }
  const double n = double(len), sd = lane_sum(s64);
  *mean = bn_block_mean(double(a), sd, n);
  *m2 = bn_nonneg(lane_sum(q64) - sd * sd / n);  // rounding never makes it negative
}

// sum(dy) and sum(dy * (x - mean)), element-type runs flushed to double;
// EVAL also writes dx = k * dy in the same pass.
template <bool EVAL, typename X, typename T>
FASTOPT_LOOP void block_sums_loop(const X* __restrict dy, const X* __restrict x, X* __restrict dx,
                             size_t len, T mean, T k, double* s_dy, double* s_dyxmu) {
  const size_t body = len - len % kLanes;
  double a64[kLanes] = {}, b64[kLanes] = {};
  for (size_t i0 = 0; i0 < body; i0 += kLanes * kFlush) {
    T a[kLanes] = {}, b[kLanes] = {};
    const size_t i1 = std::min(body, i0 + kLanes * kFlush);
    for (size_t i = i0; i < i1; i += kLanes)
      for (size_t l = 0; l < kLanes; ++l) {
        const T g = widen(dy[i + l]);
        a[l] += g;
        b[l] += g * (widen(x[i + l]) - mean);
        if (EVAL) dx[i + l] = narrow<X>(bn_backward_eval_element(g, k));
      }
    for (size_t l = 0; l < kLanes; ++l) {
      a64[l] += double(a[l]);
      b64[l] += double(b[l]);
    }
  }
  for (size_t i = body, l = 0; i < len; ++i, ++l) {
    const T g = widen(dy[i]);
    a64[l] += double(g);
    b64[l] += double(g * (widen(x[i]) - mean));
    if (EVAL) dx[i] = narrow<X>(bn_backward_eval_element(g, k));
  }
  *s_dy = lane_sum(a64);
  *s_dyxmu = lane_sum(b64);
}

template <typename X, typename T>
FASTOPT_LOOP void block_affine_loop(const X* __restrict x, X* __restrict y, size_t len, T mean_hi,
                                    T mean_lo, T scale, T beta) {
  for (size_t i = 0; i < len; ++i)
    y[i] = narrow<X>(bn_normalize(widen(x[i]), mean_hi, mean_lo, scale, beta));
}

template <typename X, typename T>
FASTOPT_LOOP void block_dx_loop(const X* __restrict dy, const X* __restrict x, X* __restrict dx,
                           size_t len, T mean, T k, T proj, T mean_dy) {
  for (size_t i = 0; i < len; ++i)
    dx[i] = narrow<X>(bn_backward_element(widen(dy[i]), widen(x[i]), mean, k, proj, mean_dy));
}

}  // namespace

#define FASTOPT_BN_PLANE_FUNCTIONS(X, T)                                                         \
  FASTOPT_CLONES void block_moments(const X* x, size_t len, double* mean, double* m2) {          \
    block_moments_loop(x, len, mean, m2);                                                       \
    if (moments_not_finite(*mean, *m2)) moments_in_double(x, len, 1, mean, m2);                 \
  }                                                                                             \
  FASTOPT_CLONES void block_sums(const X* dy, const X* x, X* dx, size_t len, T mean, T k,        \
                                 bool eval, double* s_dy, double* s_dyxmu) {                    \
    eval ? block_sums_loop<true>(dy, x, dx, len, mean, k, s_dy, s_dyxmu)                        \
         : block_sums_loop<false>(dy, x, dx, len, mean, k, s_dy, s_dyxmu);                      \
  }                                                                                             \
  FASTOPT_CLONES void block_affine(const X* x, X* y, size_t len, T mean_hi, T mean_lo, T scale,  \
                                   T beta) {                                                    \
    block_affine_loop(x, y, len, mean_hi, mean_lo, scale, beta);                                \
  }                                                                                             \
  FASTOPT_CLONES void block_dx(const X* dy, const X* x, X* dx, size_t len, T mean, T k, T proj,  \
                               T mean_dy) {                                                     \
    block_dx_loop(dy, x, dx, len, mean, k, proj, mean_dy);                                      \
  }
FASTOPT_BN_PLANE_FUNCTIONS(float, float)
FASTOPT_BN_PLANE_FUNCTIONS(double, double)
FASTOPT_BN_PLANE_FUNCTIONS(Bf16, float)
FASTOPT_BN_PLANE_FUNCTIONS(F16, float)

}  // namespace bn
}  // namespace fastopt
