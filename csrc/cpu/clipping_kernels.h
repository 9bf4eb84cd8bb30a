// CPU loops of gradient clipping (fastopt.functional.clipping).
#pragma once
#include "fastopt/clipping.h"
#include "multi_tensor.h"

namespace fastopt {

// Roles per tensor: (grad).
template <typename T> using GradList = TensorList<T, 1>;

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
