// pybind11 entry points of inverted dropout. fastopt/dropout.py has validated
// everything and allocated the outputs; threshold and scale come from
// fastopt/_scalars.py (dropout()).
#include <cstdint>

#include "gil.h"
#include "../cpu/dropout_kernels.h"
#include "../validate/fast_path.h"
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

// ---- fast path (see fast_path.h): a plain array of any storage type on the
// cpp backend, the outputs allocated here as fastopt/backends/cpp/dropout.py
// does; None sends the call to Python (eval mode, a None mask, anything else).
// The scale of fastopt/_scalars.py dropout_scale(p), in the kernel's compute type.
double fast_scale(double p) { return p == 1.0 ? 0.0 : 1.0 / (1.0 - p); }

template <typename X, typename C>
void fast_forward_run(PyObject* x, py::array& y, Mask& mask, std::size_t n, std::uint64_t seed,
                      double p) {
  const X* xp = reinterpret_cast<const X*>(py::detail::array_proxy(x)->data);
  X* yp = reinterpret_cast<X*>(y.mutable_data());
  std::uint8_t* mp = mask.mutable_data();
  const std::uint64_t threshold = dropout_threshold(p);
  const C scale = static_cast<C>(fast_scale(p));
  ReleaseGil nogil;
  dropout_forward_cpu<X>(xp, yp, mp, n, seed, threshold, scale);
}

py::object forward_fast(py::object x, double p, std::uint64_t seed, bool training,
                        const char* backend) {
  if (!training || !fast_backend_selected(backend)) return py::none();
  const int code = fast_storage_code(x.ptr(), false);
  if (code < 0) return py::none();
  const std::size_t n = fast_element_count(x.ptr());
  py::array y = fast_empty_like(x.ptr(), code);
  Mask mask(static_cast<py::ssize_t>((n + 7) / 8));
  switch (code) {
    case 0: fast_forward_run<float, float>(x.ptr(), y, mask, n, seed, p); break;
    case 1: fast_forward_run<double, double>(x.ptr(), y, mask, n, seed, p); break;
    case 2: fast_forward_run<Bf16, float>(x.ptr(), y, mask, n, seed, p); break;
    default: fast_forward_run<F16, float>(x.ptr(), y, mask, n, seed, p); break;
  }
  return py::make_tuple(y, mask);
}

template <typename X, typename C>
void fast_backward_run(PyObject* dy, PyObject* mask, py::array& dx, std::size_t n, double p) {
  const X* gp = reinterpret_cast<const X*>(py::detail::array_proxy(dy)->data);
  const auto* mp = reinterpret_cast<const std::uint8_t*>(py::detail::array_proxy(mask)->data);
  X* dp = reinterpret_cast<X*>(dx.mutable_data());
  const C scale = static_cast<C>(fast_scale(p));
  ReleaseGil nogil;
  dropout_backward_cpu<X>(gp, mp, dp, n, scale);
}

// A plain bit-packed mask for n elements: exact ndarray, uint8, 1-D, C order, aligned.
bool fast_mask(PyObject* mask, std::size_t n) {
  auto& api = py::detail::npy_api::get();
  if (Py_TYPE(mask) != api.PyArray_Type_) return false;
  auto* p = py::detail::array_proxy(mask);
  static PyObject* u8 = py::dtype::of<std::uint8_t>().release().ptr();
  const int need = py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_;
  return reinterpret_cast<PyObject*>(p->descr) == u8 && p->nd == 1 && (p->flags & need) == need &&
         static_cast<std::size_t>(p->dimensions[0]) == (n + 7) / 8;
}

py::object backward_fast(py::object dy, py::object mask, double p, const char* backend) {
  if (mask.is_none() || !fast_backend_selected(backend)) return py::none();
  const int code = fast_storage_code(dy.ptr(), false);
  if (code < 0) return py::none();
  const std::size_t n = fast_element_count(dy.ptr());
  if (!fast_mask(mask.ptr(), n)) return py::none();
  py::array dx = fast_empty_like(dy.ptr(), code);
  switch (code) {
    case 0: fast_backward_run<float, float>(dy.ptr(), mask.ptr(), dx, n, p); break;
    case 1: fast_backward_run<double, double>(dy.ptr(), mask.ptr(), dx, n, p); break;
    case 2: fast_backward_run<Bf16, float>(dy.ptr(), mask.ptr(), dx, n, p); break;
    default: fast_backward_run<F16, float>(dy.ptr(), mask.ptr(), dx, n, p); break;
  }
  return dx;
}

}  // namespace

void register_dropout(py::module_& m) {
  define<float>(m);
  define<double>(m);
  define16<Bf16>(m, "dropout_forward_bf16", "dropout_backward_bf16");
  define16<F16>(m, "dropout_forward_f16", "dropout_backward_f16");
  // The fast paths: (y, mask) / dx, or None for "ask fastopt._validate".
  m.def("dropout_forward_fast", &forward_fast, py::arg("x"), py::arg("p"), py::arg("seed"),
        py::arg("training"), py::arg("backend"));
  m.def("dropout_backward_fast", &backward_fast, py::arg("dy"), py::arg("mask"), py::arg("p"),
        py::arg("backend"));
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
