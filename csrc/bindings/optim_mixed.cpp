// pybind11 entry points of the mixed-precision optimizer steps
// (csrc/cpu/optim_mixed.h): 16-bit params, float32 masters, stochastic
// rounding and the in-kernel gradient unscale. Arrays come as plain
// ndarrays (bfloat16 is ml_dtypes.bfloat16, which pybind11 has no type for),
// never converted; fastopt/_validate.py has checked them, and the checks here
// (dtype, C order, writeable, size) only keep a wrong call from touching
// memory it does not own.
#include <optional>
#include <vector>

#include "../cpu/optim_mixed.h"
#include "arrays.h"
#include "gil.h"

namespace fastopt {

// Also used by the 8-bit steps' bindings (quantized.cpp).
PyObject* storage_dtype(int code) {
  static PyObject* f32 = py::dtype::of<float>().release().ptr();
  static PyObject* f64 = py::dtype::of<double>().release().ptr();
  static PyObject* f16 = py::dtype("float16").release().ptr();
  static PyObject* bf16 =
      py::dtype::from_args(py::module_::import("ml_dtypes").attr("bfloat16")).release().ptr();
  switch (code) {
    case kF32: return f32;
    case kF64: return f64;
    case kBF16: return bf16;
    case kF16: return f16;
    default: throw py::value_error("unknown storage type code");
  }
}

namespace {

using Arrays = std::vector<py::array>;
using OptArrays = std::optional<Arrays>;

void fill(MixedList& l, Arrays& arrays, int role, int code, bool write, const char* name) {
  if (arrays.size() != l.sizes.size()) throw py::value_error(std::string(name) + ": list length");
  const py::dtype expected = py::reinterpret_borrow<py::dtype>(storage_dtype(code));
  for (std::size_t t = 0; t < arrays.size(); ++t) {
    py::array& a = arrays[t];
    if (!a.dtype().equal(expected))
      throw py::type_error(std::string(name) + ": dtype does not match its storage type code");
    if (!(a.flags() & py::array::c_style) || static_cast<std::size_t>(a.size()) != l.sizes[t])
      throw py::value_error(std::string(name) + ": not C-contiguous or of the wrong size");
    l.ptrs[t][role] = write ? a.mutable_data() : const_cast<void*>(a.data());
  }
}

MixedList make_list(Arrays& params, Arrays& grads, MixedTypes ty, OptArrays& masters) {
  MixedList l;
  l.ptrs.assign(params.size(), {nullptr, nullptr, nullptr, nullptr, nullptr, nullptr});
  l.sizes.resize(params.size());
  for (std::size_t t = 0; t < params.size(); ++t) l.sizes[t] = static_cast<std::size_t>(params[t].size());
  fill(l, params, 0, ty.param, true, "params");
  fill(l, grads, 1, ty.grad, false, "grads");
  if (masters) fill(l, *masters, 5, kF32, true, "masters");
  return l;
}

void fill_state(MixedList& l, OptArrays& arrays, int role, MixedTypes ty, const char* name) {
  if (arrays) fill(l, *arrays, role, ty.state, true, name);
}

MixedRun make_run(bool has_master, bool stochastic, double grad_scale, std::uint64_t seed,
                  std::uint64_t step) {
  const int mode = has_master ? kFromMaster : (stochastic ? kStochastic : kRoundNearest);
  return MixedRun{mode, grad_scale, seed, step};
}

// Runs body(C{}) with C the compute type of the parameter type.
template <typename Body>
void with_compute(int param_code, const Body& body) {
  bool ok;
  if (param_code == kF64) {
    ReleaseGil nogil;
    ok = body(double{});
  } else {
    ReleaseGil nogil;
    ok = body(float{});
  }
  if (!ok) throw py::type_error("unsupported combination of storage types");
}

void sgd(Arrays params, Arrays grads, OptArrays bufs, OptArrays masters, MixedTypes ty, double lr,
         double momentum, double one_minus_dampening, double weight_decay, double grad_sign,
         bool nesterov, bool first_step, double grad_scale, bool stochastic, std::uint64_t seed,
         std::uint64_t step) {
  auto l = make_list(params, grads, ty, masters);
  const int mode = momentum == 0.0 ? 0 : (nesterov ? 2 : 1);
  if (mode) fill_state(l, bufs, 2, ty, "momentum_buffers");
  const MixedRun run = make_run(masters.has_value(), stochastic, grad_scale, seed, step);
  with_compute(ty.param, [&](auto c) {
    using C = decltype(c);
    SgdScalars<C> s{C(lr), C(momentum), C(one_minus_dampening), C(weight_decay), C(grad_sign)};
    return sgd_mixed_cpu<C>(l, ty, run, s, weight_decay != 0.0, mode, first_step);
  });
}

void rmsprop(Arrays params, Arrays grads, Arrays square_avgs, OptArrays grad_avgs, OptArrays bufs,
             OptArrays masters, MixedTypes ty, double lr, double alpha, double one_minus_alpha,
             double eps, double weight_decay, double momentum, double grad_sign,
             double grad_scale, bool stochastic, std::uint64_t seed, std::uint64_t step) {
  auto l = make_list(params, grads, ty, masters);
  OptArrays sq{std::move(square_avgs)};
  fill_state(l, sq, 2, ty, "square_avgs");
  fill_state(l, grad_avgs, 3, ty, "grad_avgs");
  fill_state(l, bufs, 4, ty, "momentum_buffers");
  const MixedRun run = make_run(masters.has_value(), stochastic, grad_scale, seed, step);
  with_compute(ty.param, [&](auto c) {
    using C = decltype(c);
    RmspropScalars<C> s{C(lr), C(alpha), C(one_minus_alpha), C(eps), C(weight_decay),
                        C(momentum), C(grad_sign)};
    return rmsprop_mixed_cpu<C>(l, ty, run, s, weight_decay != 0.0, grad_avgs.has_value(),
                                bufs.has_value());
  });
}

void adam(Arrays params, Arrays grads, Arrays exp_avgs, Arrays exp_avg_sqs,
          OptArrays max_exp_avg_sqs, OptArrays masters, MixedTypes ty, double beta1,
          double one_minus_beta1, double beta2, double one_minus_beta2, double eps,
          double weight_decay, double grad_sign, double step_size, double bc2_sqrt,
          double decay_factor, int weight_decay_mode, double grad_scale, bool stochastic,
          std::uint64_t seed, std::uint64_t step) {
  auto l = make_list(params, grads, ty, masters);
  OptArrays m{std::move(exp_avgs)}, v{std::move(exp_avg_sqs)};
  fill_state(l, m, 2, ty, "exp_avgs");
  fill_state(l, v, 3, ty, "exp_avg_sqs");
  fill_state(l, max_exp_avg_sqs, 4, ty, "max_exp_avg_sqs");
  const MixedRun run = make_run(masters.has_value(), stochastic, grad_scale, seed, step);
  with_compute(ty.param, [&](auto c) {
    using C = decltype(c);
    AdamScalars<C> s{C(beta1), C(one_minus_beta1), C(beta2), C(one_minus_beta2), C(eps),
                     C(weight_decay), C(grad_sign), C(step_size), C(bc2_sqrt), C(decay_factor)};
    return adam_mixed_cpu<C>(l, ty, run, s, weight_decay_mode, max_exp_avg_sqs.has_value());
  });
}

void adagrad(Arrays params, Arrays grads, Arrays state_sums, OptArrays masters, MixedTypes ty,
             double clr, double eps, double weight_decay, double grad_sign, double grad_scale,
             bool stochastic, std::uint64_t seed, std::uint64_t step) {
  auto l = make_list(params, grads, ty, masters);
  OptArrays sums{std::move(state_sums)};
  fill_state(l, sums, 2, ty, "state_sums");
  const MixedRun run = make_run(masters.has_value(), stochastic, grad_scale, seed, step);
  with_compute(ty.param, [&](auto c) {
    using C = decltype(c);
    AdagradScalars<C> s{C(clr), C(eps), C(weight_decay), C(grad_sign)};
    return adagrad_mixed_cpu<C>(l, ty, run, s, weight_decay != 0.0);
  });
}

}  // namespace

void register_optim_mixed(py::module_& m) {
  using py::arg;
  py::class_<MixedTypes>(m, "MixedTypes")
      .def(py::init([](int p, int g, int s) { return MixedTypes{p, g, s}; }), arg("param"),
           arg("grad"), arg("state"));
  // Same arguments as the float32/float64 entry points, with the masters after
  // the states, the storage type codes, and the mixed-precision options last.
  m.def("sgd_step_mixed", &sgd, arg("params").noconvert(), arg("grads").noconvert(),
        arg("momentum_buffers").noconvert(), arg("masters").noconvert(), arg("types"), arg("lr"),
        arg("momentum"), arg("one_minus_dampening"), arg("weight_decay"), arg("grad_sign"),
        arg("nesterov"), arg("first_step"), arg("grad_scale"), arg("stochastic_rounding"),
        arg("seed"), arg("step"));
  m.def("rmsprop_step_mixed", &rmsprop, arg("params").noconvert(), arg("grads").noconvert(),
        arg("square_avgs").noconvert(), arg("grad_avgs").noconvert(),
        arg("momentum_buffers").noconvert(), arg("masters").noconvert(), arg("types"), arg("lr"),
        arg("alpha"), arg("one_minus_alpha"), arg("eps"), arg("weight_decay"), arg("momentum"),
        arg("grad_sign"), arg("grad_scale"), arg("stochastic_rounding"), arg("seed"),
        arg("step"));
  m.def("adam_step_mixed", &adam, arg("params").noconvert(), arg("grads").noconvert(),
        arg("exp_avgs").noconvert(), arg("exp_avg_sqs").noconvert(),
        arg("max_exp_avg_sqs").noconvert(), arg("masters").noconvert(), arg("types"),
        arg("beta1"), arg("one_minus_beta1"), arg("beta2"), arg("one_minus_beta2"), arg("eps"),
        arg("weight_decay"), arg("grad_sign"), arg("step_size"), arg("bc2_sqrt"),
        arg("decay_factor"), arg("weight_decay_mode"), arg("grad_scale"),
        arg("stochastic_rounding"), arg("seed"), arg("step"));
  m.def("adagrad_step_mixed", &adagrad, arg("params").noconvert(), arg("grads").noconvert(),
        arg("state_sums").noconvert(), arg("masters").noconvert(), arg("types"), arg("clr"),
        arg("eps"), arg("weight_decay"), arg("grad_sign"), arg("grad_scale"),
        arg("stochastic_rounding"), arg("seed"), arg("step"));
}

}  // namespace fastopt
