// Batch norm's CPU work layout, shared by the loops (batchnorm_planes.cpp,
// batchnorm_rows.cpp, batchnorm_channels.cpp) and the passes that drive them
// (batchnorm_kernels.cpp). x is (N, C, S).
//
// Two layouts, picked from the shape alone:
//  - planes (S >= kPlaneMinS): each (n, c) plane of S contiguous values is cut
//    into blocks of kPlaneBlock; a block is one unit of work with one partial
//    result (count, mean, M2 or two sums).
//  - rows (S < kPlaneMinS, e.g. (N, C) input): x is a matrix of N rows of
//    W = C*S columns; a unit is a range of rows times a tile of columns, with
//    one partial per column, and the loops run along rows so they vectorize
//    over columns. Training calls on small channels run as channel groups
//    (Groups below).
// Units are spread over threads, but which elements a unit covers, and the
// order partials are merged in (unit order, then s order within a channel),
// depend on the shape only: results are bit-identical for any thread count.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <vector>

#include "batchnorm_kernels.h"
#include "parallel.h"

#define FASTOPT_LOOP inline __attribute__((always_inline))

namespace fastopt {
namespace bn {

using std::size_t;

constexpr size_t kLanes = 32;             // independent accumulators of a block reduction
constexpr size_t kFlush = 4;              // element-type lane sets per flush to double (blocks)
constexpr size_t kFlushRows = 8;          // element-type rows per flush to double (row tiles)
constexpr size_t kPlaneBlock = 16384;     // elements per block of a plane
constexpr size_t kPlaneMinS = 256;        // shorter planes use the row layout
constexpr size_t kTileCols = 4096;        // columns per tile (row layout)
constexpr size_t kSubBlockElems = 32768;  // rows x tile width of one cache-resident sub-block
constexpr size_t kRowUnitsMax = 16;       // row ranges (row layout)
constexpr size_t kRowUnitElems = 32768;   // at least this many elements per row range
constexpr size_t kScratchCols = 1 << 18;  // row ranges x W, bounds the partials' memory

// ------------------------------------------------------ the cloned loops
// One per loop and dtype (target_clones does not apply to templates); the
// maths of each element is csrc/include/fastopt/batchnorm.h's. X is the
// storage type of x, dy, y, dx (fastopt/storage.h), T = compute_t<X> that of
// the per-channel constants: 16-bit values are widened on load and rounded
// once on store.
#define FASTOPT_BN_ELEMENT_DECLARATIONS(X, T)                                                    \
  /* planes (batchnorm_planes.cpp): one block of len contiguous values */                      \
  void block_moments(const X* x, size_t len, double* mean, double* m2);                         \
  void block_sums(const X* dy, const X* x, X* dx, size_t len, T mean, T k, bool eval,           \
                  double* s_dy, double* s_dyxmu);                                               \
  void block_affine(const X* x, X* y, size_t len, T mean_hi, T mean_lo, T scale, T beta);      \
  void block_dx(const X* dy, const X* x, X* dx, size_t len, T mean, T k, T proj, T mean_dy);    \
  /* rows (batchnorm_rows.cpp): R rows of w columns at stride W, per-column arrays */          \
  void rows_moments(const X* x, size_t R, size_t W, size_t w, double* mean, double* m2,         \
                    double* tmp_s, double* tmp_q, T* approx);                                   \
  void rows_sums(const X* dy, const X* x, X* dx, size_t R, size_t W, size_t w, const T* mean,   \
                 const T* k, bool eval, double* s_dy, double* s_dyxmu);                         \
  void rows_affine(const X* x, X* y, size_t R, size_t W, size_t w, const T* mean_hi,           \
                   const T* mean_lo, const T* scale, const T* beta);                            \
  void rows_dx(const X* dy, const X* x, X* dx, size_t R, size_t W, size_t w, const T* mean,     \
               const T* k, const T* proj, const T* mean_dy);
FASTOPT_BN_ELEMENT_DECLARATIONS(float, float)
FASTOPT_BN_ELEMENT_DECLARATIONS(double, double)
FASTOPT_BN_ELEMENT_DECLARATIONS(Bf16, float)
FASTOPT_BN_ELEMENT_DECLARATIONS(F16, float)
#undef FASTOPT_BN_ELEMENT_DECLARATIONS

// The moments of n values at `stride`, summed in double: the fallback of the
// element-type loops above where their result is not finite. Finite float32
// values more than 1.8e19 from the mean square to inf in float32, so those loops
// gave M2 = inf and invstd 0 (torch's float32 CPU batch norm gives 0 too), or a
// NaN mean near 1e37, although double holds both (the float64 reference, numpy
// and numba give them). Non-finite input keeps its classes: a NaN makes mean and
// M2 NaN, an infinity makes the mean infinite and M2 NaN.
template <typename X>
FASTOPT_LOOP void moments_in_double(const X* x, size_t n, size_t stride, double* mean,
                                    double* m2) {
  double s = 0.0;
  for (size_t i = 0; i < n; ++i) s += double(widen(x[i * stride]));
  const double m = s / double(n);
  double q = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double d = double(widen(x[i * stride])) - m;
    q += d * d;
  }
  *mean = m;
  *m2 = q;
}

FASTOPT_LOOP bool moments_not_finite(double mean, double m2) {
  return !std::isfinite(mean) || !std::isfinite(m2);
}

#define FASTOPT_BN_LOOP_DECLARATIONS(T)                                                          \
  /* per-channel finalization of (N, C) input, columns c0..c1 (batchnorm_channels.cpp) */       \
  void finish_forward_columns(size_t c0, size_t c1, double n, const double* mean,               \
                              const double* m2, const T* gamma, const T* beta, T* rm, T* rv,    \
                              T* sm, T* si, T* mean_lo, T* scale, double momentum, double eps); \
  void finish_backward_columns(size_t c0, size_t c1, double count, const double* s_dy,          \
                               const double* s_dyxmu, const T* gamma, const T* sm,              \
                               const T* si, T* dgamma, T* dbeta, T* k, T* proj, T* mdy);
FASTOPT_BN_LOOP_DECLARATIONS(float)
FASTOPT_BN_LOOP_DECLARATIONS(double)
#undef FASTOPT_BN_LOOP_DECLARATIONS

// Merges per-column partials of a later row range into the running ones.
void merge_columns(double* mean, double* m2, double na, const double* mean_b, const double* m2_b,
                   double nb, size_t w);

// --------------------------------------------------------------- layout
struct Layout {
  bool planes = false;
  size_t units = 0;
  size_t J = 0;              // planes: blocks per plane
  size_t W = 0, RU = 0, CT = 0;  // rows: row width, row ranges, column tiles

  explicit Layout(const BnShape& s) {
    if (s.S >= kPlaneMinS) {
      planes = true;
      J = (s.S + kPlaneBlock - 1) / kPlaneBlock;
      units = s.N * s.C * J;
    } else {
      W = s.C * s.S;
      if (W == 0 || s.N == 0) return;
      CT = (W + kTileCols - 1) / kTileCols;
      RU = std::min({kRowUnitsMax, s.N, std::max<size_t>(1, s.N * W / kRowUnitElems),
                     std::max<size_t>(1, kScratchCols / W)});
      units = RU * CT;
    }
  }
  // Planes: unit u is block j of plane p = n*C + c.
  size_t block_len(const BnShape& s, size_t j) const {
    return std::min(kPlaneBlock, s.S - j * kPlaneBlock);
  }
  // Rows: unit u is row range ru times column tile ct.
  size_t row_begin(const BnShape& s, size_t ru) const { return s.N * ru / RU; }
  size_t col_begin(size_t ct) const { return ct * kTileCols; }
  size_t col_width(size_t ct) const { return std::min(kTileCols, W - ct * kTileCols); }
};

// Runs f(u) for every unit, units spread over threads in contiguous ranges.
template <typename F>
void for_units(size_t units, size_t elements, const F& f) {
  if (units == 0) return;
  const size_t parts = std::min<size_t>(parallel_parts(elements, kElementwiseGrain), units);
  if (parts <= 1) {
    for (size_t u = 0; u < units; ++u) f(u);
    return;
  }
  // parallel_for over parts*64 items of grain 64 gives exactly `parts` parts.
  parallel_for(parts * 64, 64, [&](size_t b, size_t e) {
    for (size_t p = b / 64; p < e / 64; ++p)
      for (size_t u = units * p / parts; u < units * (p + 1) / parts; ++u) f(u);
  });
}

// Scratch reused across calls by the calling thread (workers only write into
// it through pointers), so a call allocates nothing once warm. Slots 0-1 hold
// double partials, 2-3 per-column T constants (distinct even when T = double).
template <typename T>
std::vector<T>& scratch(size_t n, int which) {
  thread_local std::vector<T> bufs[4];
  std::vector<T>& v = bufs[which];
  if (v.size() < n) v.resize(n);
  return v;
}

// Per-column copies of per-channel constants (row layout, W = C*S columns).
template <typename T, typename U>
void expand(T* col, const U* per_channel, const BnShape& s) {
  for (size_t c = 0; c < s.C; ++c)
    for (size_t k = 0; k < s.S; ++k) col[c * s.S + k] = T(per_channel[c]);
}

// ------------------------------------------------ channel-group layout
// Training calls on the row layout whose channels are small run as ONE
// parallel region over groups of whole channels: a unit computes its channels'
// statistics, finalizes them and then normalizes (forward), or sums dy and
// dy*(x-mean), finalizes and writes dx (backward), while its columns are still
// in its core's cache. That reads x (and dy) from memory once instead of twice
// and wakes the pool once per call. Units take wide column ranges (one per
// thread when it fits the cache budget): short row segments at a large stride
// defeat the prefetchers. Per-column results do not depend on the group width
// (rows_moments' sub-blocks depend on W only) and whether this layout is used
// depends on the shape only, so results stay bit-identical for any thread
// count. Planes keep the block layout: a channel's planes lie C*S apart, and
// walking them channel by channel hops pages faster than the prefetchers
// follow (measured 1.6x slower on (32, 64, 32, 32)).
constexpr size_t kGroupBytes = 512 * 1024;  // a unit's share of x, at most
constexpr size_t kGroupMinCols = 64;        // columns per unit, at least

struct Groups {
  size_t per_unit = 0;  // channels per unit; 0: use the two-region layout
  size_t units = 0;
  Groups(const BnShape& s, const Layout& L, size_t elem) {
    if (L.planes || s.N == 0 || s.C == 0 || s.S == 0) return;
    const size_t channel_bytes = s.N * s.S * elem;
    const size_t min_g = std::min(s.C, (kGroupMinCols + s.S - 1) / s.S);
    if (channel_bytes * min_g > kGroupBytes || s.C * s.S < 2 * kGroupMinCols) return;
    // Two units per thread (measured best on (256, 1024): a unit's x and dy
    // then stay in L2 between the passes), on whole cache lines of columns.
    const size_t units_wanted = 2 * size_t(num_threads());
    const size_t line = std::max<size_t>(1, 64 / (s.S * elem));
    size_t want = (s.C + units_wanted - 1) / units_wanted;
    want = (want + line - 1) / line * line;
    per_unit = std::min(std::max(want, min_g), kGroupBytes / channel_bytes);
    units = (s.C + per_unit - 1) / per_unit;
  }
  size_t first(size_t u) const { return u * per_unit; }
  size_t last(const BnShape& s, size_t u) const { return std::min(s.C, (u + 1) * per_unit); }
};


}  // namespace bn
}  // namespace fastopt
