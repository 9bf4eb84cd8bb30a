// Dropout loops. The hot path handles blocks of 64 elements (8 mask bytes,
// 16 Philox counters): Philox runs on 16 lanes at once so GCC vectorizes each
// round (philox4x32_10_lanes in fastopt/philox.h), then the words are put in
// element order and compared, scaled and packed. The last partial block goes
// through the per-byte functions of fastopt/dropout.h; both paths use the same
// integer maths and the same single multiply, so they agree bit for bit.
#include "dropout_kernels.h"

#include "isa.h"
#include "parallel.h"

#define FASTOPT_LOOP inline __attribute__((always_inline))

namespace fastopt {
namespace {

using std::size_t;
using std::uint8_t;
using std::uint32_t;
using std::uint64_t;

constexpr int kLanes = 16;                                     // Philox counters per block
constexpr int kBlockElems = kLanes * kDropoutWordsPerCall;     // 64 elements
constexpr int kBlockBytes = kBlockElems / kDropoutBitsPerByte; // 8 mask bytes

// The 64 words of counters j0 .. j0+15, in element order.
FASTOPT_LOOP void block_words(uint64_t j0, uint32_t k0, uint32_t k1, uint32_t* __restrict w) {
  uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    c0[l] = dropout_ctr0(j0 + l);
    c1[l] = dropout_ctr1(j0 + l);
    c2[l] = 0;
    c3[l] = 0;
  }
  philox4x32_10_lanes<kLanes>(c0, c1, c2, c3, k0, k1);
  for (int l = 0; l < kLanes; ++l) {
    w[4 * l + 0] = c0[l];
    w[4 * l + 1] = c1[l];
    w[4 * l + 2] = c2[l];
    w[4 * l + 3] = c3[l];
  }
}

// Mask bytes of one block from its words.
FASTOPT_LOOP void block_mask(const uint32_t* __restrict w, uint64_t t, uint8_t* __restrict m) {
  for (int q = 0; q < kBlockBytes; ++q) {
    uint32_t byte = 0;
    for (int k = 0; k < 8; ++k) byte |= static_cast<uint32_t>(dropout_keep(w[8 * q + k], t)) << k;
    m[q] = static_cast<uint8_t>(byte);
  }
}

template <typename T>
FASTOPT_LOOP void forward_bytes(const T* __restrict x, T* __restrict y, uint8_t* __restrict mask,
                                size_t b0, size_t b1, size_t n, uint32_t k0, uint32_t k1,
                                uint64_t t, T scale) {
  size_t b = b0;
  // Full blocks: all 64 elements exist.
  for (; b + kBlockBytes <= b1 && (b + kBlockBytes) * 8 <= n; b += kBlockBytes) {
    alignas(64) uint32_t w[kBlockElems];
    block_words(2 * static_cast<uint64_t>(b), k0, k1, w);
    const T* xb = x + 8 * b;
    T* yb = y + 8 * b;
    for (int e = 0; e < kBlockElems; ++e) yb[e] = dropout_value(xb[e], dropout_keep(w[e], t), scale);
    block_mask(w, t, mask + b);
  }
  // Remaining bytes (the end of a part, or the array's last partial byte).
  for (; b < b1; ++b) {
    const size_t first = 8 * b;
    const int count = static_cast<int>(n - first < 8 ? n - first : 8);
    mask[b] = static_cast<uint8_t>(
        dropout_forward_byte(x + first, y + first, b, count, k0, k1, t, scale));
  }
}

FASTOPT_LOOP void mask_bytes(uint8_t* __restrict mask, size_t b0, size_t b1, size_t n, uint32_t k0,
                             uint32_t k1, uint64_t t) {
  size_t b = b0;
  for (; b + kBlockBytes <= b1 && (b + kBlockBytes) * 8 <= n; b += kBlockBytes) {
    alignas(64) uint32_t w[kBlockElems];
    block_words(2 * static_cast<uint64_t>(b), k0, k1, w);
    block_mask(w, t, mask + b);
  }
  for (; b < b1; ++b) {
    const size_t first = 8 * b;
    const int count = static_cast<int>(n - first < 8 ? n - first : 8);
    mask[b] = static_cast<uint8_t>(dropout_mask_byte(b, count, k0, k1, t));
  }
}

template <typename T>
FASTOPT_LOOP void backward_bytes(const T* __restrict dy, const uint8_t* __restrict mask,
                                 T* __restrict dx, size_t b0, size_t b1, size_t n, T scale) {
  size_t b = b0;
  for (; b < b1 && (b + 1) * 8 <= n; ++b) {
    const uint32_t byte = mask[b];
    const T* g = dy + 8 * b;
    T* d = dx + 8 * b;
    for (int k = 0; k < 8; ++k) d[k] = dropout_value(g[k], ((byte >> k) & 1u) != 0u, scale);
  }
  for (; b < b1; ++b) {
    const size_t first = 8 * b;
    dropout_backward_byte(dy + first, dx + first, mask[b], static_cast<int>(n - first), scale);
  }
}

#define FASTOPT_DROPOUT_RANGE_FUNCTIONS(T)                                                        \
  FASTOPT_CLONES void dropout_forward_range(const T* x, T* y, uint8_t* mask, size_t b0,           \
                                            size_t b1, size_t n, uint32_t k0, uint32_t k1,        \
                                            uint64_t t, T scale) {                                \
    forward_bytes<T>(x, y, mask, b0, b1, n, k0, k1, t, scale);                                    \
  }                                                                                               \
  FASTOPT_CLONES void dropout_backward_range(const T* dy, const uint8_t* mask, T* dx, size_t b0,  \
                                             size_t b1, size_t n, T scale) {                      \
    backward_bytes<T>(dy, mask, dx, b0, b1, n, scale);                                            \
  }

FASTOPT_DROPOUT_RANGE_FUNCTIONS(float)
FASTOPT_DROPOUT_RANGE_FUNCTIONS(double)

FASTOPT_CLONES void dropout_mask_range(uint8_t* mask, size_t b0, size_t b1, size_t n, uint32_t k0,
                                       uint32_t k1, uint64_t t) {
  mask_bytes(mask, b0, b1, n, k0, k1, t);
}

// Bytes per thread below which one thread does the whole call. The forward
// costs more per byte than a plain elementwise kernel (two Philox calls), so
// it splits earlier.
constexpr size_t kForwardGrainBytes = (kElementwiseGrain / 8) / 4;
constexpr size_t kBackwardGrainBytes = kElementwiseGrain / 8;

size_t mask_bytes_of(size_t n) { return (n + 7) / 8; }

}  // namespace

template <typename T>
void dropout_forward_cpu(const T* x, T* y, uint8_t* mask, size_t n, uint64_t seed,
                         uint64_t threshold, T scale) {
  const uint32_t k0 = dropout_key0(seed), k1 = dropout_key1(seed);
  parallel_for(mask_bytes_of(n), kForwardGrainBytes, [&](size_t b0, size_t b1) {
    dropout_forward_range(x, y, mask, b0, b1, n, k0, k1, threshold, scale);
  });
}

template <typename T>
void dropout_backward_cpu(const T* dy, const uint8_t* mask, T* dx, size_t n, T scale) {
  parallel_for(mask_bytes_of(n), kBackwardGrainBytes, [&](size_t b0, size_t b1) {
    dropout_backward_range(dy, mask, dx, b0, b1, n, scale);
  });
}

void dropout_mask_cpu(uint8_t* mask, size_t n, uint64_t seed, uint64_t threshold) {
  const uint32_t k0 = dropout_key0(seed), k1 = dropout_key1(seed);
  parallel_for(mask_bytes_of(n), kForwardGrainBytes, [&](size_t b0, size_t b1) {
    dropout_mask_range(mask, b0, b1, n, k0, k1, threshold);
  });
}

template void dropout_forward_cpu<float>(const float*, float*, uint8_t*, size_t, uint64_t, uint64_t, float);
template void dropout_forward_cpu<double>(const double*, double*, uint8_t*, size_t, uint64_t, uint64_t, double);
template void dropout_backward_cpu<float>(const float*, const uint8_t*, float*, size_t, float);
template void dropout_backward_cpu<double>(const double*, const uint8_t*, double*, size_t, double);

}  // namespace fastopt
