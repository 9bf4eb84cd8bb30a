// pybind11 entry point of the EMA kernel. Lists of arrays (a single array is
// a list of one), validated by fastopt/functional/averaging.py.
#include "gil.h"
#include "../cpu/averaging_kernels.h"
#include "arrays.h"

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
void define(py::module_& m) {
  using py::arg;
  m.def("ema_update", &ema<T>, arg("avgs").noconvert(), arg("params").noconvert(), arg("decay"),
        arg("one_minus_decay"));
}

}  // namespace

void register_averaging(py::module_& m) {
  define<float>(m);
  define<double>(m);
}

}  // namespace fastopt
