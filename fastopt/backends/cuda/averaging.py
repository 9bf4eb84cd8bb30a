"""Parameter averaging (EMA) on the GPU: one multi-tensor launch
(csrc/cuda/averaging.cu), same signature as ``fastopt/backends/cpp/averaging.py``."""
from __future__ import annotations

from fastopt.backends.cuda import loader

KERNELS = {"ema": "ppiq" + "TT"}


def ema(avgs, params, *, decay):
    if not avgs:
        return
    dtype = avgs[0].dtype
    with loader.device_of(avgs):
        t = loader.device_table([avgs, params, None, None, None])
        if t.n_chunks:
            name = f"fastopt_ema_{loader.suffix(dtype)}"
            loader.launch("averaging", name, loader.multi_tensor_grid("averaging", name, t.n_chunks),
                          loader.BLOCK_THREADS, KERNELS["ema"],
                          (t.tensors, t.chunks, t.n_chunks, loader.CHUNK_SIZE, decay,
                           1.0 - decay), dtype)
