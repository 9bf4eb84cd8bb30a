// Shared by the C++ CPU loops and the CUDA kernels: one spelling of "inline
// host/device function" and of the few math calls the kernels need.
#pragma once

#if defined(__CUDACC__) || defined(__CUDACC_RTC__)
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

// torch.maximum semantics are not needed here: both operands are finite or
// the step is already NaN; a plain select keeps the loop vectorizable.
template <typename T>
FASTOPT_HD T fo_max(T a, T b) { return a > b ? a : b; }

}  // namespace fastopt
