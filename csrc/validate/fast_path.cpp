#include "fast_path.h"

#include "../cpu/buffers.h"

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

// Exact ndarray, C-contiguous, aligned, writeable if written, of a storage
// type: returns its code (csrc/include/fastopt/mixed.h: 0 float32, 1 float64,
// 2 bfloat16, 3 float16) or -1.
int plain_code(PyObject* obj, bool output) {
  auto& api = py::detail::npy_api::get();
  if (Py_TYPE(obj) != api.PyArray_Type_) return -1;
  auto* proxy = py::detail::array_proxy(obj);
  const int need = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_ |
                   (output ? py::detail::npy_api::NPY_ARRAY_WRITEABLE_ : 0);
  if ((proxy->flags & need) != need) return -1;
  PyObject* descr = reinterpret_cast<PyObject*>(proxy->descr);
  if (descr == float_descr(0)) return 0;
  if (descr == float_descr(1)) return 1;
  if (descr == storage_dtype(2)) return 2;
  if (descr == storage_dtype(3)) return 3;
  return -1;
}

// The same for the float32/float64 callers (batch norm): 0, 1 or -1.
int plain_array(PyObject* obj, bool output) {
  const int d = plain_code(obj, output);
  return d < 2 ? d : -1;
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
  PyObject* descr = reinterpret_cast<PyObject*>(p->descr);
  const std::size_t size = descr == float_descr(0) ? 4u : (descr == float_descr(1) ? 8u : 2u);
  return {start, start + element_count(a) * size};   // (16-bit: fast_storage_code's types)
}

std::size_t item_size(int code) { return code == 0 ? 4u : (code == 1 ? 8u : 2u); }

}  // namespace

int fast_plain_array(PyObject* obj, bool output) { return plain_array(obj, output); }

int fast_storage_code(PyObject* obj, bool output) { return plain_code(obj, output); }

std::size_t fast_element_count(PyObject* a) { return element_count(a); }

py::array fast_empty_like(PyObject* a, int code) {
  auto* p = py::detail::array_proxy(a);
  return cached_empty(std::vector<py::ssize_t>(p->dimensions, p->dimensions + p->nd),
                      py::reinterpret_borrow<py::dtype>(storage_dtype(code)));
}

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
  int codes[K];
  for (int r = 0; r < K; ++r) {
    codes[r] = -1;
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
      const int d = plain_code(a, roles[r].output);
      if (d < 0 || (codes[r] >= 0 && d != codes[r])) return false;
      codes[r] = d;
      if (r > 0 && !same_shape(a, a_ref)) return false;
      auto* proxy = py::detail::array_proxy(a);
      const std::size_t n = element_count(a);
      if (is_list) call.members.push_back(py::reinterpret_borrow<py::object>(a));
      call.ptrs[t][r] = proxy->data;
      if (r == 0) call.sizes[t] = n;
      if (n) {
        const auto start = reinterpret_cast<std::uintptr_t>(proxy->data);
        spans.emplace_back(start, start + n * item_size(d));
      }
    }
  }
  const int p = codes[0], g = codes[1];
  int s = -1;
  for (int r = 2; r < K; ++r) {
    if (codes[r] < 0) continue;
    if (s >= 0 && codes[r] != s) return false;
    s = codes[r];
  }
  if (p < 2) {   // float32/float64 (or an empty list): one dtype throughout
    if ((g >= 0 && g != p) || (s >= 0 && s != p)) return false;
    call.dtype = p < 0 ? 0 : p;
    call.mixed = false;
  } else {
    if ((g != p && g != 0) || (s >= 0 && s != p && s != 0)) return false;
    call.dtype = 0;
    call.mixed = true;
    call.types[0] = p;
    call.types[1] = g;
    call.types[2] = s < 0 ? p : s;
  }
  std::sort(spans.begin(), spans.end());
  for (std::size_t k = 1; k < spans.size(); ++k)
    if (spans[k].first < spans[k - 1].second) return false;
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
    return fast_collect(roles, call) && !call.mixed;
  }, py::arg("param"), py::arg("grad"), py::arg("state0") = py::none(),
     py::arg("state1") = py::none(), py::arg("state2") = py::none(),
     "True when the arrays (or equal-length lists) are exact ndarrays of one float dtype, equal "
     "shapes, C-contiguous, aligned, writeable where written and disjoint; False says 'ask "
     "fastopt._validate'.");

  // The same check with each role's dtype given (a 16-bit parameter, float32 state, a float32
  // master): the optimizer classes' plans of mixed-precision groups, whose types the full
  // validator accepted once. A dtype is matched by identity of its descriptor (NumPy's and
  // ml_dtypes' are singletons; any other object only sends the call to the checked path).
  m.def("plainly_typed", [](py::tuple roles, py::tuple dtypes, py::tuple itemsizes,
                            py::tuple outputs) {
    const Py_ssize_t k = PyTuple_GET_SIZE(roles.ptr());
    if (k < 2 || PyTuple_GET_SIZE(dtypes.ptr()) != k || PyTuple_GET_SIZE(itemsizes.ptr()) != k ||
        PyTuple_GET_SIZE(outputs.ptr()) != k)
      return false;
    auto& api = py::detail::npy_api::get();
    PyObject* ref = PyTuple_GET_ITEM(roles.ptr(), 0);
    if (!PyList_CheckExact(ref)) return false;
    const Py_ssize_t count = PyList_GET_SIZE(ref);
    std::vector<std::pair<std::uintptr_t, std::uintptr_t>> spans;
    spans.reserve(static_cast<std::size_t>(count * k));
    for (Py_ssize_t r = 0; r < k; ++r) {
      PyObject* role = PyTuple_GET_ITEM(roles.ptr(), r);
      if (role == Py_None) {
        if (r < 2) return false;
        continue;
      }
      if (!PyList_CheckExact(role) || PyList_GET_SIZE(role) != count) return false;
      PyObject* descr = PyTuple_GET_ITEM(dtypes.ptr(), r);
      const std::size_t itemsize = PyLong_AsSize_t(PyTuple_GET_ITEM(itemsizes.ptr(), r));
      if (itemsize == static_cast<std::size_t>(-1)) {
        PyErr_Clear();
        return false;
      }
      const bool output = PyObject_IsTrue(PyTuple_GET_ITEM(outputs.ptr(), r)) == 1;
      const int need = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ |
                       py::detail::npy_api::NPY_ARRAY_ALIGNED_ |
                       (output ? py::detail::npy_api::NPY_ARRAY_WRITEABLE_ : 0);
      for (Py_ssize_t t = 0; t < count; ++t) {
        PyObject* a = PyList_GET_ITEM(role, t);
        if (Py_TYPE(a) != api.PyArray_Type_) return false;
        auto* proxy = py::detail::array_proxy(a);
        if ((proxy->flags & need) != need) return false;
        if (reinterpret_cast<PyObject*>(proxy->descr) != descr) return false;
        if (r > 0 && !same_shape(a, PyList_GET_ITEM(ref, t))) return false;
        const std::size_t n = element_count(a);
        if (n) {
          const auto start = reinterpret_cast<std::uintptr_t>(proxy->data);
          spans.emplace_back(start, start + n * itemsize);
        }
      }
    }
    std::sort(spans.begin(), spans.end());
    for (std::size_t j = 1; j < spans.size(); ++j)
      if (spans[j].first < spans[j - 1].second) return false;
    return true;
  }, py::arg("roles"), py::arg("dtypes"), py::arg("itemsizes"), py::arg("outputs"),
     "True when each role (a list, or None past the first two) holds exact ndarrays of the "
     "role's dtype (by descriptor identity) and the first role's shapes, C-contiguous, aligned, "
     "writeable where written, all disjoint; False says 'ask fastopt._validate'.");
}

}  // namespace fastopt
