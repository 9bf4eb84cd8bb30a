// Per-element maths of gradient clipping (vector norms and scaling) (docs/reference.md
// s.5, docs/ARCHITECTURE.md): the one C++ statement of each formula, included
// by the CPU loops (csrc/cpu/clipping_kernels.cpp) and the CUDA kernels
// (csrc/cuda/clipping.cu). The NumPy reference in
// fastopt/backends/numpy/clipping.py is the independent statement they are
// tested against.
//
// Norm accumulators are double whatever the element type, so a float32 norm
// over 10^8 elements does not lose the small terms.
#pragma once
#include "fastopt/common.h"

namespace fastopt {

FASTOPT_HD double fo_abs(double x) { return x < 0.0 ? -x : x; }

// Kinds of vector norm: 2 (Euclidean), 1, infinity (max |g|), general p.
enum NormKind : int { kNormL2 = 0, kNormL1 = 1, kNormInf = 2, kNormP = 3 };

// One element's contribution to a norm accumulator: acc (+)= |g|^p, or
// acc = max(acc, |g|) for the infinity norm. NaN propagates (the comparison
// is written so that a NaN element wins over a finite accumulator).
template <int KIND, typename T>
FASTOPT_HD double norm_accumulate(double acc, T g, double p) {
  const double a = fo_abs(static_cast<double>(g));
  if (KIND == kNormL2) return acc + a * a;
  if (KIND == kNormL1) return acc + a;
  if (KIND == kNormInf) return (a > acc || a != a) ? a : acc;
  return acc + pow(a, p);
}

// Combines two partial accumulators of the same kind.
template <int KIND>
FASTOPT_HD double norm_combine(double a, double b) {
  if (KIND == kNormInf) return (b > a || b != b) ? b : a;
  return a + b;
}

// The norm from the fully combined accumulator.
FASTOPT_HD double norm_finish(int kind, double acc, double p) {
  if (kind == kNormL2) return sqrt(acc);
  if (kind == kNormL1 || kind == kNormInf) return acc;
  return pow(acc, 1.0 / p);
}

// Gradient scaling of the clipping pass: g *= coef (coef = min(1, max_norm /
// (norm + 1e-6)), computed on the host in double as torch does in the
// gradients' dtype).
template <typename T>
FASTOPT_HD void scale_element(T& g, T coef) {
  g = g * coef;
}

}  // namespace fastopt
