"""The CUDA backend on a GPU: every kernel against the NumPy float64 reference,
bit-identity with the C++ backend and across the vector/scalar paths and the
list form, the caller's stream (CUDA graph capture), and trajectories against
torch.optim on CUDA tensors when torch has CUDA.

Every test is skipped, each with the reason, when the backend is unavailable (no
cupy, no GPU, driver error): ``python -m fastopt info`` says the same.
"""
import numpy as np
import pytest

import fastopt
from fastopt import backends as _backends
from conftest import SIZES, DTYPES, tol

_WHY = _backends.unavailable_reason("cuda")
# Marked test by test (not a module-level skip), so a run without a GPU reports every
# GPU test it did not run.
pytestmark = pytest.mark.skipif(_WHY is not None, reason=f"cuda backend unavailable: {_WHY}")

import os  # noqa: E402

import importlib  # noqa: E402

cupy = importlib.import_module("cupy") if _WHY is None else None

if cupy is not None and os.environ.get("FASTOPT_CUDA_NO_POOL"):
    # compute-sanitizer sees only cudaMalloc'd blocks: without the pool an
    # out-of-bounds access lands outside any allocation and is reported.
    cupy.cuda.set_allocator(None)

from fastopt.backends.cuda import loader  # noqa: E402

GPU_SIZES = sorted(set(SIZES) | {loader.CHUNK_SIZE, loader.CHUNK_SIZE + 1,
                                 2 * loader.CHUNK_SIZE + 3})

# (function, hyper-parameters, state arrays it needs)
CASES = [
    ("sgd_step", dict(lr=0.1), []),
    ("sgd_step", dict(lr=0.1, momentum=0.9, first_step=True), ["momentum_buffer"]),
    ("sgd_step", dict(lr=0.1, momentum=0.9, dampening=0.2, weight_decay=0.01), ["momentum_buffer"]),
    ("sgd_step", dict(lr=0.1, momentum=0.9, nesterov=True, maximize=True), ["momentum_buffer"]),
    ("rmsprop_step", dict(lr=0.01), ["square_avg"]),
    ("rmsprop_step", dict(lr=0.01, alpha=0.9, momentum=0.8), ["square_avg", "momentum_buffer"]),
    ("rmsprop_step", dict(lr=0.01, centered=True, momentum=0.9, weight_decay=0.1, maximize=True),
     ["square_avg", "grad_avg", "momentum_buffer"]),
    ("adam_step", dict(step=3, lr=1e-3), ["exp_avg", "exp_avg_sq"]),
    ("adam_step", dict(step=5, lr=1e-2, weight_decay=0.1, amsgrad=True, maximize=True),
     ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]),
    ("adam_step", dict(step=2, lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True),
     ["exp_avg", "exp_avg_sq"]),
    ("adagrad_step", dict(step=4, lr=0.1, lr_decay=0.01, weight_decay=0.1), ["state_sum"]),
]
CASE_IDS = [f"{fn}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for fn, kw, _ in CASES]


def host_inputs(rng, states, n, dtype):
    """Fresh random host arrays (never zeros); states that must be >= 0 are."""
    d = {"param": rng.standard_normal(n), "grad": rng.standard_normal(n)}
    for s in states:
        d[s] = rng.standard_normal(n)
    for s in ("exp_avg_sq", "state_sum", "square_avg", "max_exp_avg_sq"):
        if s in d:
            d[s] = rng.uniform(0.1, 1.0, n)
    if "grad_avg" in d:   # centered: square_avg >= grad_avg**2 keeps the sqrt real
        d["grad_avg"] = 0.1 * d["grad_avg"]
        d["square_avg"] = d["grad_avg"] ** 2 + rng.uniform(0.1, 1.0, n)
    if "max_exp_avg_sq" in d:
        d["max_exp_avg_sq"] = d["exp_avg_sq"] + rng.uniform(0.0, 0.1, n)
    return {k: v.astype(dtype) for k, v in d.items()}


def reference(fn, kw, host):
    """The NumPy backend in float64 on float64 copies."""
    ref = {k: v.astype(np.float64) for k, v in host.items()}
    getattr(fastopt, fn)(**ref, **kw, backend="numpy")
    return ref


def to_device(host, unaligned=False):
    """cupy copies; ``unaligned`` puts each one 1 element past a 16-byte boundary."""
    out = {}
    for k, v in host.items():
        if unaligned:
            base = cupy.empty(v.size + 1, dtype=v.dtype)
            a = base[1:]
            a[...] = cupy.asarray(v)
            assert a.data.ptr % 16 != 0
        else:
            a = cupy.asarray(v)
        out[k] = a
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", GPU_SIZES)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_against_reference(case, n, dtype, rng):
    fn, kw, states = case
    host = host_inputs(rng, states, n, dtype)
    ref = reference(fn, kw, host)
    dev = to_device(host)
    getattr(fastopt, fn)(**dev, **kw)          # auto picks cuda for cupy arrays
    cupy.cuda.get_current_stream().synchronize()
    for k in ["param", *states]:
        np.testing.assert_allclose(cupy.asnumpy(dev[k]), ref[k], **tol(dtype), err_msg=k)
    np.testing.assert_array_equal(cupy.asnumpy(dev["grad"]), host["grad"])  # grad untouched


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_vector_and_scalar_paths_and_list_form_agree_bit_for_bit(case, dtype, rng):
    """Aligned (float4/double2) and unaligned (scalar) paths, alone or in one
    list launch, give identical bits: results do not depend on the split."""
    fn, kw, states = case
    sizes = [1, 7, 4097, loader.CHUNK_SIZE + 5, 3]
    hosts = [host_inputs(rng, states, n, dtype) for n in sizes]
    singles = []
    for h in hosts:
        d = to_device(h)
        getattr(fastopt, fn)(**d, **kw)
        singles.append({k: cupy.asnumpy(v) for k, v in d.items()})
    for unaligned in (False, True):
        devs = [to_device(h, unaligned) for h in hosts]
        lists = {k: [d[k] for d in devs] for k in devs[0]}
        getattr(fastopt, fn)(**lists, **kw)
        for i, d in enumerate(devs):
            for k in d:
                np.testing.assert_array_equal(cupy.asnumpy(d[k]), singles[i][k],
                                              err_msg=f"{k}[{i}] unaligned={unaligned}")


@pytest.mark.skipif("cpp" not in fastopt.available_backends(), reason="C++ extension not built")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_matches_cpp_bit_for_bit(case, dtype, rng):
    """Same header, same scalars cast the same way, no FMA contraction on
    either side, IEEE division and sqrt on both: the same bits."""
    fn, kw, states = case
    host = host_inputs(rng, states, 10_007, dtype)
    cpu = {k: v.copy() for k, v in host.items()}
    getattr(fastopt, fn)(**cpu, **kw, backend="cpp")
    dev = to_device(host)
    getattr(fastopt, fn)(**dev, **kw, backend="cuda")
    for k in cpu:
        np.testing.assert_array_equal(cupy.asnumpy(dev[k]), cpu[k], err_msg=k)


def test_many_tensors_one_cached_table(rng, monkeypatch):
    """200 tensors of mixed sizes in one launch; the table is built once."""
    monkeypatch.setattr(loader, "_tables", loader.TableCache())
    sizes = [int(s) for s in rng.integers(0, 300_000, 200)]
    hosts = [host_inputs(rng, ["exp_avg", "exp_avg_sq"], n, np.float32) for n in sizes]
    devs = [to_device(h) for h in hosts]
    lists = {k: [d[k] for d in devs] for k in devs[0]}
    for step in (1, 2):
        fastopt.adam_step(**lists, step=step, lr=1e-3)
    assert len(loader._tables) == 1
    for i, h in enumerate(hosts):
        ref = reference("adam_step", dict(step=1, lr=1e-3), h)
        fastopt.adam_step(**ref, step=2, lr=1e-3, backend="numpy")
        np.testing.assert_allclose(cupy.asnumpy(devs[i]["param"]), ref["param"],
                                   **tol(np.float32))


def test_runs_on_the_current_stream_and_refuses_graph_capture(rng):
    """A step is one launch on the caller's current (non-default) stream. Under
    CUDA graph capture it raises: its scalars (lr, bias corrections) are passed
    by value, so replays would repeat the captured step (issue 15)."""
    host = host_inputs(rng, ["exp_avg", "exp_avg_sq"], 100_003, np.float32)
    dev = to_device(host)
    cupy.cuda.Device().synchronize()   # the uploads above ran on the null stream
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        for step in (1, 2):
            fastopt.adam_step(**dev, step=step, lr=1e-3)
        stream.begin_capture()
        try:
            with pytest.raises(RuntimeError, match="cannot be captured"):
                fastopt.adam_step(**dev, step=3, lr=1e-3)
        finally:
            stream.end_capture()
    stream.synchronize()
    ref = reference("adam_step", dict(step=1, lr=1e-3), host)
    fastopt.adam_step(**ref, step=2, lr=1e-3, backend="numpy")
    np.testing.assert_allclose(cupy.asnumpy(dev["param"]), ref["param"], **tol(np.float32))


def test_ema_and_sync_free_clip_capture_and_replay(rng):
    """Kernels whose arguments are the whole input of the call capture and
    replay correctly: EMA (constant decay) and the sync-free clip (its
    coefficient is computed on the device from the norm)."""
    sizes = [3, 70_001]
    avg_h = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    par_h = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    avg, par = [cupy.asarray(a) for a in avg_h], [cupy.asarray(a) for a in par_h]
    grads = [cupy.asarray(a) * 10 for a in par_h]
    cupy.cuda.Device().synchronize()
    stream = cupy.cuda.Stream(non_blocking=True)
    with stream:
        fastopt.ema_update(avg, par, decay=0.9)                        # warm-up: compile, table
        fastopt.clip_grad_norm(grads, 1e9, sync=False)
        stream.begin_capture()
        fastopt.ema_update(avg, par, decay=0.9)
        fastopt.clip_grad_norm(grads, 1.0, sync=False)
        graph = stream.end_capture()
        for _ in range(3):
            graph.launch()
    stream.synchronize()
    ref = [a.astype(np.float64) for a in avg_h]
    for _ in range(4):
        fastopt.ema_update(ref, [p.astype(np.float64) for p in par_h], decay=0.9, backend="numpy")
    for got, want in zip(avg, ref):
        np.testing.assert_allclose(cupy.asnumpy(got), want, **tol(np.float32))
    total = float(np.sqrt(sum(float(np.sum((cupy.asnumpy(g).astype(np.float64)) ** 2))
                              for g in grads)))
    assert total == pytest.approx(1.0, rel=1e-4)    # clipped once, then already within


def test_validation_on_gpu_arrays():
    a, b = cupy.ones(4, np.float32), cupy.ones(4, np.float32)
    with pytest.raises(TypeError, match="device"):
        fastopt.sgd_step(a, np.ones(4, np.float32), lr=0.1)
    with pytest.raises(TypeError):
        fastopt.sgd_step(a, b, lr=0.1, backend="cpp")
    with pytest.raises(TypeError, match="dtype"):
        fastopt.sgd_step(a, cupy.ones(4, np.float64), lr=0.1)
    with pytest.raises(ValueError, match="contiguous"):
        fastopt.sgd_step(cupy.ones(8, np.float32)[::2], cupy.ones(4, np.float32), lr=0.1)
    with pytest.raises(ValueError, match="overlap"):
        fastopt.sgd_step(a, a, lr=0.1)
    np.testing.assert_array_equal(cupy.asnumpy(a), np.ones(4, np.float32))  # nothing written


def test_info_describes_the_device():
    d = fastopt.info()
    assert d["backends"]["cuda"] == "available"
    assert "sm_" in d["cuda"]["device"]


# ------------------------------------------------------------------- torch
def _torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip(f"torch {torch.__version__} has no CUDA device")
    return torch


TORCH_CASES = [
    ("Adam", dict(lr=1e-2), dict()),
    ("Adam", dict(lr=1e-2, fused=True, amsgrad=True, weight_decay=0.1), dict()),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1), dict()),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True), dict()),
    ("RMSprop", dict(lr=1e-2, momentum=0.9, centered=True), dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01), dict()),
]


@pytest.mark.parametrize("name,kw,_", TORCH_CASES, ids=[f"{c[0]}-{c[1]}" for c in TORCH_CASES])
def test_trajectory_matches_torch_optim_on_cuda(name, kw, _):
    """Five steps on torch CUDA tensors (passed to fastopt through DLPack, zero
    copy) follow torch.optim's trajectory to float32 rounding."""
    torch = _torch_cuda()
    gen = torch.Generator(device="cuda").manual_seed(0)
    shapes = [(33, 7), (1000,), (5,)]
    ref = [torch.randn(s, device="cuda", generator=gen) for s in shapes]
    mine = [p.clone() for p in ref]
    params = [torch.nn.Parameter(p) for p in ref]
    opt = getattr(torch.optim, name)(params, **kw)
    z = lambda: [torch.zeros_like(p) for p in mine]  # noqa: E731
    state = {"Adam": lambda: dict(exp_avg=z(), exp_avg_sq=z(), max_exp_avg_sq=z()),
             "AdamW": lambda: dict(exp_avg=z(), exp_avg_sq=z()),
             "SGD": lambda: dict(momentum_buffer=z()),
             "RMSprop": lambda: dict(square_avg=z(), momentum_buffer=z(), grad_avg=z()),
             "Adagrad": lambda: dict(state_sum=z())}[name]()
    for step in range(1, 6):
        grads = [torch.randn(s, device="cuda", generator=gen) for s in shapes]
        for p, g in zip(params, grads):
            p.grad = g.clone()
        opt.step()
        if name in ("Adam", "AdamW"):
            extra = {k: v for k, v in kw.items() if k not in ("fused",)}
            if name == "AdamW":
                extra["decoupled_weight_decay"] = True
            if not extra.get("amsgrad"):
                state.pop("max_exp_avg_sq", None)
            fastopt.adam_step(mine, grads, **state, step=step, **extra)
        elif name == "SGD":
            fastopt.sgd_step(mine, grads, **state, first_step=step == 1, **kw)
        elif name == "RMSprop":
            fastopt.rmsprop_step(mine, grads, **state, **kw)
        else:
            fastopt.adagrad_step(mine, grads, **state, step=step, **kw)
    torch.cuda.synchronize()
    for p, q in zip(params, mine):
        torch.testing.assert_close(q, p.detach(), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------- batch norm
# S < 256 (index division), S >= 256 (incremental walk), one channel with many
# values (many pieces), M == 0 in eval.
BN_SHAPES = [(5, 3), (300, 2), (4, 2, 7, 9), (2, 1, 300_007), (3, 4, 16, 33), (0, 3, 4)]


def _bn_tol(dtype, ref):
    scale = float(np.max(np.abs(ref))) if ref.size else 1.0
    if np.dtype(dtype) == np.float32:
        return dict(rtol=1e-4, atol=1e-5 * max(scale, 1.0))
    return dict(rtol=1e-9, atol=1e-12 * max(scale, 1.0))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", BN_SHAPES, ids=str)
def test_batch_norm_against_reference(shape, dtype, training, rng):
    if training and shape[0] == 0:
        pytest.skip("empty training batch returns before any backend runs")
    C = shape[1]
    host = dict(x=(rng.standard_normal(shape) * 3 + 50).astype(dtype),
                gamma=rng.uniform(0.5, 2, C).astype(dtype), beta=rng.standard_normal(C).astype(dtype),
                rm=rng.standard_normal(C).astype(dtype), rv=rng.uniform(0.5, 2, C).astype(dtype),
                dy=rng.standard_normal(shape).astype(dtype))
    h64 = {k: v.astype(np.float64) for k, v in host.items()}
    d = {k: cupy.asarray(v) for k, v in host.items()}
    y, sm, si = fastopt.batch_norm_forward(d["x"], d["gamma"], d["beta"], d["rm"], d["rv"],
                                           training=training, momentum=0.1, eps=1e-5)
    ry, rsm, rsi = fastopt.batch_norm_forward(h64["x"], h64["gamma"], h64["beta"], h64["rm"],
                                              h64["rv"], training=training, momentum=0.1,
                                              eps=1e-5, backend="numpy")
    for name, got, ref in [("y", y, ry), ("save_mean", sm, rsm), ("save_invstd", si, rsi),
                           ("running_mean", d["rm"], h64["rm"]), ("running_var", d["rv"], h64["rv"])]:
        np.testing.assert_allclose(cupy.asnumpy(got), ref, **_bn_tol(dtype, ref), err_msg=name)
    # backward from the GPU's own saved statistics on both sides
    sm64, si64 = cupy.asnumpy(sm).astype(np.float64), cupy.asnumpy(si).astype(np.float64)
    dx, dg, db = fastopt.batch_norm_backward(d["dy"], d["x"], d["gamma"], sm, si, training=training)
    rdx, rdg, rdb = fastopt.batch_norm_backward(h64["dy"], h64["x"], h64["gamma"], sm64, si64,
                                                training=training, backend="numpy")
    for name, got, ref in [("dx", dx, rdx), ("dgamma", dg, rdg), ("dbeta", db, rdb)]:
        np.testing.assert_allclose(cupy.asnumpy(got), ref, **_bn_tol(dtype, ref), err_msg=name)


def test_batch_norm_is_deterministic(rng):
    x = cupy.asarray(rng.standard_normal((8, 3, 5000)).astype(np.float32))
    g, b = cupy.ones(3, np.float32), cupy.zeros(3, np.float32)
    outs = [fastopt.batch_norm_forward(x, g, b, None, None, training=True) for _ in range(3)]
    for o in outs[1:]:
        for a, b_ in zip(o, outs[0]):
            np.testing.assert_array_equal(cupy.asnumpy(a), cupy.asnumpy(b_))


# ---------------------------------------------------------------- dropout


@pytest.mark.parametrize("seed", [0, 12345, 2**64 - 1])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1023, 100_003])
def test_dropout_equals_cpu_bit_for_bit(n, dtype, p, seed, rng):
    """Masks, outputs and gradients equal the CPU's (same Philox header, same
    scale rounding), on the 16-byte path and the unaligned scalar path."""
    x = rng.standard_normal(n).astype(dtype)
    dy = rng.standard_normal(n).astype(dtype)
    y_cpu, m_cpu = fastopt.dropout_forward(x, p, seed=seed)
    dx_cpu = fastopt.dropout_backward(dy, m_cpu, p)
    _, m_ref = fastopt.dropout_forward(x, p, seed=seed, backend="numpy")
    np.testing.assert_array_equal(m_cpu, m_ref)
    for unaligned in (False, True):
        d = to_device({"x": x, "dy": dy}, unaligned=unaligned) if n else \
            {"x": cupy.asarray(x), "dy": cupy.asarray(dy)}
        y, m = fastopt.dropout_forward(d["x"], p, seed=seed)
        np.testing.assert_array_equal(cupy.asnumpy(m), m_cpu)
        np.testing.assert_array_equal(cupy.asnumpy(y), y_cpu)
        dx = fastopt.dropout_backward(d["dy"], m, p)
        np.testing.assert_array_equal(cupy.asnumpy(dx), dx_cpu)


def test_dropout_mask_kernel_equals_cpu():
    from fastopt.backends.cuda import dropout as cuda_dropout
    for n, p, seed in [(1, 0.5, 3), (1001, 0.3, 2**63 + 5), (64, 1.0, 7), (65, 0.0, 7)]:
        np.testing.assert_array_equal(cupy.asnumpy(cuda_dropout.mask(n, p, seed)),
                                      fastopt.dropout_mask((n,), p, seed=seed))


# ------------------------------------------------------------------ utils


@pytest.mark.parametrize("dtype", DTYPES)
def test_utils_against_reference(dtype, rng):
    sizes = [0, 1, 7, loader.CHUNK_SIZE + 3, 100_003]
    avg = [rng.standard_normal(n).astype(dtype) for n in sizes]
    par = [rng.standard_normal(n).astype(dtype) for n in sizes]
    d_avg, d_par = [cupy.asarray(a) for a in avg], [cupy.asarray(a) for a in par]
    fastopt.ema_update(d_avg, d_par, 0.9)
    r_avg = [a.astype(np.float64) for a in avg]
    fastopt.ema_update(r_avg, [a.astype(np.float64) for a in par], 0.9, backend="numpy")
    for got, ref in zip(d_avg, r_avg):
        np.testing.assert_allclose(cupy.asnumpy(got), ref, **tol(dtype))
    for norm_type in (2.0, 1.0, float("inf"), 3.0):
        got = fastopt.grad_norm(d_par, norm_type)
        ref = fastopt.grad_norm([a.astype(np.float64) for a in par], norm_type, backend="numpy")
        assert got == pytest.approx(ref, rel=1e-6 if dtype == np.float32 else 1e-12)
    grads = [cupy.asarray(a) for a in par]
    r_grads = [a.astype(np.float64) for a in par]
    n1 = fastopt.clip_grad_norm(grads, 0.5)
    n2 = fastopt.clip_grad_norm(r_grads, 0.5, backend="numpy")
    assert n1 == pytest.approx(n2, rel=1e-6)
    for got, ref in zip(grads, r_grads):
        np.testing.assert_allclose(cupy.asnumpy(got), ref, **tol(dtype))


# ----------------------------------------------------- issue 15 (GPU checks)
def _record_streams(monkeypatch):
    """Every launch's stream (cupy's current stream at the launch)."""
    seen = []
    real = loader.launch

    def launch(*args, **kw):
        seen.append(cupy.cuda.get_current_stream().ptr)
        return real(*args, **kw)
    monkeypatch.setattr(loader, "launch", launch)
    return seen


@pytest.mark.parametrize("cls,kw", [("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=0.1)),
                                    ("AdamW", dict(lr=1e-2)),
                                    ("SGD", dict(lr=0.1, momentum=0.9)),
                                    ("RMSprop", dict(lr=1e-2, centered=True)),
                                    ("Adagrad", dict(lr=0.1))])
def test_class_optimizers_on_cupy_arrays(cls, kw, rng):
    """fastopt.Adam([cupy arrays]) and friends: build, step 5 times on the GPU,
    follow the float64 NumPy trajectory (construction failed before issue 15)."""
    shapes = [(33, 7), (loader.CHUNK_SIZE + 5,), (1,)]
    host = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    params = [cupy.asarray(h) for h in host]
    ref_p = [h.astype(np.float64) for h in host]
    opt, ref = getattr(fastopt, cls)(params, **kw), getattr(fastopt, cls)(ref_p, **kw,
                                                                           backend="numpy")
    for _ in range(5):
        g = [rng.standard_normal(s).astype(np.float32) for s in shapes]
        opt.step([cupy.asarray(x) for x in g])
        ref.step([x.astype(np.float64) for x in g])
    for got, want in zip(params, ref_p):
        np.testing.assert_allclose(cupy.asnumpy(got), want, rtol=1e-4, atol=1e-5)
    assert all(isinstance(a, cupy.ndarray) for st in opt.state for a in st.values()
               if hasattr(a, "shape") and a.shape)


@pytest.mark.parametrize("name,kw,_", TORCH_CASES, ids=[f"{c[0]}-{c[1]}" for c in TORCH_CASES])
def test_fastopt_torch_on_cuda_tensors_matches_torch(name, kw, _, monkeypatch):
    """fastopt.torch.<name> on CUDA tensors follows torch.optim.<name> for 5
    steps, its kernels on torch's current stream, here a side stream that
    differs from cupy's."""
    torch = _torch_cuda()
    import fastopt.torch as ft
    gen = torch.Generator(device="cuda").manual_seed(1)
    shapes = [(33, 7), (1000,), (5,)]
    init = [torch.randn(s, device="cuda", generator=gen) for s in shapes]
    ref = [torch.nn.Parameter(p.clone()) for p in init]
    mine = [torch.nn.Parameter(p.clone()) for p in init]
    opt_ref = getattr(torch.optim, name)(ref, **kw)
    opt = getattr(ft, name)(mine, **{k: v for k, v in kw.items() if k != "fused"})
    seen = _record_streams(monkeypatch)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    for _ in range(5):
        grads = [torch.randn(s, device="cuda", generator=gen) for s in shapes]
        for p, q, g in zip(ref, mine, grads):
            p.grad, q.grad = g.clone(), g.clone()
        opt_ref.step()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            opt.step()
        torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    assert seen and set(seen) == {side.cuda_stream} != {cupy.cuda.get_current_stream().ptr}
    for p, q in zip(ref, mine):
        torch.testing.assert_close(q.detach(), p.detach(), rtol=1e-5, atol=1e-6)


def test_fastopt_torch_clip_grad_norm_on_cuda_is_a_device_tensor():
    torch = _torch_cuda()
    import fastopt.torch as ft
    ps = [torch.nn.Parameter(torch.randn(n, device="cuda")) for n in (10, 70_001)]
    qs = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    for p, q in zip(ps, qs):
        p.grad = torch.randn_like(p) * 5
        q.grad = p.grad.clone()
    got = ft.clip_grad_norm_(ps, 1.0)
    want = torch.nn.utils.clip_grad_norm_(qs, 1.0)
    assert got.device.type == "cuda"
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    for p, q in zip(ps, qs):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6)


def _on_side_stream(monkeypatch, fn):
    """Runs fn() on a fresh non-blocking stream; every launch went there."""
    seen = _record_streams(monkeypatch)
    cupy.cuda.Device().synchronize()
    s = cupy.cuda.Stream(non_blocking=True)
    with s:
        out = fn()
    s.synchronize()
    assert seen and set(seen) == {s.ptr}
    return out


@pytest.mark.parametrize("family", ["optim", "batchnorm", "dropout", "averaging", "clipping"])
def test_every_family_runs_on_a_non_default_stream(family, rng, monkeypatch):
    n = 70_001
    x = rng.standard_normal(n).astype(np.float32)
    d = cupy.asarray(x)
    if family == "optim":
        m, v = cupy.zeros_like(d), cupy.zeros_like(d)
        _on_side_stream(monkeypatch, lambda: fastopt.adam_step([d], [d * 0 + 1], [m], [v],
                                                               step=1, lr=0.1))
        np.testing.assert_allclose(cupy.asnumpy(d), x - 0.1, rtol=1e-5, atol=1e-6)
    elif family == "batchnorm":
        x2 = cupy.asarray(x[:70_000].reshape(7, 10_000))
        y, sm, si = _on_side_stream(monkeypatch, lambda: fastopt.batch_norm_forward(
            x2, None, None, None, None))
        ry, _, _ = fastopt.batch_norm_forward(cupy.asnumpy(x2).astype(np.float64), None, None,
                                              None, None, backend="numpy")
        np.testing.assert_allclose(cupy.asnumpy(y), ry, rtol=1e-4, atol=1e-4)
    elif family == "dropout":
        y, mask = _on_side_stream(monkeypatch, lambda: fastopt.dropout_forward(d, 0.3, seed=5))
        np.testing.assert_array_equal(cupy.asnumpy(y), fastopt.dropout_forward(x, 0.3, seed=5)[0])
    elif family == "averaging":
        avg = cupy.zeros_like(d)
        _on_side_stream(monkeypatch, lambda: fastopt.ema_update([avg], [d], 0.5))
        np.testing.assert_allclose(cupy.asnumpy(avg), 0.5 * x, rtol=1e-6)
    else:
        norm = _on_side_stream(monkeypatch, lambda: fastopt.clip_grad_norm([d], 1.0, sync=False))
        assert float(norm) == pytest.approx(float(np.linalg.norm(x.astype(np.float64))),
                                            rel=1e-6)


def test_loops_past_one_grid_with_a_capped_grid(rng, monkeypatch):
    """Every kernel family with the grid capped at 3 blocks (each block loops
    over many chunks / pieces / channels): the same results as the full grid."""
    sizes = [5, 3 * loader.CHUNK_SIZE + 7, 70_001]
    host = [host_inputs(rng, ["exp_avg", "exp_avg_sq"], n, np.float32) for n in sizes]
    full, capped = [to_device(h) for h in host], [to_device(h) for h in host]
    xs = (rng.standard_normal((300, 3, 400)) * 2).astype(np.float32)   # 15 pieces a channel
    outs = []
    for lists, cap in ((full, None), (capped, 3)):
        if cap:
            monkeypatch.setattr(loader, "grid_size", lambda n: max(1, min(int(n), 3)))
        L = {k: [d[k] for d in lists] for k in lists[0]}
        fastopt.adam_step(**L, step=2, lr=1e-2)
        x = cupy.asarray(xs)
        outs.append([cupy.asnumpy(a) for a in fastopt.batch_norm_forward(x, None, None, None, None)]
                    + [cupy.asnumpy(fastopt.dropout_forward(cupy.asarray(xs.ravel()), 0.5, seed=3)[0]),
                       fastopt.grad_norm(L["param"])])
    for a, b in zip(full, capped):
        for k in a:
            np.testing.assert_array_equal(cupy.asnumpy(a[k]), cupy.asnumpy(b[k]))
    for a, b in zip(*outs):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_loops_past_one_real_grid(rng):
    """Sizes past the real grid cap (BLOCKS_PER_SM x SMs blocks, 4224 on an
    H100/H200): an optimizer list with more chunks than blocks, dropout past
    grid x 256 threads x 8 elements, batch norm with C > 65535 and with more
    pieces per channel than blocks. Compared with the C++ backend bit for bit
    (optimizer, dropout) and the float64 reference (batch norm)."""
    from fastopt.backends.cuda import batchnorm as cuda_bn
    cap = loader.grid_size(2**31 - 1)
    n = (cap + 1) * loader.CHUNK_SIZE + 3
    h = {k: rng.standard_normal(n).astype(np.float32) for k in ("param", "grad", "exp_avg")}
    h["exp_avg_sq"] = rng.uniform(0.1, 1.0, n).astype(np.float32)
    d = {k: cupy.asarray(v) for k, v in h.items()}
    fastopt.adam_step(**d, step=3, lr=1e-3)
    fastopt.adam_step(**h, step=3, lr=1e-3, backend="cpp")
    for k in h:
        np.testing.assert_array_equal(cupy.asnumpy(d[k]), h[k], err_msg=k)
    del d, h
    nd = cap * 256 * 8 + 1001
    x = rng.standard_normal(nd).astype(np.float32)
    y, m = fastopt.dropout_forward(cupy.asarray(x), 0.25, seed=11)
    y_cpu, m_cpu = fastopt.dropout_forward(x, 0.25, seed=11, backend="cpp")
    np.testing.assert_array_equal(cupy.asnumpy(m), m_cpu)
    np.testing.assert_array_equal(cupy.asnumpy(y), y_cpu)
    del x, y, m
    for shape in [(4, 70_000), ((cap + 1) * cuda_bn.PIECE + 5, 1)]:
        xb = (rng.standard_normal(shape) + 3).astype(np.float32)
        got = fastopt.batch_norm_forward(cupy.asarray(xb), None, None, None, None)
        want = fastopt.batch_norm_forward(xb.astype(np.float64), None, None, None, None,
                                          backend="numpy")
        for g_, w_ in zip(got, want):
            np.testing.assert_allclose(cupy.asnumpy(g_), w_, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_norm_none_affine_and_none_saved_stats_on_gpu(dtype, rng):
    x = cupy.asarray((rng.standard_normal((9, 4, 33)) + 2).astype(dtype))
    dy = cupy.asarray(rng.standard_normal((9, 4, 33)).astype(dtype))
    y, sm, si = fastopt.batch_norm_forward(x, None, None, None, None)
    one, zero = cupy.ones(4, dtype), cupy.zeros(4, dtype)
    y2, sm2, si2 = fastopt.batch_norm_forward(x, one, zero, None, None)
    dx, dg, db = fastopt.batch_norm_backward(dy, x, None, sm, si)
    dx2, dg2, db2 = fastopt.batch_norm_backward(dy, x, one, sm, si)
    for a, b in [(y, y2), (sm, sm2), (si, si2), (dx, dx2), (dg, dg2), (db, db2)]:
        np.testing.assert_array_equal(cupy.asnumpy(a), cupy.asnumpy(b))
    with pytest.raises(ValueError, match="save_mean is None"):
        fastopt.batch_norm_backward(dy, x, None, None, si)


@pytest.mark.skipif(cupy is None or cupy.cuda.runtime.getDeviceCount() < 2,
                    reason="needs two GPUs")
def test_outputs_on_the_inputs_device_not_the_current_one(rng):
    """Arrays on GPU 1 while GPU 0 is current: every output lands on GPU 1."""
    h = rng.standard_normal((8, 3, 5)).astype(np.float32)
    with cupy.cuda.Device(1):
        x = cupy.asarray(h)
        p, g = [cupy.asarray(h.ravel())], [cupy.asarray(h.ravel())]
    with cupy.cuda.Device(0):
        y, sm, si = fastopt.batch_norm_forward(x, None, None, None, None)
        yd, mask = fastopt.dropout_forward(x, 0.5, seed=1)
        opt = fastopt.Adam(p, lr=0.1)
        opt.step(g)
    for a in (y, sm, si, yd, mask, *opt.state[0].values()):
        if hasattr(a, "device"):
            assert a.device.id == 1
    np.testing.assert_allclose(cupy.asnumpy(y), fastopt.batch_norm_forward(
        h.astype(np.float64), None, None, None, None, backend="numpy")[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sync_free_clip_equals_synced_clip(dtype, rng):
    host = [(rng.standard_normal(n) * 4).astype(dtype) for n in (3, 70_001, loader.CHUNK_SIZE)]
    a, b = [cupy.asarray(x) for x in host], [cupy.asarray(x) for x in host]
    n1 = fastopt.clip_grad_norm(a, 1.0)
    n2 = fastopt.clip_grad_norm(b, 1.0, sync=False)
    assert isinstance(n2, cupy.ndarray) and n2.shape == () and float(n2) == n1
    for x, y in zip(a, b):
        np.testing.assert_array_equal(cupy.asnumpy(x), cupy.asnumpy(y))
