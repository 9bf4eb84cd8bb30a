// Shared by the C++ CPU loops and the CUDA kernels: one spelling of "inline
// host/device function" and of the few math calls the kernels need.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#if defined(__CUDACC_RTC__)
// NVRTC has no <cstdint>: the fixed-width types every header here uses.
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef unsigned long long uint64_t;
#else
#include <cstdint>
#endif
#define FASTOPT_HD __host__ __device__ __forceinline__
#else
#include <cmath>
#include <cstdint>
// always_inline lets the per-ISA clones in csrc/cpu inline (and vectorize)
// these functions with their own instruction set.
#define FASTOPT_HD inline __attribute__((always_inline))
#endif

namespace fastopt {

FASTOPT_HD float fo_sqrt(float x) { return sqrtf(x); }
FASTOPT_HD double fo_sqrt(double x) { return sqrt(x); }

// a * b + c rounded once (C's fma). Explicit, so it fuses on every ISA and on
// the GPU although the builds turn implicit contraction off: where no FMA unit
// exists, the library's fmaf is still correctly rounded (and only slower).
FASTOPT_HD float fo_fma(float a, float b, float c) { return fmaf(a, b, c); }
FASTOPT_HD double fo_fma(double a, double b, double c) { return fma(a, b, c); }

// Float <-> bit-pattern casts: a register move on GCC and NVCC.
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
FASTOPT_HD uint32_t bits_of(float x) { return __float_as_uint(x); }
FASTOPT_HD float float_of(uint32_t u) { return __uint_as_float(u); }
#else
template <typename To, typename From>
FASTOPT_HD To fo_bit_cast(From x) {
  To y;
  __builtin_memcpy(&y, &x, sizeof y);
  return y;
}
FASTOPT_HD uint32_t bits_of(float x) { return fo_bit_cast<uint32_t>(x); }
FASTOPT_HD float float_of(uint32_t u) { return fo_bit_cast<float>(u); }
#endif

// a where mask is all ones, b where it is zero: a bit select. GCC keeps some
// ternaries as branches (Adam's first moment, float16 rounding), which stops
// the loops vectorizing; masks and selects always vectorize.
template <typename U>
FASTOPT_HD U select_bits(U mask, U a, U b) { return b ^ ((a ^ b) & mask); }
FASTOPT_HD uint32_t mask_of(bool c) { return 0u - static_cast<uint32_t>(c); }

// c ? a : b, on the CPU as a select on the bits.
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
template <typename T>
FASTOPT_HD T fo_select(bool c, T a, T b) { return c ? a : b; }
#else
FASTOPT_HD float fo_select(bool c, float a, float b) {
  return float_of(select_bits(mask_of(c), bits_of(a), bits_of(b)));
}
FASTOPT_HD double fo_select(bool c, double a, double b) {
  const uint64_t m = 0ull - static_cast<uint64_t>(c);
  return fo_bit_cast<double>(select_bits(m, fo_bit_cast<uint64_t>(a), fo_bit_cast<uint64_t>(b)));
}
#endif

// torch.maximum semantics are not needed here: both operands are finite or
// the step is already NaN; a plain select keeps the loop vectorizable.
template <typename T>
FASTOPT_HD T fo_max(T a, T b) { return a > b ? a : b; }

}  // namespace fastopt
