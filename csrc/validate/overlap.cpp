// A native scan for overlapping arrays, used by fastopt/_validate.py: reading
// a data pointer from Python costs about a microsecond per array, too much for
// calls over hundreds of tensors.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <vector>

namespace py = pybind11;

namespace fastopt {

void register_validate(py::module_& m) {
  m.def("first_overlap", [](const py::list& arrays) -> py::object {
    std::vector<std::tuple<std::uintptr_t, std::uintptr_t, py::ssize_t>> spans;
    spans.reserve(arrays.size());
    for (py::ssize_t i = 0; i < static_cast<py::ssize_t>(arrays.size()); ++i) {
      auto a = py::reinterpret_borrow<py::array>(arrays[i]);
      const auto bytes = static_cast<std::uintptr_t>(a.nbytes());
      if (bytes == 0) continue;
      const auto start = reinterpret_cast<std::uintptr_t>(a.data());
      spans.emplace_back(start, start + bytes, i);
    }
    std::sort(spans.begin(), spans.end());
    for (std::size_t k = 1; k < spans.size(); ++k) {
      if (std::get<0>(spans[k]) < std::get<1>(spans[k - 1])) {
        auto i = std::get<2>(spans[k - 1]), j = std::get<2>(spans[k]);
        return py::make_tuple(std::min(i, j), std::max(i, j));
      }
    }
    return py::none();
  }, py::arg("arrays"), "Indices (i, j) of two arrays that share memory, or None.");
}

}  // namespace fastopt
