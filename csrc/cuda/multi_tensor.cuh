// The list ("multi-tensor") form on the GPU: ONE launch updates every tensor
// of a list, in the manner of apex's multi_tensor_apply. The host
// (fastopt/backends/cuda/loader.py: pack_table / plan_chunks) uploads, once per list
// of data pointers, a table of
//   TensorEntry: the role pointers (param, grad, state...) of one tensor, its
//                element count, and whether all its used pointers are 16-byte
//                aligned;
//   ChunkEntry:  (tensor, chunk) pairs, chunk c of a tensor covering elements
//                [c * chunk_size, min((c + 1) * chunk_size, size)).
// Work is handed out in units of chunk_size / kUnitsPerChunk elements (4096
// for 32768-element chunks): block b takes units b, b + gridDim.x, ... so a
// list of 200 small tensors fills the GPU like one large one, and a launch
// sized to the blocks resident at once (loader.resident_grid: the occupancy
// API times the SMs, "persistent") ends with every block within one 4096-element
// unit of the others, instead of a last partial wave of whole chunks. The
// kernels are elementwise, so no split changes a bit of the result.
//
// Inside a chunk, aligned tensors go through 16-byte vector loads (float4 /
// double2); the rest (and the last size % V elements of a tensor) through a
// scalar loop. Both call the same per-element function, compiled with
// --fmad=false, so an element's result does not depend on which path, chunk
// or block touched it (docs/reference.md s.2).
//
// Only NVRTC's built-in types are used here (no <cstdint>, no size_t): this
// file is compiled by NVRTC at run time as well as by nvcc in the tests.
#pragma once

namespace fastopt {
namespace cuda {

constexpr int kRoles = 5;        // pointer roles per tensor
constexpr int kBlockThreads = 256;
constexpr int kUnitsPerChunk = 8;   // UNITS_PER_CHUNK in loader.py

// Layout shared with fastopt/backends/cuda/loader.py (TENSOR_ENTRY_WORDS = 8 int64).
struct TensorEntry {
  unsigned long long ptr[kRoles];
  long long size;
  long long vec_ok;   // 1 when every used pointer is 16-byte aligned
  long long unused;
};
struct ChunkEntry {
  int tensor;
  int chunk;
};

template <typename T>
struct alignas(16) Pack {
  static constexpr int kWidth = 16 / sizeof(T);
  T v[kWidth];
};

__device__ __forceinline__ long long min_ll(long long a, long long b) { return a < b ? a : b; }

// READ and WRITE are bit masks over the roles: bit r set when role r is read
// (loaded) or written (stored). A role that is only written (SGD's first
// momentum step) is never loaded. Op is called as op(e) with T e[kRoles].
template <typename T, unsigned READ, unsigned WRITE, typename Op>
__device__ __forceinline__ void apply_chunks(const TensorEntry* __restrict__ tensors,
                                             const ChunkEntry* __restrict__ chunks, int n_chunks,
                                             long long chunk_size, const Op& op) {
  constexpr unsigned USED = READ | WRITE;
  constexpr int V = Pack<T>::kWidth;
  // chunk_size is a multiple of 4 * kUnitsPerChunk (loader.CHUNK_SIZE; checked by
  // tests/test_cuda_loader.py), so every unit starts on a whole 16-byte pack
  const long long unit_len = chunk_size / kUnitsPerChunk;
  const long long n_units = static_cast<long long>(n_chunks) * kUnitsPerChunk;
  for (long long u = blockIdx.x; u < n_units; u += gridDim.x) {
    const ChunkEntry ch = chunks[u / kUnitsPerChunk];
    const TensorEntry& te = tensors[ch.tensor];
    const long long begin = ch.chunk * chunk_size + (u % kUnitsPerChunk) * unit_len;
    if (begin >= te.size) continue;   // past the end of the tensor's last chunk
    const long long n = min_ll(unit_len, te.size - begin);
    T* ptr[kRoles];
#pragma unroll
    for (int r = 0; r < kRoles; ++r)
      ptr[r] = ((USED >> r) & 1u) ? reinterpret_cast<T*>(te.ptr[r]) + begin : nullptr;

    long long done = 0;
    if (te.vec_ok) {
      const long long nv = n / V;
      for (long long i = threadIdx.x; i < nv; i += blockDim.x) {
        Pack<T> x[kRoles];
#pragma unroll
        for (int r = 0; r < kRoles; ++r)
          if ((READ >> r) & 1u) x[r] = reinterpret_cast<const Pack<T>*>(ptr[r])[i];
#pragma unroll
        for (int k = 0; k < V; ++k) {
          T e[kRoles] = {};
#pragma unroll
          for (int r = 0; r < kRoles; ++r)
            if ((READ >> r) & 1u) e[r] = x[r].v[k];
          op(e);
#pragma unroll
          for (int r = 0; r < kRoles; ++r)
            if ((WRITE >> r) & 1u) x[r].v[k] = e[r];
        }
#pragma unroll
        for (int r = 0; r < kRoles; ++r)
          if ((WRITE >> r) & 1u) reinterpret_cast<Pack<T>*>(ptr[r])[i] = x[r];
      }
      done = nv * V;
    }
    for (long long i = done + threadIdx.x; i < n; i += blockDim.x) {
      T e[kRoles] = {};
#pragma unroll
      for (int r = 0; r < kRoles; ++r)
        if ((READ >> r) & 1u) e[r] = ptr[r][i];
      op(e);
#pragma unroll
      for (int r = 0; r < kRoles; ++r)
        if ((WRITE >> r) & 1u) ptr[r][i] = e[r];
    }
  }
}

}  // namespace cuda
}  // namespace fastopt

// The leading parameters of every multi-tensor entry point (the table from
// loader.pack_table), spelled "ppiq" in the backends' KERNELS specs.
#define FASTOPT_TABLE_ARGS                                                                   \
  const fastopt::cuda::TensorEntry *tensors, const fastopt::cuda::ChunkEntry *chunks,        \
      int n_chunks, long long chunk_size
