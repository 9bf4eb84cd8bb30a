// RMSprop over mixed storage types (csrc/cpu/optim_mixed.h).
#include "optim_mixed_loops.h"

namespace fastopt {
namespace {
using namespace mixed;

template <typename C>
struct RmspropArgs {
  RmspropScalars<C> s;
  bool weight_decay, centered, momentum;
};

template <typename P, typename G, typename S>
FASTOPT_MIXED_INLINE void rmsprop_typed(const std::array<void*, 6>& t, size_t o, size_t n,
                                        const MixedRun& run,
                                        const RmspropArgs<compute_t<P>>& args) {
  using C = compute_t<P>;
  const RmspropScalars<C>& s = args.s;
  with_bool(args.weight_decay, [&](auto wd) __attribute__((always_inline)) {
    with_bool(args.centered, [&](auto cen) __attribute__((always_inline)) {
      with_bool(args.momentum, [&](auto mom) __attribute__((always_inline)) {
        constexpr int WD = decltype(wd)::value ? kL2 : kNoDecay;
        constexpr bool CEN = decltype(cen)::value, MOM = decltype(mom)::value;
        range<P, G, S, 1u | (CEN ? 2u : 0u) | (MOM ? 4u : 0u)>(t, o, n, run,
            [&](C& p, C g, C& sq, C& gavg, C& buf) __attribute__((always_inline)) {
              rmsprop_element<WD, CEN, MOM>(p, g, sq, gavg, buf, s);
            });
      });
    });
  });
}

#define FASTOPT_RMSPROP_RANGE(...) FASTOPT_MIXED_RANGE(rmsprop, RmspropArgs, __VA_ARGS__)
#define FASTOPT_RMSPROP_MATCH(...) FASTOPT_MIXED_MATCH(rmsprop, __VA_ARGS__)
FASTOPT_MIXED_COMBOS(FASTOPT_RMSPROP_RANGE)

}  // namespace

template <typename C>
bool rmsprop_mixed_cpu(const MixedList& l, MixedTypes types, const MixedRun& run,
                       const RmspropScalars<C>& s, bool weight_decay, bool centered,
                       bool momentum) {
  const RmspropArgs<C> args{s, weight_decay, centered, momentum};
  FASTOPT_MIXED_COMBOS(FASTOPT_RMSPROP_MATCH)
  return false;
}

template bool rmsprop_mixed_cpu<float>(const MixedList&, MixedTypes, const MixedRun&,
                                       const RmspropScalars<float>&, bool, bool, bool);
template bool rmsprop_mixed_cpu<double>(const MixedList&, MixedTypes, const MixedRun&,
                                        const RmspropScalars<double>&, bool, bool, bool);

}  // namespace fastopt
