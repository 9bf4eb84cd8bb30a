// Benchmark helpers for fastopt/bench (BENCHMARKING.md): the general same-traffic "twin"
// of a kernel and a copy, run on fastopt's own thread pool so that the
// bandwidth floor is measured the way the kernels run. Not a kernel family:
// nothing here is public API, and no formula lives here.
//
// bench_twin(ro, rw, wo, mask_in, mask_out) touches every element of every
// array exactly once, in blocks that stay in L1:
//   s = sum of the read-only arrays (+ the bit of mask_in)
//   rw[k] += scale * s ; wo[k] = s ; mask_out byte j = (s[8j] > 0)
// (scale defaults to 0: the read-write arrays keep their values, so a twin
// can share the kernel's own arrays without drifting them)
// so it moves exactly the bytes of the kernel it stands in for (for Adam:
// ro = [grad], rw = [param, exp_avg, exp_avg_sq], 28 B per fp32 element).
// With no outputs it is a read-only reduction and returns the sum.
#include <algorithm>
#include <cstdint>
#include <mutex>
#include <optional>
#include <vector>

#include "gil.h"
#include "../cpu/isa.h"
#include "../cpu/parallel.h"
#include "arrays.h"

namespace fastopt {
namespace {

constexpr std::size_t kBlock = 1024;  // elements per block: 8 KiB of doubles, fits L1

#define FASTOPT_BENCH_LOOPS(T)                                                            \
  FASTOPT_CLONES void bench_set(T* s, const T* x, std::size_t n) {                        \
    for (std::size_t i = 0; i < n; ++i) s[i] = x[i];                                      \
  }                                                                                       \
  FASTOPT_CLONES void bench_add(T* s, const T* x, std::size_t n) {                        \
    for (std::size_t i = 0; i < n; ++i) s[i] += x[i];                                     \
  }                                                                                       \
  FASTOPT_CLONES void bench_axpy(T* a, const T* s, T scale, std::size_t n) {             \
    for (std::size_t i = 0; i < n; ++i) a[i] += scale * s[i];                             \
  }                                                                                       \
  FASTOPT_CLONES void bench_mask_in(T* s, const std::uint8_t* m, std::size_t i0,          \
                                    std::size_t n) {                                      \
    for (std::size_t i = 0; i < n; ++i) s[i] += T((m[(i0 + i) >> 3] >> ((i0 + i) & 7)) & 1); \
  }                                                                                       \
  FASTOPT_CLONES void bench_mask_out(std::uint8_t* m, const T* s, std::size_t n) {        \
    for (std::size_t j = 0; j < n; ++j) m[j] = std::uint8_t(s[8 * j] > T(0));             \
  }                                                                                       \
  FASTOPT_CLONES double bench_sum(const T* s, std::size_t n) {                            \
    /* 16 independent partial sums: vectorizes without reassociation, and is */           \
    /* not bound by the latency of one chain of additions */                              \
    T acc[16] = {};                                                                       \
    std::size_t i = 0;                                                                    \
    for (; i + 16 <= n; i += 16)                                                          \
      for (std::size_t j = 0; j < 16; ++j) acc[j] += s[i + j];                            \
    for (; i < n; ++i) acc[0] += s[i];                                                    \
    double total = 0.0;                                                                   \
    for (std::size_t j = 0; j < 16; ++j) total += double(acc[j]);                         \
    return total;                                                                         \
  }

FASTOPT_BENCH_LOOPS(float)
FASTOPT_BENCH_LOOPS(double)
#undef FASTOPT_BENCH_LOOPS

// Fused twins for the array counts the registry uses: every array streams
// concurrently, element by element, like the kernels do (the blocked generic
// path above sweeps one array per 1024-element block, which restarts the
// hardware prefetcher per stream and runs slower than the kernels it bounds).
// R read-only, W read-write, O write-only arrays; MI/MO: a bit mask read/written.
template <typename T, int R, int W, int O, bool MI, bool MO>
inline __attribute__((always_inline)) void fused_body(const T* const* ro, T* const* rw,
                                                      T* const* wo, const std::uint8_t* mi,
                                                      std::uint8_t* mo, std::size_t b,
                                                      std::size_t e, T scale) {
  const T* r[R > 0 ? R : 1];
  T* w[W > 0 ? W : 1];
  T* o[O > 0 ? O : 1];
  for (int k = 0; k < R; ++k) r[k] = ro[k];
  for (int k = 0; k < W; ++k) w[k] = rw[k];
  for (int k = 0; k < O; ++k) o[k] = wo[k];
  for (std::size_t i0 = b; i0 < e; i0 += kBlock) {
    const std::size_t i1 = std::min(e, i0 + kBlock);
#pragma GCC ivdep
    for (std::size_t i = i0; i < i1; ++i) {
      T s = T(0);
      for (int k = 0; k < R; ++k) s += r[k][i];
      if (MI) s += T((mi[i >> 3] >> (i & 7)) & 1);
      for (int k = 0; k < W; ++k) w[k][i] += scale * s;
      for (int k = 0; k < O; ++k) o[k][i] = s;
    }
    if (MO)  // block starts are multiples of 64; the block of r[0] is still in L1
      for (std::size_t j = i0 / 8; j < i1 / 8; ++j) mo[j] = std::uint8_t(r[0][8 * j] > T(0));
  }
}

using FusedFn = void (*)(const void* const*, void* const*, void* const*, const std::uint8_t*,
                         std::uint8_t*, std::size_t, std::size_t, double);

#define FASTOPT_FUSED_TWIN(T, R, W, O, MI, MO)                                                \
  FASTOPT_CLONES void fused_##T##_##R##W##O##MI##MO(                                          \
      const void* const* ro, void* const* rw, void* const* wo, const std::uint8_t* mi,        \
      std::uint8_t* mo, std::size_t b, std::size_t e, double scale) {                         \
    fused_body<T, R, W, O, MI, MO>(reinterpret_cast<const T* const*>(ro),                     \
                                   reinterpret_cast<T* const*>(rw),                           \
                                   reinterpret_cast<T* const*>(wo), mi, mo, b, e, T(scale));  \
  }
#define FASTOPT_FUSED_TWINS(T)                                                      \
  FASTOPT_FUSED_TWIN(T, 1, 1, 0, 0, 0) /* sgd */                                    \
  FASTOPT_FUSED_TWIN(T, 1, 2, 0, 0, 0) /* momentum, rmsprop, adagrad, ema */        \
  FASTOPT_FUSED_TWIN(T, 1, 3, 0, 0, 0) /* adam, adamw */                            \
  FASTOPT_FUSED_TWIN(T, 1, 4, 0, 0, 0) /* amsgrad */                                \
  FASTOPT_FUSED_TWIN(T, 1, 0, 1, 0, 0) /* batch-norm forward, copy */               \
  FASTOPT_FUSED_TWIN(T, 2, 0, 1, 0, 0) /* batch-norm backward */                    \
  FASTOPT_FUSED_TWIN(T, 1, 0, 1, 0, 1) /* dropout forward */                        \
  FASTOPT_FUSED_TWIN(T, 1, 0, 1, 1, 0) /* dropout backward */
FASTOPT_FUSED_TWINS(float)
FASTOPT_FUSED_TWINS(double)
#undef FASTOPT_FUSED_TWINS
#undef FASTOPT_FUSED_TWIN

template <typename T>
FusedFn fused_for(std::size_t R, std::size_t W, std::size_t O, bool MI, bool MO);

#define FASTOPT_FUSED_LOOKUP(T)                                                              \
  template <>                                                                                \
  FusedFn fused_for<T>(std::size_t R, std::size_t W, std::size_t O, bool MI, bool MO) {      \
    if (R == 1 && O == 0 && !MI && !MO) {                                                    \
      if (W == 1) return fused_##T##_11000;                                                  \
      if (W == 2) return fused_##T##_12000;                                                  \
      if (W == 3) return fused_##T##_13000;                                                  \
      if (W == 4) return fused_##T##_14000;                                                  \
    }                                                                                        \
    if (W == 0 && O == 1) {                                                                  \
      if (R == 1 && !MI && !MO) return fused_##T##_10100;                                    \
      if (R == 2 && !MI && !MO) return fused_##T##_20100;                                    \
      if (R == 1 && !MI && MO) return fused_##T##_10101;                                     \
      if (R == 1 && MI && !MO) return fused_##T##_10110;                                     \
    }                                                                                        \
    return nullptr;                                                                          \
  }
FASTOPT_FUSED_LOOKUP(float)
FASTOPT_FUSED_LOOKUP(double)
#undef FASTOPT_FUSED_LOOKUP

template <typename T>
double twin(const std::vector<py::array>& ro, const std::vector<py::array>& rw,
            const std::vector<py::array>& wo, std::optional<py::array> mask_in,
            std::optional<py::array> mask_out, std::size_t n, double scale) {
  std::vector<const T*> r;
  std::vector<T*> w, o;
  for (auto& a : ro) r.push_back(static_cast<const T*>(a.data()));
  for (auto& a : rw) w.push_back(static_cast<T*>(const_cast<void*>(a.data())));
  for (auto& a : wo) o.push_back(static_cast<T*>(const_cast<void*>(a.data())));
  const std::uint8_t* mi = mask_in ? static_cast<const std::uint8_t*>(mask_in->data()) : nullptr;
  std::uint8_t* mo =
      mask_out ? static_cast<std::uint8_t*>(const_cast<void*>(mask_out->data())) : nullptr;
  if (FusedFn f = fused_for<T>(r.size(), w.size(), o.size(), mi != nullptr, mo != nullptr)) {
    std::vector<const void*> rv(r.begin(), r.end());
    std::vector<void*> wv(w.begin(), w.end()), ov(o.begin(), o.end());
    rv.push_back(nullptr);  // never empty: data() of an empty vector may be null
    wv.push_back(nullptr);
    ov.push_back(nullptr);
    ReleaseGil nogil;
    parallel_for(n, kElementwiseGrain, [&](std::size_t b, std::size_t e) {
      f(rv.data(), wv.data(), ov.data(), mi, mo, b, e, scale);
    });
    return 0.0;
  }
  double acc = 0.0;
  std::mutex acc_lock;
  {
    ReleaseGil nogil;
    parallel_for(n, kElementwiseGrain, [&](std::size_t b, std::size_t e) {
      alignas(64) T s[kBlock];
      double total = 0.0;
      for (std::size_t i = b; i < e; i += kBlock) {
        std::size_t m = std::min(kBlock, e - i);
        if (r.empty()) std::fill(s, s + m, T(0));
        else bench_set(s, r[0] + i, m);
        for (std::size_t k = 1; k < r.size(); ++k) bench_add(s, r[k] + i, m);
        if (mi) bench_mask_in(s, mi, i, m);
        for (T* a : w) bench_axpy(a + i, s, T(scale), m);
        for (T* a : o) bench_set(a + i, s, m);
        if (mo) bench_mask_out(mo + i / 8, s, m / 8);  // parts and blocks start at multiples of 64
        if (w.empty() && o.empty() && !mo) total += bench_sum(s, m);
      }
      std::lock_guard<std::mutex> hold(acc_lock);  // once per part
      acc += total;
    });
  }
  return acc;
}

double bench_twin(std::vector<py::array> ro, std::vector<py::array> rw, std::vector<py::array> wo,
                  std::optional<py::array> mask_in, std::optional<py::array> mask_out,
                  double scale) {
  // Helper for benchmarks only: checks are minimal (same dtype, C order, sizes).
  std::vector<py::array> all;
  all.insert(all.end(), ro.begin(), ro.end());
  all.insert(all.end(), rw.begin(), rw.end());
  all.insert(all.end(), wo.begin(), wo.end());
  if (all.empty()) throw py::value_error("bench_twin needs at least one array");
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
  if (mask_in && static_cast<std::size_t>(mask_in->nbytes()) < nbytes)
    throw py::value_error("bench_twin: mask_in too small");
  if (mask_out && (static_cast<std::size_t>(mask_out->nbytes()) < nbytes || !mask_out->writeable()))
    throw py::value_error("bench_twin: mask_out too small or read-only");
  if (dt.is(py::dtype::of<float>())) return twin<float>(ro, rw, wo, mask_in, mask_out, n, scale);
  if (dt.is(py::dtype::of<double>())) return twin<double>(ro, rw, wo, mask_in, mask_out, n, scale);
  throw py::type_error("bench_twin: float32 or float64 arrays");
}

}  // namespace

void register_bench_twin(py::module_& m) {
  m.def("bench_twin", &bench_twin, py::arg("ro"), py::arg("rw"), py::arg("wo"),
        py::arg("mask_in") = py::none(), py::arg("mask_out") = py::none(), py::arg("scale") = 0.0,
        "Benchmark helper: a trivial kernel with a given memory traffic (see fastopt/bench).");
}

}  // namespace fastopt
