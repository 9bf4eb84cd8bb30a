"""The CUDA 8-bit kernels (csrc/cuda/quantized.cu) RUN on the CPU, without a GPU.

The source is compiled for the host with ``tests/cuda_host/shim_block.h``: each
block's 256 threads are real threads meeting at ``__syncthreads``, so the
shared-memory absmax reduction runs as written. The results are compared with
the NumPy reference of the 8-bit steps (fastopt/backends/numpy/quantized.py),
bit for bit: the kernels include the same headers (optim.h, quantize.h,
mixed.h) as the C++ loops, with no contraction.
"""
import ctypes

import ml_dtypes
import numpy as np
import pytest

import fastopt
from fastopt import _scalars
from fastopt import quantized as Q
from test_cuda_emulated import CXX, build_host
from test_quantized import _copy, threshold_blocks
from test_quantized_half import _bits, _problem

pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler to build the host emulation")

BF16 = np.dtype(ml_dtypes.bfloat16)
SUFFIX = {(np.dtype(np.float32), np.dtype(np.float32)): "ff", (BF16, BF16): "bb",
          (BF16, np.dtype(np.float32)): "bf", (np.dtype(np.float16), np.dtype(np.float16)): "hh",
          (np.dtype(np.float16), np.dtype(np.float32)): "hf"}
SIZES = [1, 255, 257, 1000]
SIGNED = (Q.SIGNED_MAP, Q.code_table(Q.SIGNED_MAP, True))      # as the cpp backend passes them
UNSIGNED = (Q.UNSIGNED_MAP, Q.code_table(Q.UNSIGNED_MAP, False))


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    return build_host("quantized", tmp_path_factory.mktemp("cuda_host_quantized"), "shim_block.h")


def _ptr(a):
    return ctypes.c_void_p(a.ctypes.data) if a is not None else ctypes.c_void_p(0)


def _state(q):
    return [_ptr(q.codes), _ptr(q.absmax)] if q is not None else [ctypes.c_void_p(0)] * 2


def _maps(*which):
    return [_ptr(a) for m in which for a in m]


def _scal(values):
    return _ptr(np.array(values, np.float32))


def run_adam(emu, p, g, m, v, step, lr, weight_decay=0.0, decoupled=False, maximize=False):
    s = _scalars.adam(step=step, lr=lr, beta1=0.9, beta2=0.999, eps=1e-8,
                      weight_decay=weight_decay, decoupled=decoupled, maximize=maximize)
    sc = np.array(s, np.float32)
    fn = getattr(emu, f"emu_adam_8bit_{SUFFIX[p.dtype, g.dtype]}")
    fn(ctypes.c_uint(Q.blocks(p.size)), _ptr(p), _ptr(g), ctypes.c_longlong(p.size), *_state(m),
       *_state(v), *_maps(SIGNED, UNSIGNED), _ptr(sc),
       ctypes.c_int(_scalars.adam_weight_decay_mode(weight_decay, decoupled)))


def run_sgd(emu, p, g, buf, lr, momentum, dampening, weight_decay, nesterov, first):
    s = np.array(_scalars.sgd(lr=lr, momentum=momentum, dampening=dampening,
                              weight_decay=weight_decay, maximize=False), np.float32)
    getattr(emu, f"emu_sgd_8bit_{SUFFIX[p.dtype, g.dtype]}")(
        ctypes.c_uint(Q.blocks(p.size)), _ptr(p), _ptr(g), ctypes.c_longlong(p.size), *_state(buf),
        *_maps(SIGNED), _ptr(s), ctypes.c_int(weight_decay != 0), ctypes.c_int(nesterov),
        ctypes.c_int(first))


def run_rmsprop(emu, p, g, sq, ga, buf, lr, alpha, eps, weight_decay, momentum):
    s = np.array(_scalars.rmsprop(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                  momentum=momentum, maximize=False), np.float32)
    getattr(emu, f"emu_rmsprop_8bit_{SUFFIX[p.dtype, g.dtype]}")(
        ctypes.c_uint(Q.blocks(p.size)), _ptr(p), _ptr(g), ctypes.c_longlong(p.size), *_state(sq),
        *_state(ga), *_state(buf), *_maps(SIGNED, UNSIGNED), _ptr(s),
        ctypes.c_int(weight_decay != 0), ctypes.c_int(ga is not None), ctypes.c_int(buf is not None))


def _same(a, b):
    assert np.array_equal(_bits(a[0]), _bits(b[0]))
    for x, y in zip(a[2], b[2]):
        assert np.array_equal(x.codes, y.codes) and np.array_equal(_bits(x.absmax), _bits(y.absmax))


TYPES = sorted(SUFFIX, key=lambda k: SUFFIX[k])


@pytest.mark.parametrize("types", TYPES, ids=lambda t: SUFFIX[t])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("mode", ["none", "l2", "decoupled_maximize"])
def test_adam_8bit_kernel_equals_reference(emu, types, n, mode):
    kw = {"none": {}, "l2": dict(weight_decay=0.1),
          "decoupled_maximize": dict(weight_decay=0.1, decoupled=True, maximize=True)}[mode]
    ref = _problem(n, n, (True, False), *types)
    got = _copy(*ref)
    for step in (1, 2, 3):
        fastopt.adam_step(ref[0], ref[1], ref[2][0], ref[2][1], step=step, lr=1e-2,
                          weight_decay=kw.get("weight_decay", 0.0),
                          decoupled_weight_decay=kw.get("decoupled", False),
                          maximize=kw.get("maximize", False), backend="numpy")
        run_adam(emu, got[0], got[1], got[2][0], got[2][1], step, 1e-2, **kw)
    _same(got, ref)


@pytest.mark.parametrize("types", TYPES, ids=lambda t: SUFFIX[t])
@pytest.mark.parametrize("nesterov,first", [(False, False), (True, False), (True, True)])
def test_sgd_8bit_kernel_equals_reference(emu, types, nesterov, first):
    ref = _problem(1000, 3, (True,), *types)
    got = _copy(*ref)
    for _ in range(2):
        fastopt.sgd_step(ref[0], ref[1], ref[2][0], lr=0.1, momentum=0.9, dampening=0.0 if nesterov else 0.1,
                         weight_decay=0.01, nesterov=nesterov, first_step=first, backend="numpy")
        run_sgd(emu, got[0], got[1], got[2][0], 0.1, 0.9, 0.0 if nesterov else 0.1, 0.01, nesterov,
                first)
    _same(got, ref)


@pytest.mark.parametrize("types", TYPES, ids=lambda t: SUFFIX[t])
@pytest.mark.parametrize("centered,momentum", [(False, 0.0), (True, 0.5)])
def test_rmsprop_8bit_kernel_equals_reference(emu, types, centered, momentum):
    signs = (False,) + ((True,) if centered else ()) + ((True,) if momentum else ())
    ref = _problem(1000, 5, signs, *types)
    got = _copy(*ref)
    extra = lambda st: (st[1] if centered else None, st[-1] if momentum else None)  # noqa: E731
    for _ in range(2):
        ga, bf = extra(ref[2])
        fastopt.rmsprop_step(ref[0], ref[1], ref[2][0], grad_avg=ga, momentum_buffer=bf,
                             centered=centered, momentum=momentum, lr=1e-2, weight_decay=0.1,
                             backend="numpy")
        ga, bf = extra(got[2])
        run_rmsprop(emu, got[0], got[1], got[2][0], ga, bf, 1e-2, 0.99, 1e-8, 0.1, momentum)
    _same(got, ref)


def test_zero_block_and_tiny_absmax_equal_reference(emu):
    """A block of zeros (absmax 0: the code of 0), one of subnormal absmax (the
    kernel divides) and one of 1.0 (x = value), through SGD's first momentum step."""
    g = np.zeros(768, np.float32)
    g[256:512] = np.linspace(-1e-39, 1e-39, 256, dtype=np.float32)
    g[512:] = np.linspace(-1, 1, 256, dtype=np.float32)
    p = np.zeros_like(g)
    ref, got = (p.copy(), g.copy(), [Q.QuantizedState(g.shape, True)]), None
    got = _copy(*ref)
    fastopt.sgd_step(ref[0], ref[1], ref[2][0], lr=0.0, momentum=0.5, first_step=True,
                     backend="numpy")
    run_sgd(emu, got[0], got[1], got[2][0], 0.0, 0.5, 0.0, 0.0, False, True)
    _same(got, ref)
    assert got[2][0].absmax[0] == 0 and got[2][0].absmax[2] == 1


@pytest.mark.parametrize("scale", [0.3, 3.0, 1e-39, 3e38])
def test_codes_near_thresholds_with_inexact_reciprocals_equal_reference(emu, scale):
    """Thresholds times an absmax with an inexact (0.3, 3), subnormal (3e38) or no
    normal (1e-39) reciprocal: the kernel multiplies or divides as the reference."""
    g = threshold_blocks(scale)
    ref = (np.zeros_like(g), g.copy(), [Q.QuantizedState(g.shape, True)])
    got = _copy(*ref)
    fastopt.sgd_step(ref[0], ref[1], ref[2][0], lr=0.0, momentum=0.5, first_step=True,
                     backend="numpy")
    run_sgd(emu, got[0], got[1], got[2][0], 0.0, 0.5, 0.0, 0.0, False, True)
    _same(got, ref)
