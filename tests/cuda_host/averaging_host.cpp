// csrc/cuda/averaging.cu compiled for the host (see shim_block.h).
#include "averaging.cu"

#define TABLE                                                                                  \
  const fastopt::cuda::TensorEntry *tensors, const fastopt::cuda::ChunkEntry *chunks,          \
      int n_chunks, long long chunk_size
#define FASTOPT_EMU(T, SUFFIX)                                                                  \
  FASTOPT_EMU_EXPORT void emu_ema_##SUFFIX(unsigned gx, unsigned gy, unsigned b, TABLE, T d, T omd) {   \
    fastopt_emulate(gx, gy, b,                                                                  \
                    [&] { fastopt_ema_##SUFFIX(tensors, chunks, n_chunks, chunk_size, d, omd); }); \
  }

FASTOPT_EMU(float, f32)
FASTOPT_EMU(double, f64)
