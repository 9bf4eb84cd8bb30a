// pybind11 entry points of the optimizer steps. Each takes lists of arrays
// (a single array is a list of one) and the host-side scalars computed by
// fastopt/_scalars.py, in the field order of the structs in fastopt/optim.h.
#include "gil.h"
#include "../cpu/optim_kernels.h"
#include "../cpu/optim_mixed.h"
#include "arrays.h"
#include "../validate/fast_path.h"

#include <type_traits>

namespace fastopt {
namespace {

template <typename T>
OptimList<T> make_list(ArrayList<T>& params, const ArrayList<T>& grads) {
  OptimList<T> l;
  l.ptrs.assign(params.size(), {nullptr, nullptr, nullptr, nullptr, nullptr});
  l.sizes.resize(params.size());
  for (std::size_t t = 0; t < params.size(); ++t) l.sizes[t] = static_cast<std::size_t>(params[t].size());
  fill_role(l.ptrs, params, 0);
  fill_role_const(l.ptrs, grads, 1);
  return l;
}

template <typename T>
void sgd(ArrayList<T> params, ArrayList<T> grads, OptionalArrayList<T> bufs, double lr,
         double momentum, double one_minus_dampening, double weight_decay, double grad_sign,
         bool nesterov, bool first_step) {
  auto l = make_list(params, grads);
  int mode = 0;
  if (momentum != 0.0) {
    fill_role(l.ptrs, *bufs, 2);
    mode = nesterov ? 2 : 1;
  }
  SgdScalars<T> s{T(lr), T(momentum), T(one_minus_dampening), T(weight_decay), T(grad_sign)};
  ReleaseGil nogil;
  sgd_cpu(l, s, weight_decay != 0.0, mode, first_step);
}

template <typename T>
void rmsprop(ArrayList<T> params, ArrayList<T> grads, ArrayList<T> square_avgs,
             OptionalArrayList<T> grad_avgs, OptionalArrayList<T> bufs, double lr, double alpha,
             double one_minus_alpha, double eps, double weight_decay, double momentum,
             double grad_sign) {
  auto l = make_list(params, grads);
  fill_role(l.ptrs, square_avgs, 2);
  if (grad_avgs) fill_role(l.ptrs, *grad_avgs, 3);
  if (bufs) fill_role(l.ptrs, *bufs, 4);
  RmspropScalars<T> s{T(lr), T(alpha), T(one_minus_alpha), T(eps), T(weight_decay), T(momentum),
                      T(grad_sign)};
  ReleaseGil nogil;
  rmsprop_cpu(l, s, weight_decay != 0.0, grad_avgs.has_value(), bufs.has_value());
}

template <typename T>
void adam(ArrayList<T> params, ArrayList<T> grads, ArrayList<T> exp_avgs, ArrayList<T> exp_avg_sqs,
          OptionalArrayList<T> max_exp_avg_sqs, double beta1, double one_minus_beta1, double beta2,
          double one_minus_beta2, double eps, double weight_decay, double grad_sign,
          double step_size, double bc2_sqrt, double decay_factor, int weight_decay_mode) {
  auto l = make_list(params, grads);
  fill_role(l.ptrs, exp_avgs, 2);
  fill_role(l.ptrs, exp_avg_sqs, 3);
  if (max_exp_avg_sqs) fill_role(l.ptrs, *max_exp_avg_sqs, 4);
  AdamScalars<T> s{T(beta1), T(one_minus_beta1), T(beta2), T(one_minus_beta2), T(eps),
                   T(weight_decay), T(grad_sign), T(step_size), T(bc2_sqrt), T(decay_factor)};
  ReleaseGil nogil;
  adam_cpu(l, s, weight_decay_mode, max_exp_avg_sqs.has_value());
}

template <typename T>
void adagrad(ArrayList<T> params, ArrayList<T> grads, ArrayList<T> sums, double clr, double eps,
             double weight_decay, double grad_sign) {
  auto l = make_list(params, grads);
  fill_role(l.ptrs, sums, 2);
  AdagradScalars<T> s{T(clr), T(eps), T(weight_decay), T(grad_sign)};
  ReleaseGil nogil;
  adagrad_cpu(l, s, weight_decay != 0.0);
}

// ---- fast path (see fast_path.h): all given arrays are checked, the roles
// in `used` are handed to the kernel.
template <typename T>
OptimList<T> to_list(const FastCall<5>& c, unsigned used) {
  OptimList<T> l;
  l.sizes = c.sizes;
  l.ptrs.resize(c.ptrs.size());
  for (std::size_t t = 0; t < c.ptrs.size(); ++t)
    for (int r = 0; r < 5; ++r)
      l.ptrs[t][r] = (used >> r & 1u) ? static_cast<T*>(c.ptrs[t][r]) : nullptr;
  return l;
}

// A 16-bit call goes to the mixed loops (csrc/cpu/optim_mixed.h), rounding to
// nearest, no master, no scale: what the validated path runs for the same call.
template <typename Run, typename RunMixed>
bool fast_run(const FastRole (&roles)[5], const char* backend, unsigned used, const Run& run,
              const RunMixed& run_mixed) {
  if (!fast_backend_selected(backend)) return false;
  for (int r = 0; r < 5; ++r)
    if ((used >> r & 1u) && roles[r].obj == Py_None) return false;
  FastCall<5> c;
  if (!fast_collect(roles, c)) return false;
  if (c.mixed) {
    MixedList l;
    l.sizes = c.sizes;
    l.ptrs.resize(c.ptrs.size());
    for (std::size_t t = 0; t < c.ptrs.size(); ++t) {
      for (int r = 0; r < 5; ++r) l.ptrs[t][r] = (used >> r & 1u) ? c.ptrs[t][r] : nullptr;
      l.ptrs[t][5] = nullptr;
    }
    const MixedTypes ty{c.types[0], c.types[1], c.types[2]};
    const MixedRun mode{kRoundNearest, 1.0, 0, 0};
    ReleaseGil nogil;
    return run_mixed(l, ty, mode);   // false (nothing done): a combination it lacks
  }
  if (c.dtype == 0) {
    auto l = to_list<float>(c, used);
    ReleaseGil nogil;
    run(l);
  } else {
    auto l = to_list<double>(c, used);
    ReleaseGil nogil;
    run(l);
  }
  return true;
}

constexpr unsigned kRole0 = 1u, kRole1 = 2u, kRole2 = 4u, kRole3 = 8u, kRole4 = 16u;

bool sgd_fast(py::object param, py::object grad, py::object buf, double lr, double momentum,
              double one_minus_dampening, double weight_decay, double grad_sign, bool nesterov,
              bool first_step, const char* backend) {
  const FastRole roles[5] = {{param.ptr(), true}, {grad.ptr(), false}, {buf.ptr(), true},
                             {Py_None, true}, {Py_None, true}};
  const int mode = momentum == 0.0 ? 0 : (nesterov ? 2 : 1);
  return fast_run(roles, backend, kRole0 | kRole1 | (mode ? kRole2 : 0u), [&](const auto& l) {
    using T = std::remove_pointer_t<typename std::decay_t<decltype(l.ptrs[0])>::value_type>;
    SgdScalars<T> s{T(lr), T(momentum), T(one_minus_dampening), T(weight_decay), T(grad_sign)};
    sgd_cpu(l, s, weight_decay != 0.0, mode, first_step);
  }, [&](const MixedList& l, MixedTypes ty, const MixedRun& run) {
    SgdScalars<float> s{float(lr), float(momentum), float(one_minus_dampening),
                        float(weight_decay), float(grad_sign)};
    return sgd_mixed_cpu<float>(l, ty, run, s, weight_decay != 0.0, mode, first_step);
  });
}

bool rmsprop_fast(py::object param, py::object grad, py::object square_avg, py::object grad_avg,
                  py::object buf, double lr, double alpha, double one_minus_alpha, double eps,
                  double weight_decay, double momentum, double grad_sign, bool centered,
                  const char* backend) {
  const FastRole roles[5] = {{param.ptr(), true}, {grad.ptr(), false}, {square_avg.ptr(), true},
                             {grad_avg.ptr(), true}, {buf.ptr(), true}};
  const bool use_momentum = momentum > 0.0;
  return fast_run(roles, backend,
                  kRole0 | kRole1 | kRole2 | (centered ? kRole3 : 0u) | (use_momentum ? kRole4 : 0u),
                  [&](const auto& l) {
    using T = std::remove_pointer_t<typename std::decay_t<decltype(l.ptrs[0])>::value_type>;
    RmspropScalars<T> s{T(lr), T(alpha), T(one_minus_alpha), T(eps), T(weight_decay), T(momentum),
                        T(grad_sign)};
    rmsprop_cpu(l, s, weight_decay != 0.0, centered, use_momentum);
  }, [&](const MixedList& l, MixedTypes ty, const MixedRun& run) {
    RmspropScalars<float> s{float(lr), float(alpha), float(one_minus_alpha), float(eps),
                            float(weight_decay), float(momentum), float(grad_sign)};
    return rmsprop_mixed_cpu<float>(l, ty, run, s, weight_decay != 0.0, centered, use_momentum);
  });
}

bool adam_fast(py::object param, py::object grad, py::object exp_avg, py::object exp_avg_sq,
               py::object max_exp_avg_sq, double beta1, double one_minus_beta1, double beta2,
               double one_minus_beta2, double eps, double weight_decay, double grad_sign,
               double step_size, double bc2_sqrt, double decay_factor, int weight_decay_mode,
               bool amsgrad, const char* backend) {
  const FastRole roles[5] = {{param.ptr(), true}, {grad.ptr(), false}, {exp_avg.ptr(), true},
                             {exp_avg_sq.ptr(), true}, {max_exp_avg_sq.ptr(), true}};
  return fast_run(roles, backend, kRole0 | kRole1 | kRole2 | kRole3 | (amsgrad ? kRole4 : 0u),
                  [&](const auto& l) {
    using T = std::remove_pointer_t<typename std::decay_t<decltype(l.ptrs[0])>::value_type>;
    AdamScalars<T> s{T(beta1), T(one_minus_beta1), T(beta2), T(one_minus_beta2), T(eps),
                     T(weight_decay), T(grad_sign), T(step_size), T(bc2_sqrt), T(decay_factor)};
    adam_cpu(l, s, weight_decay_mode, amsgrad);
  }, [&](const MixedList& l, MixedTypes ty, const MixedRun& run) {
    AdamScalars<float> s{float(beta1), float(one_minus_beta1), float(beta2),
                         float(one_minus_beta2), float(eps), float(weight_decay),
                         float(grad_sign), float(step_size), float(bc2_sqrt), float(decay_factor)};
    return adam_mixed_cpu<float>(l, ty, run, s, weight_decay_mode, amsgrad);
  });
}

bool adagrad_fast(py::object param, py::object grad, py::object state_sum, double clr, double eps,
                  double weight_decay, double grad_sign, const char* backend) {
  const FastRole roles[5] = {{param.ptr(), true}, {grad.ptr(), false}, {state_sum.ptr(), true},
                             {Py_None, true}, {Py_None, true}};
  return fast_run(roles, backend, kRole0 | kRole1 | kRole2, [&](const auto& l) {
    using T = std::remove_pointer_t<typename std::decay_t<decltype(l.ptrs[0])>::value_type>;
    AdagradScalars<T> s{T(clr), T(eps), T(weight_decay), T(grad_sign)};
    adagrad_cpu(l, s, weight_decay != 0.0);
  }, [&](const MixedList& l, MixedTypes ty, const MixedRun& run) {
    AdagradScalars<float> s{float(clr), float(eps), float(weight_decay), float(grad_sign)};
    return adagrad_mixed_cpu<float>(l, ty, run, s, weight_decay != 0.0);
  });
}

template <typename T>
void define(py::module_& m) {
  using py::arg;
  m.def("sgd_step", &sgd<T>, arg("params").noconvert(), arg("grads").noconvert(),
        arg("momentum_buffers").noconvert(), arg("lr"), arg("momentum"),
        arg("one_minus_dampening"), arg("weight_decay"), arg("grad_sign"), arg("nesterov"),
        arg("first_step"));
  m.def("rmsprop_step", &rmsprop<T>, arg("params").noconvert(), arg("grads").noconvert(),
        arg("square_avgs").noconvert(), arg("grad_avgs").noconvert(),
        arg("momentum_buffers").noconvert(), arg("lr"), arg("alpha"), arg("one_minus_alpha"),
        arg("eps"), arg("weight_decay"), arg("momentum"), arg("grad_sign"));
  m.def("adam_step", &adam<T>, arg("params").noconvert(), arg("grads").noconvert(),
        arg("exp_avgs").noconvert(), arg("exp_avg_sqs").noconvert(),
        arg("max_exp_avg_sqs").noconvert(), arg("beta1"), arg("one_minus_beta1"), arg("beta2"),
        arg("one_minus_beta2"), arg("eps"), arg("weight_decay"), arg("grad_sign"),
        arg("step_size"), arg("bc2_sqrt"), arg("decay_factor"), arg("weight_decay_mode"));
  m.def("adagrad_step", &adagrad<T>, arg("params").noconvert(), arg("grads").noconvert(),
        arg("state_sums").noconvert(), arg("clr"), arg("eps"), arg("weight_decay"),
        arg("grad_sign"));
}

}  // namespace

void register_optim(py::module_& m) {
  define<float>(m);
  define<double>(m);
  // Fast paths: return False (having touched nothing) when the call needs the
  // Python validator.
  m.def("sgd_step_fast", &sgd_fast);
  m.def("rmsprop_step_fast", &rmsprop_fast);
  m.def("adam_step_fast", &adam_fast);
  m.def("adagrad_step_fast", &adagrad_fast);
}

}  // namespace fastopt
