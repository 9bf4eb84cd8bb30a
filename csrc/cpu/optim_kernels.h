// CPU loops of the optimizer updates over lists of arrays (docs/reference.md s.2).
#pragma once
#include "fastopt/optim.h"
#include "multi_tensor.h"

namespace fastopt {

// Pointer roles per tensor: param, grad, then the optimizer's state arrays
// (unused roles are nullptr).
template <typename T> using OptimList = TensorList<T, 5>;

template <typename T>
void sgd_cpu(const OptimList<T>& l, const SgdScalars<T>& s, bool weight_decay, int momentum_mode,
             bool first_step);
template <typename T>
void rmsprop_cpu(const OptimList<T>& l, const RmspropScalars<T>& s, bool weight_decay,
                 bool centered, bool momentum);
template <typename T>
void adam_cpu(const OptimList<T>& l, const AdamScalars<T>& s, int weight_decay_mode, bool amsgrad);
template <typename T>
void adagrad_cpu(const OptimList<T>& l, const AdagradScalars<T>& s, bool weight_decay);

}  // namespace fastopt
