// CPU loops of batch normalization forward and backward (docs/reference.md s.3).
//
// x is viewed as (N, C, S) with S the product of the spatial sizes (S = 1 for
// (N, C) input). Every array is C-contiguous; gamma, beta and the statistics
// have C elements. The reductions are split into blocks whose layout depends
// on the shape only, and partial results are merged in block order, so the
// results are identical for every thread count.
#pragma once
#include <cstddef>

#include "fastopt/batchnorm.h"
#include "fastopt/storage.h"

namespace fastopt {

struct BnShape {
  std::size_t N, C, S;
};

// Training: normalizes with the batch statistics, writes save_mean and
// save_invstd, updates running_mean/running_var in place when they are not
// null. Eval: normalizes with the running statistics. Requires N*S >= 2 in
// training (the caller checks). X: float, double, Bf16 or F16 (x, y, dy, dx;
// fastopt/storage.h); gamma, beta and the statistics are compute_t<X>.
template <typename X, typename T = compute_t<X>>
void batch_norm_forward_cpu(const X* x, X* y, const T* gamma, const T* beta, T* running_mean,
                            T* running_var, T* save_mean, T* save_invstd, BnShape shape,
                            bool training, double momentum, double eps);

template <typename X, typename T = compute_t<X>>
void batch_norm_backward_cpu(const X* dy, const X* x, const T* gamma, const T* save_mean,
                             const T* save_invstd, X* dx, T* dgamma, T* dbeta, BnShape shape,
                             bool training);

}  // namespace fastopt
