// The same-traffic twin of the mixed-precision kernels (benchmarks only): like
// twin.cpp, every array streamed once, all streams concurrently, but the
// streams have two widths, 16-bit (handled as integers: a bfloat16/float16
// array moves the same bytes whatever it holds) and float32:
//   t_i = sum_k ro16[k][i];  rw16[k][i] += c16 * t_i;  wo16[k][i] = t_i
//   s_i = sum_k ro32[k][i] + t_i;  rw32[k][i] += c * s_i;  wo32[k][i] = s_i
// With c = c16 = 0 the read-write arrays keep their values.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../bindings/gil.h"
#include "../cpu/isa.h"
#include "../cpu/parallel.h"

namespace fastopt {
namespace {

namespace py = pybind11;

struct MixedStreams {
  std::vector<const std::uint16_t*> ro16;
  std::vector<std::uint16_t*> rw16, wo16;
  std::vector<const float*> ro32;
  std::vector<float*> rw32, wo32;
};

template <int R16, int W16, int O16, int R32, int W32, int O32>
inline __attribute__((always_inline)) void body(const MixedStreams& st, std::size_t b,
                                                std::size_t e, std::uint16_t c16, float c) {
  const std::uint16_t* r16[R16 > 0 ? R16 : 1];
  std::uint16_t* w16[W16 > 0 ? W16 : 1];
  std::uint16_t* o16[O16 > 0 ? O16 : 1];
  const float* r32[R32 > 0 ? R32 : 1];
  float* w32[W32 > 0 ? W32 : 1];
  float* o32[O32 > 0 ? O32 : 1];
  for (int k = 0; k < R16; ++k) r16[k] = st.ro16[k];
  for (int k = 0; k < W16; ++k) w16[k] = st.rw16[k];
  for (int k = 0; k < O16; ++k) o16[k] = st.wo16[k];
  for (int k = 0; k < R32; ++k) r32[k] = st.ro32[k];
  for (int k = 0; k < W32; ++k) w32[k] = st.rw32[k];
  for (int k = 0; k < O32; ++k) o32[k] = st.wo32[k];
#pragma GCC ivdep
  for (std::size_t i = b; i < e; ++i) {
    std::uint16_t t = 0;
    for (int q = 0; q < R16; ++q) t = static_cast<std::uint16_t>(t + r16[q][i]);
    for (int q = 0; q < W16; ++q) w16[q][i] = static_cast<std::uint16_t>(w16[q][i] + c16 * t);
    for (int q = 0; q < O16; ++q) o16[q][i] = t;
    float s = static_cast<float>(t);
    for (int q = 0; q < R32; ++q) s += r32[q][i];
    for (int q = 0; q < W32; ++q) w32[q][i] += c * s;
    for (int q = 0; q < O32; ++q) o32[q][i] = s;
  }
}

using BodyFn = void (*)(const MixedStreams&, std::size_t, std::size_t, std::uint16_t, float);

// The shapes of the benchmarked modes (Adam: grad read, param and states
// updated; fastopt/bench/optim_mixed.py).
#define FASTOPT_TWIN_MIXED(A, B, C, D, E, F)                                                \
  FASTOPT_CLONES void twin_mixed_##A##B##C##D##E##F(const MixedStreams& st, std::size_t b,  \
                                                    std::size_t e, std::uint16_t c16,       \
                                                    float c) {                              \
    body<A, B, C, D, E, F>(st, b, e, c16, c);                                               \
  }
FASTOPT_TWIN_MIXED(1, 3, 0, 0, 0, 0)  // pure bfloat16: 14 B/element
FASTOPT_TWIN_MIXED(1, 1, 0, 0, 2, 0)  // bfloat16 param/grad, float32 states: 22 B
FASTOPT_TWIN_MIXED(1, 0, 1, 0, 3, 0)  // float32 master and states, bfloat16 param/grad: 28 B
#undef FASTOPT_TWIN_MIXED

BodyFn lookup(std::size_t a, std::size_t b, std::size_t c, std::size_t d, std::size_t e,
              std::size_t f) {
  if (a == 1 && b == 3 && c == 0 && d == 0 && e == 0 && f == 0) return twin_mixed_130000;
  if (a == 1 && b == 1 && c == 0 && d == 0 && e == 2 && f == 0) return twin_mixed_110020;
  if (a == 1 && b == 0 && c == 1 && d == 0 && e == 3 && f == 0) return twin_mixed_101030;
  return nullptr;
}

using A16 = py::array_t<std::uint16_t, py::array::c_style>;
using A32 = py::array_t<float, py::array::c_style>;

}  // namespace

void register_bench_twin_mixed(py::module_& m) {
  m.def(
      "bench_twin_mixed",
      [](std::vector<A16> ro16, std::vector<A16> rw16, std::vector<A16> wo16,
         std::vector<A32> ro32, std::vector<A32> rw32, std::vector<A32> wo32) {
        BodyFn f = lookup(ro16.size(), rw16.size(), wo16.size(), ro32.size(), rw32.size(),
                          wo32.size());
        if (!f) throw py::value_error("no mixed twin for these stream counts");
        MixedStreams st;
        std::size_t n = 0;
        bool first = true;
        auto size = [&](py::ssize_t k) {
          if (!first && static_cast<std::size_t>(k) != n) throw py::value_error("sizes differ");
          n = static_cast<std::size_t>(k);
          first = false;
        };
        for (auto& a : ro16) { st.ro16.push_back(a.data()); size(a.size()); }
        for (auto& a : rw16) { st.rw16.push_back(a.mutable_data()); size(a.size()); }
        for (auto& a : wo16) { st.wo16.push_back(a.mutable_data()); size(a.size()); }
        for (auto& a : ro32) { st.ro32.push_back(a.data()); size(a.size()); }
        for (auto& a : rw32) { st.rw32.push_back(a.mutable_data()); size(a.size()); }
        for (auto& a : wo32) { st.wo32.push_back(a.mutable_data()); size(a.size()); }
        ReleaseGil nogil;
        parallel_for(n, kElementwiseGrain, [&](std::size_t b, std::size_t e) {
          f(st, b, e, 0, 0.0f);
        });
      },
      py::arg("ro16").noconvert(), py::arg("rw16").noconvert(), py::arg("wo16").noconvert(),
      py::arg("ro32").noconvert(), py::arg("rw32").noconvert(), py::arg("wo32").noconvert(),
      "Benchmark only: the same-traffic twin of a mixed-precision kernel.");
}

}  // namespace fastopt
