// Per-element maths of parameter averaging (EMA) (docs/reference.md s.5,
// docs/ARCHITECTURE.md): the one C++ statement of the formula, included by the
// CPU loops (csrc/cpu/averaging_kernels.cpp) and the CUDA kernels
// (csrc/cuda/averaging.cu). The NumPy reference in
// fastopt/backends/numpy/averaging.py is the independent statement they are
// tested against.
#pragma once
#include "fastopt/common.h"

namespace fastopt {

// avg = decay * avg + (1 - decay) * param  (torch.optim.swa_utils EMA);
// one_minus_decay is computed on the host in double.
template <typename T>
struct EmaScalars {
  T decay, one_minus_decay;
};

template <typename T>
FASTOPT_HD void ema_element(T& avg, T param, const EmaScalars<T>& s) {
  avg = s.decay * avg + s.one_minus_decay * param;
}

}  // namespace fastopt
