// Turning Python lists of NumPy arrays into raw pointers for the CPU loops.
// Python (fastopt/_validate.py) has already checked dtype, shape, contiguity,
// writeability and aliasing; here array_t<T, c_style> with .noconvert() in
// the signatures guarantees no argument is ever silently copied.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <vector>

namespace fastopt {
namespace py = pybind11;

template <typename T>
using Array = py::array_t<T, py::array::c_style>;
template <typename T>
using ArrayList = std::vector<Array<T>>;
template <typename T>
using OptionalArrayList = std::optional<ArrayList<T>>;

template <typename T>
T* data_of(Array<T>& a) {
  return a.mutable_data();  // raises if not writeable
}

// Fills role `role` of every tensor of `ptrs` from `arrays` (same count).
template <typename T, typename Ptrs>
void fill_role(Ptrs& ptrs, ArrayList<T>& arrays, int role) {
  for (std::size_t t = 0; t < arrays.size(); ++t) ptrs[t][role] = data_of(arrays[t]);
}

template <typename T, typename Ptrs>
void fill_role_const(Ptrs& ptrs, const ArrayList<T>& arrays, int role) {
  for (std::size_t t = 0; t < arrays.size(); ++t) ptrs[t][role] = const_cast<T*>(arrays[t].data());
}

}  // namespace fastopt
