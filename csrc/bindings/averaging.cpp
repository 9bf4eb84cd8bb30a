// pybind11 entry point of the EMA kernel. Lists of arrays (a single array is
// a list of one), validated by fastopt/functional/averaging.py.
#include "gil.h"
#include "../cpu/averaging_kernels.h"
#include "../validate/fast_path.h"
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

// The fast path (fast_path.h): avg (written) and param (read), arrays or equal
// lists of one float32/float64 dtype, plainly valid; false sends the call to Python.
template <typename T>
void ema_fast_run(const FastCall<5>& c, double decay) {
  EmaList<T> l;
  l.sizes = c.sizes;
  l.ptrs.resize(c.ptrs.size());
  for (std::size_t t = 0; t < c.ptrs.size(); ++t)
    l.ptrs[t] = {static_cast<T*>(c.ptrs[t][0]), static_cast<T*>(c.ptrs[t][1])};
  EmaScalars<T> s{T(decay), T(1.0 - decay)};
  ReleaseGil nogil;
  ema_cpu(l, s);
}

bool ema_fast(py::object avg, py::object param, double decay, const char* backend) {
  if (!fast_backend_selected(backend)) return false;
  const FastRole roles[5] = {{avg.ptr(), true}, {param.ptr(), false}, {Py_None, true},
                             {Py_None, true}, {Py_None, true}};
  FastCall<5> c;
  if (!fast_collect(roles, c) || c.mixed) return false;   // (the EMA takes no 16-bit arrays)
  if (c.dtype == 0) {
    ema_fast_run<float>(c, decay);
  } else {
    ema_fast_run<double>(c, decay);
  }
  return true;
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
  m.def("ema_update_fast", &ema_fast, py::arg("avg"), py::arg("param"), py::arg("decay"),
        py::arg("backend"));
}

}  // namespace fastopt
