"""``fastopt.torch`` optimizers on CUDA tensors, on a GPU (issue 15).

CUDA parameters run on fastopt's cuda backend (cupy views through DLPack,
cached gradient views, kernels on torch's current stream), not on torch's
own step. Each test skips with the reason where there is no GPU, no cupy or
no CUDA torch; tests/test_cuda_torch_emulated.py runs the same Python path
with host-emulated kernels everywhere.
"""
import warnings

import numpy as np
import pytest

import fastopt
from fastopt import backends as _backends

_WHY = _backends.unavailable_reason("cuda")
pytestmark = pytest.mark.skipif(_WHY is not None, reason=f"cuda backend unavailable: {_WHY}")

torch = pytest.importorskip("torch")
if _WHY is None and not torch.cuda.is_available():
    _WHY = f"torch {torch.__version__} has no CUDA device"
    pytestmark = pytest.mark.skipif(True, reason=_WHY)

import fastopt.torch as ft  # noqa: E402
from fastopt.torch import _cuda  # noqa: E402
from test_cuda import _record_streams  # noqa: E402  (every launch's cupy stream)

CASES = [("Adam", dict(lr=1e-2)),
         ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=0.1)),
         ("AdamW", dict(lr=1e-2, weight_decay=0.1)),
         ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
         ("RMSprop", dict(lr=1e-2, momentum=0.9, centered=True)),
         ("Adagrad", dict(lr=0.1, lr_decay=0.01))]
IDS = [f"{c}-{'-'.join(map(str, kw.values()))}" for c, kw in CASES]


def _model(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, 300), torch.nn.ReLU(),
                               torch.nn.Linear(300, 10)).cuda()


@pytest.mark.parametrize("cls,kw", CASES, ids=IDS)
def test_training_loop_runs_on_the_cuda_backend_and_matches_torch(cls, kw, monkeypatch):
    """A small model trained 10 steps with backward and zero_grad() (new
    gradient tensors every step): no fallback warning, every step one launch on
    torch's current stream, the step plan used, parameters equal to
    torch.optim.<cls>'s to float32 rounding."""
    ref, mine = _model(0), _model(0)
    opt_ref = getattr(torch.optim, cls)(ref.parameters(), **kw)
    opt = getattr(ft, cls)(mine.parameters(), **kw)
    seen = _record_streams(monkeypatch)
    gen = torch.Generator(device="cuda").manual_seed(1)
    with warnings.catch_warnings():
        # a fallback to torch's step warns "... use torch.optim.X's own implementation"
        warnings.filterwarnings("error", message=".*own implementation")
        for _ in range(10):
            x = torch.randn(32, 64, device="cuda", generator=gen)
            for model, o in ((ref, opt_ref), (mine, opt)):
                o.zero_grad()
                model(x).square().mean().backward()
                o.step()
    torch.cuda.synchronize()
    assert len(seen) == 10 and set(seen) == {torch.cuda.current_stream().cuda_stream}
    assert opt._fo_plans
    for p, q in zip(ref.parameters(), mine.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)


def test_torch_stream_is_used_when_cupy_has_another_current_stream(monkeypatch):
    """cupy's current stream is a stream of its own, torch's a side stream: the
    kernels go to torch's."""
    import cupy
    params = [torch.nn.Parameter(torch.randn(n, device="cuda")) for n in (7, 70_001)]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in params]
    opt, opt_ref = ft.Adam(params, lr=0.1), torch.optim.Adam(ref, lr=0.1)
    seen = _record_streams(monkeypatch)
    side = torch.cuda.Stream()
    cs = cupy.cuda.Stream(non_blocking=True)
    for _ in range(3):
        for p, q in zip(params, ref):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        opt_ref.step()
        side.wait_stream(torch.cuda.current_stream())
        with cs, torch.cuda.stream(side):
            opt.step()
        torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    assert seen and set(seen) == {side.cuda_stream} and side.cuda_stream != cs.ptr
    for p, q in zip(params, ref):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)


def test_gradient_views_are_cached(monkeypatch):
    """Gradients rewritten in place: one gradient view per parameter over many steps."""
    made = []
    real = _cuda.unowned
    monkeypatch.setattr(_cuda, "unowned", lambda t: made.append(1) or real(t))
    params = [torch.nn.Parameter(torch.randn(n, device="cuda")) for n in (3, 1000, 40_000)]
    opt = ft.SGD(params, lr=0.1, momentum=0.9)
    for p in params:
        p.grad = torch.randn_like(p)
    for _ in range(6):
        for p in params:
            p.grad.normal_()
        opt.step()
    assert len(made) == len(params)


def test_mixed_cpu_and_cuda_group_and_cpu_backend_fallback():
    """One group with a CPU and a CUDA parameter: each on its own backend, both
    equal to torch's; backend='cpp' sends CUDA parameters to torch's step with a warning."""
    ps = [torch.nn.Parameter(torch.randn(100)), torch.nn.Parameter(torch.randn(100, device="cuda"))]
    qs = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    opt, opt_ref = ft.Adam(ps, lr=0.1), torch.optim.Adam(qs, lr=0.1)
    for _ in range(3):
        for p, q in zip(ps, qs):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        opt.step()
        opt_ref.step()
    for p, q in zip(ps, qs):
        torch.testing.assert_close(p.detach(), q.detach(), rtol=1e-5, atol=1e-6)
    ft._base._warned.clear()
    r = [torch.nn.Parameter(torch.randn(10, device="cuda"))]
    r[0].grad = torch.randn_like(r[0])
    with pytest.warns(UserWarning, match="CUDA parameters"):
        ft.Adam(r, lr=0.1, backend="cpp").step()


def test_state_dict_round_trip_on_cuda():
    """state_dict / load_state_dict of a CUDA-stepped optimizer continues the same trajectory."""
    ps = [torch.nn.Parameter(torch.randn(500, device="cuda"))]
    opt = ft.Adam(ps, lr=0.05)
    grads = [torch.randn(500, device="cuda") for _ in range(6)]
    for g in grads[:3]:
        ps[0].grad = g.clone()
        opt.step()
    qs = [torch.nn.Parameter(ps[0].detach().clone())]
    opt2 = ft.Adam(qs, lr=0.05)
    opt2.load_state_dict(opt.state_dict())
    for g in grads[3:]:
        ps[0].grad, qs[0].grad = g.clone(), g.clone()
        opt.step()
        opt2.step()
    np.testing.assert_array_equal(ps[0].detach().cpu().numpy(), qs[0].detach().cpu().numpy())


def test_layers_run_on_torch_current_stream(monkeypatch):
    """fastopt.torch.BatchNorm2d and Dropout on CUDA inside torch.cuda.stream(side):
    every kernel (forward and backward) on the side stream, the results equal to
    a run on the default stream."""
    torch.manual_seed(0)
    x = torch.randn(8, 5, 9, 9, device="cuda")
    dy = torch.randn_like(x)

    def run():
        bn, drop = ft.BatchNorm2d(5).cuda(), ft.Dropout(0.3)
        xi = x.clone().requires_grad_(True)
        torch.manual_seed(1)
        y = drop(bn(xi))
        y.backward(dy)
        return y.detach(), xi.grad, bn.running_mean.clone()
    base = run()
    torch.cuda.synchronize()
    seen = _record_streams(monkeypatch)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        got = run()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    assert seen and set(seen) == {side.cuda_stream}
    for a, b in zip(got, base):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
