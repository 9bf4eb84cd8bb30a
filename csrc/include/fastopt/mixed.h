// One element of a mixed-precision optimizer step (issue 18, docs/rounding.md),
// shared by the CPU loops (csrc/cpu/optim_mixed_loops.h) and the CUDA kernels
// (csrc/cuda/optim.cu): widen every stored value to the compute type, run the
// optim.h element function unchanged, round each stored result once.
//
// Storage types: float, double, and the 16-bit Bf16 / F16 (raw patterns, so
// loads and stores are plain 16-bit moves and every conversion is half.h's
// integer code). Compute type: float, double for double parameters.
#pragma once
#include "fastopt/half.h"

namespace fastopt {

struct Bf16 { uint16_t bits; };
struct F16 { uint16_t bits; };

// No <type_traits>: NVRTC compiles this without the standard library.
template <typename P> struct StorageTraits { using compute = float; static constexpr bool half = false; };
template <> struct StorageTraits<double> { using compute = double; static constexpr bool half = false; };
template <> struct StorageTraits<Bf16> { using compute = float; static constexpr bool half = true; };
template <> struct StorageTraits<F16> { using compute = float; static constexpr bool half = true; };
template <typename P> using compute_t = typename StorageTraits<P>::compute;

FASTOPT_HD float widen(Bf16 x) { return bf16_to_f32(x.bits); }
FASTOPT_HD float widen(F16 x) { return f16_to_f32(x.bits); }
FASTOPT_HD float widen(float x) { return x; }
FASTOPT_HD double widen(double x) { return x; }

template <typename S> struct Narrow {  // float, double: nothing to round
  static FASTOPT_HD S rne(S v) { return v; }
  static FASTOPT_HD S sr(S v, uint32_t) { return v; }
};
template <> struct Narrow<Bf16> {
  static FASTOPT_HD Bf16 rne(float v) { return {f32_to_bf16_rne(v)}; }
  static FASTOPT_HD Bf16 sr(float v, uint32_t r) { return {f32_to_bf16_sr(v, r)}; }
};
template <> struct Narrow<F16> {
  static FASTOPT_HD F16 rne(float v) { return {f32_to_f16_rne(v)}; }
  static FASTOPT_HD F16 sr(float v, uint32_t r) { return {f32_to_f16_sr(v, r)}; }
};

// Storage type codes (fastopt/backends/{cpp,cuda}/optim.py pass the same).
enum Storage : int { kF32 = 0, kF64 = 1, kBF16 = 2, kF16 = 3 };

// The type combinations implemented, X(name, P, G, S, code P, code G, code S):
// 16-bit params with 16-bit or float32 grads and states (compute float), and
// float32 / float64 with nothing narrow (for the gradient unscale).
#define FASTOPT_MIXED_COMBOS(X)                                                 \
  X(bbb, ::fastopt::Bf16, ::fastopt::Bf16, ::fastopt::Bf16, kBF16, kBF16, kBF16) \
  X(bbf, ::fastopt::Bf16, ::fastopt::Bf16, float, kBF16, kBF16, kF32)           \
  X(bfb, ::fastopt::Bf16, float, ::fastopt::Bf16, kBF16, kF32, kBF16)           \
  X(bff, ::fastopt::Bf16, float, float, kBF16, kF32, kF32)                      \
  X(hhh, ::fastopt::F16, ::fastopt::F16, ::fastopt::F16, kF16, kF16, kF16)      \
  X(hhf, ::fastopt::F16, ::fastopt::F16, float, kF16, kF16, kF32)               \
  X(hfh, ::fastopt::F16, float, ::fastopt::F16, kF16, kF32, kF16)               \
  X(hff, ::fastopt::F16, float, float, kF16, kF32, kF32)                        \
  X(fff, float, float, float, kF32, kF32, kF32)                                 \
  X(ddd, double, double, double, kF64, kF64, kF64)

// How the parameter is written: rounded to nearest even, from the float32
// master (master updated, param = RNE(master)), or stochastically rounded.
enum ParamMode : int { kRoundNearest = 0, kFromMaster = 1, kStochastic = 2 };

// Element i. USED: bit k set when state role k (a, b, c) is read and written;
// elem(p, g, a, b, c) is the optim.h element function with its options bound;
// r is the element's random word (kStochastic only). The gradient is divided
// by scale when UNSCALE (the CPU loops instantiate UNSCALE = false for calls
// without a grad_scale: g / 1 is g exactly, and the division is a third of the
// step's divider work).
template <typename P, typename G, typename S, int MODE, unsigned USED, bool UNSCALE = true,
          typename Elem>
FASTOPT_HD void mixed_element(P* __restrict__ p, const G* __restrict__ g, S* __restrict__ a,
                              S* __restrict__ b, S* __restrict__ c, float* __restrict__ master,
                              long long i, uint32_t r, compute_t<P> scale, const Elem& elem) {
  using C = compute_t<P>;
  C pv = MODE == kFromMaster ? C(master[i]) : C(widen(p[i]));
  const C gv = UNSCALE ? C(widen(g[i])) / scale : C(widen(g[i]));
  C av = (USED & 1u) ? C(widen(a[i])) : C(0);
  C bv = (USED & 2u) ? C(widen(b[i])) : C(0);
  C cv = (USED & 4u) ? C(widen(c[i])) : C(0);
  elem(pv, gv, av, bv, cv);
  if (USED & 1u) a[i] = Narrow<S>::rne(av);
  if (USED & 2u) b[i] = Narrow<S>::rne(bv);
  if (USED & 4u) c[i] = Narrow<S>::rne(cv);
  if (MODE == kFromMaster) master[i] = float(pv);
  p[i] = MODE == kStochastic ? Narrow<P>::sr(pv, r) : Narrow<P>::rne(pv);
}

// The random word of element i of a step (docs/rounding.md): word i % 4 of
// Philox4x32-10 at counter (i / 4, step, 0x5352 | step >> 32), key seed. The
// CPU loops draw 64 at a time (csrc/cpu/optim_mixed_loops.h) with the same
// counters.
FASTOPT_HD uint32_t sr_counter3(unsigned long long step) {
  return 0x53520000u | static_cast<uint32_t>(step >> 32 & 0xFFFFu);
}

}  // namespace fastopt
