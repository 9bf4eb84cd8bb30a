// csrc/cuda/optim.cu compiled for the host (see shim.h): C entry points that
// run a whole emulated launch of each optimizer kernel, for ctypes.
#include "optim.cu"

#define FASTOPT_EMU_TABLE                                                                      \
  const fastopt::cuda::TensorEntry *tensors, const fastopt::cuda::ChunkEntry *chunks,          \
      int n_chunks, long long chunk_size
#define FASTOPT_EMU(T, SUFFIX)                                                                  \
  FASTOPT_EMU_EXPORT void emu_sgd_##SUFFIX(unsigned grid, unsigned block, FASTOPT_EMU_TABLE, T a, T b,  \
                                   T c, T d, T e, int f, int g, int h) {                        \
    fastopt_emulate(grid, block, [&] {                                                          \
      fastopt_sgd_##SUFFIX(tensors, chunks, n_chunks, chunk_size, a, b, c, d, e, f, g, h);      \
    });                                                                                         \
  }                                                                                             \
  FASTOPT_EMU_EXPORT void emu_rmsprop_##SUFFIX(unsigned grid, unsigned block, FASTOPT_EMU_TABLE, T a,   \
                                       T b, T c, T d, T e, T f, T g, int h, int i, int j) {     \
    fastopt_emulate(grid, block, [&] {                                                          \
      fastopt_rmsprop_##SUFFIX(tensors, chunks, n_chunks, chunk_size, a, b, c, d, e, f, g, h,   \
                               i, j);                                                           \
    });                                                                                         \
  }                                                                                             \
  FASTOPT_EMU_EXPORT void emu_adam_##SUFFIX(unsigned grid, unsigned block, FASTOPT_EMU_TABLE, T a, T b, \
                                    T c, T d, T e, T f, T g, T h, T i, T j, int k, int l) {     \
    fastopt_emulate(grid, block, [&] {                                                          \
      fastopt_adam_##SUFFIX(tensors, chunks, n_chunks, chunk_size, a, b, c, d, e, f, g, h, i,   \
                            j, k, l);                                                           \
    });                                                                                         \
  }                                                                                             \
  FASTOPT_EMU_EXPORT void emu_adagrad_##SUFFIX(unsigned grid, unsigned block, FASTOPT_EMU_TABLE, T a,   \
                                       T b, T c, T d, int e) {                                  \
    fastopt_emulate(grid, block, [&] {                                                          \
      fastopt_adagrad_##SUFFIX(tensors, chunks, n_chunks, chunk_size, a, b, c, d, e);           \
    });                                                                                         \
  }

FASTOPT_EMU(float, f32)
FASTOPT_EMU(double, f64)
