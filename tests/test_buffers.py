"""Process-level resources of the cpp backend: large outputs come from a small cache of
freed buffers (csrc/cpu/buffers.h: live arrays never share memory, a freed buffer is
handed out again for the same size, small arrays are plain numpy ones), and parallel calls
give the same bits on torch's libgomp team as on fastopt's own pool (csrc/cpu/parallel.h)."""
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



def test_threads_reused_from_torch_or_own_pool_give_the_same_bits(tmp_path):
    """With torch imported, parallel calls run on its libgomp team; with
    FASTOPT_REUSE_OPENMP=0 on fastopt's own pool. Same parts, same bits."""
    import os
    import subprocess
    import sys
    pytest.importorskip("torch")
    code = (
        "import numpy as np, torch, fastopt\n"
        "torch.ones(4) + 1\n"
        "r = np.random.default_rng(3)\n"
        "p, g, m, v = (r.standard_normal(3 * 10**5).astype(np.float32) for _ in range(4))\n"
        "v = np.abs(v)\n"
        "for s in range(1, 130): fastopt.adam_step(p, g, m, v, step=s, lr=1e-3, backend='cpp')\n"
        "x = r.standard_normal((256, 1024)).astype(np.float32)\n"
        "gm, bt = np.ones(1024, np.float32), np.zeros(1024, np.float32)\n"
        "y, sm, si = fastopt.batch_norm_forward(x, gm, bt, None, None, backend='cpp')\n"
        "dx = fastopt.batch_norm_backward(y * 0.5 + 1, x, gm, sm, si, backend='cpp')[0]\n"
        "np.savez(OUT, p=p, y=y, dx=dx, threading=fastopt.info()['cpp']['threading'])\n")
    import fastopt
    home = os.path.dirname(os.path.dirname(os.path.abspath(fastopt.__file__)))
    results = {}
    for reuse in ("1", "0"):
        out = tmp_path / f"r{reuse}.npz"
        # the fastopt this test imported (installed or in-tree), not the checkout in cwd
        env = dict(os.environ, FASTOPT_REUSE_OPENMP=reuse, FASTOPT_NUM_THREADS="2",
                   PYTHONPATH=home)
        subprocess.run([sys.executable, "-c", f"OUT = {str(out)!r}\n" + code], env=env,
                       cwd=tmp_path, check=True)
        results[reuse] = np.load(out)
    assert "libgomp" in str(results["1"]["threading"])
    assert "pool" in str(results["0"]["threading"])
    for key in ("p", "y", "dx"):
        np.testing.assert_array_equal(results["1"][key], results["0"][key])
