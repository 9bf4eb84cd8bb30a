"""Large outputs come from a small cache of freed buffers (csrc/bindings/buffers.h):
live arrays never share memory, a freed buffer is handed out again for the same size,
and small arrays are plain numpy ones."""
import numpy as np
import pytest

from conftest import CPU_BACKENDS

pytestmark = pytest.mark.skipif("cpp" not in CPU_BACKENDS, reason="C++ extension not built")


def test_live_arrays_never_share_memory_and_freed_ones_are_reused():
    from fastopt import _core
    shape = (512, 1024)                                    # 2 MiB of float32
    a, b = _core.empty(shape, np.float32), _core.empty(shape, np.float32)
    assert a.shape == shape and a.dtype == np.float32 and a.flags.c_contiguous
    assert a.flags.writeable and a.ctypes.data % 64 == 0
    assert not np.shares_memory(a, b)
    a[...] = 1.0
    b[...] = 2.0
    assert np.all(a == 1.0) and np.all(b == 2.0)
    address = a.ctypes.data
    del a
    c = _core.empty(shape, np.float32)
    assert c.ctypes.data == address                        # the freed buffer, not a fresh one
    assert not np.shares_memory(c, b)
    d = _core.empty((3, 5), np.float64)                    # small: a plain numpy array
    assert d.flags.owndata and d.shape == (3, 5)
    assert _core.empty((0, 7), "f4").shape == (0, 7)


def test_outputs_survive_their_producer_and_the_next_call(rng):
    import fastopt
    x = rng.standard_normal(1 << 19).astype(np.float32)
    y1, m1 = fastopt.dropout_forward(x, 0.5, seed=1, backend="cpp")
    keep = y1.copy()
    y2, _ = fastopt.dropout_forward(x, 0.5, seed=2, backend="cpp")
    assert not np.shares_memory(y1, y2)
    np.testing.assert_array_equal(y1, keep)

