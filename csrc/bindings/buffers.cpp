// pybind11 entry point of the output-buffer cache (csrc/cpu/buffers.h).
#include <pybind11/stl.h>

#include "../cpu/buffers.h"

namespace fastopt {

void register_buffers(py::module_& m) {
  m.def("empty", [](const std::vector<py::ssize_t>& shape, const py::object& dtype) {
    return cached_empty(shape, py::dtype::from_args(dtype));
  }, py::arg("shape"), py::arg("dtype"),
  "An uninitialised C-contiguous array; arrays of 1 MiB or more reuse recently freed buffers.");
}

}  // namespace fastopt
