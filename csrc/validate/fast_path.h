// The fast path for small calls. fastopt/_validate.py is the one place that
// defines what is valid and what error a bad call gets; checking in Python
// costs ~6 us per call, more than a 1000-element Adam step. So the bindings
// first try this conservative native check: it accepts only calls that are
// plainly valid (exact ndarrays or lists of them, one float dtype or, for the
// optimizer steps, a 16-bit param with the type mixes fast_collect names, equal
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
  int dtype = -1;  // 0 float32, 1 float64 (all roles); with `mixed`, see `types`
  // A 16-bit parameter (optimizer steps only): the storage codes of
  // csrc/include/fastopt/mixed.h for param, grad and the state roles.
  bool mixed = false;
  int types[3] = {-1, -1, -1};
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

// The same test for every storage type: 0 float32, 1 float64, 2 bfloat16, 3
// float16 (csrc/include/fastopt/mixed.h), or -1.
int fast_storage_code(PyObject* obj, bool output);

// The NumPy dtype of a storage code (csrc/bindings/optim_mixed.cpp).
PyObject* storage_dtype(int code);

// The element count of an array fast_storage_code accepted.
std::size_t fast_element_count(PyObject* a);

// An uninitialised C-order array of a's shape and storage type `code`, from the
// buffer cache (csrc/cpu/buffers.h), as the validated path's v.empty_like makes it.
py::array fast_empty_like(PyObject* a, int code);

// True when no two of the arrays' memory spans overlap; every entry is None
// (skipped) or an array fast_plain_array accepted.
bool fast_disjoint(std::initializer_list<PyObject*> arrays);

// True when the C++ backend is what backend= (or FASTOPT_BACKEND for "auto") selects.
bool fast_backend_selected(const char* backend);

// Collects roles (the first is the reference: single array or list) into
// pointer rows; None roles leave nullptr. False when anything is not plainly valid.
// Roles 0 and 1 are param and grad, the others states: one float dtype
// throughout, or (mixed) a bfloat16/float16 param with a grad of its type or
// float32 and every state of one type, the param's or float32 (the rule of
// fastopt/_precision.py for a call without a master).
template <int K>
bool fast_collect(const FastRole (&roles)[K], FastCall<K>& call);

}  // namespace fastopt
