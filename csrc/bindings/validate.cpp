// pybind11 entry point of the native overlap scan (csrc/validate/overlap.h).
#include "../validate/overlap.h"

namespace fastopt {

void register_validate(py::module_& m) {
  m.def("first_overlap", &first_overlap, py::arg("arrays"),
        "Indices (i, j) of two arrays that share memory, or None.");
}

}  // namespace fastopt
