// pybind11 entry points of the 8-bit optimizer steps (fastopt/quantized.py).
// A QuantizedState arrives as its codes and absmax arrays (lists, one per
// tensor) plus the map; fastopt/_quantized_validate.py has checked every
// size, dtype and overlap. Each tensor runs parallel over its blocks.
#include <cstring>
#include <deque>
#include <mutex>

#include "../cpu/parallel.h"
#include "../cpu/quantized_kernels.h"
#include "../cpu/quantized_simd.h"
#include "arrays.h"
#include "fastopt/quantize.h"

namespace fastopt {

PyObject* storage_dtype(int code);   // optim_mixed.cpp

namespace {

using Codes = ArrayList<std::uint8_t>;
using Maxes = ArrayList<float>;
constexpr std::size_t kBlockGrain = kElementwiseGrain / 256;

#if FASTOPT_HAVE_SIMD_LOOKUPS
// The tables the AVX-512 loops derive from a map's values (byte planes, lines),
// built from the values themselves rather than taken from Python, so that they
// cannot disagree with them.
struct MapTables {
  float values[256];
  alignas(64) std::uint8_t planes[kMapPlaneBytes];
  CodeLines lines;
  bool has_lines;
};

void build_tables(const float* values, MapTables& t) {
  std::memcpy(t.values, values, sizeof t.values);
  map_byte_planes(values, t.planes);
  t.has_lines = code_lines_of(values, &t.lines);
}

// Building them takes about 2.7 us per map, so the tables of the maps seen so
// far (the two dynamic maps in practice) are kept, found by their values.
// nullptr once 8 different maps have been seen: the caller builds its own.
const MapTables* cached_tables(const float* values) {
  static std::mutex mutex;
  static std::deque<MapTables> cache;   // stable addresses
  std::lock_guard<std::mutex> lock(mutex);
  for (const MapTables& t : cache)
    if (std::memcmp(t.values, values, sizeof t.values) == 0) return &t;
  if (cache.size() >= 8) return nullptr;
  build_tables(values, cache.emplace_back());
  return &cache.back();
}
#endif

// A map's tables for one call.
struct Map {
  const float* values;
  const int* lut;
#if FASTOPT_HAVE_SIMD_LOOKUPS
  const MapTables* tables = nullptr;   // where the CPU runs the AVX-512 loops
  MapTables own;                       // when the cache is full
#endif
};

// The tables come from fastopt/backends/cpp/quantized.py; a size other than
// quantize.h's says the Python and C++ constants of the table disagree.
template <bool Signed>
void map_of(const Array<float>& values, const Array<int>& lut, Map& map) {
  if (values.size() != 256 || lut.size() != kLutEntries<Signed>)
    throw py::value_error("8-bit step: the map or code table does not match quantize.h");
  map.values = values.data();
  map.lut = lut.data();
#if FASTOPT_HAVE_SIMD_LOOKUPS
  if (cpu_has_avx512_vbmi()) {
    map.tables = cached_tables(map.values);
    if (!map.tables) {
      build_tables(map.values, map.own);
      map.tables = &map.own;
    }
  }
#endif
}

QView map_view(std::uint8_t* codes, float* absmax, const Map& map) {
#if FASTOPT_HAVE_SIMD_LOOKUPS
  const MapTables* t = map.tables;
  const std::uint8_t* planes = t ? t->planes : nullptr;
  const CodeLines* lines = t && t->has_lines ? &t->lines : nullptr;
#else
  const std::uint8_t* planes = nullptr;
  const CodeLines* lines = nullptr;
#endif
  return QView{codes, absmax, map.values, map.lut, planes, lines};
}

QView view(Codes& codes, Maxes& absmax, const Map& map, std::size_t t) {
  return map_view(codes[t].mutable_data(), absmax[t].mutable_data(), map);
}

// The codes the steps write for x / absmax (tests/test_quantized.py checks them
// against the reference's search on the floats around every threshold).
py::array_t<std::uint8_t> codes_8bit(Array<float> x, Array<float> values, Array<int> lut,
                                     bool is_signed, double absmax) {
  Map map;
  is_signed ? map_of<true>(values, lut, map) : map_of<false>(values, lut, map);
  if (!(absmax > 0.0)) throw py::value_error("quantize_codes_8bit: absmax must be > 0");
  py::array_t<std::uint8_t> out(x.size());
  const QView q = map_view(nullptr, nullptr, map);
  quantize_codes_range(q, is_signed, x.data(), static_cast<float>(absmax), out.mutable_data(),
                       static_cast<std::size_t>(x.size()));
  return out;
}

// Which loops the 8-bit steps take here: dequantize "avx512-vbmi", "avx2" or
// "scalar"; code "avx512-lines", "avx2" or "scalar".
py::dict loops_8bit(Array<float> values, Array<int> lut, bool is_signed) {
  Map map;
  is_signed ? map_of<true>(values, lut, map) : map_of<false>(values, lut, map);
  const QView q = map_view(nullptr, nullptr, map);
  py::dict d;
  d["dequantize"] = q.planes ? "avx512-vbmi" : cpu_has_avx2() ? "avx2" : "scalar";
  d["code"] = q.lines ? "avx512-lines" : cpu_has_avx2() ? "avx2" : "scalar";
  return d;
}

// The params and grads of a call, of storage types p_type / g_type (mixed.h;
// checked by fastopt/_quantized_validate.py, and here again so that a wrong
// call cannot touch memory it does not own).
struct Tensors {
  std::vector<QTensor> t;
  std::vector<std::size_t> n;
};

Tensors tensors(std::vector<py::array>& params, std::vector<py::array>& grads, int p_type,
                int g_type) {
  if (grads.size() != params.size()) throw py::value_error("8-bit step: grads: list length");
  const py::dtype pd = py::reinterpret_borrow<py::dtype>(storage_dtype(p_type));
  const py::dtype gd = py::reinterpret_borrow<py::dtype>(storage_dtype(g_type));
  Tensors out;
  for (std::size_t i = 0; i < params.size(); ++i) {
    py::array &p = params[i], &g = grads[i];
    if (!p.dtype().equal(pd) || !g.dtype().equal(gd))
      throw py::type_error("8-bit step: dtype does not match its storage type code");
    if (!(p.flags() & py::array::c_style) || !(g.flags() & py::array::c_style) ||
        g.size() != p.size())
      throw py::value_error("8-bit step: not C-contiguous or of the wrong size");
    out.t.push_back(QTensor{p.mutable_data(), g.data(), p_type, g_type});
    out.n.push_back(static_cast<std::size_t>(p.size()));
  }
  return out;
}

template <typename Range>
void each_tensor(const Tensors& ts, const Range& range) {
  for (std::size_t t = 0; t < ts.t.size(); ++t) {
    const std::size_t n = ts.n[t];
    const std::size_t blocks = (n + 255) / 256;
    parallel_for_units(blocks, kBlockGrain,
                       [&](std::size_t b0, std::size_t b1) { range(t, n, b0, b1); });
  }
}

void adam(std::vector<py::array> params, std::vector<py::array> grads, int p_type, int g_type,
          Codes m_codes, Maxes m_absmax,
          Codes v_codes, Maxes v_absmax, Array<float> signed_map, Array<int> signed_lut,
          Array<float> unsigned_map, Array<int> unsigned_lut, double beta1, double one_minus_beta1, double beta2, double one_minus_beta2, double eps,
          double weight_decay, double grad_sign, double step_size, double bc2_sqrt,
          double decay_factor, int weight_decay_mode) {
  const Tensors ts = tensors(params, grads, p_type, g_type);
  AdamScalars<float> s{float(beta1), float(one_minus_beta1), float(beta2), float(one_minus_beta2),
                       float(eps), float(weight_decay), float(grad_sign), float(step_size),
                       float(bc2_sqrt), float(decay_factor)};
  Map sm, um;
  map_of<true>(signed_map, signed_lut, sm);
  map_of<false>(unsigned_map, unsigned_lut, um);
  py::gil_scoped_release nogil;
  each_tensor(ts, [&](std::size_t t, std::size_t n, std::size_t b0, std::size_t b1) {
    adam_q_range(ts.t[t], view(m_codes, m_absmax, sm, t),
                 view(v_codes, v_absmax, um, t), n, b0, b1, s, weight_decay_mode);
  });
}

void sgd(std::vector<py::array> params, std::vector<py::array> grads, int p_type, int g_type,
         Codes codes, Maxes absmax,
         Array<float> signed_map, Array<int> signed_lut, double lr, double momentum, double one_minus_dampening,
         double weight_decay, double grad_sign, bool nesterov, bool first_step) {
  const Tensors ts = tensors(params, grads, p_type, g_type);
  SgdScalars<float> s{float(lr), float(momentum), float(one_minus_dampening), float(weight_decay),
                      float(grad_sign)};
  Map sm;
  map_of<true>(signed_map, signed_lut, sm);
  py::gil_scoped_release nogil;
  each_tensor(ts, [&](std::size_t t, std::size_t n, std::size_t b0, std::size_t b1) {
    sgd_q_range(ts.t[t], view(codes, absmax, sm, t), n, b0, b1, s,
                weight_decay != 0.0, nesterov ? 2 : 1, first_step);
  });
}

void rmsprop(std::vector<py::array> params, std::vector<py::array> grads, int p_type,
             int g_type, Codes sq_codes, Maxes sq_absmax,
             std::optional<Codes> ga_codes, std::optional<Maxes> ga_absmax,
             std::optional<Codes> buf_codes, std::optional<Maxes> buf_absmax,
             Array<float> signed_map, Array<int> signed_lut, Array<float> unsigned_map,
             Array<int> unsigned_lut, double lr, double alpha,
             double one_minus_alpha, double eps, double weight_decay, double momentum,
             double grad_sign) {
  const Tensors ts = tensors(params, grads, p_type, g_type);
  RmspropScalars<float> s{float(lr), float(alpha), float(one_minus_alpha), float(eps),
                          float(weight_decay), float(momentum), float(grad_sign)};
  const bool cen = ga_codes.has_value(), mom = buf_codes.has_value();
  Map sm, um;
  map_of<true>(signed_map, signed_lut, sm);
  map_of<false>(unsigned_map, unsigned_lut, um);
  py::gil_scoped_release nogil;
  each_tensor(ts, [&](std::size_t t, std::size_t n, std::size_t b0, std::size_t b1) {
    const QView none{nullptr, nullptr, nullptr, nullptr, nullptr, nullptr};
    rmsprop_q_range(ts.t[t], view(sq_codes, sq_absmax, um, t),
                    cen ? view(*ga_codes, *ga_absmax, sm, t) : none,
                    mom ? view(*buf_codes, *buf_absmax, sm, t) : none, n, b0, b1, s,
                    weight_decay != 0.0, cen, mom);
  });
}

}  // namespace

void register_quantized(py::module_& m) {
  m.def("quantize_codes_8bit", &codes_8bit, py::arg("x").noconvert(), py::arg("map").noconvert(),
        py::arg("lut").noconvert(), py::arg("signed"), py::arg("absmax"));
  m.def("loops_8bit", &loops_8bit, py::arg("map").noconvert(), py::arg("lut").noconvert(),
        py::arg("signed"));
  m.def("adam_step_8bit", &adam, py::arg("params").noconvert(), py::arg("grads").noconvert(), py::arg("p_type"),
        py::arg("g_type"),
        py::arg("m_codes").noconvert(), py::arg("m_absmax").noconvert(),
        py::arg("v_codes").noconvert(), py::arg("v_absmax").noconvert(),
        py::arg("signed_map").noconvert(), py::arg("signed_lut").noconvert(),
        py::arg("unsigned_map").noconvert(), py::arg("unsigned_lut").noconvert(), py::arg("beta1"),
        py::arg("one_minus_beta1"), py::arg("beta2"), py::arg("one_minus_beta2"), py::arg("eps"),
        py::arg("weight_decay"), py::arg("grad_sign"), py::arg("step_size"), py::arg("bc2_sqrt"),
        py::arg("decay_factor"), py::arg("weight_decay_mode"));
  m.def("sgd_step_8bit", &sgd, py::arg("params").noconvert(), py::arg("grads").noconvert(), py::arg("p_type"),
        py::arg("g_type"),
        py::arg("codes").noconvert(), py::arg("absmax").noconvert(),
        py::arg("signed_map").noconvert(), py::arg("signed_lut").noconvert(), py::arg("lr"),
        py::arg("momentum"),
        py::arg("one_minus_dampening"), py::arg("weight_decay"), py::arg("grad_sign"),
        py::arg("nesterov"), py::arg("first_step"));
  m.def("rmsprop_step_8bit", &rmsprop, py::arg("params").noconvert(), py::arg("grads").noconvert(), py::arg("p_type"),
        py::arg("g_type"),
        py::arg("sq_codes").noconvert(), py::arg("sq_absmax").noconvert(),
        py::arg("ga_codes").noconvert(), py::arg("ga_absmax").noconvert(),
        py::arg("buf_codes").noconvert(), py::arg("buf_absmax").noconvert(),
        py::arg("signed_map").noconvert(), py::arg("signed_lut").noconvert(),
        py::arg("unsigned_map").noconvert(), py::arg("unsigned_lut").noconvert(), py::arg("lr"),
        py::arg("alpha"), py::arg("one_minus_alpha"), py::arg("eps"), py::arg("weight_decay"),
        py::arg("momentum"), py::arg("grad_sign"));
}

}  // namespace fastopt
