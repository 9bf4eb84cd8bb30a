"""The CUDA optimizer kernels RUN on the CPU, without a GPU.

``csrc/cuda/optim.cu`` (with ``multi_tensor.cuh`` and ``fastopt/optim.h``) is
compiled for the host with ``tests/cuda_host/shim.h``, which turns a launch
into a loop over every (block, thread). These kernels' threads never
communicate, so that loop is one legal schedule of the real launch and
computes what the GPU must. The backend module ``fastopt.backends.cuda.optim`` then
runs unchanged, with only cupy replaced: ``loader.device_table`` packs host
pointers (``loader.pack_table``, the real layout), ``loader.launch`` converts
the arguments by the same specs and calls the emulated kernel through ctypes.

This checks, in CI, the table layout and chunking, the vector (16-byte) and
scalar paths, the read/write role masks, the order and casting of every
scalar and flag, and that the grid size and block size do not change a bit;
the results are compared with the C++ backend (bit for bit: same header, no
contraction) and with the float64 NumPy reference.
"""
import contextlib
import ctypes
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastopt
from fastopt.backends.cuda import loader
from conftest import DTYPES, tol

ROOT = Path(__file__).resolve().parents[1]
CXX = shutil.which("g++") or shutil.which("c++")

pytestmark = pytest.mark.skipif(CXX is None, reason="no C++ compiler to build the host emulation")


def build_host(name, out_dir, shim="shim.h"):
    """Compiles tests/cuda_host/<name>_host.cpp (which includes csrc/cuda/<name>.cu)."""
    out = out_dir / f"{name}_host.so"
    cmd = [CXX, "-std=c++17", "-O1", "-ffp-contract=off", "-fno-math-errno", "-fPIC", "-shared",
           "-pthread", "-fvisibility=hidden", "-fvisibility-inlines-hidden", "-include", str(ROOT / "tests/cuda_host" / shim), f"-I{ROOT / 'csrc/include'}",
           f"-I{ROOT / 'csrc/cuda'}", "-x", "c++", str(ROOT / f"tests/cuda_host/{name}_host.cpp"),
           "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return ctypes.CDLL(str(out))


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    return build_host("optim", tmp_path_factory.mktemp("cuda_host"))


class Emulated:
    """Stand-ins for the cupy-facing parts of the loader."""

    def __init__(self, lib, grid_cap, block, two_d=False):
        self.lib, self.grid_cap, self.block, self.two_d = lib, grid_cap, block, two_d
        self.launches = []
        self.keep = []

    def device_table(self, role_lists, chunk_size=loader.CHUNK_SIZE):
        count = len(role_lists[0])
        rows = [tuple(0 if lst is None else lst[t].ctypes.data for lst in role_lists)
                for t in range(count)]
        words, n_tensors, n_chunks = loader.pack_table(rows, [a.size for a in role_lists[0]],
                                                       chunk_size)
        self.keep.append(words)
        return loader.Table(words, n_tensors, n_chunks)

    def grid_size(self, n):
        return max(1, min(n, self.grid_cap))

    def launch(self, family, name, grid, block, spec, values, dtype, shared_mem=0):
        assert block == 256 or not self.two_d
        fake = [_FakeDev(v) if code == "p" and v is not None else v
                for code, v in zip(spec, values)]
        packed = loader.pack_args(spec, fake, dtype)        # the real type checks
        packed = [f if isinstance(f, _FakeDev) else v for f, v in zip(fake, packed)]
        ct = {"T": ctypes.c_float if np.dtype(dtype) == np.float32 else ctypes.c_double,
              "i": ctypes.c_int, "q": ctypes.c_longlong, "d": ctypes.c_double,
              "Q": ctypes.c_ulonglong}
        args = []
        for code, v in zip(spec, packed):
            if code == "p":
                args.append(ctypes.c_void_p(v.array.ctypes.data if isinstance(v, _FakeDev) else 0))
            else:
                args.append(ct[code](v.item()))
        self.launches.append(name)
        fn = getattr(self.lib, name.replace("fastopt_", "emu_"))
        if self.two_d:   # cooperative kernels: the real grid, and the block size they assume
            gx, gy = (tuple(grid) + (1,))[:2] if isinstance(grid, tuple) else (grid, 1)
            fn(ctypes.c_uint(gx), ctypes.c_uint(gy), ctypes.c_uint(block), *args)
        else:
            fn(ctypes.c_uint(grid), ctypes.c_uint(self.block), *args)


class _FakeDev:
    def __init__(self, array):
        self.array = array

        class data:
            ptr = array.ctypes.data
        self.data = data


@contextlib.contextmanager
def emulated(monkeypatch, lib, grid_cap=7, block=64, two_d=False):
    e = Emulated(lib, grid_cap, block, two_d)
    monkeypatch.setattr(loader, "empty", lambda shape, dt: np.empty(shape, dt))
    monkeypatch.setattr(loader, "to_host", lambda a: np.asarray(a))
    monkeypatch.setattr(loader, "device_table", e.device_table)
    monkeypatch.setattr(loader, "grid_size", e.grid_size)
    monkeypatch.setattr(loader, "resident_grid", lambda family, name, n, block=256: e.grid_size(n))
    monkeypatch.setattr(loader, "launch", e.launch)
    monkeypatch.setattr(loader, "device_of", lambda arrays: contextlib.nullcontext())
    monkeypatch.setattr(loader, "capturing", lambda: False)
    yield e


# (backend function, kwargs as fastopt.optim passes them, state roles)
CASES = [
    ("sgd", dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 maximize=False, first_step=False), ["bufs"]),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=False,
                 maximize=False, first_step=True), ["bufs"]),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.01, nesterov=False,
                 maximize=True, first_step=False), ["bufs"]),
    ("sgd", dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=True,
                 maximize=False, first_step=False), ["bufs"]),
    ("rmsprop", dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                     maximize=False), ["square_avgs", None, None]),
    ("rmsprop", dict(lr=0.01, alpha=0.9, eps=1e-8, weight_decay=0.1, momentum=0.8,
                     maximize=True), ["square_avgs", "grad_avgs", "bufs"]),
    ("adam", dict(step=3, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                  decoupled=False, maximize=False), ["exp_avgs", "exp_avg_sqs", None]),
    ("adam", dict(step=5, lr=1e-2, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1,
                  decoupled=False, maximize=True), ["exp_avgs", "exp_avg_sqs", "max_sqs"]),
    ("adam", dict(step=2, lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.1,
                  decoupled=True, maximize=False), ["exp_avgs", "exp_avg_sqs", None]),
    ("adagrad", dict(step=4, lr=0.1, lr_decay=0.01, eps=1e-10, weight_decay=0.1,
                     maximize=False), ["state_sums"]),
]
IDS = [f"{fn}-{i}" for i, (fn, _, _) in enumerate(CASES)]


def make_lists(rng, roles, sizes, dtype, unaligned):
    """param, grad and state lists; positive states where the maths needs it."""
    def arr(n, positive=False):
        v = rng.uniform(0.1, 1.0, n) if positive else rng.standard_normal(n)
        if unaligned:
            base = np.empty(n + 1, dtype)
            a = base[1:]
            a[...] = v
            return a
        return v.astype(dtype)
    lists = [[arr(n) for n in sizes], [arr(n) for n in sizes]]
    for r in roles:
        if r is None:
            lists.append(None)
        else:
            pos = r in ("square_avgs", "exp_avg_sqs", "max_sqs", "state_sums")
            lists.append([arr(n, pos) for n in sizes])
    if roles[:2] == ["square_avgs", "grad_avgs"]:
        for t in range(len(sizes)):   # centered: square_avg >= grad_avg**2
            lists[3][t][...] *= 0.1
            lists[2][t][...] = lists[3][t] ** 2 + lists[2][t]
    if "max_sqs" in roles:
        for t in range(len(sizes)):
            lists[4][t][...] = lists[3][t] + 0.05
    return lists


def run(module, fn, lists, kw):
    args = [None if lst is None else lst for lst in lists]
    if fn == "sgd":
        getattr(module, fn)(args[0], args[1], args[2] if kw["momentum"] else None, **kw)
    elif fn == "rmsprop":
        getattr(module, fn)(*args[:5], **kw)
    elif fn == "adam":
        getattr(module, fn)(*args[:5], **kw)
    else:
        getattr(module, fn)(*args[:3], **kw)


def copy_lists(lists, dtype=None):
    return [None if lst is None else [a.astype(dtype or a.dtype, copy=True) for a in lst]
            for lst in lists]


SIZES = [0, 1, 3, 4, 5, 17, 1023, loader.CHUNK_SIZE - 1, loader.CHUNK_SIZE + 5, 70_001]


@pytest.mark.skipif("cpp" not in fastopt.available_backends(), reason="C++ extension not built")
@pytest.mark.parametrize("unaligned", [False, True], ids=["aligned", "unaligned"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_emulated_kernel_equals_cpp_and_reference(case, dtype, unaligned, rng, emu, monkeypatch):
    from fastopt.backends.cpp import optim as cpp_optim
    from fastopt.backends.cuda import optim as cuda_optim
    from fastopt.backends.numpy import optim as ref_optim
    fn, kw, roles = case
    lists = make_lists(rng, roles, SIZES, dtype, unaligned)
    cpu = copy_lists(lists)
    ref = copy_lists(lists, np.float64)
    run(cpp_optim, fn, cpu, kw)
    run(ref_optim, fn, ref, kw)
    with emulated(monkeypatch, emu) as e:
        run(cuda_optim, fn, lists, kw)
    assert e.launches == [f"fastopt_{fn}_{loader.suffix(dtype)}"]      # one launch per step
    for r, (got_l, cpu_l, ref_l) in enumerate(zip(lists, cpu, ref)):
        if got_l is None:
            continue
        for t, (got, want, r64) in enumerate(zip(got_l, cpu_l, ref_l)):
            np.testing.assert_array_equal(got, want, err_msg=f"role {r} tensor {t} vs cpp")
            np.testing.assert_allclose(got, r64, **tol(dtype), err_msg=f"role {r} tensor {t}")


@pytest.mark.parametrize("grid_cap,block", [(1, 32), (3, 256), (10_000, 128)])
def test_emulated_result_independent_of_grid_and_block(grid_cap, block, rng, emu, monkeypatch):
    from fastopt.backends.cuda import optim as cuda_optim
    fn, kw, roles = CASES[7]   # AMSGrad, maximize, L2: every role
    lists = make_lists(rng, roles, SIZES, np.float32, False)
    base = copy_lists(lists)
    with emulated(monkeypatch, emu, grid_cap=7, block=64):
        run(cuda_optim, fn, base, kw)
    with emulated(monkeypatch, emu, grid_cap=grid_cap, block=block):
        run(cuda_optim, fn, lists, kw)
    for got_l, want_l in zip(lists, base):
        if got_l is not None:
            for got, want in zip(got_l, want_l):
                np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------- dropout


@pytest.fixture(scope="module")
def emu_dropout(tmp_path_factory):
    return build_host("dropout", tmp_path_factory.mktemp("cuda_host_dropout"), "shim_block.h")


@pytest.mark.parametrize("unaligned", [False, True], ids=["aligned", "unaligned"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,p,seed", [(0, 0.5, 1), (1, 0.5, 3), (7, 0.1, 2**64 - 1),
                                      (8, 0.0, 5), (9, 1.0, 5), (1003, 0.3, 2**63 + 11),
                                      (2048 * 5 + 2047, 0.4, 9), (70_001, 0.5, 1234)])
def test_emulated_dropout_equals_reference_bit_for_bit(n, p, seed, dtype, unaligned, rng,
                                                       emu_dropout, monkeypatch):
    """The CUDA dropout kernels, run on the CPU, give the NumPy reference's
    mask, outputs and gradients exactly (the same Philox header as the CPU)."""
    from fastopt.backends.numpy import dropout as ref
    from fastopt.backends.cuda import dropout as cuda_dropout

    def arr(v):
        if not unaligned:
            return v.astype(dtype)
        a = np.empty(v.size + 1, dtype)[1:]
        a[...] = v
        return a
    x, dy = arr(rng.standard_normal(n)), arr(rng.standard_normal(n))
    y_ref, m_ref = ref.forward(x, p, seed)
    dx_ref = ref.backward(dy, m_ref, p)
    monkeypatch.setattr(loader, "empty", lambda shape, dt: np.empty(shape, dt))
    with emulated(monkeypatch, emu_dropout, grid_cap=5, two_d=True):
        y, m = cuda_dropout.forward(x, p, seed)
        dx = cuda_dropout.backward(dy, m, p)
        m2 = cuda_dropout.mask(n, p, seed)
    np.testing.assert_array_equal(m, m_ref)
    np.testing.assert_array_equal(m2, m_ref)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(dx, dx_ref)


# ------------------------------------- batch norm, averaging, clipping (threads)


@pytest.fixture(scope="module")
def emu_bn(tmp_path_factory):
    return build_host("batchnorm", tmp_path_factory.mktemp("cuda_host_bn"), "shim_block.h")


@pytest.fixture(scope="module")
def emu_averaging(tmp_path_factory):
    return build_host("averaging", tmp_path_factory.mktemp("cuda_host_averaging"), "shim_block.h")


@pytest.fixture(scope="module")
def emu_clipping(tmp_path_factory):
    return build_host("clipping", tmp_path_factory.mktemp("cuda_host_clipping"), "shim_block.h")


def _close(dtype, ref):
    scale = max(float(np.max(np.abs(ref))) if np.size(ref) else 1.0, 1.0)
    return (dict(rtol=1e-4, atol=1e-5 * scale) if np.dtype(dtype) == np.float32
            else dict(rtol=1e-9, atol=1e-12 * scale))


# an empty batch runs only in eval: in training it never reaches a backend
@pytest.mark.parametrize("shape, training",
                         [(s, t) for s in [(5, 3), (300, 2), (2, 3, 7, 9), (2, 1, 20_001),
                                           (300, 40), (1000, 70)]
                          for t in (True, False)] + [((0, 2, 3), False)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_emulated_batch_norm_against_reference(shape, dtype, training, rng, emu_bn, monkeypatch):
    """The CUDA batch norm kernels (Welford + shuffles + shared memory, run
    with real threads per block) against the float64 NumPy reference, on
    shapes that take both index walks and several pieces per channel, and the
    (N, C >= 32) rows layout (channel tiles of 32, partial last tile)."""
    from fastopt.backends.numpy import batchnorm as ref
    from fastopt.backends.cuda import batchnorm as cuda_bn
    monkeypatch.setattr(cuda_bn, "PIECE", 4096)     # several pieces on small data
    monkeypatch.setattr(cuda_bn, "ROWS_PIECE", 128)
    C = shape[1]
    x = (rng.standard_normal(shape) * 3 + 50).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma, beta = rng.uniform(0.5, 2, C).astype(dtype), rng.standard_normal(C).astype(dtype)
    rm, rv = rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2, C).astype(dtype)
    f64 = lambda a: a.astype(np.float64)  # noqa: E731
    r = dict(y=np.empty(shape), sm=np.empty(C), si=np.empty(C), rm=f64(rm), rv=f64(rv))
    ref.batch_norm_forward(f64(x), r["y"], f64(gamma), f64(beta), r["rm"], r["rv"], r["sm"],
                           r["si"], training=training, momentum=0.1, eps=1e-5)
    g = dict(y=np.empty(shape, dtype), sm=np.empty(C, dtype), si=np.empty(C, dtype), rm=rm, rv=rv)
    with emulated(monkeypatch, emu_bn, grid_cap=3, two_d=True):
        cuda_bn.batch_norm_forward(x, g["y"], gamma, beta, g["rm"], g["rv"], g["sm"], g["si"],
                                   training=training, momentum=0.1, eps=1e-5)
    for k in r:
        np.testing.assert_allclose(g[k], r[k], **_close(dtype, r[k]), err_msg=k)
    rb = dict(dx=np.empty(shape), dg=np.empty(C), db=np.empty(C))
    ref.batch_norm_backward(f64(dy), f64(x), f64(gamma), f64(g["sm"]), f64(g["si"]), rb["dx"],
                            rb["dg"], rb["db"], training=training)
    gb = dict(dx=np.empty(shape, dtype), dg=np.empty(C, dtype), db=np.empty(C, dtype))
    with emulated(monkeypatch, emu_bn, grid_cap=3, two_d=True):
        cuda_bn.batch_norm_backward(dy, x, gamma, g["sm"], g["si"], gb["dx"], gb["dg"], gb["db"],
                                    training=training)
    for k in rb:
        np.testing.assert_allclose(gb[k], rb[k], **_close(dtype, rb[k]), err_msg=k)



# (N, C) and (N, C, S) input, one piece and several pieces per channel
NONFINITE_SHAPES = [(64, 4), (2, 4, 3000), (9000, 4)]


@pytest.mark.parametrize("where", [0, -1], ids=["first", "last"])
@pytest.mark.parametrize("shape", NONFINITE_SHAPES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_emulated_batch_norm_nonfinite(shape, dtype, where, rng, emu_bn, monkeypatch):
    """The CUDA kernels give the float64 reference's NaN/inf pattern: a NaN makes
    a channel's statistics NaN, a +inf makes its mean +inf (not inf - inf = NaN,
    which the Welford and Chan updates gave) and its variance NaN, +inf and -inf
    make the mean NaN."""
    from fastopt.backends.numpy import batchnorm as ref
    from fastopt.backends.cuda import batchnorm as cuda_bn
    monkeypatch.setattr(cuda_bn, "PIECE", 4096)
    C = shape[1]
    x = (rng.standard_normal(shape) * 3 + 50).astype(dtype)
    idx = lambda w: (w, slice(None)) + (w,) * (len(shape) - 2)  # noqa: E731
    x[idx(where)] = [1.0, np.nan, np.inf, np.inf]
    x[idx(-1 - where)][3] = -np.inf
    gamma, beta = rng.uniform(0.5, 2, C).astype(dtype), rng.standard_normal(C).astype(dtype)
    rm, rv = rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2, C).astype(dtype)
    r = dict(y=np.empty(shape), sm=np.empty(C), si=np.empty(C), rm=rm.astype(np.float64),
             rv=rv.astype(np.float64))
    g = dict(y=np.empty(shape, dtype), sm=np.empty(C, dtype), si=np.empty(C, dtype), rm=rm, rv=rv)
    with np.errstate(invalid="ignore"):
        ref.batch_norm_forward(x.astype(np.float64), r["y"], gamma.astype(np.float64),
                               beta.astype(np.float64), r["rm"], r["rv"], r["sm"], r["si"],
                               training=True, momentum=0.1, eps=1e-5)
        with emulated(monkeypatch, emu_bn, grid_cap=3, two_d=True):
            cuda_bn.batch_norm_forward(x, g["y"], gamma, beta, g["rm"], g["rv"], g["sm"], g["si"],
                                       training=True, momentum=0.1, eps=1e-5)
    assert np.isposinf(r["sm"][2]) and np.isnan(r["sm"][3]) and np.isnan(r["si"][1:]).all()
    for k in r:
        for test in (np.isnan, np.isposinf, np.isneginf):
            np.testing.assert_array_equal(test(g[k]), test(r[k]), err_msg=f"{k} {test.__name__}")
    assert np.isfinite(g["y"][:, 0]).all()


@pytest.mark.parametrize("mean", [1e2, 1e4, 1e6])
@pytest.mark.parametrize("shape", [(64, 3), (2, 3, 3000)], ids=str)
def test_emulated_batch_norm_large_mean_float32(shape, mean, rng, emu_bn, monkeypatch):
    """float32, channel 0 constant at `mean` (exact y = beta), channel 1 std 1:
    y = ((x - hi) - lo) * scale + beta stays within a few roundings of |y| from
    the float64 reference; the folded x * scale + shift gave -0.25 for a
    constant 1e4."""
    from fastopt.backends.numpy import batchnorm as ref
    from fastopt.backends.cuda import batchnorm as cuda_bn
    monkeypatch.setattr(cuda_bn, "PIECE", 4096)
    C = shape[1]
    bshape = (1, C) + (1,) * (len(shape) - 2)
    x = (mean + rng.standard_normal(shape) * np.array([0.0, 1.0, 1e-2]).reshape(bshape))
    x = x.astype(np.float32)
    gamma = rng.uniform(0.5, 2, C).astype(np.float32)
    beta = rng.standard_normal(C).astype(np.float32)
    f64 = lambda a: a.astype(np.float64)  # noqa: E731
    ry, rsm, rsi = np.empty(shape), np.empty(C), np.empty(C)
    ref.batch_norm_forward(f64(x), ry, f64(gamma), f64(beta), None, None, rsm, rsi,
                           training=True, momentum=0.1, eps=1e-5)
    y, sm, si = np.empty(shape, np.float32), np.empty(C, np.float32), np.empty(C, np.float32)
    with emulated(monkeypatch, emu_bn, grid_cap=3, two_d=True):
        cuda_bn.batch_norm_forward(x, y, gamma, beta, None, None, sm, si, training=True,
                                   momentum=0.1, eps=1e-5)
    eps32 = float(np.finfo(np.float32).eps)
    bound = 4 * eps32 * (np.abs(ry) + np.abs(f64(beta)).reshape(bshape))
    err = np.abs(f64(y) - ry)
    assert (err <= bound).all(), f"worst err {err.max():.3g}"
    np.testing.assert_allclose(y[:, 0], np.broadcast_to(beta.reshape(bshape)[:, 0], y[:, 0].shape),
                               rtol=4 * eps32)

@pytest.mark.parametrize("dtype", DTYPES)
def test_emulated_averaging_against_reference(dtype, rng, emu_averaging, monkeypatch):
    from fastopt.backends.numpy import averaging as ref_avg
    from fastopt.backends.cuda import averaging as cuda_avg
    sizes = [0, 1, 5, 4099, 70_001]
    avg = [rng.standard_normal(n).astype(dtype) for n in sizes]
    par = [rng.standard_normal(n).astype(dtype) for n in sizes]
    r_avg = [a.astype(np.float64) for a in avg]
    ref_avg.ema(r_avg, [a.astype(np.float64) for a in par], decay=0.9)
    with emulated(monkeypatch, emu_averaging, grid_cap=3, two_d=True):
        cuda_avg.ema(avg, par, decay=0.9)
    for got, want in zip(avg, r_avg):
        np.testing.assert_allclose(got, want, **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_emulated_clipping_against_reference(dtype, rng, emu_clipping, monkeypatch):
    from fastopt.backends.numpy import clipping as ref
    from fastopt.backends.cuda import clipping as cuda_clip
    sizes = [0, 1, 5, 4099, 70_001]
    par = [rng.standard_normal(n).astype(dtype) for n in sizes]
    with emulated(monkeypatch, emu_clipping, grid_cap=3, two_d=True):
        norms = {q: cuda_clip.grad_norm(par, norm_type=q) for q in (2.0, 1.0, float("inf"), 3.0)}
        grads = [a.copy() for a in par]
        cuda_clip.scale(grads, coef=0.25)
    for q, got in norms.items():
        want = ref.grad_norm([a.astype(np.float64) for a in par], norm_type=q)
        assert got == pytest.approx(want, rel=1e-12), q
    for got, a in zip(grads, par):
        np.testing.assert_allclose(got, a.astype(np.float64) * 0.25, **tol(dtype))


# ------------------------------------- cupy-like arrays through the public API
class FakeDevice:
    """``cupy.cuda.Device`` stand-in: ``.id`` and a context manager making it current."""

    current = 0

    def __init__(self, id=None):
        self.id = FakeDevice.current if id is None else id

    def __enter__(self):
        self._prev, FakeDevice.current = FakeDevice.current, self.id
        return self

    def __exit__(self, *exc):
        FakeDevice.current = self._prev


class _FakeFlags:
    """cupy's flags: c_contiguous, f_contiguous, owndata, and no ``writeable``."""

    def __init__(self, a):
        f = np.ndarray.flags.__get__(a)
        self.c_contiguous, self.f_contiguous, self.owndata = (f.c_contiguous, f.f_contiguous,
                                                               f.owndata)


class FakeCupyArray(np.ndarray):
    """Host memory that looks like a cupy array to fastopt: its type's module
    starts with ``cupy`` (``fastopt._arrays.is_cupy``), ``.data.ptr``,
    ``.device`` (``.id``, a context manager) and cupy's flags (no
    ``writeable``). The emulated kernels read and write it through ctypes."""

    __module__ = "cupy._fake"

    def __array_finalize__(self, obj):
        self.fake_device = getattr(obj, "fake_device", FakeDevice.current)

    def __array_function__(self, func, types, args, kwargs):
        out = super().__array_function__(func, types, args, kwargs)
        if func in (np.empty_like, np.zeros_like, np.ones_like, np.full_like):
            out.fake_device = FakeDevice.current   # as cupy's: on the current device
        return out

    @property
    def flags(self):
        return _FakeFlags(self)

    @property
    def data(self):   # built once per array object (cupy's is an attribute too)
        d = self.__dict__.get("_data")
        if d is None:
            d = self.__dict__["_data"] = type("MemoryPointer", (), {"ptr": self.ctypes.data})
        return d

    @property
    def device(self):
        return FakeDevice(self.fake_device)


def fake_gpu(a, device=None):
    out = np.array(a, copy=True).view(FakeCupyArray)
    out.fake_device = FakeDevice.current if device is None else device
    return out


def _fake_cupy_module():
    """The few ``cupy`` functions fastopt's Python layer calls, on FakeCupyArray."""
    import types
    m = types.ModuleType("cupy")
    m.empty = lambda shape, dtype=np.float64: fake_gpu(np.empty(shape, dtype))
    m.zeros = lambda shape, dtype=np.float64: fake_gpu(np.zeros(shape, dtype))
    m.ndarray = FakeCupyArray
    return m


@contextlib.contextmanager
def fake_cuda_backend(monkeypatch, lib, check_devices=False, **kw):
    """The ``cuda`` backend "available", its kernels emulated on the host and
    ``cupy`` replaced by a fake allocating FakeCupyArray on the current
    FakeDevice. ``check_devices``: every array a kernel gets must live on the
    device current at the launch, and the loader's temporaries are fake GPU
    arrays on the current device too."""
    from fastopt import backends as _backends
    monkeypatch.setitem(_backends._status, "cuda", None)
    monkeypatch.setattr(_backends, "_modules", dict(_backends._modules))   # forget cuda modules after
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy_module())
    with emulated(monkeypatch, lib, **kw) as e:
        if check_devices:
            inner = e.launch

            def launch(family, name, grid, block, spec, values, dtype, shared_mem=0):
                for code, val in zip(spec, values):
                    if code == "p" and isinstance(val, FakeCupyArray):
                        assert val.fake_device == FakeDevice.current, (name, val.fake_device)
                inner(family, name, grid, block, spec, values, dtype, shared_mem)
            monkeypatch.setattr(loader, "launch", launch)
            monkeypatch.setattr(loader, "empty",
                                lambda shape, dt: fake_gpu(np.empty(shape, dt)))
            monkeypatch.setattr(loader, "device_of", lambda arrays: arrays[0].device)
        yield e


@pytest.mark.parametrize("cls,kw", [("Adam", dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
                                    ("AdamW", dict(lr=1e-2)),
                                    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
                                    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5)),
                                    ("Adagrad", dict(lr=0.1, lr_decay=0.01))])
def test_class_optimizer_on_cupy_like_arrays(cls, kw, rng, emu, monkeypatch):
    """``fastopt.Adam([cupy arrays])`` and the other classes build (cupy arrays
    have no ``flags.writeable``: issue 15 bug 1) and step through the cuda
    backend's kernels, matching the float64 NumPy reference for 3 steps."""
    sizes = [5, 1023, loader.CHUNK_SIZE + 3]
    host = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    grads = [[rng.standard_normal(n).astype(np.float32) for n in sizes] for _ in range(3)]
    ref_params = [h.astype(np.float64) for h in host]
    ref = getattr(fastopt, cls)(ref_params, **kw, backend="numpy")
    with fake_cuda_backend(monkeypatch, emu) as e:
        params = [fake_gpu(h) for h in host]
        opt = getattr(fastopt, cls)(params, **kw)
        for g in grads:
            opt.step([fake_gpu(x) for x in g])
            ref.step([x.astype(np.float64) for x in g])
    assert len(e.launches) == 3          # one launch per step for the whole list
    for got, want in zip(params, ref_params):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)


def test_batch_norm_outputs_on_the_inputs_device(rng, emu_bn, monkeypatch):
    """x on GPU 1 while GPU 0 is current: every output and temporary of batch
    norm lives on GPU 1 and every kernel runs with GPU 1 current (issue 15
    bug 2: outputs were allocated on the current device)."""
    monkeypatch.setattr(FakeDevice, "current", 0)
    shape, C = (6, 3, 5), 3
    host = dict(x=rng.standard_normal(shape) + 2, g=rng.uniform(0.5, 2, C),
                b=rng.standard_normal(C), rm=rng.standard_normal(C), rv=rng.uniform(0.5, 2, C),
                dy=rng.standard_normal(shape))
    dev = {k: fake_gpu(val, device=1) for k, val in host.items()}
    with fake_cuda_backend(monkeypatch, emu_bn, check_devices=True, grid_cap=3, two_d=True):
        y, sm, si = fastopt.batch_norm_forward(dev["x"], dev["g"], dev["b"], dev["rm"], dev["rv"])
        dx, dg, db = fastopt.batch_norm_backward(dev["dy"], dev["x"], dev["g"], sm, si)
    assert FakeDevice.current == 0
    for name, a in dict(y=y, sm=sm, si=si, dx=dx, dg=dg, db=db).items():
        assert isinstance(a, FakeCupyArray) and a.fake_device == 1, name
    r = {k: val.copy() for k, val in host.items()}
    ry, rsm, rsi = fastopt.batch_norm_forward(r["x"], r["g"], r["b"], r["rm"], r["rv"],
                                              backend="numpy")
    rdx, rdg, rdb = fastopt.batch_norm_backward(r["dy"], r["x"], r["g"], rsm, rsi, backend="numpy")
    for got, want in [(y, ry), (sm, rsm), (si, rsi), (dx, rdx), (dg, rdg), (db, rdb),
                      (dev["rm"], r["rm"]), (dev["rv"], r["rv"])]:
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9, atol=1e-12)


def test_optimizer_state_on_the_params_device(rng, emu, monkeypatch):
    """Lazily created optimizer state lives on its parameter's device, not the current one."""
    monkeypatch.setattr(FakeDevice, "current", 0)
    params = [fake_gpu(rng.standard_normal(n), device=1) for n in (3, 40)]
    with fake_cuda_backend(monkeypatch, emu, check_devices=True):
        opt = fastopt.Adam(params, lr=0.1, amsgrad=True)
        opt.step([fake_gpu(rng.standard_normal(p.size), device=1) for p in params])
    assert FakeDevice.current == 0
    for st in opt.state:
        for name in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            assert isinstance(st[name], FakeCupyArray) and st[name].fake_device == 1, name


def test_batch_norm_none_affine_on_the_cuda_backend(rng, emu_bn, monkeypatch):
    """gamma=None / beta=None reach the CUDA kernels as ones / zeros made on x's
    device (no null pointer read), equal to the reference with explicit ones/zeros."""
    monkeypatch.setattr(FakeDevice, "current", 0)
    shape, C = (5, 4, 7), 4
    x, dy = rng.standard_normal(shape) * 2 + 1, rng.standard_normal(shape)
    rm, rv = rng.standard_normal(C), rng.uniform(0.5, 2, C)
    with fake_cuda_backend(monkeypatch, emu_bn, check_devices=True, grid_cap=3, two_d=True):
        y, sm, si = fastopt.batch_norm_forward(fake_gpu(x, 1), None, None, fake_gpu(rm, 1),
                                               fake_gpu(rv, 1))
        dx, dg, db = fastopt.batch_norm_backward(fake_gpu(dy, 1), fake_gpu(x, 1), None, sm, si)
    ones, zeros = np.ones(C), np.zeros(C)
    ry, rsm, rsi = fastopt.batch_norm_forward(x, ones, zeros, rm.copy(), rv.copy(), backend="numpy")
    rdx, rdg, rdb = fastopt.batch_norm_backward(dy, x, ones, rsm, rsi, backend="numpy")
    for got, want in [(y, ry), (sm, rsm), (si, rsi), (dx, rdx), (dg, rdg), (db, rdb)]:
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-9, atol=1e-12)


class FakeStream:
    """``cupy.cuda.Stream`` stand-in: only whether it is capturing a graph."""

    def __init__(self, capturing=False):
        self.capturing = capturing

    def is_capturing(self):
        return self.capturing


@pytest.mark.parametrize("fn", ["sgd", "rmsprop", "adam", "adagrad"])
def test_optimizer_step_refuses_graph_capture(fn, rng, emu, monkeypatch):
    """While the current stream captures a CUDA graph an optimizer step raises
    (its scalars would be frozen in the graph: issue 15 bug 4) and nothing runs."""
    from fastopt.backends.cuda import optim as cuda_optim
    real_capturing = loader.capturing
    fake = _fake_cupy_module()
    fake.cuda = type("cuda", (), {})()
    stream = FakeStream(capturing=True)
    fake.cuda.get_current_stream = lambda: stream
    _, kw, roles = next(c for c in CASES if c[0] == fn)
    lists = make_lists(rng, roles, [5, 1000], np.float32, False)
    before = copy_lists(lists)
    with emulated(monkeypatch, emu) as e:
        monkeypatch.setattr(loader, "capturing", real_capturing)
        monkeypatch.setitem(sys.modules, "cupy", fake)
        with pytest.raises(RuntimeError, match="cannot be captured in a CUDA graph"):
            run(cuda_optim, fn, lists, kw)
        assert e.launches == []
        stream.capturing = False          # outside a capture the same call runs
        run(cuda_optim, fn, copy_lists(lists), kw)
        assert len(e.launches) == 1
    for got, want in zip(lists, before):
        if got is not None:
            for a, b in zip(got, want):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("max_norm", [0.5, 1e9], ids=["clips", "within"])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf"), 3.0])
@pytest.mark.parametrize("dtype", DTYPES)
def test_emulated_sync_free_clip_equals_cpp(dtype, norm_type, max_norm, rng, emu_clipping,
                                            monkeypatch):
    """clip_grad_norm(sync=False) on the cuda backend: the scaling kernel reads
    the norm from device memory, nothing is copied to the host, and the result
    equals the cuda backend's clip with sync=True bit for bit (the same
    reduction) and the C++ backend's to rounding (another reduction order)."""
    sizes = [0, 1, 5, 4099, 70_001]
    host = [(rng.standard_normal(n) * 3).astype(dtype) for n in sizes]
    cpu = [a.copy() for a in host]
    want = fastopt.clip_grad_norm(cpu, max_norm, norm_type, backend="cpp")
    monkeypatch.setattr(FakeDevice, "current", 0)
    with fake_cuda_backend(monkeypatch, emu_clipping, grid_cap=3, two_d=True) as e:
        synced = [fake_gpu(a) for a in host]
        norm_synced = fastopt.clip_grad_norm(synced, max_norm, norm_type)

        def no_copy(a):
            raise AssertionError("sync=False copied to the host")
        monkeypatch.setattr(loader, "to_host", no_copy)
        grads = [fake_gpu(a) for a in host]
        norm = fastopt.clip_grad_norm(grads, max_norm, norm_type, sync=False)
        with pytest.raises(ValueError, match="sync=False"):
            fastopt.clip_grad_norm(grads, max_norm, error_if_nonfinite=True, sync=False)
    assert e.launches[-1] == f"fastopt_clip_scale_{loader.suffix(dtype)}"
    assert np.ndim(norm) == 0 and float(norm) == norm_synced
    assert norm_synced == pytest.approx(want, rel=1e-12)
    for got, s, w in zip(grads, synced, cpu):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(s))
        np.testing.assert_allclose(np.asarray(got), w, **tol(dtype))


def test_gpu_list_validation_cached_per_pointer_set(rng, emu, monkeypatch):
    """A list-form call on GPU arrays is validated once per distinct pointer set
    (issue 15: 200 tensors x 4 roles cost milliseconds a step); any change of
    pointers, shapes, strides or dtypes is validated again, and still refused."""
    from fastopt import _validate
    monkeypatch.setattr(_validate, "_GPU_VALID", {})
    calls = []
    real = _validate._arrays
    monkeypatch.setattr(_validate, "_arrays", lambda named, dtypes: calls.append(1) or
                        real(named, dtypes))
    sizes = [3, 17, 100]
    mk = lambda: [fake_gpu(rng.standard_normal(n).astype(np.float32)) for n in sizes]  # noqa: E731
    p, g, m, s = mk(), mk(), mk(), [fake_gpu(rng.uniform(0.1, 1, n).astype(np.float32))
                                    for n in sizes]
    ref = [[np.array(a, dtype=np.float64) for a in lst] for lst in (p, g, m, s)]
    with fake_cuda_backend(monkeypatch, emu):
        for step in (1, 2, 3):
            fastopt.adam_step(p, g, m, s, step=step, lr=0.1)
        assert len(calls) == 1
        g2 = mk()                                    # new gradient arrays: validated again
        fastopt.adam_step(p, g2, m, s, step=4, lr=0.1)
        assert len(calls) == 2
        with pytest.raises(ValueError, match="overlap"):
            fastopt.adam_step(p, [p[0], g[1], g[2]], m, s, step=5, lr=0.1)
        with pytest.raises(ValueError, match="contiguous"):
            fastopt.adam_step(p, [g[0], fake_gpu(np.zeros(34, np.float32))[::2], g[2]], m, s,
                              step=5, lr=0.1)
    for step in (1, 2, 3):
        fastopt.adam_step(*ref, step=step, lr=0.1, backend="numpy")
    fastopt.adam_step(ref[0], [np.array(a, dtype=np.float64) for a in g2], ref[2], ref[3], step=4,
                      lr=0.1, backend="numpy")
    for got, want in zip(p, ref[0]):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("offset,spread", [(1e4, 1.0), (-3e3, 1e-2), (7.0, 0.0)],
                         ids=["large-mean", "tiny-spread", "constant"])
def test_emulated_batch_norm_statistics_hard_data(offset, spread, rng, emu_bn, monkeypatch):
    """The per-thread shifted sums of the statistics kernel on data whose mean
    dwarfs its spread (and a constant channel: variance exactly 0), float64,
    against the float64 reference."""
    from fastopt.backends.numpy import batchnorm as ref
    from fastopt.backends.cuda import batchnorm as cuda_bn
    monkeypatch.setattr(cuda_bn, "PIECE", 4096)
    shape, C = (3, 2, 5000), 2
    x = offset + spread * rng.standard_normal(shape)
    g, b = rng.uniform(0.5, 2, C), rng.standard_normal(C)
    r = dict(y=np.empty(shape), sm=np.empty(C), si=np.empty(C), rm=np.zeros(C), rv=np.ones(C))
    ref.batch_norm_forward(x, r["y"], g, b, r["rm"], r["rv"], r["sm"], r["si"], training=True,
                           momentum=0.1, eps=1e-5)
    o = dict(y=np.empty(shape), sm=np.empty(C), si=np.empty(C), rm=np.zeros(C), rv=np.ones(C))
    with emulated(monkeypatch, emu_bn, grid_cap=3, two_d=True):
        cuda_bn.batch_norm_forward(x, o["y"], g, b, o["rm"], o["rv"], o["sm"], o["si"],
                                   training=True, momentum=0.1, eps=1e-5)
    for k in r:
        np.testing.assert_allclose(o[k], r[k], rtol=1e-9, atol=1e-9, err_msg=k)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf"), 3.0])
@pytest.mark.parametrize("dtype", DTYPES)
def test_emulated_grad_norm_vector_path_independent_of_alignment(dtype, norm_type, rng,
                                                                 emu_clipping, monkeypatch):
    """The vectorized norm kernel (16-byte packs where aligned, scalar loads
    where not, two packs in flight) gives the same bits for an unaligned copy
    of the data, at sizes with partial packs and partial chunks, and the
    float64 reference's norm."""
    from fastopt.backends.numpy import clipping as ref
    from fastopt.backends.cuda import clipping as cuda_clip
    sizes = [1, 3, 7, 4097, loader.CHUNK_SIZE + 3, 70_001]
    aligned = [(rng.standard_normal(n) * 2).astype(dtype) for n in sizes]
    unaligned = []
    for a in aligned:
        u = np.empty(a.size + 1, dtype)[1:]
        u[...] = a
        unaligned.append(u)
    with emulated(monkeypatch, emu_clipping, grid_cap=3, two_d=True):
        got = cuda_clip.grad_norm(aligned, norm_type=norm_type)
        got_u = cuda_clip.grad_norm(unaligned, norm_type=norm_type)
    assert got == got_u
    want = ref.grad_norm([a.astype(np.float64) for a in aligned], norm_type=norm_type)
    assert got == pytest.approx(want, rel=1e-12)
