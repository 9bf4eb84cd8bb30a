"""fastopt.torch layers: BatchNorm1d/2d/3d, Dropout, batch_norm, dropout, convert, the
torch.ops.fastopt custom ops (opcheck, torch.compile) against torch.nn."""
import copy
import math
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import fastopt  # noqa: E402
import fastopt.torch as ft  # noqa: E402
from fastopt.torch import ops as fto  # noqa: E402

FO = torch.ops.fastopt
TORCH_DTYPES = [torch.float32, torch.float64]


@pytest.fixture(autouse=True, scope="module")
def _one_thread_each():
    """Small tensors on a shared 2-core machine: one torch thread and one fastopt thread
    (fastopt's count is its own, not torch.set_num_threads')."""
    core = getattr(fastopt, "_core", None)
    saved = torch.get_num_threads(), core.get_num_threads() if core else None
    torch.set_num_threads(1)
    if core:
        core.set_num_threads(1)
    yield
    torch.set_num_threads(saved[0])
    if core:
        core.set_num_threads(saved[1])


@pytest.fixture(params=["direct", "ops"])
def path(request, monkeypatch):
    """Eager calls run the kernels directly (``direct``) or through torch.ops.fastopt."""
    monkeypatch.setattr(fto, "DIRECT", request.param == "direct")
    return request.param


def _t(rng, shape, dtype=torch.float64, scale=1.0, offset=0.0):
    return torch.from_numpy(rng.standard_normal(shape) * scale + offset).to(dtype)


def close(actual, expected, dtype, what):
    """fastopt (``dtype``) against torch in float64. A float32 result carries the
    rounding of its input and of O(10) operations on values up to max|expected|
    (the statistics themselves are accumulated in double by fastopt): 2e-6 of
    that magnitude, times 5 for the sums over the batch in the gradients. float64:
    summation order alone differs from torch's."""
    expected = expected.detach().to(torch.float64)
    actual = actual.detach().to(torch.float64)
    assert actual.shape == expected.shape, what
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    atol = (1e-5 if dtype == torch.float32 else 1e-11) * scale
    err = (actual - expected).abs().max().item() if expected.numel() else 0.0
    assert err <= atol, f"{what}: max error {err:.3g} > {atol:.3g}"


# ---------------------------------------------------------------- batch norm vs torch.nn

BN_SHAPES = [(torch.nn.BatchNorm1d, ft.BatchNorm1d, (16, 5)),
             (torch.nn.BatchNorm1d, ft.BatchNorm1d, (6, 5, 7)),
             (torch.nn.BatchNorm2d, ft.BatchNorm2d, (4, 3, 5, 6)),
             (torch.nn.BatchNorm3d, ft.BatchNorm3d, (2, 3, 4, 3, 5))]
BN_OPTIONS = [dict(), dict(momentum=None), dict(momentum=0.3, eps=1e-3), dict(affine=False),
              dict(bias=False), dict(track_running_stats=False),
              dict(affine=False, track_running_stats=False, momentum=None)]


def _randomize(module, rng):
    """Fresh random parameters and running statistics (never torch's 1/0 defaults)."""
    with torch.no_grad():
        for name, t in list(module.named_parameters()) + list(module.named_buffers()):
            if t.dtype.is_floating_point:
                v = rng.uniform(0.5, 1.5, t.shape) if name == "running_var" else \
                    rng.standard_normal(t.shape)
                t.copy_(torch.from_numpy(v))
            else:
                t.fill_(int(rng.integers(0, 5)))


def _pair(tcls, fcls, c, opts, dtype, rng):
    ref = tcls(c, dtype=torch.float64, **opts)
    _randomize(ref, rng)
    mine = fcls(c, dtype=dtype, **opts)
    mine.load_state_dict({k: v.to(v.dtype if not v.dtype.is_floating_point else dtype)
                          for k, v in ref.state_dict().items()})
    return ref, mine


def _step(ref, mine, x, dy, dtype, what):
    xr = x.clone().requires_grad_()
    xm = x.to(dtype).requires_grad_()
    yr, ym = ref(xr), mine(xm)
    close(ym, yr, dtype, f"{what} y")
    yr.backward(dy)
    ym.backward(dy.to(dtype))
    close(xm.grad, xr.grad, dtype, f"{what} dx")
    for name, pr in ref.named_parameters():
        pm = dict(mine.named_parameters())[name]
        close(pm.grad, pr.grad, dtype, f"{what} d{name}")
        pr.grad = pm.grad = None
    for name, br in ref.named_buffers():
        bm = dict(mine.named_buffers())[name]
        if br.dtype.is_floating_point:
            close(bm, br, dtype, f"{what} {name}")
        else:
            assert torch.equal(bm, br), f"{what} {name}: {bm} != {br}"
    assert [n for n, _ in mine.named_buffers()] == [n for n, _ in ref.named_buffers()]


@pytest.mark.parametrize("dtype", TORCH_DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("opts", BN_OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
@pytest.mark.parametrize("tcls,fcls,shape", BN_SHAPES, ids=lambda v: str(v) if isinstance(v, tuple) else None)
def test_batch_norm_matches_torch(tcls, fcls, shape, opts, dtype, path, rng):
    ref, mine = _pair(tcls, fcls, shape[1], opts, dtype, rng)
    for step in range(3):   # training: batch statistics, running statistics updated
        x = _t(rng, shape, scale=2.0, offset=3.0)   # a large mean: stable variance needed
        _step(ref, mine, x, _t(rng, shape), dtype, f"train step {step}")
    ref.eval(), mine.eval()
    for step in range(2):   # eval: running statistics (or batch ones when not tracked)
        _step(ref, mine, _t(rng, shape, offset=1.0), _t(rng, shape), dtype, f"eval step {step}")


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_functional_matches_torch(training, path, rng):
    x, dy = _t(rng, (7, 4, 3)), _t(rng, (7, 4, 3))
    w, b = _t(rng, 4).requires_grad_(), _t(rng, 4).requires_grad_()
    rm, rv = _t(rng, 4), torch.rand(4, dtype=torch.float64) + 0.5
    args = {}
    for name, fn in (("torch", torch.nn.functional.batch_norm), ("fastopt", ft.batch_norm)):
        xi, wi, bi = (t.detach().clone().requires_grad_() for t in (x, w, b))
        rmi, rvi = rm.clone(), rv.clone()
        y = fn(xi, rmi, rvi, wi, bi, training=training, momentum=0.2, eps=1e-4)
        y.backward(dy)
        args[name] = (y, xi.grad, wi.grad, bi.grad, rmi, rvi)
    for what, a, e in zip(("y", "dx", "dw", "db", "running_mean", "running_var"),
                          args["fastopt"], args["torch"]):
        close(a, e, torch.float64, what)


def test_batch_norm_non_contiguous_and_channels_last(path, rng):
    ref, mine = _pair(torch.nn.BatchNorm2d, ft.BatchNorm2d, 3, {}, torch.float32, rng)
    x = _t(rng, (4, 3, 5, 6)).to(memory_format=torch.channels_last)
    _step(ref, mine, x, _t(rng, (4, 3, 5, 6)).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2),
          torch.float32, "channels_last")
    ref1, mine1 = _pair(torch.nn.BatchNorm1d, ft.BatchNorm1d, 5, {}, torch.float32, rng)
    _step(ref1, mine1, _t(rng, (5, 9)).t(), _t(rng, (9, 5)), torch.float32, "transposed")


@pytest.mark.parametrize("tcls,fcls,shape,fmt", [
    (torch.nn.BatchNorm2d, ft.BatchNorm2d, (4, 3, 5, 6), torch.channels_last),
    (torch.nn.BatchNorm3d, ft.BatchNorm3d, (3, 4, 2, 3, 5), torch.channels_last_3d)])
def test_batch_norm_channels_last_keeps_its_layout(tcls, fcls, shape, fmt, path, rng):
    """A channels-last input is read in place as (M, C) rows and y and dx come back
    channels-last, as torch's do; a contiguous dy for a channels-last x is fine."""
    for opts in (dict(), dict(affine=False, track_running_stats=False)):
        ref, mine = _pair(tcls, fcls, shape[1], opts, torch.float32, rng)
        for train in (True, False):
            ref.train(train), mine.train(train)
            x = _t(rng, shape, scale=2.0, offset=3.0).to(torch.float32)
            x = x.to(memory_format=fmt).requires_grad_()
            y = copy.deepcopy(mine)(x)   # the layouts; _step compares the values
            assert y.is_contiguous(memory_format=fmt) and not y.is_contiguous()
            y.backward(_t(rng, shape).to(torch.float32))
            assert x.grad.is_contiguous(memory_format=fmt)
            _step(ref, mine, x.detach().double(), _t(rng, shape), torch.float32,
                  f"{fmt} {opts} {train}")


def test_batch_norm_eager_training_writes_the_buffers_directly(rng):
    """Eager training updates running_mean/var inside the kernel: no clone of the
    statistics and no copy back (torch ops that the profiler would see), the same
    buffer tensors, their version counters moved, the values torch's."""
    ref, mine = _pair(torch.nn.BatchNorm1d, ft.BatchNorm1d, 6, {}, torch.float32, rng)
    x = _t(rng, (9, 6), torch.float32).requires_grad_()
    ptrs = [mine.running_mean.data_ptr(), mine.running_var.data_ptr()]
    versions = [mine.running_mean._version, mine.running_var._version]
    with torch.profiler.profile() as prof:
        mine(x)
    names = {e.name for e in prof.events()}
    assert not names & {"aten::clone", "aten::copy_"}, names
    assert [mine.running_mean.data_ptr(), mine.running_var.data_ptr()] == ptrs
    assert mine.running_mean._version > versions[0] and mine.running_var._version > versions[1]
    ref(x.detach().double())
    close(mine.running_mean, ref.running_mean, torch.float32, "running_mean")
    close(mine.running_var, ref.running_var, torch.float32, "running_var")
    # buffers that are not contiguous take the functional road, same results
    rm, rv = torch.zeros(6, 2)[:, 0], torch.ones(6, 2)[:, 0]
    rm_t, rv_t = rm.clone(), rv.clone()
    ft.batch_norm(x, rm, rv, training=True, momentum=0.3)
    torch.nn.functional.batch_norm(x.detach(), rm_t, rv_t, training=True, momentum=0.3)
    close(rm, rm_t, torch.float32, "strided running_mean")
    close(rv, rv_t, torch.float32, "strided running_var")


def test_batch_norm_gradcheck_float64(path, rng):
    x = _t(rng, (5, 3, 4)).requires_grad_()
    w, b = _t(rng, 3).requires_grad_(), _t(rng, 3).requires_grad_()
    rm, rv = _t(rng, 3), torch.rand(3, dtype=torch.float64) + 0.5

    def train(x, w, b):   # fresh running statistics each call: the call is a pure function
        return ft.batch_norm(x, rm.clone(), rv.clone(), w, b, training=True)

    def train_cumulative(x):
        bn = ft.BatchNorm1d(3, momentum=None, affine=False, dtype=torch.float64)
        return bn(x)

    assert torch.autograd.gradcheck(train, (x, w, b))
    assert torch.autograd.gradcheck(lambda x, w, b: ft.batch_norm(x, rm, rv, w, b), (x, w, b))
    assert torch.autograd.gradcheck(lambda x: ft.batch_norm(x, None, None, training=True), (x,))
    assert torch.autograd.gradcheck(train_cumulative, (x,))
    x2 = _t(rng, (6, 2, 3, 2)).requires_grad_()
    w2 = _t(rng, 2).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, w: ft.batch_norm(x, None, None, w, None, training=True), (x2, w2))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
def test_batch_norm_double_backward_as_torch(path, rng, training, affine):
    """Batch norm's gradient is differentiable, as torch's is (gradient penalties, MAML):
    gradgradcheck in float64, and a penalty's gradient equal to torch's batch norm's.
    Before, differentiating the gradient raised (eager: once_differentiable; ops: the
    kernels' outputs had no graph)."""
    x = _t(rng, (6, 3, 4)).requires_grad_()
    wb = (_t(rng, 3).requires_grad_(), _t(rng, 3).requires_grad_()) if affine else ()
    rm, rv = _t(rng, 3), _t(rng, 3).abs() + 0.5

    def f(fn, x, *wb):
        return fn(x, rm.clone(), rv.clone(), *wb, training=training)

    assert torch.autograd.gradgradcheck(lambda *a: f(ft.batch_norm, *a), (x, *wb))

    def penalty_grads(fn):
        y = f(fn, x, *wb)
        gs = torch.autograd.grad((y ** 3).sum(), (x, *wb), create_graph=True)
        return torch.autograd.grad(sum((g * g).sum() for g in gs), (x, *wb))

    for got, want in zip(penalty_grads(ft.batch_norm),
                         penalty_grads(torch.nn.functional.batch_norm)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


def test_batch_norm_module_double_backward_as_torch(rng):
    """The module (its training forward updates the running statistics in place) too."""
    x = _t(rng, (8, 3, 4, 4)).requires_grad_()
    out = []
    for bn in (torch.nn.BatchNorm2d(3).double(), ft.BatchNorm2d(3).double()):
        (g,) = torch.autograd.grad((bn(x) ** 3).sum(), x, create_graph=True)
        out.append(torch.autograd.grad((g * g).sum(), x)[0])
    torch.testing.assert_close(out[1], out[0], rtol=1e-10, atol=1e-10)


def test_dropout_double_backward_as_torch(path, rng):
    """Dropout's backward is the same linear map again, so it is differentiable, as
    torch.nn.Dropout's is (gradient penalties, MAML). Before, it raised."""
    x = _t(rng, (6, 5)).requires_grad_()

    def f(x):
        torch.manual_seed(3)   # the same mask on every evaluation
        return ft.dropout(x, 0.4)

    assert torch.autograd.gradgradcheck(f, (x,))
    w = _t(rng, (6, 5))
    y = f(x)
    (g,) = torch.autograd.grad((w * y * y).sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x)
    keep = (y != 0).double() / 0.6          # y = x * keep
    torch.testing.assert_close(h, 2 * w * keep * keep)


def test_batch_norm_errors_as_torch(path):
    for tcls, fcls, bad in ((torch.nn.BatchNorm1d, ft.BatchNorm1d, (2, 3, 4, 5)),
                            (torch.nn.BatchNorm2d, ft.BatchNorm2d, (2, 3, 4)),
                            (torch.nn.BatchNorm3d, ft.BatchNorm3d, (2, 3, 4, 5))):
        x = torch.randn(bad)
        with pytest.raises(ValueError) as e_torch:
            tcls(3)(x)
        with pytest.raises(ValueError, match="expected .*D input") as e_mine:
            fcls(3)(x)
        assert str(e_mine.value) == str(e_torch.value)
    x = torch.randn(1, 3)
    with pytest.raises(ValueError) as e_torch:
        torch.nn.BatchNorm1d(3)(x)
    with pytest.raises(ValueError, match="more than 1 value per channel") as e_mine:
        ft.BatchNorm1d(3)(x)
    assert str(e_mine.value) == str(e_torch.value)


def test_batch_norm_unsupported_inputs_name_the_input(path):
    with pytest.raises(TypeError, match="input has dtype torch.complex64"):
        ft.batch_norm(torch.ones(4, 3, dtype=torch.complex64), None, None, training=True)
    with pytest.raises(TypeError, match="input has dtype torch.int64"):
        ft.batch_norm(torch.ones(4, 3, dtype=torch.int64), None, None, training=True)
    with pytest.raises(TypeError, match="weight has dtype torch.float64 but input has dtype "
                                        "torch.float32"):
        ft.batch_norm(torch.randn(4, 3), None, None, torch.ones(3, dtype=torch.float64),
                      training=True)
    with pytest.raises(TypeError, match="running_var has dtype"):
        ft.batch_norm(torch.randn(4, 3), torch.zeros(3), torch.ones(3, dtype=torch.float64))
    with pytest.raises(ValueError, match="running_mean has shape \\(4,\\) but input has 3"):
        ft.batch_norm(torch.randn(4, 3), torch.zeros(4), torch.ones(4), training=True)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        ft.batch_norm(torch.randn(4), None, None, training=True)
    with pytest.raises(ValueError, match="cannot be None"):
        ft.batch_norm(torch.randn(4, 3), None, None, training=False)
    rm = torch.zeros(3)
    with pytest.raises(TypeError):   # nothing was updated by the failed call
        ft.batch_norm(torch.randn(4, 3) + 5, rm, torch.ones(3), torch.ones(3, dtype=torch.float64),
                      training=True)
    assert torch.equal(rm, torch.zeros(3))


def test_batch_norm_empty_batch_leaves_running_stats(path):
    bn, ref = ft.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        bn.running_mean.fill_(0.5), ref.running_mean.fill_(0.5)
    y, yr = bn(torch.randn(0, 3)), ref(torch.randn(0, 3))
    assert y.shape == yr.shape == (0, 3)
    assert torch.equal(bn.running_mean, ref.running_mean)
    assert torch.equal(bn.num_batches_tracked, ref.num_batches_tracked)


def test_batch_norm_is_a_torch_batch_norm():
    bn = ft.BatchNorm2d(4, eps=1e-3, momentum=None, affine=False)
    assert isinstance(bn, torch.nn.BatchNorm2d)
    assert repr(bn) == repr(torch.nn.BatchNorm2d(4, eps=1e-3, momentum=None, affine=False))
    assert bn.weight is None and bn.bias is None


# ---------------------------------------------------------------- state dicts

@pytest.mark.parametrize("opts", [dict(), dict(affine=False), dict(track_running_stats=False),
                                  dict(bias=False)], ids=str)
def test_state_dict_moves_both_ways(opts, rng):
    ref = torch.nn.BatchNorm2d(3, **opts)
    _randomize(ref, rng)
    mine = ft.BatchNorm2d(3, **opts)
    assert list(mine.state_dict()) == list(ref.state_dict())
    mine.load_state_dict(ref.state_dict())   # torch -> fastopt
    for _ in range(2):
        mine(_t(rng, (4, 3, 2, 2), torch.float32, offset=2.0))
    back = torch.nn.BatchNorm2d(3, **opts)
    back.load_state_dict(mine.state_dict())   # fastopt -> torch
    for (k, a), (_, b) in zip(mine.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), k
    mine.eval(), back.eval()
    x = _t(rng, (4, 3, 2, 2), torch.float32)
    close(mine(x), back(x).double(), torch.float32, "eval after the round trip")


def test_old_state_dict_without_num_batches_tracked():
    """torch's version-1 checkpoints lack num_batches_tracked: loaded as torch loads them."""
    sd = torch.nn.BatchNorm1d(3).state_dict()
    del sd["num_batches_tracked"]
    mine, ref = ft.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    sd._metadata = {"": {"version": 1}}
    mine.load_state_dict(sd)
    ref.load_state_dict(sd)
    assert torch.equal(mine.num_batches_tracked, ref.num_batches_tracked)


# ---------------------------------------------------------------- dropout

def _bits(mask, n):
    return np.unpackbits(np.asarray(mask), bitorder="little")[:n].astype(bool)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_keep_rate_scale_and_grad(p, path, rng):
    n = 200_000
    x = _t(rng, (400, 500), torch.float32).requires_grad_()
    g = _t(rng, (400, 500), torch.float32)
    y = ft.dropout(x, p, training=True)
    kept = y != 0
    rate = kept.double().mean().item()
    assert abs(rate - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n), rate
    scale = torch.tensor(1.0 / (1.0 - p), dtype=torch.float32)   # double, rounded once
    assert torch.equal(y[kept], x.detach()[kept] * scale)
    y.backward(g)
    assert torch.equal(x.grad, torch.where(kept, g * scale, torch.zeros(())))


def test_dropout_seed_comes_from_torch_generator(path, rng):
    x = _t(rng, (37, 11), torch.float32)
    torch.manual_seed(7)
    seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64))
    torch.manual_seed(7)
    y1 = ft.dropout(x, 0.3)
    expected = _bits(fastopt.dropout_mask(x.shape, 0.3, seed=seed), x.numel())
    assert np.array_equal((y1 != 0).numpy().ravel(), expected)
    y2 = ft.dropout(x, 0.3)
    assert not torch.equal(y1, y2), "every call draws a new seed"
    torch.manual_seed(7)
    assert torch.equal(ft.Dropout(0.3)(x), y1), "torch.manual_seed makes runs reproducible"


def test_dropout_saves_only_the_bit_mask(path, rng):
    saved = []

    def pack(t):
        saved.append(t)
        return t

    x = _t(rng, (33, 10), torch.float32).requires_grad_()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        y = ft.Dropout(0.5)(x * 2.0)
    y.sum().backward()
    # x * 2 saves nothing (multiplication by a constant); dropout saves its mask and the
    # memory order the mask follows (one int64 per dimension)
    assert [(t.dtype, t.numel()) for t in saved] == [(torch.uint8, math.ceil(330 / 8)),
                                                      (torch.int64, 2)]


def test_dropout_gradcheck_float64(path, rng):
    x = _t(rng, (6, 5)).requires_grad_()

    def f(x):
        torch.manual_seed(3)   # the same mask on every evaluation
        return ft.dropout(x, 0.4)

    assert torch.autograd.gradcheck(f, (x,))


def test_dropout_identity_cases_as_torch(path, rng):
    x = _t(rng, (4, 5), torch.float32)
    for args in ((0.5, False), (0.0, True)):
        assert torch.nn.functional.dropout(x, *args) is x
        assert ft.dropout(x, *args) is x
    empty = torch.randn(0, 3)
    assert ft.dropout(empty, 0.5) is empty
    d = ft.Dropout(0.5).eval()
    assert d(x) is x
    xg = x.clone().requires_grad_()
    y = ft.dropout(xg, 1.0)
    assert torch.equal(y, torch.zeros_like(x))   # +0 where torch gives x * 0 (signed zeros)
    y.sum().backward()
    assert torch.equal(xg.grad, torch.zeros_like(x))


def test_dropout_inplace_and_non_contiguous(path, rng):
    a = _t(rng, (8, 6), torch.float32).requires_grad_()
    x = a * 1.0
    d = ft.Dropout(0.5, inplace=True)
    y = d(x)
    assert y is x
    kept = y != 0
    y.sum().backward()
    assert torch.equal(a.grad, kept.float() * 2.0)
    # a dense non-contiguous input is read in place, in memory order, and y keeps its
    # layout (as torch's dropout does); one with gaps is copied, y contiguous
    xt = _t(rng, (6, 8), torch.float64).t()
    torch.manual_seed(1)
    y = ft.dropout(xt, 0.25)
    assert y.stride() == xt.stride()
    torch.manual_seed(1)
    assert torch.equal(y, ft.dropout(xt.t().contiguous(), 0.25).t())
    k = y != 0
    assert torch.equal(y[k], xt[k] * (1 / 0.75))
    xs = _t(rng, (6, 16), torch.float32)[:, ::2]
    torch.manual_seed(2)
    y = ft.dropout(xs, 0.25)
    assert y.is_contiguous()
    torch.manual_seed(2)
    assert torch.equal(y, ft.dropout(xs.contiguous(), 0.25))


@pytest.mark.parametrize("fmt", [torch.channels_last, torch.contiguous_format])
def test_dropout_keeps_the_layout_and_takes_any_dy(fmt, path, rng):
    """A channels-last activation stays channels-last with no copy (the kernel reads it in
    memory order); the gradient is right whichever layout dy comes in, and dx is stored
    as dy is."""
    x = _t(rng, (4, 3, 5, 6), torch.float32).to(memory_format=fmt).requires_grad_()
    y = ft.dropout(x, 0.4)
    assert y.stride() == x.stride()
    kept = y != 0
    scale = torch.tensor(1 / 0.6, dtype=torch.float32)
    assert torch.equal(y[kept], x.detach()[kept] * scale)
    for dy_fmt in (torch.channels_last, torch.contiguous_format):
        dy = _t(rng, (4, 3, 5, 6), torch.float32).to(memory_format=dy_fmt)
        (dx,) = torch.autograd.grad(y, x, dy, retain_graph=True)
        assert torch.equal(dx, torch.where(kept, dy * scale, torch.zeros(())))
        assert dx.stride() == dy.stride()


def test_dropout_errors_as_torch(path):
    for p in (-0.1, 1.5):
        with pytest.raises(ValueError) as e_torch:
            torch.nn.functional.dropout(torch.ones(3), p)
        with pytest.raises(ValueError) as e_mine:
            ft.dropout(torch.ones(3), p)
        assert str(e_mine.value) == str(e_torch.value)
        with pytest.raises(ValueError, match="dropout probability"):
            ft.Dropout(p)
    with pytest.raises(TypeError, match="input has dtype torch.int32"):
        ft.dropout(torch.ones(3, dtype=torch.int32), 0.5)
    assert repr(ft.Dropout(0.2, inplace=True)) == repr(torch.nn.Dropout(0.2, inplace=True))


# ---------------------------------------------------------------- the custom ops

def _opcheck(op, args):
    result = torch.library.opcheck(op, args)
    assert set(result.values()) == {"SUCCESS"}, result


def test_opcheck_batch_norm(rng):
    x = _t(rng, (6, 4, 3), torch.float32).requires_grad_()
    w, b = _t(rng, 4, torch.float32).requires_grad_(), _t(rng, 4, torch.float32).requires_grad_()
    rm, rv = _t(rng, 4, torch.float32), torch.rand(4) + 0.5
    for args in ((x, w, b, rm, rv, None, 0.1, 1e-5), (x, None, None, None, None, None, 0.1, 1e-5),
                 (x, w, None, rm, rv, torch.tensor(3), 0.1, 1e-3),
                 (x.double(), w.double(), b.double(), rm.double(), rv.double(), None, 0.5, 1e-5)):
        _opcheck(FO.batch_norm_train, args)
    _opcheck(FO.batch_norm_eval, (x, w, b, rm, rv, 1e-5))
    _opcheck(FO.batch_norm_eval, (x, None, None, rm, rv, 1e-5))
    y, mean, invstd, _, _ = FO.batch_norm_train(x, w, b, rm, rv, None, 0.1, 1e-5)
    dy = _t(rng, (6, 4, 3), torch.float32)
    _opcheck(FO.batch_norm_backward, (dy, x.detach(), w.detach(), mean, invstd, True))
    _opcheck(FO.batch_norm_backward, (dy, x.detach(), None, mean, invstd, False))
    # the forward's y as `output` (kept for inductor's partitioner, never read): same results
    args = (dy, x.detach(), w.detach(), mean, invstd, True)
    _opcheck(FO.batch_norm_backward, args + (y.detach(),))
    for a, b in zip(FO.batch_norm_backward(*args, y.detach()), FO.batch_norm_backward(*args)):
        assert torch.equal(a, b)
    # channels-last: the fake kernels give the real ones' strides
    xc = _t(rng, (3, 4, 2, 5), torch.float32).to(memory_format=torch.channels_last)
    xc.requires_grad_()
    _opcheck(FO.batch_norm_train, (xc, w, b, rm, rv, None, 0.1, 1e-5))
    _opcheck(FO.batch_norm_eval, (xc, w, b, rm, rv, 1e-5))
    y, mean, invstd, _, _ = FO.batch_norm_train(xc, w, b, rm, rv, None, 0.1, 1e-5)
    for g in (torch.randn(3, 4, 2, 5), torch.randn(3, 4, 2, 5).to(memory_format=torch.channels_last)):
        _opcheck(FO.batch_norm_backward, (g, xc.detach(), w.detach(), mean, invstd, True))


def test_opcheck_dropout(rng):
    x = _t(rng, (6, 7), torch.float32).requires_grad_()
    for p in (0.0, 0.3, 1.0):
        _opcheck(FO.dropout, (x, p, torch.tensor(123)))
    y, mask, order = FO.dropout(x, 0.3, torch.tensor(123))
    assert order.tolist() == [0, 1]
    _opcheck(FO.dropout_backward, (_t(rng, (6, 7), torch.float32), mask, 0.3, order))
    # its own autograd (the same map: a double backward of dropout)
    _opcheck(FO.dropout_backward, (_t(rng, (6, 7), torch.float32).requires_grad_(), mask, 0.3,
                                   order))
    # channels-last: the fake kernels give the real ones' strides, for either dy layout
    xc = _t(rng, (3, 4, 2, 5), torch.float32).to(memory_format=torch.channels_last)
    _opcheck(FO.dropout, (xc.requires_grad_(), 0.3, torch.tensor(5)))
    y, mask, order = FO.dropout(xc, 0.3, torch.tensor(5))
    assert order.tolist() == [0, 2, 3, 1] and y.stride() == xc.stride()
    for dy in (torch.randn(3, 4, 2, 5), torch.randn(3, 4, 2, 5).to(memory_format=torch.channels_last)):
        _opcheck(FO.dropout_backward, (dy, mask, 0.3, order))
    with pytest.raises(ValueError, match="not a permutation"):
        FO.dropout_backward(torch.randn(3, 4, 2, 5), mask, 0.3, torch.tensor([0, 1, 2]))
    for bad in (order.double(), order[None]):
        with pytest.raises(TypeError, match="order must be the 1-D int64 tensor"):
            FO.dropout_backward(torch.randn(3, 4, 2, 5), mask, 0.3, bad)


def test_ops_are_functional(rng):
    """The training op returns new running statistics and writes nothing it receives."""
    x, rm, rv = _t(rng, (5, 3), torch.float32), _t(rng, 3, torch.float32), torch.rand(3) + 0.5
    before = [t.clone() for t in (x, rm, rv)]
    y, mean, invstd, new_rm, new_rv = FO.batch_norm_train(x, None, None, rm, rv, None, 0.25, 1e-5)
    for t, b in zip((x, rm, rv), before):
        assert torch.equal(t, b)
    close(new_rm, 0.75 * rm.double() + 0.25 * x.double().mean(0), torch.float32, "new_rm")
    close(new_rv, 0.75 * rv.double() + 0.25 * x.double().var(0), torch.float32, "new_rv")
    _, _, _, cum_rm, _ = FO.batch_norm_train(x, None, None, rm, rv, torch.tensor(4), 0.25, 1e-5)
    close(cum_rm, 0.75 * rm.double() + 0.25 * x.double().mean(0), torch.float32, "1/count")


def test_direct_path_only_for_plain_eager_tensors():
    x = torch.ones(2, 2)
    assert fto.direct(x, None, torch.nn.Parameter(x))
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode() as mode:
        assert not fto.direct(mode.from_tensor(x))
        assert not fto.direct(x)


@pytest.mark.torch_compile
def test_compile_fullgraph_no_graph_break():
    """One small model with every layer, compiled once in training and once in eval mode:
    forward and backward run, dynamo counted no graph break, and (with inductor drawing
    its random numbers as eager does) the results equal the eager model's."""
    import torch._dynamo
    from torch._dynamo.utils import counters
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.BatchNorm2d(3), torch.nn.Flatten(), torch.nn.Linear(12, 8),
        torch.nn.BatchNorm1d(8, momentum=None), torch.nn.ReLU(), torch.nn.Dropout(0.25),
        torch.nn.Linear(8, 2))
    ft.convert(model)
    eager = copy.deepcopy(model)
    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(model, fullgraph=True)
    with torch._inductor.config.patch(fallback_random=True):
        for step in range(2):
            x = torch.randn(6, 3, 2, 2)
            outs = []
            for m in (compiled, eager):
                torch.manual_seed(step)
                y = m(x)
                y.square().sum().backward()
                outs.append(y)
            close(outs[0], outs[1].double(), torch.float32, f"compiled y, step {step}")
        compiled.eval(), eager.eval()
        x = torch.randn(6, 3, 2, 2)
        close(compiled(x), eager(x).double(), torch.float32, "compiled eval y")
    assert dict(counters["graph_break"]) == {}
    for (name, p), q in zip(model.named_parameters(), eager.parameters()):
        close(p.grad, q.grad.double(), torch.float32, f"compiled grad {name}")
    for (name, b), c in zip(model.named_buffers(), eager.buffers()):
        assert torch.allclose(b, c, rtol=1e-5, atol=1e-6), name
    assert int(model[3].num_batches_tracked) == 2


@pytest.mark.torch_compile
def test_compile_passes_channels_last_activations_to_batch_norm(monkeypatch):
    """The batch norm ops are flexible_layout: inductor, which stores a convolution's
    output channels-last on the CPU, hands it over as it is (no conversion to the
    traced contiguous strides and back), and stores the backward's dy as x is (no
    copy in the op); the compiled CNN still gives the eager model's outputs,
    gradients and running statistics."""
    import torch._dynamo
    from torch._dynamo.utils import counters
    seen = []
    real = getattr(fto, "_channels_last", lambda x: None)

    def spy(x):
        perm = real(x)
        seen.append(perm)
        return perm

    monkeypatch.setattr(fto, "_channels_last", spy, raising=False)
    copied = []     # channels-last tensors the kernels had to copy (dy stored unlike x)
    backward = []   # the backward kernel's layouts: channels-last or not
    real_rows = getattr(fto, "_rows", None)

    def rows_spy(t, perm):
        if sys._getframe(1).f_code.co_name == "_bn_backward":
            backward.append(perm is not None)
        if perm is not None and not t.permute(perm).is_contiguous():
            copied.append(tuple(t.stride()))
        return real_rows(t, perm)

    monkeypatch.setattr(fto, "_rows", rows_spy, raising=False)
    # the short road (fastopt.torch._lean) reads x and dy in place or hands over to fto
    from fastopt.torch import _lean
    real_lean_rows = _lean._rows

    def lean_rows_spy(t, perm):
        if sys._getframe(1).f_code.co_name == "backward":
            backward.append(perm is not None)
        return real_lean_rows(t, perm)

    monkeypatch.setattr(_lean, "channels_last", spy)
    monkeypatch.setattr(_lean, "_rows", lean_rows_spy)
    torch.manual_seed(0)
    model = ft.convert(torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Conv2d(8, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 16, 3)))
    eager = copy.deepcopy(model)
    torch._dynamo.reset()
    counters.clear()
    with torch._inductor.config.patch(force_disable_caches=True):
        compiled = torch.compile(model, fullgraph=True)
        x = torch.randn(4, 3, 8, 8)
        for m in (compiled, eager):
            m(x).square().sum().backward()
    assert dict(counters["graph_break"]) == {}
    assert any(p is not None for p in seen), "inductor converted every input to contiguous"
    assert any(backward), "inductor converted x to contiguous for the backward"
    assert copied == [], "the backward's dy came in another layout than x"
    y = compiled(x)
    close(y, eager(x).double(), torch.float32, "compiled y")
    for (name, p), q in zip(model.named_parameters(), eager.parameters()):
        close(p.grad, q.grad.double(), torch.float32, f"compiled grad {name}")
    for (name, b), c in zip(model.named_buffers(), eager.buffers()):
        assert torch.allclose(b, c, rtol=1e-5, atol=1e-6), name


def test_batch_norm_followed_by_an_inplace_relu(path, rng):
    """BN -> ReLU(inplace=True), as in ResNets, eager on both roads: the ReLU writes the
    layer's output in place, which must not trip autograd's check of saved tensors, and
    gradients and running statistics equal torch.nn's."""
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.BatchNorm2d(4), torch.nn.ReLU(inplace=True)).double()
    mine = ft.convert(copy.deepcopy(ref))
    x = _t(rng, (3, 4, 5, 5))
    xs = [x.clone().requires_grad_(), x.clone().requires_grad_()]
    for m, xi in zip((mine, ref), xs):
        m(xi).square().sum().backward()
    close(xs[0].grad, xs[1].grad, torch.float64, "dx")
    for (name, p), q in zip(mine.named_parameters(), ref.parameters()):
        close(p.grad, q.grad, torch.float64, f"grad {name}")
    for (name, b), c in zip(mine.named_buffers(), ref.buffers()):
        assert torch.allclose(b, c), name


@pytest.mark.torch_compile
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("layer", ["BatchNorm2d", "BatchNorm1d"])
def test_compile_keeps_batch_norm_output_for_a_following_relu(layer, inplace):
    """Traced, the batch norm ops hand ``y`` to the backward op (its ``output``), so
    inductor's partitioner saves no bool mask for the ReLU after the layer: it
    recomputes the mask from ``y`` in the backward. An in-place ReLU works too. Inductor
    (torch 2.13, AVX-512) stores bool masks lane by lane with a branch, which made a
    compiled BN + ReLU + max-pool forward 2-3x slower (benchmarks/RESULTS.md, session 15)."""
    import torch._dynamo
    from torch._inductor.compile_fx import compile_fx, compile_fx_inner
    saved = []   # dtypes of the forward graph's outputs (y, then what the backward keeps)

    def spy(gm, example_inputs, **kwargs):
        if not kwargs.get("is_backward"):
            out = next(n for n in gm.graph.nodes if n.op == "output")
            saved.extend(a.meta["val"].dtype for a in out.args[0]
                         if isinstance(a, torch.fx.Node)
                         and isinstance(a.meta.get("val"), torch.Tensor))
        return compile_fx_inner(gm, example_inputs, **kwargs)

    def backend(gm, example_inputs):   # inductor, watching what its partitioner saved
        return compile_fx(gm, example_inputs, inner_compile=spy)

    torch.manual_seed(0)
    bn = getattr(torch.nn, layer)(8)
    # after the ReLU a layer that saves no float copy of its input (the CNN's max-pool
    # keeps int8 offsets, the MLP's dropout its mask), so the mask is not found elsewhere
    after = torch.nn.MaxPool2d(2) if layer == "BatchNorm2d" else torch.nn.Dropout(0.25)
    model = ft.convert(torch.nn.Sequential(bn, torch.nn.ReLU(inplace), after, torch.nn.Flatten(),
                                           torch.nn.Linear(8 * 4 if layer == "BatchNorm2d"
                                                           else 8, 3)))
    eager = copy.deepcopy(model)
    x = torch.randn((6, 8, 4, 4) if layer == "BatchNorm2d" else (6, 8))
    torch._dynamo.reset()
    torch.manual_seed(1)
    # compiled here, not loaded from a cache; dropout draws as eager does
    with torch._inductor.config.patch(force_disable_caches=True, fallback_random=True):
        y = torch.compile(model, backend=backend, fullgraph=True)(x)
        y.square().sum().backward()
    torch.manual_seed(1)
    eager(x).square().sum().backward()
    assert saved, "the forward graph was not compiled"
    assert torch.bool not in saved, f"a bool mask is saved for the backward: {saved}"
    for (name, p), q in zip(model.named_parameters(), eager.parameters()):
        close(p.grad, q.grad.double(), torch.float32, f"compiled grad {name}")


@pytest.mark.torch_compile
def test_compile_passes_channels_last_activations_to_dropout(monkeypatch):
    """The dropout ops are flexible_layout: in a compiled CNN inductor hands the pooled
    channels-last activation over as it is, the op reads it and the backward's dy in
    place (no copy either way), and the backward follows the order the forward returned."""
    import torch._dynamo
    from torch._dynamo.utils import counters
    calls = []   # (caller, order, read in place)
    real = fto._in_order

    def spy(t, order):
        calls.append((sys._getframe(1).f_code.co_name, order,
                      t.permute(order).is_contiguous()))
        return real(t, order)

    monkeypatch.setattr(fto, "_in_order", spy)
    torch.manual_seed(0)
    model = ft.convert(torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1, bias=False), torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Dropout(0.3),
        torch.nn.Conv2d(8, 8, 3, padding=1), torch.nn.Flatten(), torch.nn.Linear(8 * 16, 3)))
    torch._dynamo.reset()
    counters.clear()
    with torch._inductor.config.patch(force_disable_caches=True):
        compiled = torch.compile(model, fullgraph=True)
        compiled(torch.randn(4, 3, 8, 8)).square().sum().backward()
    assert dict(counters["graph_break"]) == {}
    fwd = [c for c in calls if c[0] == "_dropout_in_order"]
    bwd = [c for c in calls if c[0] == "_dropout_backward_in_order"]
    assert fwd and bwd, calls
    assert all(order == (0, 2, 3, 1) for _, order, _ in fwd + bwd), calls
    assert all(in_place for _, _, in_place in fwd + bwd), "a dropout op copied its input"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.skipif(getattr(fastopt, "_core", None) is None, reason="cpp backend not built")
def test_kernels_run_on_torchs_thread_count(path, monkeypatch, rng):
    """fastopt's cpp kernels run with torch.get_num_threads() threads during a layer
    call and fastopt's own count is back afterwards; FASTOPT_NUM_THREADS pins it."""
    core = fastopt._core
    seen = []

    def spy(fn):
        def run(*args, **kwargs):
            seen.append(core.get_num_threads())
            return fn(*args, **kwargs)
        return run

    from fastopt.backends.cpp import dropout as cpp_dropout
    from fastopt.torch import _io, _lean
    for mod, name in ((fto, "batch_norm_forward"), (fto, "batch_norm_backward"),
                      (_lean, "_forward_fast"), (_lean, "_backward_fast"),
                      (fto, "dropout_forward"), (fto, "dropout_backward"),
                      (cpp_dropout, "forward"), (cpp_dropout, "backward")):
        monkeypatch.setattr(mod, name, spy(getattr(mod, name)))
    bn, drop = ft.BatchNorm1d(4), ft.Dropout(0.5)
    x = _t(rng, (6, 4), torch.float32).requires_grad_()
    torch.set_num_threads(1)
    core.set_num_threads(2)
    try:
        drop(bn(x)).sum().backward()
        assert seen and set(seen) == {1}, seen
        assert core.get_num_threads() == 2
        seen.clear()
        monkeypatch.setattr(_io, "_PINNED", True)
        drop(bn(x)).sum().backward()
        assert seen and set(seen) == {2}, seen
    finally:
        core.set_num_threads(1)


# ---------------------------------------------------------------- convert

class _MyBN(torch.nn.BatchNorm1d):
    pass


def test_convert_replaces_in_place_and_keeps_state(rng):
    shared = torch.nn.BatchNorm1d(4)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), shared, torch.nn.Dropout(0.3), shared, _MyBN(4),
        torch.nn.Sequential(torch.nn.Unflatten(1, (1, 4, 1, 1)), torch.nn.BatchNorm3d(1),
                            torch.nn.Flatten(1, 2), torch.nn.BatchNorm2d(4), torch.nn.Flatten()),
        torch.nn.Dropout(0.1))
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            _randomize(m, rng)
    model[5].eval()
    before = copy.deepcopy(model)
    calls = []
    shared.register_forward_hook(lambda *a: calls.append(1))
    params = {n: p for n, p in model.named_parameters()}
    buffers = {n: b for n, b in model.named_buffers()}
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    assert ft.convert(model) is model
    kinds = [type(m) for m in model.modules()]
    assert ft.BatchNorm1d in kinds and ft.BatchNorm2d in kinds and ft.BatchNorm3d in kinds
    assert ft.Dropout in kinds and _MyBN in kinds
    assert torch.nn.BatchNorm1d not in kinds and torch.nn.Dropout not in kinds
    assert model[1] is model[3], "a shared module stays one module"
    assert model[5].training is False and model[5][1].training is False
    assert {n: p for n, p in model.named_parameters()} == params   # the same Parameter objects
    assert all(b is buffers[n] for n, b in model.named_buffers())
    model[2].p = before[2].p = 0.0   # compare batch norm alone
    model[6].p = before[6].p = 0.0
    x = _t(rng, (5, 3), torch.float32)
    close(model(x), before(x).double(), torch.float32, "converted model")
    assert len(calls) == 2, "forward hooks are kept"
    for (n, b), c in zip(model.named_buffers(), before.buffers()):
        assert torch.allclose(b, c, rtol=1e-5, atol=1e-6), n
    model(x).sum().backward()
    w = model[1].weight.detach().clone()
    opt.step()
    assert not torch.equal(model[1].weight, w), "an optimizer built before convert still works"
    single = torch.nn.Dropout(0.2)
    assert type(ft.convert(single)) is ft.Dropout
    assert ft.convert(model) is model and type(model[1]) is ft.BatchNorm1d


# ---------------------------------------------------------------- CUDA

@pytest.mark.skipif(not torch.cuda.is_available(),
                    reason="no CUDA device here (torch CPU build): the cuda path of "
                           "fastopt.torch layers is untested on this machine")
def test_cuda_tensors_run_on_the_cuda_backend(rng):
    pytest.importorskip("cupy")
    x = _t(rng, (8, 4, 3, 3), torch.float32).cuda().requires_grad_()
    ref = torch.nn.BatchNorm2d(4).cuda()
    mine = ft.BatchNorm2d(4).cuda()
    y, yr = mine(x), ref(x)
    assert y.is_cuda
    close(y.cpu(), yr.cpu().double(), torch.float32, "cuda y")
    y.sum().backward()
    torch.manual_seed(0)
    d = ft.dropout(x, 0.5)
    assert d.is_cuda and abs((d != 0).float().mean().item() - 0.5) < 0.2


# ---------------------------------------------------------------- the demo's torch variant

def test_demo_torch_variant_prints_the_table():
    pytest.importorskip("sklearn")
    from fastopt.demo.torch_mlp import build_model, run_torch
    lines = []
    result = run_torch(epochs=1, optimizers=["adam"], seed=3, echo=lines.append)
    assert result.table in "\n".join(lines)
    header, _, *rows = result.table.splitlines()
    assert "test acc" in header and "ms/step" in header
    assert [r.split("|")[1].strip() for r in rows] == ["Adam", "Adam (torch)"]
    for h in result.histories:   # one epoch of Adam already learns the digits
        assert h.val_accuracy > 0.6 and np.isfinite(h.final_train_loss)
    model = ft.convert(build_model((64, 16, 10), 0.2, 3))
    assert [type(m) for m in model][1:4] == [ft.BatchNorm1d, torch.nn.ReLU, ft.Dropout]


def test_demo_cli_framework_torch(capsys):
    pytest.importorskip("sklearn")
    from fastopt.__main__ import main
    assert main(["demo", "--framework", "torch", "--epochs", "1", "--optimizers", "sgd"]) == 0
    out = capsys.readouterr().out
    assert "| SGD (torch)" in out and "| SGD " in out


def test_import_tags_torch_compile_caches_with_the_ops_definitions():
    """torch's compile caches key on the traced graph, not on a custom op's tags, fake
    kernels or lowerings: fastopt.torch adds a hash of its op definitions to the cache key
    tag, keeping a tag the user set, once."""
    from fastopt.torch._compile_cache import tag_compile_caches
    tag = torch.compiler.config.cache_key_tag
    tokens = [t for t in tag.split("+") if t.startswith("fastopt-ops-")]
    assert len(tokens) == 1 and len(tokens[0]) == len("fastopt-ops-") + 16

    class Config:
        cache_key_tag = "mine"

    cfg = Config()
    tag_compile_caches(cfg)
    assert cfg.cache_key_tag == f"mine+{tokens[0]}"
    tag_compile_caches(cfg)
    assert cfg.cache_key_tag == f"mine+{tokens[0]}"
    cfg.cache_key_tag = ""
    tag_compile_caches(cfg)
    assert cfg.cache_key_tag == tokens[0]
