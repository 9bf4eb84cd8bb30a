"""Gradient clipping on the GPU (csrc/cuda/clipping.cu).

Same functions and signatures as ``fastopt/backends/cpp/clipping.py``. ``scale``
is one multi-tensor launch; ``grad_norm`` is two launches
(per-chunk partials, then one block combining them in a fixed order) and one
8-byte copy back to the host, since it returns a Python float.
``clip_grad_norm_device`` is the sync-free clip: the same two launches, then
one scaling launch that reads the norm from device memory and scales by
``max_norm / (norm + 1e-6)`` when that is below 1; nothing comes back to the
host.
"""
from __future__ import annotations

import math

import numpy as np

from fastopt.backends.cuda import loader

L2, L1, INF, P = 0, 1, 2, 3     # NormKind in csrc/include/fastopt/clipping.h
_TABLE = "ppiq"
KERNELS = {
    "scale": _TABLE + "T",
    "norm_partials": _TABLE + "pid",
    "norm_finish": "pipid",
    "clip_scale": _TABLE + "pd",
}


def norm_kind(norm_type):
    if math.isinf(norm_type):
        return INF
    return {2.0: L2, 1.0: L1}.get(norm_type, P)


def _table(roles):
    return loader.device_table(roles)


def scale(grads, *, coef):
    if not grads:
        return
    dtype = grads[0].dtype
    with loader.device_of(grads):
        t = _table([grads, None, None, None, None])
        if t.n_chunks:
            name = f"fastopt_scale_{loader.suffix(dtype)}"
            loader.launch("clipping", name, loader.multi_tensor_grid("clipping", name, t.n_chunks),
                          loader.BLOCK_THREADS, KERNELS["scale"],
                          (t.tensors, t.chunks, t.n_chunks, loader.CHUNK_SIZE, coef), dtype)


def _norm_on_device(grads, norm_type):
    """``(table, out)``: ``out[1]`` is the norm, in device memory (call inside device_of)."""
    dtype = grads[0].dtype
    kind = norm_kind(norm_type)
    t = _table([grads, None, None, None, None])
    if t.n_chunks == 0:
        return t, None
    partial = loader.empty(t.n_chunks, np.float64)
    out = loader.empty(2, np.float64)
    loader.launch("clipping", f"fastopt_norm_partials_{loader.suffix(dtype)}",
                  loader.grid_size(t.n_chunks), loader.BLOCK_THREADS,
                  KERNELS["norm_partials"],
                  (t.tensors, t.chunks, t.n_chunks, loader.CHUNK_SIZE, partial, kind,
                   norm_type), dtype)
    loader.launch("clipping", "fastopt_norm_finish", 1, loader.BLOCK_THREADS,
                  KERNELS["norm_finish"], (partial, t.n_chunks, out, kind, norm_type), dtype)
    return t, out


def grad_norm(grads, *, norm_type):
    if not grads:
        return 0.0
    with loader.device_of(grads):
        _, out = _norm_on_device(grads, norm_type)
        return 0.0 if out is None else float(loader.to_host(out)[1])


def clip_grad_norm_device(grads, *, max_norm, norm_type):
    """Clips in place without a host synchronization; returns the norm as a
    0-d float64 device array (on the gradients' device)."""
    with loader.device_of(grads):
        t, out = _norm_on_device(grads, norm_type)
        if out is None:
            out = loader.empty(2, np.float64)
            out.fill(0.0)
            return out[1]
        dtype = grads[0].dtype
        name = f"fastopt_clip_scale_{loader.suffix(dtype)}"
        loader.launch("clipping", name, loader.multi_tensor_grid("clipping", name, t.n_chunks),
                      loader.BLOCK_THREADS, KERNELS["clip_scale"],
                      (t.tensors, t.chunks, t.n_chunks, loader.CHUNK_SIZE, out, max_norm), dtype)
        return out[1]
