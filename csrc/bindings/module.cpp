// fastopt._core: one module, one registration function per kernel family.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <mutex>
#include <utility>
#include <vector>

#include "../cpu/isa.h"
#include "gil.h"
#include "../cpu/parallel.h"

namespace py = pybind11;

namespace fastopt {
void register_optim(py::module_& m);
void register_dropout(py::module_& m);
void register_batchnorm(py::module_& m);
void register_validate(py::module_& m);
void register_bench_twin(py::module_& m);
void register_averaging(py::module_& m);
void register_clipping(py::module_& m);
void register_buffers(py::module_& m);
void register_fast_path(py::module_& m);
void register_quantized(py::module_& m);
void register_rounding(py::module_& m);
void register_optim_mixed(py::module_& m);
void register_bench_twin_mixed(py::module_& m);
}  // namespace fastopt

PYBIND11_MODULE(_core, m) {
  m.doc() = "fastopt's C++ CPU kernels (use the functions in fastopt, not these).";
  fastopt::main_thread_ident() =
      py::module_::import("threading").attr("main_thread")().attr("ident").cast<unsigned long>();
  fastopt::register_validate(m);
  fastopt::register_optim(m);
  fastopt::register_bench_twin(m);
  fastopt::register_dropout(m);
  fastopt::register_averaging(m);
  fastopt::register_clipping(m);
  fastopt::register_batchnorm(m);
  fastopt::register_buffers(m);
  fastopt::register_fast_path(m);
  fastopt::register_quantized(m);
  fastopt::register_rounding(m);
  fastopt::register_optim_mixed(m);
  fastopt::register_bench_twin_mixed(m);

  m.def("build_info", [] {
    py::dict d;
    d["isa"] = fastopt::active_isa();
    d["threads"] = fastopt::num_threads();
    d["threading"] = fastopt::threading_name();
#if defined(__VERSION__)
    d["compiler"] = __VERSION__;
#endif
    return d;
  });
  m.def("set_num_threads", &fastopt::set_num_threads, py::arg("n"));
  m.def("get_num_threads", &fastopt::num_threads);
  // For the tests: the (first, end) units each part of parallel_for_units got.
  m.def("parallel_units_split", [](std::size_t units, std::size_t min_units) {
    std::mutex lock;
    std::vector<std::pair<std::size_t, std::size_t>> parts;
    fastopt::parallel_for_units(units, min_units, [&](std::size_t b, std::size_t e) {
      std::lock_guard<std::mutex> hold(lock);
      parts.emplace_back(b, e);
    });
    std::sort(parts.begin(), parts.end());
    return parts;
  }, py::arg("units"), py::arg("min_units"));
}
