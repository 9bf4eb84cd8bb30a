// The one mixed-precision element loop, shared by csrc/cpu/optim_mixed_*.cpp
// (one file per optimizer, so they compile in parallel): storage types,
// widening on load, one rounding per stored value, the stochastic-rounding
// words. Internal to those files.
#pragma once
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "fastopt/mixed.h"
#include "fastopt/philox.h"
#include "isa.h"
#include "optim_mixed.h"

#define FASTOPT_MIXED_INLINE inline __attribute__((always_inline))

namespace fastopt {
namespace mixed {

using std::size_t;

template <typename P> constexpr bool is16 = StorageTraits<P>::half;

// Option values as types, so each combination of options is its own loop:
// with_bool(b, f) calls f(std::true_type{}) or f(std::false_type{}).
template <typename F>
FASTOPT_MIXED_INLINE void with_bool(bool b, const F& f) {
  if (b) f(std::true_type{});
  else f(std::false_type{});
}

// Two 16-bit values per 32-bit word, element 2j in the low half (x86 is
// little-endian): the pair loop's loads and stores.
template <typename T>
FASTOPT_MIXED_INLINE void unpack2(const T* x, size_t j, T* v) {
  uint32_t w;
  __builtin_memcpy(&w, x + 2 * j, sizeof w);
  v[0] = T{static_cast<uint16_t>(w)};
  v[1] = T{static_cast<uint16_t>(w >> 16)};
}
template <typename T>
FASTOPT_MIXED_INLINE void pack2(T* x, size_t j, const T* v) {
  const uint32_t w = static_cast<uint32_t>(v[0].bits) | static_cast<uint32_t>(v[1].bits) << 16;
  __builtin_memcpy(x + 2 * j, &w, sizeof w);
}

// Every stored array 16-bit, rounded to nearest: the elements in pairs, one
// 32-bit word per array and pair. Widening and rounding then stay in 32-bit
// lanes, and the vectorized loop needs none of the pack/unpack shuffles that
// 16-bit lanes cost (they made pure bfloat16 Adam shuffle-bound on AVX2).
// The same mixed_element per element, so the same bits.
template <typename P, typename G, typename S, unsigned USED, bool UNSCALE, typename Elem>
FASTOPT_MIXED_INLINE void pair_loop(P* __restrict p, const G* __restrict g, S* __restrict a,
                                    S* __restrict b, S* __restrict c, size_t pairs,
                                    compute_t<P> scale, const Elem& elem) {
  for (size_t j = 0; j < pairs; ++j) {
    P pp[2];
    G gg[2];
    S aa[2] = {}, bb[2] = {}, cc[2] = {};
    unpack2(p, j, pp);
    unpack2(g, j, gg);
    if (USED & 1u) unpack2(a, j, aa);
    if (USED & 2u) unpack2(b, j, bb);
    if (USED & 4u) unpack2(c, j, cc);
    // two calls, not a loop of two: GCC leaves a loop around float16's
    // larger body, and the outer loop then does not vectorize
    mixed_element<P, G, S, kRoundNearest, USED, UNSCALE>(pp, gg, aa, bb, cc, nullptr, 0, 0u,
                                                        scale, elem);
    mixed_element<P, G, S, kRoundNearest, USED, UNSCALE>(pp, gg, aa, bb, cc, nullptr, 1, 0u,
                                                        scale, elem);
    pack2(p, j, pp);
    if (USED & 1u) pack2(a, j, aa);
    if (USED & 2u) pack2(b, j, bb);
    if (USED & 4u) pack2(c, j, cc);
  }
}

// The elements of one call. Without a grad_scale (scale 1) the loop has no
// division by it: exact (g / 1 is g), and a third of Adam's divider work.
template <typename P, typename G, typename S, int MODE, unsigned USED, typename Elem>
FASTOPT_MIXED_INLINE void loop(P* __restrict p, const G* __restrict g, S* __restrict a,
                               S* __restrict b, S* __restrict c, float* __restrict master,
                               const uint32_t* __restrict rnd, size_t n, compute_t<P> scale,
                               const Elem& elem) {
  with_bool(scale != compute_t<P>(1), [&](auto unscale) __attribute__((always_inline)) {
    constexpr bool U = decltype(unscale)::value;
    size_t i = 0;
    if constexpr (MODE == kRoundNearest && is16<P> && is16<G> && is16<S>) {
      pair_loop<P, G, S, USED, U>(p, g, a, b, c, n / 2, scale, elem);
      i = n / 2 * 2;
    }
    for (; i < n; ++i)
      mixed_element<P, G, S, MODE, USED, U>(p, g, a, b, c, master, static_cast<long long>(i),
                                            MODE == kStochastic ? rnd[i] : 0u, scale, elem);
  });
}

// Words 4l .. 4l+3 of w are Philox4x32-10 at counter (j0 + l, step) (docs/rounding.md).
FASTOPT_MIXED_INLINE void sr_words(uint64_t j0, uint64_t seed, uint64_t step, uint32_t* w) {
  constexpr int L = 16;
  uint32_t c0[L], c1[L], c2[L], c3[L];
  for (int l = 0; l < L; ++l) {
    c0[l] = static_cast<uint32_t>(j0 + l);
    c1[l] = static_cast<uint32_t>((j0 + l) >> 32);
    c2[l] = static_cast<uint32_t>(step);
    c3[l] = sr_counter3(step);
  }
  philox4x32_10_lanes<L>(c0, c1, c2, c3, static_cast<uint32_t>(seed),
                         static_cast<uint32_t>(seed >> 32));
  for (int l = 0; l < L; ++l) {
    w[4 * l] = c0[l];
    w[4 * l + 1] = c1[l];
    w[4 * l + 2] = c2[l];
    w[4 * l + 3] = c3[l];
  }
}

template <typename T>
FASTOPT_MIXED_INLINE T* role(const std::array<void*, 6>& t, int r, size_t o) {
  return t[r] ? static_cast<T*>(t[r]) + o : nullptr;
}

// Elements [o, o + n) of one tensor, in the parameter mode of `run`.
template <typename P, typename G, typename S, unsigned USED, typename Elem>
FASTOPT_MIXED_INLINE void range(const std::array<void*, 6>& t, size_t o, size_t n,
                                const MixedRun& run, const Elem& elem) {
  P* p = role<P>(t, 0, o);
  const G* g = role<G>(t, 1, o);
  S* a = role<S>(t, 2, o);
  S* b = role<S>(t, 3, o);
  S* c = role<S>(t, 4, o);
  const auto scale = static_cast<compute_t<P>>(run.grad_scale);
  if constexpr (is16<P>) {
    if (run.mode == kFromMaster) {
      loop<P, G, S, kFromMaster, USED>(p, g, a, b, c, role<float>(t, 5, o), nullptr, n, scale, elem);
      return;
    }
    if (run.mode == kStochastic) {
      // blocks of 64 elements aligned to 4: one 16-lane Philox call each
      uint32_t w[64];
      for (size_t k = 0; k < n;) {
        const size_t i = o + k, base = i / 4 * 4;
        const size_t len = std::min(n - k, base + 64 - i);
        sr_words(i / 4, run.seed, run.step, w);
        loop<P, G, S, kStochastic, USED>(p + k, g + k, a ? a + k : a, b ? b + k : b,
                                         c ? c + k : c, nullptr, w + (i - base), len, scale, elem);
        k += len;
      }
      return;
    }
  }
  loop<P, G, S, kRoundNearest, USED>(p, g, a, b, c, nullptr, nullptr, n, scale, elem);
}

template <typename F>
FASTOPT_MIXED_INLINE void with_decay(int mode, const F& f) {
  if (mode == kL2) f(std::integral_constant<int, kL2>{});
  else if (mode == kDecoupled) f(std::integral_constant<int, kDecoupled>{});
  else f(std::integral_constant<int, kNoDecay>{});
}

// In an optimizer's file, with NAME_typed<P, G, S>(t, o, n, run, args) and its
// argument struct ARGS<C> (C the compute type): FASTOPT_MIXED_RANGE defines one
// instruction-set-cloned range function per combination, NAME_range_<combo>;
// FASTOPT_MIXED_MATCH, expanded over the combinations inside a function of C
// with `l`, `types`, `run` and `args` in scope, runs the matching one over the
// list and returns true.
// The mixed loops carry isa.h's three clones. The AVX-512 one was left out at
// first for compile time (ten type combinations times three parameter modes
// times the option branches); on a Zen 4 host it took pure bf16 Adam at 10^7
// from 39% to 63-64% of its twin and the float32-state modes to 94-97%
// (benchmarks/RESULTS.md, session 11). Development builds may keep one
// baseline clone (FASTOPT_MIXED_NO_CLONES, CMakeLists.txt).
#if FASTOPT_X86_GCC && !defined(FASTOPT_MIXED_NO_CLONES)
#define FASTOPT_MIXED_CLONES FASTOPT_CLONES
#else
#define FASTOPT_MIXED_CLONES
#endif

#define FASTOPT_MIXED_RANGE(NAME, ARGS, COMBO, P, G, S, CP, CG, CS)                      \
  FASTOPT_MIXED_CLONES void NAME##_range_##COMBO(const std::array<void*, 6>& t, std::size_t o,  \
                                           std::size_t n, const ::fastopt::MixedRun& run, \
                                           const ARGS<::fastopt::compute_t<P>>& args) { \
    NAME##_typed<P, G, S>(t, o, n, run, args);                                           \
  }

#define FASTOPT_MIXED_MATCH(NAME, COMBO, P, G, S, CP, CG, CS)                             \
  if constexpr (std::is_same_v<C, ::fastopt::compute_t<P>>) {                      \
    if (types.param == CP && types.grad == CG && types.state == CS) {                     \
      multi_tensor_apply(l, kElementwiseGrain,                                            \
                         [&](const std::array<void*, 6>& t, std::size_t o, std::size_t n) { \
                           NAME##_range_##COMBO(t, o, n, run, args);                      \
                         });                                                              \
      return true;                                                                        \
    }                                                                                     \
  }

}  // namespace mixed
}  // namespace fastopt
