// pybind11 entry points of the EMA and gradient-clipping kernels. Lists of
// arrays (a single array is a list of one), validated by fastopt/utils.py.
#include "gil.h"
#include "../cpu/utils_kernels.h"
#include "arrays.h"

#include <cmath>

namespace fastopt {
namespace {

template <typename T>
void ema(ArrayList<T> avgs, const ArrayList<T> params, double decay, double one_minus_decay) {
  EmaList<T> l;
  l.ptrs.assign(avgs.size(), {nullptr, nullptr});
  l.sizes.resize(avgs.size());
  for (std::size_t t = 0; t < avgs.size(); ++t) l.sizes[t] = static_cast<std::size_t>(avgs[t].size());
  fill_role(l.ptrs, avgs, 0);
  fill_role_const(l.ptrs, params, 1);
  EmaScalars<T> s{T(decay), T(one_minus_decay)};
  ReleaseGil nogil;
  ema_cpu(l, s);
}

template <typename T>
GradList<T> grad_list(ArrayList<T>& grads, bool writable) {
  GradList<T> l;
  l.ptrs.assign(grads.size(), {nullptr});
  l.sizes.resize(grads.size());
  for (std::size_t t = 0; t < grads.size(); ++t) l.sizes[t] = static_cast<std::size_t>(grads[t].size());
  if (writable) fill_role(l.ptrs, grads, 0);
  else fill_role_const(l.ptrs, grads, 0);
  return l;
}

// Returns the finished norm (double).
template <typename T>
double grad_norm(ArrayList<T> grads, int kind, double p) {
  auto l = grad_list(grads, false);
  ReleaseGil nogil;
  return norm_finish(kind, norm_cpu(l, kind, p), p);
}

template <typename T>
void scale(ArrayList<T> grads, double coef) {
  auto l = grad_list(grads, true);
  ReleaseGil nogil;
  scale_cpu(l, T(coef));
}

template <typename T>
void define(py::module_& m) {
  using py::arg;
  m.def("ema_update", &ema<T>, arg("avgs").noconvert(), arg("params").noconvert(), arg("decay"),
        arg("one_minus_decay"));
  m.def("grad_norm", &grad_norm<T>, arg("grads").noconvert(), arg("kind"), arg("p"));
  m.def("scale", &scale<T>, arg("grads").noconvert(), arg("coef"));
}

}  // namespace

void register_utils(py::module_& m) {
  define<float>(m);
  define<double>(m);
}

}  // namespace fastopt
