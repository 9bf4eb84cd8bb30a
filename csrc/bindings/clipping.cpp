// pybind11 entry points of the gradient-clipping kernels (norm, scale). Lists
// of arrays (a single array is a list of one), validated by
// fastopt/functional/clipping.py.
#include "gil.h"
#include "../cpu/clipping_kernels.h"
#include "../validate/fast_path.h"
#include "arrays.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

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

// ---- fast path (fast_path.h): a plain float32/float64 array, or a non-empty list
// of them of one dtype, writeable (when scaled) and disjoint; None sends the call to
// Python, which also raises for a non-finite norm with error_if_nonfinite.
struct FastGrads {
  int dtype = -1;
  std::vector<void*> ptrs;
  std::vector<std::size_t> sizes;
  std::vector<py::object> members;   // list items stay alive while the GIL is released
};

bool fast_grads(PyObject* grads, bool writeable, FastGrads& out) {
  const bool is_list = PyList_CheckExact(grads);
  const Py_ssize_t count = is_list ? PyList_GET_SIZE(grads) : 1;
  if (count == 0) return false;
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> spans;
  for (Py_ssize_t t = 0; t < count; ++t) {
    PyObject* a = is_list ? PyList_GET_ITEM(grads, t) : grads;
    const int d = fast_storage_code(a, writeable);
    if (d < 0 || d > 1 || (out.dtype >= 0 && d != out.dtype)) return false;
    out.dtype = d;
    auto* p = py::detail::array_proxy(a);
    const std::size_t n = fast_element_count(a);
    out.ptrs.push_back(p->data);
    out.sizes.push_back(n);
    if (is_list) out.members.push_back(py::reinterpret_borrow<py::object>(a));
    const auto start = reinterpret_cast<std::uintptr_t>(p->data);
    if (n) spans.emplace_back(start, start + n * (d == 0 ? 4u : 8u));
  }
  std::sort(spans.begin(), spans.end());
  for (std::size_t k = 1; k < spans.size(); ++k)
    if (spans[k].first < spans[k - 1].second) return false;
  return true;
}

int norm_kind(double norm_type) {   // fastopt/backends/cpp/clipping.py norm_kind
  if (std::isinf(norm_type)) return 2;
  return norm_type == 2.0 ? 0 : (norm_type == 1.0 ? 1 : 3);
}

template <typename T>
GradList<T> fast_grad_list(const FastGrads& g) {
  GradList<T> l;
  l.sizes = g.sizes;
  l.ptrs.resize(g.ptrs.size());
  for (std::size_t t = 0; t < g.ptrs.size(); ++t) l.ptrs[t] = {static_cast<T*>(g.ptrs[t])};
  return l;
}

template <typename T>
double fast_norm(const FastGrads& g, int kind, double p) {
  const GradList<T> l = fast_grad_list<T>(g);
  ReleaseGil nogil;
  return norm_finish(kind, norm_cpu(l, kind, p), p);
}

template <typename T>
void fast_scale(const FastGrads& g, double coef) {
  const GradList<T> l = fast_grad_list<T>(g);
  ReleaseGil nogil;
  scale_cpu(l, T(coef));
}

py::object grad_norm_fast(py::object grads, double norm_type, const char* backend) {
  FastGrads g;
  if (!fast_backend_selected(backend) || !fast_grads(grads.ptr(), false, g)) return py::none();
  const int kind = norm_kind(norm_type);
  return py::float_(g.dtype == 0 ? fast_norm<float>(g, kind, norm_type)
                                 : fast_norm<double>(g, kind, norm_type));
}

// fastopt/functional/clipping.py clip(): the norm, then the scale when coef < 1 (or NaN).
py::object clip_fast(py::object grads, double max_norm, double norm_type, bool error_if_nonfinite,
                     const char* backend, bool /*sync: CPU arrays return a float either way*/) {
  FastGrads g;
  if (!fast_backend_selected(backend) || !fast_grads(grads.ptr(), true, g)) return py::none();
  const int kind = norm_kind(norm_type);
  const double norm = g.dtype == 0 ? fast_norm<float>(g, kind, norm_type)
                                   : fast_norm<double>(g, kind, norm_type);
  if (error_if_nonfinite && !std::isfinite(norm)) return py::none();   // Python raises
  const double coef = max_norm / (norm + 1e-6);
  if (!(coef >= 1.0)) {
    if (g.dtype == 0) fast_scale<float>(g, coef);
    else fast_scale<double>(g, coef);
  }
  return py::float_(norm);
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
  m.def("grad_norm_fast", &grad_norm_fast, py::arg("grads"), py::arg("norm_type"),
        py::arg("backend"));
  m.def("clip_grad_norm_fast", &clip_fast, py::arg("grads"), py::arg("max_norm"),
        py::arg("norm_type"), py::arg("error_if_nonfinite"), py::arg("backend"), py::arg("sync"));
}

}  // namespace fastopt
