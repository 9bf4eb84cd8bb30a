"""fastopt.torch._lean, the short road of the batch norm ops (plain CPU float32/float64
calls straight to the native fast path), against the general road (torch-named checks,
copies of other layouts, the validated entry) and against torch.nn."""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import fastopt  # noqa: E402
import fastopt.torch as ft  # noqa: E402
from fastopt.torch import _lean, ops as fto  # noqa: E402

pytestmark = pytest.mark.skipif(getattr(fastopt, "_core", None) is None,
                                reason="cpp backend not built: no native fast path")

CASES = [(ft.BatchNorm1d, (16, 5), None), (ft.BatchNorm1d, (6, 5, 7), None),
         (ft.BatchNorm2d, (4, 3, 5, 6), None), (ft.BatchNorm2d, (4, 3, 5, 6), torch.channels_last),
         (ft.BatchNorm3d, (2, 3, 4, 3, 5), None),
         (ft.BatchNorm3d, (2, 3, 4, 3, 5), torch.channels_last_3d)]
OPTIONS = [dict(), dict(momentum=None), dict(affine=False), dict(track_running_stats=False)]


@pytest.fixture(params=["direct", "ops"])
def path(request, monkeypatch):
    monkeypatch.setattr(fto, "DIRECT", request.param == "direct")
    return request.param


def _counting(monkeypatch):
    """Counts the calls the native fast path took (returned a result)."""
    taken = []
    for name in ("_forward_fast", "_backward_fast"):
        real = getattr(_lean, name)

        def spy(*args, real=real, name=name):
            out = real(*args)
            if out is not None:
                taken.append(name)
            return out
        monkeypatch.setattr(_lean, name, spy)
    return taken


def _run(module, x, dy, steps=3):
    """Training steps then an eval step: every output, gradient and buffer, in order."""
    out = []
    for training in [True] * steps + [False]:
        module.train(training)
        xi = x.clone().requires_grad_()
        y = module(xi)
        y.backward(dy)
        out += [y.detach().clone(), xi.grad]
        out += [p.grad.clone() for p in module.parameters()]
        out += [b.clone() for b in module.buffers()]
        for p in module.parameters():
            p.grad = None
    return out


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("cls,shape,fmt", CASES, ids=lambda v: str(v) if isinstance(v, tuple) else None)
def test_short_road_is_taken_and_equals_the_general_road(cls, shape, fmt, dtype, opts, path,
                                                         monkeypatch):
    """The same C++ kernels run either way, so outputs, gradients and running statistics
    are bit-identical; the short road really ran (forward and backward), also for
    channels-last input; and the layer still matches torch.nn."""
    rng = np.random.default_rng(7)
    x = torch.from_numpy(rng.standard_normal(shape) * 2 + 0.5).to(dtype)
    dy = torch.from_numpy(rng.standard_normal(shape)).to(dtype)
    if fmt is not None:
        x, dy = x.contiguous(memory_format=fmt), dy.contiguous(memory_format=fmt)
    ref = getattr(torch.nn, cls.__name__)(shape[1], dtype=dtype, **opts)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(p.shape)))
    general = ft.convert(copy.deepcopy(ref))
    short = ft.convert(copy.deepcopy(ref))
    taken = _counting(monkeypatch)
    got = _run(short, x, dy)
    assert "_forward_fast" in taken and "_backward_fast" in taken, taken
    # the general road: the native fast path off
    monkeypatch.setattr(_lean, "_forward_fast", None)
    monkeypatch.setattr(_lean, "_backward_fast", None)
    want = _run(general, x, dy)
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        assert a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride(), i
        assert torch.equal(a, b), f"output {i} differs between the roads"
    expected = _run(ref, x, dy)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    for i, (a, b) in enumerate(zip(got, expected)):
        if b.dtype.is_floating_point:
            assert torch.allclose(a, b, rtol=tol, atol=tol), f"output {i} differs from torch.nn"
        else:
            assert torch.equal(a, b), i


def test_short_road_declines_and_the_general_road_raises(monkeypatch):
    """What the fast path does not take goes the general road, with its torch-named
    errors, and nothing is written: a wrong channel count, another dtype, eps <= 0."""
    bn = ft.BatchNorm1d(4)
    rm = bn.running_mean.clone()
    with pytest.raises(ValueError, match="input has 3"):
        ft.batch_norm(torch.randn(5, 3), bn.running_mean, bn.running_var, training=True)
    with pytest.raises(TypeError, match="weight has dtype torch.float64"):
        ft.batch_norm(torch.randn(5, 4), bn.running_mean, bn.running_var,
                      weight=torch.ones(4, dtype=torch.float64), training=True)
    with pytest.raises(ValueError, match="eps"):
        ft.batch_norm(torch.randn(5, 4), bn.running_mean, bn.running_var, eps=0.0,
                      training=True)
    assert torch.equal(bn.running_mean, rm)
    # declines: a strided x and dy (copied by the general road), 16-bit input
    x = torch.randn(6, 8)[:, ::2]
    assert _lean.forward(x, None, None, None, None, True, 0.1, 1e-5) is None
    assert _lean.forward(torch.randn(6, 4, dtype=torch.bfloat16), None, None, None, None,
                         True, 0.1, 1e-5) is None
    assert _lean.forward(torch.randn(1, 4), None, None, None, None, True, 0.1, 1e-5) is None
