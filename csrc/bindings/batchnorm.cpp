// pybind11 entry points of batch normalization. fastopt/batchnorm.py has
// validated every argument and allocated the outputs; arrays are typed
// c_style with .noconvert(), so nothing is ever silently copied.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gil.h"
#include "../cpu/batchnorm_kernels.h"
#include "arrays.h"
#include "../cpu/buffers.h"
#include "../validate/fast_path.h"

namespace fastopt {
namespace {

template <typename T>
BnShape shape_of(const Array<T>& x) {
  BnShape s{static_cast<std::size_t>(x.shape(0)), static_cast<std::size_t>(x.shape(1)), 1};
  for (py::ssize_t d = 2; d < x.ndim(); ++d) s.S *= static_cast<std::size_t>(x.shape(d));
  return s;
}

// The element type of x's NumPy array: X itself, or uint16 for the 16-bit
// storage types (their arrays arrive as uint16 views, fastopt/backends/cpp/_storage.py).
template <typename X>
struct Wire {
  using type = X;
};
template <>
struct Wire<Bf16> {
  using type = std::uint16_t;
};
template <>
struct Wire<F16> {
  using type = std::uint16_t;
};

template <typename X, typename W>
const X* elements(const Array<W>& a) {
  return reinterpret_cast<const X*>(a.data());
}

template <typename X, typename W>
X* elements(Array<W>& a) {
  return reinterpret_cast<X*>(data_of(a));
}

template <typename X, typename T = compute_t<X>, typename W = typename Wire<X>::type>
void forward(const Array<W>& x, Array<W> y, const Array<T>& gamma, const Array<T>& beta,
             std::optional<Array<T>> running_mean, std::optional<Array<T>> running_var,
             Array<T> save_mean, Array<T> save_invstd, bool training, double momentum,
             double eps) {
  // Training updates the running statistics in place; eval only reads them
  // (they may be read-only then).
  T* rm = nullptr;
  T* rv = nullptr;
  if (running_mean && running_var) {
    rm = training ? data_of(*running_mean) : const_cast<T*>(running_mean->data());
    rv = training ? data_of(*running_var) : const_cast<T*>(running_var->data());
  }
  const BnShape s = shape_of(x);
  const X* xp = elements<X>(x);
  X* yp = elements<X>(y);
  T* sm = data_of(save_mean);
  T* si = data_of(save_invstd);
  ReleaseGil nogil;
  batch_norm_forward_cpu(xp, yp, gamma.data(), beta.data(), rm, rv, sm, si, s, training, momentum,
                         eps);
}

template <typename X, typename T = compute_t<X>, typename W = typename Wire<X>::type>
void backward(const Array<W>& dy, const Array<W>& x, const Array<T>& gamma,
              const Array<T>& save_mean, const Array<T>& save_invstd, Array<W> dx,
              Array<T> dgamma, Array<T> dbeta, bool training) {
  const BnShape s = shape_of(x);
  X* dxp = elements<X>(dx);
  T* dg = data_of(dgamma);
  T* db = data_of(dbeta);
  const X* dyp = elements<X>(dy);
  const X* xp = elements<X>(x);
  ReleaseGil nogil;
  batch_norm_backward_cpu(dyp, xp, gamma.data(), save_mean.data(), save_invstd.data(), dxp, dg,
                          db, s, training);
}

// ---- fast path (see fast_path.h): plainly valid training/eval calls on the
// cpp backend, outputs allocated here; None sends the call to Python.
BnShape fast_shape(PyObject* x) {
  auto* p = py::detail::array_proxy(x);
  BnShape s{static_cast<std::size_t>(p->dimensions[0]), static_cast<std::size_t>(p->dimensions[1]), 1};
  for (int d = 2; d < p->nd; ++d) s.S *= static_cast<std::size_t>(p->dimensions[d]);
  return s;
}

// A plain 1-D array of C elements of dtype `dtype`.
bool fast_per_channel(PyObject* a, bool output, int dtype, std::size_t C) {
  if (fast_plain_array(a, output) != dtype) return false;
  auto* p = py::detail::array_proxy(a);
  return p->nd == 1 && static_cast<std::size_t>(p->dimensions[0]) == C;
}

// X: x's storage type; T: gamma's, beta's and the statistics' (float32 for 16-bit x).
template <typename X, typename T = compute_t<X>>
py::object forward_fast_typed(PyObject* x, PyObject* gamma, PyObject* beta, PyObject* rm,
                              PyObject* rv, bool training, double momentum, double eps,
                              int code) {
  const BnShape s = fast_shape(x);
  py::array y = fast_empty_like(x, code);
  py::array_t<T> save_mean(static_cast<py::ssize_t>(s.C)), save_invstd(static_cast<py::ssize_t>(s.C));
  auto data = [](PyObject* a) {
    return a == Py_None ? nullptr : reinterpret_cast<T*>(py::detail::array_proxy(a)->data);
  };
  const X* xp = reinterpret_cast<const X*>(py::detail::array_proxy(x)->data);
  const T* g = data(gamma);
  const T* b = data(beta);
  T* rmp = data(rm);
  T* rvp = data(rv);
  X* yp = reinterpret_cast<X*>(y.mutable_data());
  T* sm = save_mean.mutable_data();
  T* si = save_invstd.mutable_data();
  {
    ReleaseGil nogil;
    batch_norm_forward_cpu(xp, yp, g, b, rmp, rvp, sm, si, s, training, momentum, eps);
  }
  return py::make_tuple(y, save_mean, save_invstd);
}

py::object forward_fast(py::object x, py::object gamma, py::object beta, py::object running_mean,
                        py::object running_var, bool training, double momentum, double eps,
                        const char* backend) {
  PyObject *xo = x.ptr(), *rm = running_mean.ptr(), *rv = running_var.ptr();
  if (!fast_backend_selected(backend)) return py::none();
  const int code = fast_storage_code(xo, false);
  if (code < 0 || py::detail::array_proxy(xo)->nd < 2) return py::none();
  const int dtype = code == 1 ? 1 : 0;   // gamma's, beta's and the statistics' (16-bit x: float32)
  const BnShape s = fast_shape(xo);
  if (s.N * s.C * s.S == 0 || (training && s.N * s.S < 2)) return py::none();  // Python decides
  if (!fast_per_channel(gamma.ptr(), false, dtype, s.C) || !fast_per_channel(beta.ptr(), false, dtype, s.C))
    return py::none();
  if (rm == Py_None || rv == Py_None) {
    if (rm != rv || !training) return py::none();
  } else if (!fast_per_channel(rm, training, dtype, s.C) || !fast_per_channel(rv, training, dtype, s.C)) {
    return py::none();
  }
  if (!fast_disjoint({xo, gamma.ptr(), beta.ptr(), rm, rv})) return py::none();
  switch (code) {
    case 0: return forward_fast_typed<float>(xo, gamma.ptr(), beta.ptr(), rm, rv, training, momentum, eps, code);
    case 1: return forward_fast_typed<double>(xo, gamma.ptr(), beta.ptr(), rm, rv, training, momentum, eps, code);
    case 2: return forward_fast_typed<Bf16>(xo, gamma.ptr(), beta.ptr(), rm, rv, training, momentum, eps, code);
    default: return forward_fast_typed<F16>(xo, gamma.ptr(), beta.ptr(), rm, rv, training, momentum, eps, code);
  }
}

template <typename X, typename T = compute_t<X>>
py::object backward_fast_typed(PyObject* dy, PyObject* x, PyObject* gamma, PyObject* sm,
                               PyObject* si, bool training, int code) {
  const BnShape s = fast_shape(x);
  py::array dx = fast_empty_like(x, code);
  py::array_t<T> dgamma(static_cast<py::ssize_t>(s.C)), dbeta(static_cast<py::ssize_t>(s.C));
  auto data = [](PyObject* a) { return reinterpret_cast<const T*>(py::detail::array_proxy(a)->data); };
  auto elements = [](PyObject* a) { return reinterpret_cast<const X*>(py::detail::array_proxy(a)->data); };
  const X *dyp = elements(dy), *xp = elements(x);
  const T *g = data(gamma), *smp = data(sm), *sip = data(si);
  X* dxp = reinterpret_cast<X*>(dx.mutable_data());
  T* dg = dgamma.mutable_data();
  T* db = dbeta.mutable_data();
  {
    ReleaseGil nogil;
    batch_norm_backward_cpu(dyp, xp, g, smp, sip, dxp, dg, db, s, training);
  }
  return py::make_tuple(dx, dgamma, dbeta);
}

py::object backward_fast(py::object dy, py::object x, py::object gamma, py::object save_mean,
                         py::object save_invstd, bool training, const char* backend) {
  PyObject *xo = x.ptr(), *dyo = dy.ptr();
  if (!fast_backend_selected(backend)) return py::none();
  const int code = fast_storage_code(xo, false);
  if (code < 0 || py::detail::array_proxy(xo)->nd < 2) return py::none();
  if (fast_storage_code(dyo, false) != code) return py::none();
  const int dtype = code == 1 ? 1 : 0;   // gamma's and the statistics' (16-bit x: float32)
  auto* px = py::detail::array_proxy(xo);
  auto* pd = py::detail::array_proxy(dyo);
  if (pd->nd != px->nd || !std::equal(px->dimensions, px->dimensions + px->nd, pd->dimensions))
    return py::none();
  const BnShape s = fast_shape(xo);
  if (s.N * s.C * s.S == 0) return py::none();
  for (PyObject* a : {gamma.ptr(), save_mean.ptr(), save_invstd.ptr()})
    if (!fast_per_channel(a, false, dtype, s.C)) return py::none();
  if (!fast_disjoint({dyo, xo, gamma.ptr(), save_mean.ptr(), save_invstd.ptr()})) return py::none();
  PyObject *g = gamma.ptr(), *sm = save_mean.ptr(), *si = save_invstd.ptr();
  switch (code) {
    case 0: return backward_fast_typed<float>(dyo, xo, g, sm, si, training, code);
    case 1: return backward_fast_typed<double>(dyo, xo, g, sm, si, training, code);
    case 2: return backward_fast_typed<Bf16>(dyo, xo, g, sm, si, training, code);
    default: return backward_fast_typed<F16>(dyo, xo, g, sm, si, training, code);
  }
}

template <typename X>
void define(py::module_& m, const std::string& suffix) {
  using py::arg;
  m.def(("batch_norm_forward" + suffix).c_str(), &forward<X>, arg("x").noconvert(), arg("y").noconvert(),
        arg("gamma").noconvert(), arg("beta").noconvert(), arg("running_mean").noconvert(),
        arg("running_var").noconvert(), arg("save_mean").noconvert(),
        arg("save_invstd").noconvert(), arg("training"), arg("momentum"), arg("eps"));
  m.def(("batch_norm_backward" + suffix).c_str(), &backward<X>, arg("dy").noconvert(), arg("x").noconvert(),
        arg("gamma").noconvert(), arg("save_mean").noconvert(), arg("save_invstd").noconvert(),
        arg("dx").noconvert(), arg("dgamma").noconvert(), arg("dbeta").noconvert(),
        arg("training"));
}

}  // namespace

void register_batchnorm(py::module_& m) {
  define<float>(m, "");
  define<double>(m, "");
  define<Bf16>(m, "_bf16");
  define<F16>(m, "_f16");
  m.def("batch_norm_forward_fast", &forward_fast);
  m.def("batch_norm_backward_fast", &backward_fast);
}

}  // namespace fastopt
