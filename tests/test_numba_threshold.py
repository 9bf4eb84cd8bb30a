"""The numba backend runs the serial build of a kernel below
fastopt/backends/numba/_serial.SERIAL_BELOW elements and the parallel build from
there on: both sides of the threshold are taken, and the two builds give the
same bits (results never depend on the threads)."""
import numpy as np
import pytest

pytest.importorskip("numba")

from fastopt.backends.numba import (  # noqa: E402
    _serial, averaging, batchnorm, clipping, dropout, optim)

from conftest import DTYPES  # noqa: E402

N = 100_003  # crosses numba's thread splits and every SIMD tail


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("dtype", DTYPES)
def test_serial_and_parallel_builds_give_the_same_bits(dtype, rng):
    x = rng.standard_normal(N).astype(dtype)
    a0 = rng.standard_normal(N).astype(dtype)
    d = dtype(0.9)
    runs = []
    for build in (0, 1):  # parallel, serial
        a = a0.copy()
        averaging._ema[build](a, x, d, dtype(1 - 0.9))
        g = x.copy()
        clipping._scale[build](g, dtype(0.37))
        parts = clipping._block_partials[build](x, clipping.L2, 2.0)
        mask = np.empty((N + 7) // 8, np.uint8)
        y = np.empty_like(x)
        fwd = (dropout._forward_par, dropout._forward_ser)[build]
        fwd(x, y, mask, np.uint64(5), np.uint64(0), np.uint64(1 << 30), dtype(4 / 3))
        dx = np.empty_like(x)
        (dropout._backward_par, dropout._backward_ser)[build](x, mask, dx, dtype(4 / 3))
        runs.append((a, g, parts, mask, y, dx))
    for par, ser in zip(*runs):
        assert _same_bits(par, ser)
    assert not np.array_equal(runs[0][0], a0)  # the kernels did run
    assert 0.6 < np.unpackbits(runs[0][3]).mean() < 0.9  # p = 1/4: a real mask


class Spy:
    """Records which build of a (parallel, serial) pair a call ran."""

    def __init__(self, pair, log):
        self.pair, self.log = pair, log

    def __getitem__(self, i):
        def run(*args):
            self.log.append("parallel" if i == 0 else "serial")
            return self.pair[i](*args)
        return run


@pytest.mark.parametrize("n, expected", [(_serial.SERIAL_BELOW - 1, "serial"),
                                         (_serial.SERIAL_BELOW, "parallel")])
def test_threshold_dispatch_takes_both_sides(monkeypatch, n, expected, rng):
    log = []
    monkeypatch.setattr(averaging, "_ema", Spy(averaging._ema, log))
    monkeypatch.setattr(clipping, "_scale", Spy(clipping._scale, log))
    monkeypatch.setattr(clipping, "_block_partials", Spy(clipping._block_partials, log))
    monkeypatch.setattr(optim, "_sgd", Spy(optim._sgd, log))
    for name, build in (("_forward_par", 0), ("_forward_ser", 1), ("_backward_par", 0),
                        ("_backward_ser", 1), ("_mask_par", 0), ("_mask_ser", 1)):
        monkeypatch.setattr(dropout, name, Spy((getattr(dropout, name),) * 2, log)[build])
    x = rng.standard_normal(n).astype(np.float32)
    a = x.copy()
    averaging.ema([a], [x], decay=0.5)
    clipping.scale([a], coef=0.5)
    clipping.grad_norm([a], norm_type=2.0)
    optim.sgd([a], [x], None, lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0,
              nesterov=False, maximize=False, first_step=True)
    y, mask = dropout.forward(x, 0.5, 1)
    dropout.backward(y, mask, 0.5)
    dropout.mask(n, 0.5, 1)
    assert log == [expected] * 7


BN_SHAPES = [(3, 5, 6667), (20_001, 5)]  # channel loops (N, C, S) and row blocks (N, C)


def _batch_norm_both_ways(shape, dtype, rng):
    """Forward (training, eval) and backward outputs of numba's batch norm, and beta."""
    c = shape[1]
    x = (rng.standard_normal(shape) * 2.0 + 3.0).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = rng.uniform(0.5, 2.0, c).astype(dtype), rng.standard_normal(c).astype(dtype)
    stats0 = rng.standard_normal(c).astype(dtype), rng.uniform(0.5, 2.0, c).astype(dtype)
    out = []
    for training in (True, False):
        rm, rv = (s.copy() for s in stats0)
        y, mean, invstd = np.empty_like(x), np.empty(c, dtype), np.empty(c, dtype)
        batchnorm.batch_norm_forward(x, y, gamma, beta, rm, rv, mean, invstd,
                                     training=training, momentum=0.1, eps=1e-5)
        dx, dgamma, dbeta = np.empty_like(x), np.empty(c, dtype), np.empty(c, dtype)
        batchnorm.batch_norm_backward(dy, x, gamma, mean, invstd, dx, dgamma, dbeta,
                                      training=training)
        out += [y, rm, rv, mean, invstd, dx, dgamma, dbeta]
    return out, beta


@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_serial_and_parallel_builds_give_the_same_bits(monkeypatch, shape, dtype):
    runs = []
    for below in (0, 1 << 62):  # every call parallel, every call serial
        monkeypatch.setattr(_serial, "SERIAL_BELOW", below)
        runs.append(_batch_norm_both_ways(shape, dtype, np.random.default_rng(7)))
    (par_out, beta), (ser_out, _) = runs
    for par, ser in zip(par_out, ser_out):
        assert _same_bits(par, ser)
    # the kernels did run: a training forward's output has each channel's mean at beta
    axes = tuple(i for i in range(par_out[0].ndim) if i != 1)
    assert np.allclose(par_out[0].astype(np.float64).mean(axis=axes), beta, atol=1e-3)


@pytest.mark.parametrize("n, expected", [(_serial.SERIAL_BELOW - 1, "serial"),
                                         (_serial.SERIAL_BELOW, "parallel")])
@pytest.mark.parametrize("layout", ["channels", "rows"])
def test_batch_norm_threshold_dispatch_takes_both_sides(monkeypatch, n, expected, layout, rng):
    log = []
    names = (["_forward_train", "_forward_eval", "_backward"] if layout == "channels" else
             ["_column_moments", "_rows_normalize", "_column_grad_sums", "_rows_dx"])
    for name in names:
        monkeypatch.setattr(batchnorm, name, Spy(getattr(batchnorm, name), log))
    shape = (1, 1, n) if layout == "channels" else (n, 1)
    x = rng.standard_normal(shape).astype(np.float32)
    one = np.ones(1, np.float32)
    y, dx = np.empty_like(x), np.empty_like(x)
    mean, invstd, rm, rv, dg, db = (np.zeros(1, np.float32) for _ in range(6))
    for training in (True, False):
        batchnorm.batch_norm_forward(x, y, one, one, rm, rv + 1, mean, invstd,
                                     training=training, momentum=0.1, eps=1e-5)
    batchnorm.batch_norm_backward(x, x, one, mean, invstd, dx, dg, db, training=True)
    calls = 5 if layout == "rows" else 3  # rows: moments+normalize, normalize, sums+dx
    assert log == [expected] * calls
