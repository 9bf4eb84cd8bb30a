// The same-traffic twin: a trivial kernel that moves exactly the bytes of the
// kernel it stands in for, on fastopt's thread pool (see twin.cpp).
#pragma once
#include <cstddef>
#include <cstdint>

namespace fastopt {

// Arrays of one twin call: counts and pointers of each stream kind.
template <typename T>
struct TwinStreams {
  const T* const* ro;  // read only
  T* const* rw;        // read and written
  T* const* wo;        // written only
  int n_ro, n_rw, n_wo;
  const std::uint8_t* mask_in;  // a bit mask read (1 bit per element), or null
  std::uint8_t* mask_out;       // a bit mask written, or null
};

// Runs the twin over n elements; returns the sum of s (the reduction's result)
// when there is nothing to write, else 0. False from twin_supported: no
// vectorized body for these counts.
template <typename T>
double twin_cpu(const TwinStreams<T>& s, std::size_t n, T scale);
bool twin_supported(int n_ro, int n_rw, int n_wo, bool mask_in, bool mask_out);

}  // namespace fastopt
