// Adagrad over mixed storage types (csrc/cpu/optim_mixed.h).
#include "optim_mixed_loops.h"

namespace fastopt {
namespace {
using namespace mixed;

template <typename C>
struct AdagradArgs {
  AdagradScalars<C> s;
  bool weight_decay;
};

template <typename P, typename G, typename S>
FASTOPT_MIXED_INLINE void adagrad_typed(const std::array<void*, 6>& t, size_t o, size_t n,
                                        const MixedRun& run,
                                        const AdagradArgs<compute_t<P>>& args) {
  using C = compute_t<P>;
  const AdagradScalars<C>& s = args.s;
  with_bool(args.weight_decay, [&](auto wd) __attribute__((always_inline)) {
    constexpr int WD = decltype(wd)::value ? kL2 : kNoDecay;
    range<P, G, S, 1u>(t, o, n, run, [&](C& p, C g, C& sum, C&, C&) __attribute__((always_inline)) {
      adagrad_element<WD>(p, g, sum, s);
    });
  });
}

#define FASTOPT_ADAGRAD_RANGE(...) FASTOPT_MIXED_RANGE(adagrad, AdagradArgs, __VA_ARGS__)
#define FASTOPT_ADAGRAD_MATCH(...) FASTOPT_MIXED_MATCH(adagrad, __VA_ARGS__)
FASTOPT_MIXED_COMBOS(FASTOPT_ADAGRAD_RANGE)

}  // namespace

template <typename C>
bool adagrad_mixed_cpu(const MixedList& l, MixedTypes types, const MixedRun& run,
                       const AdagradScalars<C>& s, bool weight_decay) {
  const AdagradArgs<C> args{s, weight_decay};
  FASTOPT_MIXED_COMBOS(FASTOPT_ADAGRAD_MATCH)
  return false;
}

template bool adagrad_mixed_cpu<float>(const MixedList&, MixedTypes, const MixedRun&,
                                       const AdagradScalars<float>&, bool);
template bool adagrad_mixed_cpu<double>(const MixedList&, MixedTypes, const MixedRun&,
                                        const AdagradScalars<double>&, bool);

}  // namespace fastopt
