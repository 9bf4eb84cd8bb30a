// Per-element maths of inverted dropout with counter-based bit-packed masks
// (docs/reference.md s.4), shared by the CPU loops (csrc/cpu/dropout_kernels.cpp) and
// the CUDA kernels (csrc/cuda/dropout.cu). The NumPy reference in
// fastopt/backends/numpy/dropout.py is the independent statement they are tested against.
//
// Element i (C order) is kept iff w_i >= t, where
//   t   = round(p * 2^32), ties to even, from the float64 p (0 keeps all,
//         2^32 drops all), compared in 64-bit integers;
//   w_i = word i % 4 of Philox4x32-10(counter (j & 0xffffffff, j >> 32, 0, 0),
//         key (seed & 0xffffffff, seed >> 32)), j = i / 4.
// Mask: bit i % 8 of byte i / 8; the unused high bits of a last partial byte
// are 0. Kept values are x * scale with scale = 1 / (1 - p) computed on the
// host in double and rounded once to the element type (0 when p == 1);
// dropped values are +0 (a select, not a multiply by 0, so a dropped NaN or
// inf gives 0, not NaN). 16-bit arrays (fastopt/storage.h) compute in float:
// x widened, the float scale, the value rounded once to nearest even.
#pragma once
#include "fastopt/storage.h"  // first: the NVRTC integer types
#include "fastopt/philox.h"

namespace fastopt {

// Elements per Philox call and per mask byte.
enum : int { kDropoutWordsPerCall = 4, kDropoutBitsPerByte = 8 };

// t = round(p * 2^32), ties to even (the default rounding mode); p in [0, 1].
// p * 2^32 is exact in double, so this equals Python's round(p * 2**32).
FASTOPT_HD uint64_t dropout_threshold(double p) {
  return static_cast<uint64_t>(nearbyint(p * 4294967296.0));
}

// The Philox key of a 64-bit seed.
FASTOPT_HD uint32_t dropout_key0(uint64_t seed) { return static_cast<uint32_t>(seed); }
FASTOPT_HD uint32_t dropout_key1(uint64_t seed) { return static_cast<uint32_t>(seed >> 32); }

// The counter of call j = i / 4.
FASTOPT_HD uint32_t dropout_ctr0(uint64_t j) { return static_cast<uint32_t>(j); }
FASTOPT_HD uint32_t dropout_ctr1(uint64_t j) { return static_cast<uint32_t>(j >> 32); }

// Keep test of one word against the threshold, in 64-bit integers.
FASTOPT_HD bool dropout_keep(uint32_t w, uint64_t t) { return static_cast<uint64_t>(w) >= t; }

// The same test when t < 2^32 (every p < 1; loops that handle t == 2^32, p == 1,
// as "drop all" use it): a 32-bit compare vectorizes where a 64-bit one widens.
FASTOPT_HD bool dropout_keep32(uint32_t w, uint32_t t32) { return w >= t32; }

// Forward value and gradient of one element.
template <typename T>
FASTOPT_HD T dropout_value(T x, bool keep, T scale) { return keep ? x * scale : T(0); }

// The 4 words of call j (elements 4j .. 4j+3).
FASTOPT_HD void dropout_words(uint64_t j, uint32_t k0, uint32_t k1, uint32_t w[4]) {
  uint32_t c0 = dropout_ctr0(j), c1 = dropout_ctr1(j), c2 = 0, c3 = 0;
  philox4x32_10_lanes<1>(&c0, &c1, &c2, &c3, k0, k1);
  w[0] = c0;
  w[1] = c1;
  w[2] = c2;
  w[3] = c3;
}

// Mask byte b (elements 8b .. 8b+count-1, count in [1, 8]): two Philox calls.
FASTOPT_HD uint32_t dropout_mask_byte(uint64_t b, int count, uint32_t k0, uint32_t k1,
                                      uint64_t t) {
  uint32_t w[8];
  dropout_words(2 * b, k0, k1, w);
  dropout_words(2 * b + 1, k0, k1, w + 4);
  uint32_t byte = 0;
  for (int k = 0; k < count; ++k) byte |= static_cast<uint32_t>(dropout_keep(w[k], t)) << k;
  return byte;
}

// One stored element: dropout_value in the compute type, rounded once to X.
template <typename X>
FASTOPT_HD X dropout_store(X x, bool keep, compute_t<X> scale) {
  return narrow<X>(dropout_value(widen(x), keep, scale));
}

// Forward of one mask byte's elements (count in [1, 8]): writes y[0..count)
// and returns the mask byte.
template <typename X>
FASTOPT_HD uint32_t dropout_forward_byte(const X* x, X* y, uint64_t b, int count, uint32_t k0,
                                         uint32_t k1, uint64_t t, compute_t<X> scale) {
  const uint32_t byte = dropout_mask_byte(b, count, k0, k1, t);
  for (int k = 0; k < count; ++k) y[k] = dropout_store(x[k], ((byte >> k) & 1u) != 0u, scale);
  return byte;
}

// Backward of one mask byte's elements: dx = dy * scale where kept, else 0.
template <typename X>
FASTOPT_HD void dropout_backward_byte(const X* dy, X* dx, uint32_t byte, int count,
                                      compute_t<X> scale) {
  for (int k = 0; k < count; ++k) dx[k] = dropout_store(dy[k], ((byte >> k) & 1u) != 0u, scale);
}

}  // namespace fastopt
