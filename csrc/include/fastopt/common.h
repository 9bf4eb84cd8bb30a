// Shared by the C++ CPU loops and the CUDA kernels: one spelling of "inline
// host/device function" and of the few math calls the kernels need.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
#if defined(__CUDACC_RTC__)
// NVRTC has no <cstdint>: the fixed-width types every header here uses.
typedef unsigned short uint16_t;
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

// c ? a : b. On the CPU a select on the bits: GCC keeps some float ternaries
// (Adam's first moment) as branches, which stops the mixed loops vectorizing.
#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
template <typename T>
FASTOPT_HD T fo_select(bool c, T a, T b) { return c ? a : b; }
#else
template <typename T, typename U>
FASTOPT_HD T fo_select_bits(bool c, T a, T b) {
  U ua, ub;
  __builtin_memcpy(&ua, &a, sizeof ua);
  __builtin_memcpy(&ub, &b, sizeof ub);
  const U u = ub ^ ((ua ^ ub) & (U(0) - static_cast<U>(c)));
  T r;
  __builtin_memcpy(&r, &u, sizeof r);
  return r;
}
FASTOPT_HD float fo_select(bool c, float a, float b) {
  return fo_select_bits<float, uint32_t>(c, a, b);
}
FASTOPT_HD double fo_select(bool c, double a, double b) {
  return fo_select_bits<double, uint64_t>(c, a, b);
}
#endif

// torch.maximum semantics are not needed here: both operands are finite or
// the step is already NaN; a plain select keeps the loop vectorizable.
template <typename T>
FASTOPT_HD T fo_max(T a, T b) { return a > b ? a : b; }

}  // namespace fastopt
