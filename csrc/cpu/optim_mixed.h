// CPU loops of the mixed-precision optimizer steps (issue 18, docs/rounding.md):
// 16-bit parameters (bfloat16/float16) with gradients of the parameter's type
// or float32, states of the parameter's type or float32, an optional float32
// master copy, stochastic rounding, and the in-kernel gradient unscale
// (grad / grad_scale) for every parameter type. The per-element maths is
// fastopt/optim.h's, unchanged, in float32 (float64 for float64 params): each
// loop widens on load and rounds each stored value once (fastopt/half.h).
#pragma once
#include <cstdint>

#include "fastopt/mixed.h"
#include "fastopt/optim.h"
#include "multi_tensor.h"

namespace fastopt {

// Pointer roles per tensor: param, grad, the three state roles of the
// optimizer (fastopt/optim.h's argument order; unused ones nullptr), master.
using MixedList = TensorList<void, 6>;

struct MixedTypes {
  int param, grad, state;  // Storage codes; state is ignored when no state role is used
};

struct MixedRun {
  int mode;           // ParamMode (fastopt/mixed.h)
  double grad_scale;  // 1 when not given: g / 1 is g exactly
  std::uint64_t seed, step;
};

// C is float, or double for float64 parameters. Every function returns false
// (having done nothing) for a type combination it does not implement.
template <typename C>
bool sgd_mixed_cpu(const MixedList& l, MixedTypes types, const MixedRun& run,
                   const SgdScalars<C>& s, bool weight_decay, int momentum_mode, bool first_step);
template <typename C>
bool rmsprop_mixed_cpu(const MixedList& l, MixedTypes types, const MixedRun& run,
                       const RmspropScalars<C>& s, bool weight_decay, bool centered, bool momentum);
template <typename C>
bool adam_mixed_cpu(const MixedList& l, MixedTypes types, const MixedRun& run,
                    const AdamScalars<C>& s, int weight_decay_mode, bool amsgrad);
template <typename C>
bool adagrad_mixed_cpu(const MixedList& l, MixedTypes types, const MixedRun& run,
                       const AdagradScalars<C>& s, bool weight_decay);

}  // namespace fastopt
