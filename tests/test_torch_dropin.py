"""fastopt.torch: torch.optim.Optimizer subclasses on fastopt kernels."""
import copy
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import fastopt.torch as ft  # noqa: E402
from conftest import count_validated_steps  # noqa: E402
import fastopt.torch.optim as fto  # noqa: E402

KWARGS = {
    "SGD": [dict(lr=0.05), dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
            dict(lr=0.05, momentum=0.9, dampening=0.2, maximize=False)],
    "RMSprop": [dict(lr=1e-3), dict(lr=1e-3, momentum=0.5, centered=True, weight_decay=1e-3)],
    "Adam": [dict(lr=1e-3), dict(lr=1e-3, amsgrad=True, weight_decay=1e-3, betas=(0.8, 0.99))],
    "AdamW": [dict(lr=1e-3), dict(lr=1e-3, amsgrad=True, weight_decay=0.1)],
    "Adagrad": [dict(lr=1e-2), dict(lr=1e-2, lr_decay=1e-3, initial_accumulator_value=0.1,
                                    weight_decay=1e-3)],
}
CASES = [(n, kw) for n, kws in KWARGS.items() for kw in kws]
IDS = [f"{n}-{i}" for n, kws in KWARGS.items() for i in range(len(kws))]


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny models: one torch thread is faster on a shared 2-core machine."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def _mlp(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(20, 64), torch.nn.Tanh(), torch.nn.Linear(64, 32),
                               torch.nn.Tanh(), torch.nn.Linear(32, 3))


def _train(model, opt, steps=100, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(256, 20, generator=g)
    y = torch.randint(0, 3, (256,), generator=g)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_mlp_losses_match_torch(name, kwargs):
    m1, m2 = _mlp(0), _mlp(0)
    l1 = _train(m1, getattr(torch.optim, name)(m1.parameters(), **kwargs))
    l2 = _train(m2, getattr(ft, name)(m2.parameters(), **kwargs))
    np.testing.assert_allclose(l2, l1, rtol=1e-5, atol=1e-6)
    assert l2[-1] < l2[0]
    for a, b in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(b.detach().numpy(), a.detach().numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_state_dict_round_trips_with_torch(name, kwargs):
    """fastopt -> torch.optim and torch.optim -> fastopt mid-training: same trajectory."""
    ma, mb, mc = _mlp(3), _mlp(3), _mlp(3)
    oa = getattr(ft, name)(ma.parameters(), **kwargs)
    _train(ma, oa, steps=10)
    ob_src = getattr(torch.optim, name)(mb.parameters(), **kwargs)
    _train(mb, ob_src, steps=10)
    # fastopt state into torch, torch state into fastopt
    mc.load_state_dict(ma.state_dict())
    tor = getattr(torch.optim, name)(mc.parameters(), **kwargs)
    tor.load_state_dict(copy.deepcopy(oa.state_dict()))
    md = _mlp(3)
    md.load_state_dict(mb.state_dict())
    fas = getattr(ft, name)(md.parameters(), **kwargs)
    fas.load_state_dict(copy.deepcopy(ob_src.state_dict()))
    st = oa.state_dict()["state"]
    for entry in st.values():
        for k, val in entry.items():
            assert isinstance(val, torch.Tensor), k
    la = _train(ma, oa, steps=10, seed=5)
    lc = _train(mc, tor, steps=10, seed=5)
    lb = _train(mb, ob_src, steps=10, seed=5)
    ld = _train(md, fas, steps=10, seed=5)
    np.testing.assert_allclose(lc, la, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ld, lb, rtol=1e-5, atol=1e-6)


def test_zero_copy_and_skips_params_without_grad():
    w = torch.nn.Parameter(torch.randn(10))
    frozen = torch.nn.Parameter(torch.randn(4))
    opt = ft.Adam([w, frozen], lr=0.1)
    before_ptr = w.data_ptr()
    w.grad = torch.ones(10)
    old = w.detach().clone()
    opt.step()
    assert w.data_ptr() == before_ptr and not torch.equal(w.detach(), old)
    assert frozen not in opt.state
    assert opt.state[w]["exp_avg"].data_ptr() != w.data_ptr()


def test_param_groups_and_closure():
    a, b = torch.nn.Parameter(torch.randn(5)), torch.nn.Parameter(torch.randn(3))
    ta, tb = [torch.nn.Parameter(t.detach().clone()) for t in (a, b)]
    o1 = ft.SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    o2 = torch.optim.SGD([{"params": [ta]}, {"params": [tb], "lr": 0.5}], lr=0.1, momentum=0.9)
    for _ in range(5):
        def c1():
            o1.zero_grad()
            loss = (a ** 2).sum() + (b ** 3).sum()
            loss.backward()
            return loss

        def c2():
            o2.zero_grad()
            loss = (ta ** 2).sum() + (tb ** 3).sum()
            loss.backward()
            return loss
        assert float(o1.step(c1).detach()) == pytest.approx(float(o2.step(c2).detach()), rel=1e-6)
    torch.testing.assert_close(a, ta)
    torch.testing.assert_close(b, tb)


def test_validation_like_torch():
    """Construction is torch's own: same errors, same messages."""
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="Invalid learning rate: -1"):
        ft.Adam(p, lr=-1)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        ft.AdamW(p, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="Nesterov"):
        ft.SGD(p, nesterov=True)
    # torch's implementation switches are accepted (and mean nothing here)
    ft.Adam(p, fused=True)
    ft.SGD(p, foreach=True)
    with pytest.raises(TypeError, match="unexpected"):
        ft.Adagrad(p, momentum=0.9)


def test_import_fastopt_does_not_import_torch():
    code = ("import sys, fastopt, fastopt.optim, fastopt.schedules, fastopt.functional.clipping; "
            "assert 'torch' not in sys.modules, 'torch was imported'; print('ok')")
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=root)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_matches_torch(norm_type):
    m1, m2 = _mlp(7), _mlp(7)
    x = torch.randn(64, 20)
    for m in (m1, m2):
        (m(x) ** 2).sum().backward()
    n1 = torch.nn.utils.clip_grad_norm_(m1.parameters(), 0.5, norm_type=norm_type)
    n2 = ft.clip_grad_norm_(m2.parameters(), 0.5, norm_type=norm_type)
    assert n2.dtype == n1.dtype and float(n2) == pytest.approx(float(n1), rel=2e-6)
    for a, b in zip(m1.parameters(), m2.parameters()):
        np.testing.assert_allclose(b.grad.numpy(), a.grad.numpy(), rtol=4e-6, atol=1e-9)


def test_cached_views_follow_replaced_data_and_loaded_state():
    """The drop-in caches views between steps; replacing p.data or loading a state
    dict must not leave it writing to stale memory."""
    ref = [torch.nn.Parameter(torch.randn(6)), torch.nn.Parameter(torch.randn(3))]
    ours = [torch.nn.Parameter(t.detach().clone()) for t in ref]
    o1, o2 = torch.optim.Adam(ref, lr=0.1), ft.Adam(ours, lr=0.1)

    def step(grads):
        for ps, o in ((ref, o1), (ours, o2)):
            for p, g in zip(ps, grads):
                p.grad = None if g is None else g.clone()
            o.step()
    gen = torch.Generator().manual_seed(0)
    for k in range(4):
        step([torch.randn(6, generator=gen), torch.randn(3, generator=gen)])
    new = torch.randn(6, generator=gen)
    ref[0].data = new.clone()
    ours[0].data = new.clone()
    step([torch.randn(6, generator=gen), torch.randn(3, generator=gen)])
    step([torch.randn(6, generator=gen), None])
    o2.load_state_dict(copy.deepcopy(o1.state_dict()))
    for k in range(3):
        step([torch.randn(6, generator=gen), torch.randn(3, generator=gen)])
    for a, b in zip(ref, ours):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    assert float(o2.state[ours[0]]["step"]) == float(o1.state[ref[0]]["step"]) == 9
    assert float(o2.state[ours[1]]["step"]) == 8


def test_cpu_fast_path_skips_revalidation_and_takes_odd_grads(monkeypatch):
    ps = [torch.nn.Parameter(torch.randn(6)), torch.nn.Parameter(torch.randn(4))]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in ps]
    opt, tor = ft.Adam(ps, lr=0.1), torch.optim.Adam(ref, lr=0.1)

    def step(grads):
        for group, o in ((ps, opt), (ref, tor)):
            for p, g in zip(group, grads):
                p.grad = g.clone()
            o.step()
    for _ in range(2):
        step([torch.randn(6), torch.randn(4)])
    assert 0 in opt._fo_plans

    calls = count_validated_steps(monkeypatch, opt)
    calls.raising = True   # the planned CPU path must not revalidate through adam_step
    step([torch.randn(6), torch.randn(4)])
    assert float(opt.state[ps[0]]["step"]) == 3 and not calls
    calls.raising = False
    # a strided gradient is gathered (torch takes it too): same numbers as torch
    step([torch.randn(12)[::2], torch.randn(4)])
    for a, b in zip(ps, ref):
        torch.testing.assert_close(a, b)
    assert float(opt.state[ps[0]]["step"]) == 4


def _alias(t, dtype):
    """8 elements of ``dtype`` in ``t``'s memory (float32 state of a 16-bit parameter: its
    first half, viewed)."""
    return t if t.dtype == dtype else t[:4].view(dtype)


def _outcome(fn):
    try:
        fn()
    except (ValueError, TypeError, RuntimeError) as exc:
        return type(exc)
    return None


@pytest.mark.parametrize("dtype, kw", [(torch.float32, {}), (torch.bfloat16, {}),
                                       (torch.bfloat16, dict(master_weights=True,
                                                             state_dtype=torch.float32))],
                         ids=["float32", "bfloat16", "bfloat16-master"])
def test_planned_steps_check_every_new_gradient(dtype, kw):
    """A planned CPU step checks each new gradient natively (C order, type, overlap with
    any parameter or state): every odd gradient gets what the validated path gives it."""
    gen = torch.Generator().manual_seed(3)
    init = [torch.randn(8, generator=gen).to(dtype) for _ in range(3)]
    ps = [torch.nn.Parameter(t.clone()) for t in init]
    qs = [torch.nn.Parameter(t.clone()) for t in init]
    opt, ref = ft.Adam(ps, lr=0.05, **kw), ft.Adam(qs, lr=0.05, **kw)
    bits = torch.int32 if dtype == torch.float32 else torch.int16
    count = [0]

    def step(make):
        count[0] += 1
        for group, o in ((ps, opt), (qs, ref)):
            g = torch.Generator().manual_seed(count[0])
            for p, grad in zip(group, make(group, o, g)):
                p.grad = grad
        ref._fo_plans.clear()   # the reference validates every step
        outcomes = (_outcome(opt.step), _outcome(ref.step))
        assert outcomes[0] == outcomes[1]
        for a, b in zip(ps, qs):
            assert torch.equal(a.detach().view(bits), b.detach().view(bits))

    def fresh(group, o, g):
        return [torch.randn(8, generator=g).to(dtype) for _ in group]

    odd = {
        "strided": lambda group, o, g: [torch.randn(16, generator=g).to(dtype)[::2]]
        + fresh(group, o, g)[1:],
        "a parameter's memory": lambda group, o, g: [group[1].detach()] + fresh(group, o, g)[1:],
        "a state's memory": lambda group, o, g: [_alias(o.state[group[0]]["exp_avg"], dtype)]
        + fresh(group, o, g)[1:],
        "another grad's memory": lambda group, o, g: (lambda f: [f[1], f[1]] + f[2:])(
            fresh(group, o, g)),
    }
    for _ in range(2):
        step(fresh)
    assert 0 in opt._fo_plans
    for name, make in odd.items():
        step(fresh)   # planned again
        assert 0 in opt._fo_plans, name
        step(make)
