// A native scan for overlapping arrays, used by fastopt/_validate.py: reading
// a data pointer from Python costs about a microsecond per array, too much for
// calls over hundreds of tensors.
#pragma once
#include <pybind11/pybind11.h>

namespace fastopt {
namespace py = pybind11;

// Indices (i, j), i < j, of two arrays of the list whose memory spans overlap
// (empty arrays never do), or None.
py::object first_overlap(const py::list& arrays);

}  // namespace fastopt
