// pybind11 entry points of the gradient-clipping kernels (norm, scale). Lists
// of arrays (a single array is a list of one), validated by
// fastopt/functional/clipping.py.
#include "gil.h"
#include "../cpu/clipping_kernels.h"
#include "arrays.h"

#include <cmath>

namespace fastopt {
namespace {

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
  m.def("grad_norm", &grad_norm<T>, arg("grads").noconvert(), arg("kind"), arg("p"));
  m.def("scale", &scale<T>, arg("grads").noconvert(), arg("coef"));
}

}  // namespace

void register_clipping(py::module_& m) {
  define<float>(m);
  define<double>(m);
}

}  // namespace fastopt
