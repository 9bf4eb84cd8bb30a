// csrc/cuda/clipping.cu compiled for the host (see shim_block.h).
#include "clipping.cu"

#define TABLE                                                                                  \
  const fastopt::cuda::TensorEntry *tensors, const fastopt::cuda::ChunkEntry *chunks,          \
      int n_chunks, long long chunk_size
#define FASTOPT_EMU(T, SUFFIX)                                                                  \
  FASTOPT_EMU_EXPORT void emu_scale_##SUFFIX(unsigned gx, unsigned gy, unsigned b, TABLE, T coef) {     \
    fastopt_emulate(gx, gy, b,                                                                  \
                    [&] { fastopt_scale_##SUFFIX(tensors, chunks, n_chunks, chunk_size, coef); }); \
  }                                                                                             \
  FASTOPT_EMU_EXPORT void emu_clip_scale_##SUFFIX(unsigned gx, unsigned gy, unsigned b, TABLE,        \
                                                 const double* norm, double max_norm) {         \
    fastopt_emulate(gx, gy, b, [&] {                                                            \
      fastopt_clip_scale_##SUFFIX(tensors, chunks, n_chunks, chunk_size, norm, max_norm);       \
    });                                                                                         \
  }                                                                                             \
  FASTOPT_EMU_EXPORT void emu_norm_partials_##SUFFIX(unsigned gx, unsigned gy, unsigned b, TABLE,       \
                                             double* partial, int kind, double p) {             \
    fastopt_emulate(gx, gy, b, [&] {                                                            \
      fastopt_norm_partials_##SUFFIX(tensors, chunks, n_chunks, chunk_size, partial, kind, p);  \
    });                                                                                         \
  }

FASTOPT_EMU(float, f32)
FASTOPT_EMU(double, f64)

FASTOPT_EMU_EXPORT void emu_norm_finish(unsigned gx, unsigned gy, unsigned b, const double* partial,
                                int count, double* out, int kind, double p) {
  fastopt_emulate(gx, gy, b, [&] { fastopt_norm_finish(partial, count, out, kind, p); });
}
