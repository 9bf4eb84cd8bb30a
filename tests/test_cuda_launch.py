"""Launch configuration of the CUDA kernels on a GPU (issue 15): the persistent
multi-tensor grid, and the unaligned and vectorized paths at sizes past one
grid. Each test skips with the reason where the cuda backend is unavailable;
the host emulation (tests/test_cuda_emulated.py) checks the same kernel logic
everywhere.
"""
import numpy as np
import pytest

import fastopt
from fastopt import backends as _backends

_WHY = _backends.unavailable_reason("cuda")
pytestmark = pytest.mark.skipif(_WHY is not None, reason=f"cuda backend unavailable: {_WHY}")

if _WHY is None:
    import cupy
    from fastopt.backends.cuda import loader


def test_persistent_grid_is_the_resident_blocks():
    """The multi-tensor grid is occupancy x SMs (never more than one block per
    4096-element unit, never more than the old cap), and the kernel it sizes
    exists and reports at least one resident block."""
    name = "fastopt_adam_f32"
    k = loader.kernel("optim", name)
    per_sm = cupy.cuda.driver.occupancyMaxActiveBlocksPerMultiprocessor(
        k.kernel.ptr, loader.BLOCK_THREADS, 0)
    sms = cupy.cuda.Device().attributes["MultiProcessorCount"]
    assert per_sm >= 1
    assert loader.multi_tensor_grid("optim", name, 10**6) == per_sm * sms
    assert loader.multi_tensor_grid("optim", name, 3) == 3 * loader.UNITS_PER_CHUNK
    assert per_sm * sms <= loader.grid_size(2**31 - 1)


@pytest.mark.skipif("cpp" not in fastopt.available_backends(), reason="C++ extension not built")
def test_adam_past_the_resident_grid_equals_cpp(rng):
    """A list whose work units outnumber the resident blocks several times over
    (unaligned members included) equals the C++ backend bit for bit."""
    grid = loader.multi_tensor_grid("optim", "fastopt_adam_f32", 2**30)
    sizes = [3 * grid * loader.CHUNK_SIZE // loader.UNITS_PER_CHUNK + 5, 1, 4095, 70_001]
    h = {k: [rng.standard_normal(n).astype(np.float32) for n in sizes]
         for k in ("param", "grad", "exp_avg")}
    h["exp_avg_sq"] = [rng.uniform(0.1, 1, n).astype(np.float32) for n in sizes]
    d = {}
    for k, arrays in h.items():
        d[k] = []
        for i, a in enumerate(arrays):
            if i == 3:   # an unaligned member: scalar path
                buf = cupy.empty(a.size + 1, np.float32)
                buf[1:].set(a)
                d[k].append(buf[1:])
            else:
                d[k].append(cupy.asarray(a))
    fastopt.adam_step(**d, step=7, lr=1e-3, weight_decay=0.1)
    fastopt.adam_step(**h, step=7, lr=1e-3, weight_decay=0.1, backend="cpp")
    for k in h:
        for got, want in zip(d[k], h[k]):
            np.testing.assert_array_equal(cupy.asnumpy(got), want, err_msg=k)


@pytest.mark.skipif("cpp" not in fastopt.available_backends(), reason="C++ extension not built")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unaligned_dropout_past_one_grid_equals_cpu(dtype, rng):
    """Dropout on unaligned arrays (the coalesced, shuffled path) past one grid
    of blocks x 256 threads x 8 values: mask, output and gradient equal the C++
    backend's bit for bit."""
    n = loader.grid_size(2**31 - 1) * 256 * 8 + 1001
    x = rng.standard_normal(n).astype(dtype)
    dy = rng.standard_normal(n).astype(dtype)
    dx_buf, dy_buf = cupy.empty(n + 1, dtype), cupy.empty(n + 1, dtype)
    dx_buf[1:].set(x)
    dy_buf[1:].set(dy)
    y, m = fastopt.dropout_forward(dx_buf[1:], 0.3, seed=2**40 + 3)
    g = fastopt.dropout_backward(dy_buf[1:], m, 0.3)
    y_cpu, m_cpu = fastopt.dropout_forward(x, 0.3, seed=2**40 + 3, backend="cpp")
    g_cpu = fastopt.dropout_backward(dy, m_cpu, 0.3, backend="cpp")
    np.testing.assert_array_equal(cupy.asnumpy(m), m_cpu)
    np.testing.assert_array_equal(cupy.asnumpy(y), y_cpu)
    np.testing.assert_array_equal(cupy.asnumpy(g), g_cpu)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf"), 3.0])
def test_grad_norm_independent_of_alignment(norm_type, rng):
    """The vectorized norm gives the same bits for aligned and unaligned copies
    of the same data, and the float64 reference's norm."""
    sizes = [1, 7, 4097, 3 * loader.CHUNK_SIZE + 3]
    host = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    aligned = [cupy.asarray(a) for a in host]
    unaligned = []
    for a in host:
        buf = cupy.empty(a.size + 1, np.float32)
        buf[1:].set(a)
        unaligned.append(buf[1:])
    got = fastopt.grad_norm(aligned, norm_type)
    assert fastopt.grad_norm(unaligned, norm_type) == got
    want = fastopt.grad_norm([a.astype(np.float64) for a in host], norm_type, backend="numpy")
    assert got == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(300, 40), (5000, 1000), (100_003, 64)], ids=str)
def test_batch_norm_rows_layout_against_reference(shape, training, rng):
    """(N, C >= 32) input takes the rows layout (32 channels per block, coalesced,
    pieces of ROWS_PIECE rows): forward and backward against the float64
    reference, and the same bits on a second run."""
    from fastopt.backends.cuda import batchnorm as cuda_bn
    assert cuda_bn.rows_layout(shape[1], 1)
    C = shape[1]
    x = (rng.standard_normal(shape) * 2 + 3).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    g, b = rng.uniform(0.5, 2, C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    rm, rv = rng.standard_normal(C).astype(np.float32), rng.uniform(0.5, 2, C).astype(np.float32)
    f64 = lambda a: a.astype(np.float64)  # noqa: E731
    want = fastopt.batch_norm_forward(f64(x), f64(g), f64(b), f64(rm), f64(rv),
                                      training=training, backend="numpy")
    wantb = fastopt.batch_norm_backward(f64(dy), f64(x), f64(g), want[1], want[2],
                                        training=training, backend="numpy")
    runs = []
    for _ in range(2):
        d = [cupy.asarray(a) for a in (x, g, b, rm, rv, dy)]
        out = fastopt.batch_norm_forward(*d[:5], training=training)
        outb = fastopt.batch_norm_backward(d[5], d[0], d[1], out[1], out[2], training=training)
        runs.append([cupy.asnumpy(a) for a in out + outb])
    for a, c in zip(*runs):
        np.testing.assert_array_equal(a, c)
    for got, ref in zip(runs[0], list(want) + list(wantb)):
        scale = max(float(np.max(np.abs(ref))), 1.0)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5 * scale)
