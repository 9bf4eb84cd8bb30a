// CPU loops of parameter averaging (fastopt.functional.averaging).
#pragma once
#include "fastopt/averaging.h"
#include "multi_tensor.h"

namespace fastopt {

// Roles per tensor: (avg, param).
template <typename T> using EmaList = TensorList<T, 2>;

template <typename T>
void ema_cpu(const EmaList<T>& l, const EmaScalars<T>& s);

}  // namespace fastopt
