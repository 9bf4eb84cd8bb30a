"""CUDA tensors on fastopt's ``cuda`` backend: cupy views and torch's stream.

fastopt's CUDA kernels take cupy arrays and launch on cupy's *current* stream.
For torch tensors both come from torch:

- :func:`view` is a cupy array on a tensor's memory through DLPack (zero
  copy; it keeps the tensor alive). :func:`unowned` is one that does not keep
  it alive, for the cached gradient views of ``fastopt.torch``'s step plans:
  with ``zero_grad(set_to_none=True)`` every backward makes new gradient
  tensors, which torch's caching allocator places at the addresses the last
  ones had, so a view cached by (pointer, shape) is reused step after step;
  an owning view would pin the old gradient and defeat that.
- :func:`torch_stream` makes torch's current stream on a device cupy's current
  stream (a cached ``cupy.cuda.ExternalStream``), with that device current, so
  the kernels queue behind the backward pass that wrote the gradients and
  before whatever torch queues next, as ``torch.optim``'s own kernels do.

cupy is imported only when a CUDA tensor reaches these functions. The names
here are the only place ``fastopt.torch`` touches cupy (tests replace them to
run the CUDA path with host-emulated kernels).
"""
from __future__ import annotations

import contextlib

import torch

_streams: dict = {}   # (device index, stream pointer) -> cupy.cuda.ExternalStream


def on_gpu(t) -> bool:
    """Whether ``t`` is a CUDA tensor (fastopt's cuda backend steps it)."""
    return t.device.type == "cuda"


def view(t):
    """A cupy array sharing ``t``'s memory (``t`` dense; DLPack, zero copy)."""
    import cupy
    return cupy.from_dlpack(t.detach())


def unowned(t):
    """A cupy array on ``t``'s memory (``t`` C-contiguous) that does not keep ``t`` alive:
    use it only while a live tensor owns that memory."""
    import cupy
    nbytes = t.numel() * t.element_size()
    mem = cupy.cuda.UnownedMemory(t.data_ptr(), nbytes, None, t.device.index)
    dtype = torch.empty((), dtype=t.dtype).numpy().dtype
    return cupy.ndarray(tuple(t.shape), dtype, cupy.cuda.MemoryPointer(mem, 0))


def _external(device):
    s = torch.cuda.current_stream(device)
    key = (device.index, s.cuda_stream)
    stream = _streams.get(key)
    if stream is None:
        import cupy
        stream = _streams[key] = cupy.cuda.ExternalStream(s.cuda_stream, device.index)
    return stream


@contextlib.contextmanager
def torch_stream(device):
    """Context running cupy work on torch's current stream of CUDA ``device``, with that
    device current (cupy checks a stream against the current device)."""
    import cupy
    with cupy.cuda.Device(device.index), _external(device):
        yield


def stream_of(tensors):
    """:func:`torch_stream` when ``tensors`` are on one GPU, else a null context."""
    if not tensors or not on_gpu(tensors[0]):
        return _NULL
    if len(tensors) > 1 and len({t.device for t in tensors}) != 1:
        return _NULL
    return torch_stream(tensors[0].device)


_NULL = contextlib.nullcontext()   # reusable: it holds no state
