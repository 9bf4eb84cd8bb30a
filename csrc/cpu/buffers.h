// Large output arrays (y, dx of a step) from a small cache of recently freed
// buffers. A fresh 40 MB array costs ~3 ms of page faults and kernel zeroing
// before the kernel writes a byte (as long as the 10^7 dropout kernels
// themselves); a training loop frees and asks for the same sizes every step,
// so reusing them removes that cost. Bounded: FASTOPT_BUFFER_CACHE_MB (default
// 256; 0 turns the cache off) and 8 buffers at most are kept.
#pragma once
#include <pybind11/numpy.h>

#include <vector>

namespace fastopt {
namespace py = pybind11;

// An uninitialised C-contiguous array; large ones come from the cache.
py::array cached_empty(const std::vector<py::ssize_t>& shape, const py::dtype& dtype);

template <typename T>
py::array_t<T> cached_empty(const std::vector<py::ssize_t>& shape) {
  return py::array_t<T>(cached_empty(shape, py::dtype::of<T>()));
}

}  // namespace fastopt
