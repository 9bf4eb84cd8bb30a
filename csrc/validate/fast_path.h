// The fast path for small calls. fastopt/_validate.py is the one place that
// defines what is valid and what error a bad call gets; checking in Python
// costs ~6 us per call, more than a 1000-element Adam step. So the bindings
// first try this conservative native check: it accepts only calls that are
// plainly valid (exact ndarrays or lists of them, one float dtype, equal
// shapes, C-contiguous, writeable outputs, aligned, no overlap) and runs them
// on the cpp backend. Anything else returns false and the Python validator
// takes over and raises the precise error. tests/test_fast_path.py checks
// that every bad call in the error tables is refused here.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cstddef>
#include <initializer_list>
#include <vector>

namespace fastopt {
namespace py = pybind11;

// One role of a call: the object passed, whether it is written, whether None is allowed.
struct FastRole {
  PyObject* obj;
  bool output;
};

template <int K>
struct FastCall {
  int dtype = -1;  // 0 float32, 1 float64
  std::vector<std::array<void*, K>> ptrs;
  std::vector<std::size_t> sizes;
  // A reference to every list member whose pointer is in ptrs: while the GIL
  // is released another thread may replace a list item (P[0] = ...), which
  // would otherwise free the array the kernel is writing. Destroyed (the
  // references dropped) only after the GIL is back.
  std::vector<py::object> members;
};

// Exact ndarray, float32 (0) or float64 (1), C-contiguous, aligned, writeable
// if `output`; -1 otherwise.
int fast_plain_array(PyObject* obj, bool output);

// True when no two of the arrays' memory spans overlap; every entry is None
// (skipped) or an array fast_plain_array accepted.
bool fast_disjoint(std::initializer_list<PyObject*> arrays);

// True when the C++ backend is what backend= (or FASTOPT_BACKEND for "auto") selects.
bool fast_backend_selected(const char* backend);

// Collects roles (the first is the reference: single array or list) into
// pointer rows; None roles leave nullptr. False when anything is not plainly valid.
template <int K>
bool fast_collect(const FastRole (&roles)[K], FastCall<K>& call);

}  // namespace fastopt
