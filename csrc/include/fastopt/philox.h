// Philox4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy
// as 1, 2, 3", SC'11; the Random123 library; curand's Philox4_32_10): the one
// C++ statement of the generator, shared by the CPU loops and the CUDA kernels.
//
// A counter-based generator is a pure function of (counter, key): ten rounds of
//   (hi0, lo0) = mulhilo(M0, c0); (hi1, lo1) = mulhilo(M1, c2)
//   (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
// with the key bumped by the Weyl constants (W0, W1) between rounds. Passes the
// Random123 known-answer vectors (tests/test_dropout.py checks them through
// fastopt._core._philox4x32_10).
//
// Device-safe on purpose: fixed-width integers only, no std:: containers, no
// host-only calls; mulhilo uses __umulhi on the device and a 64-bit product on
// the host. (Under NVRTC, uint32_t/uint64_t must come from the including
// source's preamble or <cstdint> through jitify.)
#pragma once
#include "fastopt/common.h"

#if defined(__CUDACC__) && !defined(__CUDACC_RTC__)
#include <cstdint>
#endif

// Marks a loop over Philox lanes: on the host, GCC must vectorize it rather
// than unroll it completely first (complete unrolling of a 16-lane loop runs
// before the loop vectorizer and leaves scalar code the SLP pass does badly).
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define FASTOPT_LANE_LOOP _Pragma("GCC unroll 1")
#else
#define FASTOPT_LANE_LOOP
#endif

namespace fastopt {

// Low 32 bits of a*b returned, high 32 bits in *hi.
FASTOPT_HD uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
#if defined(__CUDA_ARCH__)
  *hi = __umulhi(a, b);
  return a * b;
#else
  const uint64_t product = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(product >> 32);
  return static_cast<uint32_t>(product);
#endif
}

// How a lane loop forms the 32x32 -> 64-bit products: lanes<L>(m, a, lo, hi)
// sets lo[l], hi[l] to the low and high words of m * a[l]. This portable
// form is what the device and the scalar paths use; the CPU loops may pass
// their own (csrc/cpu/dropout_kernels.cpp: vpmuludq on even/odd lanes, which
// GCC does not find by itself) computing the same products.
struct PhiloxMulPortable {
  template <int L>
  static FASTOPT_HD void lanes(uint32_t m, const uint32_t* a, uint32_t* lo, uint32_t* hi) {
    FASTOPT_LANE_LOOP
    for (int l = 0; l < L; ++l) lo[l] = philox_mulhilo(m, a[l], &hi[l]);
  }
};

// Philox4x32-10 on L independent counters held in the lane arrays c0..c3
// (structure of arrays), in place: c becomes the output block. L = 1 is the
// scalar generator; the CPU loops use L = 16 so that each round is a few
// vector instructions. The rounds and the key schedule are written here once:
//   (hi0, lo0) = mulhilo(M0, c0); (hi1, lo1) = mulhilo(M1, c2)
//   (c0, c1, c2, c3) = (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0)
//   (k0, k1) += (W0, W1)
template <int L, typename Mul = PhiloxMulPortable>
FASTOPT_HD void philox4x32_10_lanes(uint32_t* c0, uint32_t* c1, uint32_t* c2, uint32_t* c3,
                                    uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    uint32_t lo0[L], hi0[L], lo1[L], hi1[L];
    Mul::template lanes<L>(0xD2511F53u, c0, lo0, hi0);  // M0
    Mul::template lanes<L>(0xCD9E8D57u, c2, lo1, hi1);  // M1
    FASTOPT_LANE_LOOP
    for (int l = 0; l < L; ++l) {
      c0[l] = hi1[l] ^ c1[l] ^ k0;
      c1[l] = lo1[l];
      c2[l] = hi0[l] ^ c3[l] ^ k1;
      c3[l] = lo0[l];
    }
    k0 += 0x9E3779B9u;  // W0 (the bump after the last round is unused)
    k1 += 0xBB67AE85u;  // W1
  }
}

// The scalar generator: out = Philox4x32-10(ctr, key).
FASTOPT_HD void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
  philox4x32_10_lanes<1>(&c0, &c1, &c2, &c3, key[0], key[1]);
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

}  // namespace fastopt
