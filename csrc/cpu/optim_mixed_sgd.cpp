// SGD over mixed storage types (csrc/cpu/optim_mixed.h).
#include "optim_mixed_loops.h"

namespace fastopt {
namespace {
using namespace mixed;

template <typename C>
struct SgdArgs {
  SgdScalars<C> s;
  bool weight_decay;
  int momentum_mode;  // 0 none, 1 heavy ball, 2 Nesterov
  bool first_step;
};

template <typename P, typename G, typename S, int WD, int MOM, bool FIRST>
FASTOPT_MIXED_INLINE void sgd_mode(const std::array<void*, 6>& t, size_t o, size_t n,
                                   const MixedRun& run, const SgdScalars<compute_t<P>>& s) {
  using C = compute_t<P>;
  range<P, G, S, MOM ? 1u : 0u>(t, o, n, run,
      [&](C& p, C g, C& buf, C&, C&) __attribute__((always_inline)) {
        sgd_element<WD, MOM, FIRST>(p, g, buf, s);
      });
}

template <typename P, typename G, typename S>
FASTOPT_MIXED_INLINE void sgd_typed(const std::array<void*, 6>& t, size_t o, size_t n,
                                    const MixedRun& run, const SgdArgs<compute_t<P>>& args) {
  with_bool(args.weight_decay, [&](auto wd) __attribute__((always_inline)) {
    constexpr int WD = decltype(wd)::value ? kL2 : kNoDecay;
    if (args.momentum_mode == 0) {
      sgd_mode<P, G, S, WD, 0, false>(t, o, n, run, args.s);
      return;
    }
    with_bool(args.first_step, [&](auto first) __attribute__((always_inline)) {
      constexpr bool FIRST = decltype(first)::value;
      if (args.momentum_mode == 1) sgd_mode<P, G, S, WD, 1, FIRST>(t, o, n, run, args.s);
      else sgd_mode<P, G, S, WD, 2, FIRST>(t, o, n, run, args.s);
    });
  });
}

#define FASTOPT_SGD_RANGE(...) FASTOPT_MIXED_RANGE(sgd, SgdArgs, __VA_ARGS__)
#define FASTOPT_SGD_MATCH(...) FASTOPT_MIXED_MATCH(sgd, __VA_ARGS__)
FASTOPT_MIXED_COMBOS(FASTOPT_SGD_RANGE)

}  // namespace

template <typename C>
bool sgd_mixed_cpu(const MixedList& l, MixedTypes types, const MixedRun& run,
                   const SgdScalars<C>& s, bool weight_decay, int momentum_mode, bool first_step) {
  const SgdArgs<C> args{s, weight_decay, momentum_mode, first_step};
  if (momentum_mode == 0) types.state = types.param;  // no state array: any type will do
  FASTOPT_MIXED_COMBOS(FASTOPT_SGD_MATCH)
  return false;
}

template bool sgd_mixed_cpu<float>(const MixedList&, MixedTypes, const MixedRun&,
                                   const SgdScalars<float>&, bool, int, bool);
template bool sgd_mixed_cpu<double>(const MixedList&, MixedTypes, const MixedRun&,
                                    const SgdScalars<double>&, bool, int, bool);

}  // namespace fastopt
