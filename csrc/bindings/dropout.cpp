// pybind11 entry points of inverted dropout. fastopt/dropout.py has validated
// everything and allocated the outputs; threshold and scale come from
// fastopt/_scalars.py (dropout()).
#include <cstdint>

#include "gil.h"
#include "../cpu/dropout_kernels.h"
#include "arrays.h"

namespace fastopt {
namespace {

using Mask = py::array_t<std::uint8_t, py::array::c_style>;

template <typename T>
void forward(const Array<T>& x, Array<T>& y, Mask& mask, std::uint64_t seed,
             std::uint64_t threshold, double scale) {
  const T* xp = x.data();
  T* yp = data_of(y);
  std::uint8_t* mp = mask.mutable_data();
  const auto n = static_cast<std::size_t>(x.size());
  ReleaseGil nogil;
  dropout_forward_cpu<T>(xp, yp, mp, n, seed, threshold, static_cast<T>(scale));
}

template <typename T>
void backward(const Array<T>& dy, const Mask& mask, Array<T>& dx, double scale) {
  const T* gp = dy.data();
  const std::uint8_t* mp = mask.data();
  T* dp = data_of(dx);
  const auto n = static_cast<std::size_t>(dy.size());
  ReleaseGil nogil;
  dropout_backward_cpu<T>(gp, mp, dp, n, static_cast<T>(scale));
}

// 16-bit storage X (fastopt/storage.h): the arrays arrive as uint16 views of
// ml_dtypes.bfloat16 / numpy.float16 arrays (fastopt/backends/cpp/dropout.py).
template <typename X>
void forward16(const Array<std::uint16_t>& x, Array<std::uint16_t>& y, Mask& mask,
               std::uint64_t seed, std::uint64_t threshold, double scale) {
  const X* xp = reinterpret_cast<const X*>(x.data());
  X* yp = reinterpret_cast<X*>(data_of(y));
  std::uint8_t* mp = mask.mutable_data();
  const auto n = static_cast<std::size_t>(x.size());
  ReleaseGil nogil;
  dropout_forward_cpu<X>(xp, yp, mp, n, seed, threshold, static_cast<float>(scale));
}

template <typename X>
void backward16(const Array<std::uint16_t>& dy, const Mask& mask, Array<std::uint16_t>& dx,
                double scale) {
  const X* gp = reinterpret_cast<const X*>(dy.data());
  const std::uint8_t* mp = mask.data();
  X* dp = reinterpret_cast<X*>(data_of(dx));
  const auto n = static_cast<std::size_t>(dy.size());
  ReleaseGil nogil;
  dropout_backward_cpu<X>(gp, mp, dp, n, static_cast<float>(scale));
}

template <typename X>
void define16(py::module_& m, const char* forward_name, const char* backward_name) {
  using py::arg;
  m.def(forward_name, &forward16<X>, arg("x").noconvert(), arg("y").noconvert(),
        arg("mask").noconvert(), arg("seed"), arg("threshold"), arg("scale"));
  m.def(backward_name, &backward16<X>, arg("dy").noconvert(), arg("mask").noconvert(),
        arg("dx").noconvert(), arg("scale"));
}

template <typename T>
void define(py::module_& m) {
  using py::arg;
  m.def("dropout_forward", &forward<T>, arg("x").noconvert(), arg("y").noconvert(),
        arg("mask").noconvert(), arg("seed"), arg("threshold"), arg("scale"));
  m.def("dropout_backward", &backward<T>, arg("dy").noconvert(), arg("mask").noconvert(),
        arg("dx").noconvert(), arg("scale"));
}

}  // namespace

void register_dropout(py::module_& m) {
  define<float>(m);
  define<double>(m);
  define16<Bf16>(m, "dropout_forward_bf16", "dropout_backward_bf16");
  define16<F16>(m, "dropout_forward_f16", "dropout_backward_f16");
  m.def(
      "dropout_mask",
      [](Mask& mask, std::size_t n, std::uint64_t seed, std::uint64_t threshold) {
        std::uint8_t* mp = mask.mutable_data();
        ReleaseGil nogil;
        dropout_mask_cpu(mp, n, seed, threshold);
      },
      py::arg("mask").noconvert(), py::arg("n"), py::arg("seed"), py::arg("threshold"));
  m.def(
      "dropout_threshold", [](double p) { return dropout_threshold(p); }, py::arg("p"),
      "Test helper: round(p * 2**32) as the C++ header computes it.");
  m.def(
      "_philox4x32_10",
      [](std::array<std::uint32_t, 4> ctr, std::array<std::uint32_t, 2> key) {
        std::uint32_t out[4];
        philox4x32_10(ctr.data(), key.data(), out);
        return py::make_tuple(out[0], out[1], out[2], out[3]);
      },
      py::arg("ctr"), py::arg("key"),
      "Test helper: Philox4x32-10(ctr, key) from fastopt/philox.h (known-answer tests).");
}

}  // namespace fastopt
