// CPU loops of the weight-averaging and clipping utilities (fastopt.utils).
#pragma once
#include "fastopt/clipping.h"
#include "multi_tensor.h"

namespace fastopt {

// Roles per tensor: EMA (avg, param); scale (grad).
template <typename T> using EmaList = TensorList<T, 2>;
template <typename T> using GradList = TensorList<T, 1>;

template <typename T>
void ema_cpu(const EmaList<T>& l, const EmaScalars<T>& s);

// The combined norm accumulator over every element of every tensor (before
// norm_finish). Deterministic: the elements are cut into fixed blocks of
// kNormBlock elements per tensor, whatever the thread count; each block is
// reduced in a fixed order into double lanes, and the block partials are
// merged in block order on the calling thread.
template <typename T>
double norm_cpu(const GradList<T>& l, int kind, double p);

template <typename T>
void scale_cpu(const GradList<T>& l, T coef);

constexpr std::size_t kNormBlock = 1 << 14;

}  // namespace fastopt
