// Per-element and per-channel maths of batch normalization (docs/reference.md s.3):
// the one C++ statement of each formula, included by the CPU loops
// (csrc/cpu/batchnorm_*.cpp) and the CUDA kernels (csrc/cuda/batchnorm.cu).
// No loops over memory, no threads, no std:: containers: everything here is
// FASTOPT_HD and compiles for the device as well.
//
// Statistics are accumulated in double. A reduction is split into blocks of a
// fixed size (a function of the shape only, never of the thread count); each
// block gives (count, mean, M2) from two passes over the block while it is in
// cache, and blocks are merged in block order with Chan et al.'s pairwise
// formula. That is as stable as a global two-pass algorithm (no E[x^2]-E[x]^2)
// and reads x once from memory.
//
// The NumPy reference in fastopt/backends/numpy/batchnorm.py is the independent
// statement these are tested against.
#pragma once
#include "fastopt/common.h"

namespace fastopt {

// Count, mean and sum of squared deviations from the mean of a set of values.
struct BnMoments {
  double n, mean, m2;
};

FASTOPT_HD BnMoments bn_moments_empty() { return BnMoments{0.0, 0.0, 0.0}; }

// Non-finite input gives what numpy and torch give: a NaN in a channel makes
// its mean and variance NaN; an infinity makes the mean that infinity (+inf and
// -inf together: NaN) and the variance NaN (inf - inf). The stable updates
// below are written so that they keep this (a plain select, so they vectorize).

// max(v, 0) for a sum of squares that rounding made slightly negative; NaN stays NaN.
FASTOPT_HD double bn_nonneg(double v) { return v < 0.0 ? 0.0 : v; }

// A block's mean from its approximate mean a and the sum sd of x - a over n
// values: a + sd/n, or a itself where a is infinite (sd is then inf - inf).
FASTOPT_HD double bn_block_mean(double a, double sd, double n) {
  const double m = a + sd / n;
  return m == m ? m : a;
}

// mean_a moved towards mean_b by the weight wb of b: mean_a + (mean_b - mean_a)*wb,
// or the weighted mean where that is inf - inf (an infinite mean on either side).
FASTOPT_HD double bn_mean_update(double mean_a, double mean_b, double wb) {
  const double m = mean_a + (mean_b - mean_a) * wb;
  return m == m ? m : mean_a * (1.0 - wb) + mean_b * wb;
}

// Chan, Golub & LeVeque's pairwise update on plain doubles: merges a
// nonempty block (nb, mean_b, m2_b) into a nonempty (na, mean_a, m2_a).
// Branch-free, so a loop of it over many columns vectorizes.
FASTOPT_HD void bn_merge_nonempty(double& mean_a, double& m2_a, double na, double mean_b,
                                  double m2_b, double nb) {
  const double wb = nb / (na + nb);
  const double delta = mean_b - mean_a;
  mean_a = bn_mean_update(mean_a, mean_b, wb);
  m2_a = m2_a + m2_b + delta * delta * (na * wb);
}

// The same on BnMoments, where either side may be empty: merges b into a.
FASTOPT_HD void bn_merge(BnMoments& a, const BnMoments& b) {
  if (b.n == 0.0) return;
  if (a.n == 0.0) {
    a = b;
    return;
  }
  bn_merge_nonempty(a.mean, a.m2, a.n, b.mean, b.m2, b.n);
  a.n = a.n + b.n;
}

// Welford's single-value update (one element into a running (n, mean, M2));
// for loops that see one value at a time (a CUDA thread's strided loop).
// inv_count is 1 / (a.n + 1), which a loop whose counts are known can take
// from a table of reciprocals (the same correctly rounded value as the division).
FASTOPT_HD void bn_welford_add_rcp(BnMoments& a, double x, double inv_count) {
  a.n = a.n + 1.0;
  const double delta = x - a.mean;
  a.mean = bn_mean_update(a.mean, x, inv_count);
  a.m2 = a.m2 + delta * (x - a.mean);
}

FASTOPT_HD void bn_welford_add(BnMoments& a, double x) {
  bn_welford_add_rcp(a, x, 1.0 / (a.n + 1.0));
}

// Per-channel constants of the forward pass, in double, from the statistics
// that normalize (batch statistics in training, running ones in eval).
struct BnChannel {
  double mean, invstd;  // the saved statistics
  double scale, beta;   // y = (x - mean) * scale + beta
};

FASTOPT_HD double bn_invstd(double var, double eps) { return 1.0 / fo_sqrt(var + eps); }

// Folds gamma and invstd into one scale.
FASTOPT_HD BnChannel bn_channel(double mean, double invstd, double gamma, double beta) {
  BnChannel c;
  c.mean = mean;
  c.invstd = invstd;
  c.scale = gamma * invstd;
  c.beta = beta;
  return c;
}

// Training: biased variance normalizes.
FASTOPT_HD BnChannel bn_channel_train(const BnMoments& m, double gamma, double beta, double eps) {
  return bn_channel(m.mean, bn_invstd(m.m2 / m.n, eps), gamma, beta);
}

// running = (1 - momentum) * running + momentum * batch_stat, with the
// unbiased variance M2 / (M - 1) (torch's convention). Requires m.n > 1.
template <typename T>
FASTOPT_HD void bn_update_running(T& running_mean, T& running_var, const BnMoments& m,
                                  double momentum) {
  const double unbiased = m.m2 / (m.n - 1.0);
  running_mean = T((1.0 - momentum) * double(running_mean) + momentum * m.mean);
  running_var = T((1.0 - momentum) * double(running_var) + momentum * unbiased);
}

// The mean in the element type as hi + lo: hi = T(mean), lo = T(mean - hi)
// (0 for double, or when the mean is a float32 value).
template <typename T>
struct BnSplitMean {
  T hi, lo;
};

template <typename T>
FASTOPT_HD BnSplitMean<T> bn_split_mean(double mean) {
  const T hi = T(mean);
  return BnSplitMean<T>{hi, T(mean - double(hi))};
}

// The forward element: y = ((x - hi) - lo) * scale + beta, i.e. (x - mean) *
// scale + beta. Not the folded x * scale + (beta - mean * scale): with a large
// mean that cancels (a constant float32 channel of 1e4 gave -0.25 instead of
// beta). x - hi is exact for x within a factor 2 of the mean, and lo keeps the
// mean's float32 rounding (half an ulp of the mean, 5e-4 at 1e4) out of y, so
// y is within a few roundings of |y| (torch: 1.5e-4 on std-1 data at 1e4).
// The build does not contract it into an FMA, so every ISA and tail rounds alike.
template <typename T>
FASTOPT_HD T bn_normalize(T x, T mean_hi, T mean_lo, T scale, T beta) {
  return ((x - mean_hi) - mean_lo) * scale + beta;
}

// Per-channel constants of the backward elementwise pass, computed in double
// from the reductions sum_dy = sum(dy) (= dbeta) and sum_dy_xmu =
// sum(dy * (x - mean)) (so dgamma = sum_dy_xmu * invstd):
//   training: dx = gamma*invstd/M * (M*dy - dbeta - xhat*dgamma)
//               = (dy - (x - mean) * proj - mean_dy) * k
//     with k = gamma*invstd, proj = invstd^2 * sum_dy_xmu / M, mean_dy = dbeta / M
//   eval:     dx = k * dy  (proj = mean_dy = 0)
struct BnBackwardChannel {
  double mean, k, proj, mean_dy;
  double dgamma, dbeta;
};

FASTOPT_HD BnBackwardChannel bn_backward_channel(double sum_dy, double sum_dy_xmu, double mean,
                                                 double invstd, double gamma, double count,
                                                 bool training) {
  BnBackwardChannel c;
  c.mean = mean;
  c.k = gamma * invstd;
  c.dbeta = sum_dy;
  c.dgamma = sum_dy_xmu * invstd;
  if (training && count > 0.0) {
    c.proj = invstd * invstd * sum_dy_xmu / count;
    c.mean_dy = sum_dy / count;
  } else {
    c.proj = 0.0;
    c.mean_dy = 0.0;
  }
  return c;
}

// The backward element (training form; eval passes proj = mean_dy = 0).
template <typename T>
FASTOPT_HD T bn_backward_element(T dy, T x, T mean, T k, T proj, T mean_dy) {
  return (dy - (x - mean) * proj - mean_dy) * k;
}

// The eval backward element: dx = gamma * invstd * dy.
template <typename T>
FASTOPT_HD T bn_backward_eval_element(T dy, T k) {
  return dy * k;
}

}  // namespace fastopt
