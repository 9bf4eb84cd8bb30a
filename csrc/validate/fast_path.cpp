#include "fast_path.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace fastopt {
namespace {

PyObject* float_descr(int dtype) {
  static PyObject* f32 = py::dtype::of<float>().release().ptr();
  static PyObject* f64 = py::dtype::of<double>().release().ptr();
  return dtype == 0 ? f32 : f64;
}

// Exact ndarray, a native float dtype, C-contiguous, aligned, writeable if
// written. Returns the array's dtype code (0/1) or -1.
int plain_array(PyObject* obj, bool output) {
  auto& api = py::detail::npy_api::get();
  if (Py_TYPE(obj) != api.PyArray_Type_) return -1;
  auto* proxy = py::detail::array_proxy(obj);
  const int need = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_ |
                   (output ? py::detail::npy_api::NPY_ARRAY_WRITEABLE_ : 0);
  if ((proxy->flags & need) != need) return -1;
  PyObject* descr = reinterpret_cast<PyObject*>(proxy->descr);
  if (descr == float_descr(0)) return 0;
  if (descr == float_descr(1)) return 1;
  return -1;
}

bool same_shape(PyObject* a, PyObject* b) {
  auto* pa = py::detail::array_proxy(a);
  auto* pb = py::detail::array_proxy(b);
  if (pa->nd != pb->nd) return false;
  return std::equal(pa->dimensions, pa->dimensions + pa->nd, pb->dimensions);
}

std::size_t element_count(PyObject* a) {
  auto* p = py::detail::array_proxy(a);
  std::size_t n = 1;
  for (int i = 0; i < p->nd; ++i) n *= static_cast<std::size_t>(p->dimensions[i]);
  return n;
}

std::pair<std::uintptr_t, std::uintptr_t> span_of(PyObject* a) {
  auto* p = py::detail::array_proxy(a);
  const auto start = reinterpret_cast<std::uintptr_t>(p->data);
  return {start, start + element_count(a) * (p->descr == float_descr(0) ? 4u : 8u)};
}

}  // namespace

int fast_plain_array(PyObject* obj, bool output) { return plain_array(obj, output); }

bool fast_disjoint(std::initializer_list<PyObject*> arrays) {
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> spans;
  for (PyObject* a : arrays) {
    if (a == Py_None) continue;
    const auto s = span_of(a);
    if (s.second > s.first) spans.push_back(s);
  }
  std::sort(spans.begin(), spans.end());
  for (std::size_t k = 1; k < spans.size(); ++k)
    if (spans[k].first < spans[k - 1].second) return false;
  return true;
}

bool fast_backend_selected(const char* backend) {
  if (std::strcmp(backend, "cpp") == 0) return true;
  if (std::strcmp(backend, "auto") != 0) return false;
  const char* env = std::getenv("FASTOPT_BACKEND");
  return env == nullptr || env[0] == '\0' || std::strcmp(env, "auto") == 0 || std::strcmp(env, "cpp") == 0;
}

template <int K>
bool fast_collect(const FastRole (&roles)[K], FastCall<K>& call) {
  PyObject* ref = roles[0].obj;
  const bool is_list = PyList_CheckExact(ref);
  const Py_ssize_t count = is_list ? PyList_GET_SIZE(ref) : 1;
  call.ptrs.assign(static_cast<std::size_t>(count), std::array<void*, K>{});
  call.sizes.assign(static_cast<std::size_t>(count), 0);
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> spans;
  spans.reserve(static_cast<std::size_t>(count) * K);
  call.members.clear();
  if (is_list) call.members.reserve(static_cast<std::size_t>(count) * K);
  int dtype = -1;
  for (int r = 0; r < K; ++r) {
    PyObject* obj = roles[r].obj;
    if (obj == Py_None) {
      if (r < 2) return false;
      continue;
    }
    if (is_list != static_cast<bool>(PyList_CheckExact(obj))) return false;
    if (is_list && PyList_GET_SIZE(obj) != count) return false;
    for (Py_ssize_t t = 0; t < count; ++t) {
      PyObject* a = is_list ? PyList_GET_ITEM(obj, t) : obj;
      PyObject* a_ref = is_list ? PyList_GET_ITEM(ref, t) : ref;
      const int d = plain_array(a, roles[r].output);
      if (d < 0 || (dtype >= 0 && d != dtype)) return false;
      dtype = d;
      if (r > 0 && !same_shape(a, a_ref)) return false;
      auto* proxy = py::detail::array_proxy(a);
      const std::size_t n = element_count(a);
      if (is_list) call.members.push_back(py::reinterpret_borrow<py::object>(a));
      call.ptrs[t][r] = proxy->data;
      if (r == 0) call.sizes[t] = n;
      if (n) {
        const auto start = reinterpret_cast<std::uintptr_t>(proxy->data);
        spans.emplace_back(start, start + n * (d == 0 ? 4 : 8));
      }
    }
  }
  std::sort(spans.begin(), spans.end());
  for (std::size_t k = 1; k < spans.size(); ++k)
    if (spans[k].first < spans[k - 1].second) return false;
  call.dtype = dtype < 0 ? 0 : dtype;
  return true;
}

template bool fast_collect<5>(const FastRole (&)[5], FastCall<5>&);

}  // namespace fastopt

namespace fastopt {

void register_fast_path(py::module_& m) {
  // The fast path's check alone, for callers that must check several calls
  // before running any (fastopt/optim/optimizer.py: every group of a step).
  m.def("plainly_valid", [](py::object param, py::object grad, py::object s0, py::object s1,
                            py::object s2) {
    const FastRole roles[5] = {{param.ptr(), true}, {grad.ptr(), false}, {s0.ptr(), true},
                               {s1.ptr(), true}, {s2.ptr(), true}};
    FastCall<5> call;
    return fast_collect(roles, call);
  }, py::arg("param"), py::arg("grad"), py::arg("state0") = py::none(),
     py::arg("state1") = py::none(), py::arg("state2") = py::none(),
     "True when the arrays (or equal-length lists) are exact ndarrays of one float dtype, equal "
     "shapes, C-contiguous, aligned, writeable where written and disjoint; False says 'ask "
     "fastopt._validate'.");
}

}  // namespace fastopt
