// Element storage types of the batch norm and dropout loops (DESIGN s.7): a
// loop is written once over a storage type X and computes in compute_t<X>.
// float and double compute in themselves (widen/narrow are the identity, so
// their loops compile exactly as before); the 16-bit types compute in float:
// every value is widened on load and every stored result rounded once to
// nearest even (fastopt/half.h, integer bit operations only, so every ISA, the
// scalar tail and CUDA round alike).
//
// Bf16 and F16 hold the bit pattern; the Python side passes uint16 views of
// ml_dtypes.bfloat16 / numpy.float16 arrays, reinterpreted as these.
#pragma once
#include "fastopt/half.h"

namespace fastopt {

struct Bf16 {
  uint16_t bits;
};
struct F16 {
  uint16_t bits;
};

template <typename X>
struct Compute {
  using type = X;
};
template <>
struct Compute<Bf16> {
  using type = float;
};
template <>
struct Compute<F16> {
  using type = float;
};
template <typename X>
using compute_t = typename Compute<X>::type;

FASTOPT_HD float widen(float x) { return x; }
FASTOPT_HD double widen(double x) { return x; }
FASTOPT_HD float widen(Bf16 h) { return bf16_to_f32(h.bits); }
FASTOPT_HD float widen(F16 h) { return f16_to_f32(h.bits); }

// The stored value of a compute-type result: itself, or its 16-bit RNE rounding.
template <typename X>
FASTOPT_HD X narrow(compute_t<X> v) {
  return v;
}
template <>
FASTOPT_HD Bf16 narrow<Bf16>(float v) {
  return Bf16{f32_to_bf16_rne(v)};
}
template <>
FASTOPT_HD F16 narrow<F16>(float v) {
  return F16{f32_to_f16_rne(v)};
}

}  // namespace fastopt
