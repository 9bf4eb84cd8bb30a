// pybind11 entry point of the same-traffic twin (csrc/bench/twin.cpp).
#include <optional>
#include <vector>

#include "gil.h"
#include "../bench/twin.h"
#include "arrays.h"

namespace fastopt {
namespace {

template <typename T>
double run(const std::vector<py::array>& ro, const std::vector<py::array>& rw,
           const std::vector<py::array>& wo, const std::optional<py::array>& mask_in,
           const std::optional<py::array>& mask_out, std::size_t n, double scale) {
  std::vector<const T*> r;
  std::vector<T*> w, o;
  for (auto& a : ro) r.push_back(static_cast<const T*>(a.data()));
  for (auto& a : rw) w.push_back(static_cast<T*>(const_cast<void*>(a.data())));
  for (auto& a : wo) o.push_back(static_cast<T*>(const_cast<void*>(a.data())));
  r.push_back(nullptr);  // never empty: data() of an empty vector may be null
  w.push_back(nullptr);
  o.push_back(nullptr);
  TwinStreams<T> st{r.data(), w.data(), o.data(), int(ro.size()), int(rw.size()), int(wo.size()),
                    mask_in ? static_cast<const std::uint8_t*>(mask_in->data()) : nullptr,
                    mask_out ? static_cast<std::uint8_t*>(const_cast<void*>(mask_out->data()))
                             : nullptr};
  ReleaseGil nogil;
  return twin_cpu<T>(st, n, T(scale));
}

double bench_twin(std::vector<py::array> ro, std::vector<py::array> rw, std::vector<py::array> wo,
                  std::optional<py::array> mask_in, std::optional<py::array> mask_out,
                  double scale) {
  // Benchmarks only: checks are minimal (same dtype and size, C order, writeable outputs).
  std::vector<py::array> all;
  all.insert(all.end(), ro.begin(), ro.end());
  all.insert(all.end(), rw.begin(), rw.end());
  all.insert(all.end(), wo.begin(), wo.end());
  if (all.empty()) throw py::value_error("bench_twin needs at least one array");
  if (!twin_supported(int(ro.size()), int(rw.size()), int(wo.size()), bool(mask_in),
                      bool(mask_out)))
    throw py::value_error("bench_twin: no twin for " + std::to_string(ro.size()) + " read, " +
                          std::to_string(rw.size()) + " read-write, " +
                          std::to_string(wo.size()) + " written arrays and these masks");
  py::dtype dt = all[0].dtype();
  std::size_t n = static_cast<std::size_t>(all[0].size());
  for (auto& a : all) {
    if (!a.dtype().is(dt) || static_cast<std::size_t>(a.size()) != n ||
        !(a.flags() & py::array::c_style))
      throw py::value_error("bench_twin: arrays must share dtype and size and be C-contiguous");
  }
  for (auto& a : rw)
    if (!a.writeable()) throw py::value_error("bench_twin: read-write array is read-only");
  for (auto& a : wo)
    if (!a.writeable()) throw py::value_error("bench_twin: output array is read-only");
  std::size_t nbytes = (n + 7) / 8;
  for (auto* m : {&mask_in, &mask_out})
    if (*m && ((*m)->dtype().itemsize() != 1 || static_cast<std::size_t>((*m)->nbytes()) < nbytes ||
               !((*m)->flags() & py::array::c_style)))
      throw py::value_error("bench_twin: a mask is C-contiguous uint8 of (n + 7) // 8 bytes");
  if (mask_out && !mask_out->writeable())
    throw py::value_error("bench_twin: mask_out is read-only");
  if (dt.is(py::dtype::of<float>())) return run<float>(ro, rw, wo, mask_in, mask_out, n, scale);
  if (dt.is(py::dtype::of<double>())) return run<double>(ro, rw, wo, mask_in, mask_out, n, scale);
  throw py::type_error("bench_twin: float32 or float64 arrays");
}

}  // namespace

void register_bench_twin(py::module_& m) {
  m.def("bench_twin", &bench_twin, py::arg("ro"), py::arg("rw"), py::arg("wo"),
        py::arg("mask_in") = py::none(), py::arg("mask_out") = py::none(), py::arg("scale") = 0.0,
        "Benchmark helper: a trivial kernel with a given memory traffic (see fastopt/bench).");
}

}  // namespace fastopt
