// Benchmark support: the bandwidth twin (csrc/cpu/twin_kernels.cpp).
#include <stdexcept>

#include "../cpu/twin_kernels.h"
#include "arrays.h"

namespace fastopt {
namespace {

template <typename T>
void twin(ArrayList<T> read_write, ArrayList<T> read_only) {
  if (read_write.empty() || read_write.size() > 4 || read_only.size() > 2)
    throw std::invalid_argument("bandwidth_twin takes 1-4 written and 0-2 read-only arrays");
  const auto n = static_cast<std::size_t>(read_write[0].size());
  std::vector<T*> rw;
  std::vector<const T*> ro;
  for (auto& a : read_write) {
    if (static_cast<std::size_t>(a.size()) != n) throw std::invalid_argument("sizes differ");
    rw.push_back(data_of(a));
  }
  for (auto& a : read_only) {
    if (static_cast<std::size_t>(a.size()) != n) throw std::invalid_argument("sizes differ");
    ro.push_back(a.data());
  }
  py::gil_scoped_release nogil;
  bandwidth_twin(rw, ro, n);
}

}  // namespace

void register_bench(py::module_& m) {
  m.def("bandwidth_twin", &twin<float>, py::arg("read_write").noconvert(), py::arg("read_only").noconvert(),
        "Same-traffic floor: each written array += the sum of the read-only ones, in one pass.");
  m.def("bandwidth_twin", &twin<double>, py::arg("read_write").noconvert(), py::arg("read_only").noconvert());
}

}  // namespace fastopt
