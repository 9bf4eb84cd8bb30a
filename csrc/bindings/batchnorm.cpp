// pybind11 entry points of batch normalization. fastopt/batchnorm.py has
// validated every argument and allocated the outputs; arrays are typed
// c_style with .noconvert(), so nothing is ever silently copied.
#include <optional>

#include "../cpu/batchnorm_kernels.h"
#include "arrays.h"

namespace fastopt {
namespace {

template <typename T>
BnShape shape_of(const Array<T>& x) {
  BnShape s{static_cast<std::size_t>(x.shape(0)), static_cast<std::size_t>(x.shape(1)), 1};
  for (py::ssize_t d = 2; d < x.ndim(); ++d) s.S *= static_cast<std::size_t>(x.shape(d));
  return s;
}

template <typename T>
void forward(const Array<T>& x, Array<T> y, const Array<T>& gamma, const Array<T>& beta,
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
  const T* xp = x.data();
  T* yp = data_of(y);
  T* sm = data_of(save_mean);
  T* si = data_of(save_invstd);
  py::gil_scoped_release nogil;
  batch_norm_forward_cpu(xp, yp, gamma.data(), beta.data(), rm, rv, sm, si, s, training, momentum,
                         eps);
}

template <typename T>
void backward(const Array<T>& dy, const Array<T>& x, const Array<T>& gamma,
              const Array<T>& save_mean, const Array<T>& save_invstd, Array<T> dx,
              Array<T> dgamma, Array<T> dbeta, bool training) {
  const BnShape s = shape_of(x);
  T* dxp = data_of(dx);
  T* dg = data_of(dgamma);
  T* db = data_of(dbeta);
  py::gil_scoped_release nogil;
  batch_norm_backward_cpu(dy.data(), x.data(), gamma.data(), save_mean.data(), save_invstd.data(),
                          dxp, dg, db, s, training);
}

template <typename T>
void define(py::module_& m) {
  using py::arg;
  m.def("batch_norm_forward", &forward<T>, arg("x").noconvert(), arg("y").noconvert(),
        arg("gamma").noconvert(), arg("beta").noconvert(), arg("running_mean").noconvert(),
        arg("running_var").noconvert(), arg("save_mean").noconvert(),
        arg("save_invstd").noconvert(), arg("training"), arg("momentum"), arg("eps"));
  m.def("batch_norm_backward", &backward<T>, arg("dy").noconvert(), arg("x").noconvert(),
        arg("gamma").noconvert(), arg("save_mean").noconvert(), arg("save_invstd").noconvert(),
        arg("dx").noconvert(), arg("dgamma").noconvert(), arg("dbeta").noconvert(),
        arg("training"));
}

}  // namespace

void register_batchnorm(py::module_& m) {
  define<float>(m);
  define<double>(m);
}

}  // namespace fastopt
