"""The numba backend runs the serial build of a kernel below
fastopt/backends/numba/_serial.SERIAL_BELOW elements and the parallel build from
there on: both sides of the threshold are taken, and the two builds give the
same bits (results never depend on the threads)."""
import numpy as np
import pytest

pytest.importorskip("numba")

from fastopt.backends.numba import _serial, averaging, clipping, dropout, optim  # noqa: E402

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
