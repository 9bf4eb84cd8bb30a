// Per-element maths of the optimizer updates: the one C++ statement of each
// formula, included by the CPU loops (csrc/cpu/optim_kernels.cpp) and the
// CUDA kernels (csrc/cuda/optim.cu). The formulas are torch.optim 2.x's
// (docs/reference.md s.2); the NumPy reference in fastopt/backends/numpy/optim.py is the
// independent statement they are tested against.
//
// Every step-dependent or derived scalar (bias corrections, 1 - beta, the
// decayed learning rate) is computed once on the host in double and passed in
// the element type, as torch does. The build disables implicit contraction so
// every ISA and the scalar tail round identically; the one fused multiply-add
// is explicit (adam_first_moment), because torch's Adam rounds it so.
#pragma once
#include "fastopt/common.h"

namespace fastopt {

// How weight decay enters: none, L2 (g += wd * p) or decoupled (AdamW:
// p *= 1 - lr * wd before the update).
enum WeightDecayMode : int { kNoDecay = 0, kL2 = 1, kDecoupled = 2 };

// g is -grad when maximizing; grad_sign is +1 or -1 so the flip is exact.
template <int WD, typename T>
FASTOPT_HD T effective_grad(T grad, T p, T grad_sign, T weight_decay) {
  T g = grad_sign * grad;
  if (WD == kL2) g = g + weight_decay * p;
  return g;
}

// ---------------------------------------------------------------- SGD
template <typename T>
struct SgdScalars {
  T lr, momentum, one_minus_dampening, weight_decay, grad_sign;
};

// MOMENTUM: 0 plain, 1 heavy ball, 2 Nesterov. FIRST: the first momentum step
// (torch copies g into the buffer instead of decaying it).
template <int WD, int MOMENTUM, bool FIRST, typename T>
FASTOPT_HD void sgd_element(T& p, T grad, T& buf, const SgdScalars<T>& s) {
  const T g = effective_grad<WD>(grad, p, s.grad_sign, s.weight_decay);
  if (MOMENTUM == 0) {
    p = p - s.lr * g;
    return;
  }
  buf = FIRST ? g : s.momentum * buf + s.one_minus_dampening * g;
  const T d = (MOMENTUM == 2) ? g + s.momentum * buf : buf;
  p = p - s.lr * d;
}

// ------------------------------------------------------------ RMSprop
template <typename T>
struct RmspropScalars {
  T lr, alpha, one_minus_alpha, eps, weight_decay, momentum, grad_sign;
};

template <int WD, bool CENTERED, bool MOMENTUM, typename T>
FASTOPT_HD void rmsprop_element(T& p, T grad, T& square_avg, T& grad_avg, T& buf,
                                const RmspropScalars<T>& s) {
  const T g = effective_grad<WD>(grad, p, s.grad_sign, s.weight_decay);
  square_avg = s.alpha * square_avg + s.one_minus_alpha * g * g;
  T avg;
  if (CENTERED) {
    grad_avg = s.alpha * grad_avg + s.one_minus_alpha * g;
    avg = fo_sqrt(square_avg - grad_avg * grad_avg) + s.eps;
  } else {
    avg = fo_sqrt(square_avg) + s.eps;
  }
  if (MOMENTUM) {
    buf = s.momentum * buf + g / avg;
    p = p - s.lr * buf;
  } else {
    p = p - s.lr * (g / avg);
  }
}

// --------------------------------------------------------------- Adam
template <typename T>
struct AdamScalars {
  T beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay, grad_sign;
  T step_size;     // lr / (1 - beta1^step)
  T bc2_sqrt;      // sqrt(1 - beta2^step)
  T decay_factor;  // 1 - lr * weight_decay (decoupled only)
};

// torch's exp_avg.lerp_(grad, 1 - beta1): w = 1 - beta1, and one fused
// multiply-add from the nearer end, m + w (g - m) for w < 1/2, else
// g - (1 - w) (g - m), as torch's fused CPU kernel rounds it. It equals
// beta1 m + (1 - beta1) g, the lecture notes' form, in exact arithmetic.
template <typename T>
FASTOPT_HD T adam_first_moment(T m, T g, T w) {
  return w < T(0.5) ? fo_fma(w, g - m, m) : fo_fma(w - T(1), g - m, g);
}

template <int WD, bool AMSGRAD, typename T>
FASTOPT_HD void adam_element(T& p, T grad, T& m, T& v, T& vmax, const AdamScalars<T>& s) {
  if (WD == kDecoupled) p = p * s.decay_factor;
  const T g = effective_grad<WD>(grad, p, s.grad_sign, s.weight_decay);
  m = adam_first_moment(m, g, s.one_minus_beta1);
  v = s.beta2 * v + s.one_minus_beta2 * g * g;
  T vhat = v;
  if (AMSGRAD) {
    vmax = fo_max(vmax, v);
    vhat = vmax;
  }
  p = p - s.step_size * m / (fo_sqrt(vhat) / s.bc2_sqrt + s.eps);
}

// ------------------------------------------------------------ Adagrad
template <typename T>
struct AdagradScalars {
  T clr;  // lr / (1 + (step - 1) * lr_decay)
  T eps, weight_decay, grad_sign;
};

template <int WD, typename T>
FASTOPT_HD void adagrad_element(T& p, T grad, T& state_sum, const AdagradScalars<T>& s) {
  const T g = effective_grad<WD>(grad, p, s.grad_sign, s.weight_decay);
  state_sum = state_sum + g * g;
  p = p - s.clr * g / (fo_sqrt(state_sum) + s.eps);
}

}  // namespace fastopt
