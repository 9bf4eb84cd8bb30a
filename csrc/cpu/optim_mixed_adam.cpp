// Adam / AdamW over mixed storage types (csrc/cpu/optim_mixed.h).
#include "optim_mixed_loops.h"

namespace fastopt {
namespace {
using namespace mixed;

template <typename C>
struct AdamArgs {
  AdamScalars<C> s;
  int weight_decay_mode;
  bool amsgrad;
};

template <typename P, typename G, typename S>
FASTOPT_MIXED_INLINE void adam_typed(const std::array<void*, 6>& t, size_t o, size_t n,
                                     const MixedRun& run, const AdamArgs<compute_t<P>>& args) {
  using C = compute_t<P>;
  const AdamScalars<C>& s = args.s;
  with_decay(args.weight_decay_mode, [&](auto wd) __attribute__((always_inline)) {
    with_bool(args.amsgrad, [&](auto ams) __attribute__((always_inline)) {
      constexpr int WD = decltype(wd)::value;
      constexpr bool AMS = decltype(ams)::value;
      range<P, G, S, AMS ? 7u : 3u>(t, o, n, run,
          [&](C& p, C g, C& m, C& v, C& vmax) __attribute__((always_inline)) {
            adam_element<WD, AMS>(p, g, m, v, vmax, s);
          });
    });
  });
}

#define FASTOPT_ADAM_RANGE(...) FASTOPT_MIXED_RANGE(adam, AdamArgs, __VA_ARGS__)
#define FASTOPT_ADAM_MATCH(...) FASTOPT_MIXED_MATCH(adam, __VA_ARGS__)
FASTOPT_MIXED_COMBOS(FASTOPT_ADAM_RANGE)

}  // namespace

template <typename C>
bool adam_mixed_cpu(const MixedList& l, MixedTypes types, const MixedRun& run,
                    const AdamScalars<C>& s, int weight_decay_mode, bool amsgrad) {
  const AdamArgs<C> args{s, weight_decay_mode, amsgrad};
  FASTOPT_MIXED_COMBOS(FASTOPT_ADAM_MATCH)
  return false;
}

template bool adam_mixed_cpu<float>(const MixedList&, MixedTypes, const MixedRun&,
                                    const AdamScalars<float>&, int, bool);
template bool adam_mixed_cpu<double>(const MixedList&, MixedTypes, const MixedRun&,
                                     const AdamScalars<double>&, int, bool);

}  // namespace fastopt
