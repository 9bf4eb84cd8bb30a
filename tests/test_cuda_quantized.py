"""The 8-bit CUDA kernels on a GPU (fastopt/backends/cuda/quantized.py): Adam,
SGD and RMSprop with 8-bit state on float32, bfloat16 and float16 params equal
the NumPy reference of the 8-bit steps bit for bit (the same headers, no
contraction). Every test is skipped, with the reason, when the cuda backend is
unavailable (no cupy, no GPU); tests/test_cuda_quantized_emulated.py runs the
same kernels' source on the CPU in every CI run."""
import types

import ml_dtypes
import numpy as np
import pytest

import fastopt
from fastopt import backends as _backends
from fastopt import quantized as Q
from test_quantized import _copy
from test_quantized_half import _bits, _problem

_WHY = _backends.unavailable_reason("cuda")
pytestmark = pytest.mark.skipif(_WHY is not None, reason=f"cuda backend unavailable: {_WHY}")

TYPES = [(np.float32, np.float32), (ml_dtypes.bfloat16, ml_dtypes.bfloat16),
         (ml_dtypes.bfloat16, np.float32), (np.float16, np.float16), (np.float16, np.float32)]


def _to_gpu(a):
    import cupy
    return cupy.asarray(a.view(np.uint16) if a.dtype == ml_dtypes.bfloat16 else a)


def _gpu_state(q):
    return types.SimpleNamespace(codes=_to_gpu(q.codes), absmax=_to_gpu(q.absmax), signed=q.signed)


def _back(dev, host):
    import cupy
    host.reshape(-1).view(np.uint8)[...] = cupy.asnumpy(dev).reshape(-1).view(np.uint8)


@pytest.mark.parametrize("ptype,gtype", TYPES)
@pytest.mark.parametrize("n", [1, 257, 4097, 10 ** 6 + 3])
def test_adam_8bit_on_gpu_equals_reference(ptype, gtype, n):
    from fastopt.backends.cuda import quantized as cq
    ref = _problem(n, n, (True, False), np.dtype(ptype), np.dtype(gtype))
    got = _copy(*ref)
    p, g, (m, v) = _to_gpu(got[0]), _to_gpu(got[1]), [_gpu_state(q) for q in got[2]]
    for step in (1, 2):
        fastopt.adam_step(ref[0], ref[1], ref[2][0], ref[2][1], step=step, lr=1e-2,
                          weight_decay=0.1, backend="numpy")
        cq.adam([p], [g], [m], [v], None, step=step, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8,
                weight_decay=0.1, decoupled=False, maximize=False)
    _back(p, got[0])
    for dev, host in zip((m, v), got[2]):
        _back(dev.codes, host.codes)
        _back(dev.absmax, host.absmax)
    assert np.array_equal(_bits(got[0]), _bits(ref[0]))
    for x, y in zip(got[2], ref[2]):
        assert np.array_equal(x.codes, y.codes) and np.array_equal(_bits(x.absmax), _bits(y.absmax))


def test_sgd_and_rmsprop_8bit_on_gpu_equal_reference():
    from fastopt.backends.cuda import quantized as cq
    ref = _problem(5000, 1, (True,), np.dtype(np.float32), np.dtype(np.float32))
    got = _copy(*ref)
    p, g, b = _to_gpu(got[0]), _to_gpu(got[1]), _gpu_state(got[2][0])
    fastopt.sgd_step(*ref[:2], ref[2][0], lr=0.1, momentum=0.9, nesterov=True, backend="numpy")
    cq.sgd([p], [g], [b], lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=True,
           maximize=False, first_step=False)
    _back(p, got[0])
    _back(b.codes, got[2][0].codes)
    assert np.array_equal(_bits(got[0]), _bits(ref[0]))
    assert np.array_equal(got[2][0].codes, ref[2][0].codes)
    ref = _problem(5000, 2, (False,), np.dtype(np.float32), np.dtype(np.float32))
    got = _copy(*ref)
    p, g, s = _to_gpu(got[0]), _to_gpu(got[1]), _gpu_state(got[2][0])
    fastopt.rmsprop_step(*ref[:2], ref[2][0], lr=1e-2, backend="numpy")
    cq.rmsprop([p], [g], [s], None, None, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
               momentum=0.0, maximize=False)
    _back(p, got[0])
    assert np.array_equal(_bits(got[0]), _bits(ref[0]))
    assert Q.BLOCK == 256
