// Test bindings of fastopt/half.h: the conversions applied to arrays of bit
// patterns, so tests/test_rounding.py can compare them with
// fastopt/_rounding.py bit for bit (every 16-bit pattern, every tie).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>

#include "fastopt/half.h"

namespace fastopt {
namespace py = pybind11;

namespace {
using U16 = py::array_t<std::uint16_t, py::array::c_style>;
using U32 = py::array_t<std::uint32_t, py::array::c_style>;

template <uint16_t (*Round)(float)>
U16 round_bits(const U32& x) {
  U16 out(x.size());
  const std::uint32_t* in = x.data();
  std::uint16_t* o = out.mutable_data();
  for (py::ssize_t i = 0; i < x.size(); ++i) o[i] = Round(float_of(in[i]));
  return out;
}

template <uint16_t (*Round)(float, uint32_t)>
U16 round_bits_sr(const U32& x, const U32& r) {
  if (r.size() != x.size()) throw py::value_error("x and r differ in size");
  U16 out(x.size());
  const std::uint32_t* in = x.data();
  const std::uint32_t* rp = r.data();
  std::uint16_t* o = out.mutable_data();
  for (py::ssize_t i = 0; i < x.size(); ++i) o[i] = Round(float_of(in[i]), rp[i]);
  return out;
}

template <float (*Widen)(uint16_t)>
U32 widen_bits(const U16& h) {
  U32 out(h.size());
  const std::uint16_t* in = h.data();
  std::uint32_t* o = out.mutable_data();
  for (py::ssize_t i = 0; i < h.size(); ++i) o[i] = bits_of(Widen(in[i]));
  return out;
}
}  // namespace

void register_rounding(py::module_& m) {
  using py::arg;
  m.def("_bf16_to_f32", &widen_bits<bf16_to_f32>, arg("h").noconvert());
  m.def("_f16_to_f32", &widen_bits<f16_to_f32>, arg("h").noconvert());
  m.def("_f32_to_bf16_rne", &round_bits<f32_to_bf16_rne>, arg("u").noconvert());
  m.def("_f32_to_f16_rne", &round_bits<f32_to_f16_rne>, arg("u").noconvert());
  m.def("_f32_to_bf16_sr", &round_bits_sr<f32_to_bf16_sr>, arg("u").noconvert(),
        arg("r").noconvert());
  m.def("_f32_to_f16_sr", &round_bits_sr<f32_to_f16_sr>, arg("u").noconvert(),
        arg("r").noconvert());
}

}  // namespace fastopt
