// CPU loops of inverted dropout (docs/reference.md s.4): the forward writes y and the
// bit-packed mask in one pass, the backward reads the mask bits and dy in one
// pass. Parallel over byte-aligned ranges; the mask of an element depends only
// on (seed, i), so results do not depend on the split.
#pragma once
#include <cstddef>
#include <cstdint>

#include "fastopt/dropout.h"

namespace fastopt {

// y (n elements) and mask (ceil(n/8) bytes) from x. threshold in [0, 2^32].
// T: float, double, Bf16 or F16 (fastopt/storage.h; scale in compute_t<T>).
template <typename T>
void dropout_forward_cpu(const T* x, T* y, std::uint8_t* mask, std::size_t n, std::uint64_t seed,
                         std::uint64_t threshold, compute_t<T> scale);

// dx from dy and the mask.
template <typename T>
void dropout_backward_cpu(const T* dy, const std::uint8_t* mask, T* dx, std::size_t n,
                          compute_t<T> scale);

// The mask alone (ceil(n/8) bytes).
void dropout_mask_cpu(std::uint8_t* mask, std::size_t n, std::uint64_t seed, std::uint64_t threshold);

}  // namespace fastopt
