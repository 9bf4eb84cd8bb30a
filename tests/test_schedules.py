"""fastopt.schedules: closed forms, and torch.optim.lr_scheduler where torch has the schedule.

Convention checked here: schedule(t) is the learning rate of the (t+1)-th
update, i.e. torch's optimizer lr after t scheduler.step() calls."""
import math
import warnings

import numpy as np
import pytest

import fastopt
from fastopt import schedules as S

N = 60


def torch_lrs(make_scheduler, lr, n=N):
    """The lr torch's optimizer uses for updates 1..n under a scheduler."""
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=lr)
    sched = make_scheduler(torch.optim.lr_scheduler, opt)
    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(n):
            out.append(opt.param_groups[0]["lr"])
            p.grad = torch.zeros(1)
            opt.step()
            sched.step()
    return out


def ours(schedule, n=N):
    return [schedule(t) for t in range(n)]


def test_step_decay():
    s = S.StepDecay(0.1, step_size=7, gamma=0.5)
    assert ours(s) == pytest.approx([0.1 * 0.5 ** (t // 7) for t in range(N)], rel=1e-15)
    assert ours(s) == pytest.approx(torch_lrs(lambda L, o: L.StepLR(o, 7, gamma=0.5), 0.1), rel=1e-12)


def test_exponential_decay():
    s = S.ExponentialDecay(0.2, gamma=0.93)
    assert ours(s) == pytest.approx([0.2 * 0.93 ** t for t in range(N)], rel=1e-15)
    assert ours(s) == pytest.approx(torch_lrs(lambda L, o: L.ExponentialLR(o, 0.93), 0.2), rel=1e-12)
    k = S.ExponentialDecay(0.2, k=0.05)    # lecture form alpha0 * exp(-k t)
    assert ours(k) == pytest.approx([0.2 * math.exp(-0.05 * t) for t in range(N)], rel=1e-15)
    assert ours(k) == pytest.approx(ours(S.ExponentialDecay(0.2, gamma=math.exp(-0.05))), rel=1e-12)


def test_inverse_time_decay():
    s = S.InverseTimeDecay(0.5, k=0.1)
    assert ours(s) == pytest.approx([0.5 / (1 + 0.1 * t) for t in range(N)], rel=1e-15)
    lam = torch_lrs(lambda L, o: L.LambdaLR(o, lambda t: 1 / (1 + 0.1 * t)), 0.5)
    assert ours(s) == pytest.approx(lam, rel=1e-12)


@pytest.mark.parametrize("start,end", [(1 / 3, 1.0), (0.1, 0.8)])
def test_linear_warmup(start, end):
    s = S.LinearWarmup(0.3, warmup_steps=10, start_factor=start, end_factor=end)
    closed = [0.3 * (start + (end - start) * min(t, 10) / 10) for t in range(N)]
    assert ours(s) == pytest.approx(closed, rel=1e-14)
    tl = torch_lrs(lambda L, o: L.LinearLR(o, start_factor=start, end_factor=end, total_iters=10), 0.3)
    assert ours(s) == pytest.approx(tl, rel=1e-12)


def test_cosine_annealing():
    s = S.CosineAnnealing(0.1, T_max=20, eta_min=0.001)
    closed = [0.001 + (0.1 - 0.001) * (1 + math.cos(math.pi * t / 20)) / 2 for t in range(N)]
    assert ours(s) == pytest.approx(closed, rel=1e-14)
    tl = torch_lrs(lambda L, o: L.CosineAnnealingLR(o, T_max=20, eta_min=0.001), 0.1)
    assert ours(s) == pytest.approx(tl, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("up,down", [(5, 5), (4, 9), (6, None)])
def test_cyclical_triangular(up, down):
    s = S.Cyclical(0.01, 0.1, step_size_up=up, step_size_down=down)
    d = up if down is None else down
    lrs = ours(s)
    assert lrs[0] == pytest.approx(0.01) and lrs[up] == pytest.approx(0.1)
    assert lrs[up + d] == pytest.approx(0.01)            # restarts every up + down steps
    assert lrs[: up + d] == pytest.approx(lrs[up + d: 2 * (up + d)], rel=1e-12)
    tl = torch_lrs(lambda L, o: L.CyclicLR(o, 0.01, 0.1, step_size_up=up, step_size_down=down,
                                             mode="triangular", cycle_momentum=False), 0.01)
    assert lrs == pytest.approx(tl, rel=1e-12)


def test_cyclical_triangular2_and_sawtooth():
    s = S.Cyclical(0.0, 1.0, step_size_up=4, mode="triangular2")
    tl = torch_lrs(lambda L, o: L.CyclicLR(o, 0.0, 1.0, step_size_up=4, mode="triangular2",
                                             cycle_momentum=False), 0.0)
    assert ours(s) == pytest.approx(tl, rel=1e-12, abs=1e-15)
    saw = S.Cyclical(0.0, 1.0, step_size_up=4, step_size_down=0)
    assert ours(saw, 9) == pytest.approx([0, .25, .5, .75, 0, .25, .5, .75, 0])


@pytest.mark.parametrize("T_mult", [1, 2])
def test_cosine_warm_restarts(T_mult):
    s = S.CosineWarmRestarts(0.1, T_0=5, T_mult=T_mult, eta_min=0.01)
    tl = torch_lrs(lambda L, o: L.CosineAnnealingWarmRestarts(o, T_0=5, T_mult=T_mult, eta_min=0.01), 0.1)
    assert ours(s) == pytest.approx(tl, rel=1e-12)


def test_warmup_then_cosine():
    s = S.warmup_cosine(0.1, warmup_steps=10, total_steps=50, eta_min=0.0)
    closed = [0.1 * (1 / 3 + (2 / 3) * t / 10) if t < 10
              else 0.1 * (1 + math.cos(math.pi * (t - 10) / 40)) / 2 for t in range(N)]
    assert ours(s) == pytest.approx(closed, rel=1e-12, abs=1e-15)
    tl = torch_lrs(lambda L, o: L.SequentialLR(
        o, [L.LinearLR(o, start_factor=1 / 3, total_iters=10), L.CosineAnnealingLR(o, T_max=40)],
        milestones=[10]), 0.1)
    assert ours(s) == pytest.approx(tl, rel=1e-9, abs=1e-12)


def test_sequential_general():
    s = S.Sequential([S.Constant(0.5), S.StepDecay(0.2, 3), S.InverseTimeDecay(0.1, 1.0)], [4, 10])
    assert s(0) == s(3) == 0.5
    assert s(4) == 0.2 and s(7) == pytest.approx(0.02)
    assert s(10) == 0.1 and s(12) == pytest.approx(0.1 / 3)


def test_schedule_validation():
    with pytest.raises(ValueError, match="step_size"):
        S.StepDecay(0.1, step_size=0)
    with pytest.raises(ValueError, match="lr"):
        S.CosineAnnealing(-1.0, 10)
    with pytest.raises(ValueError):
        S.ExponentialDecay(0.1)
    with pytest.raises(ValueError):
        S.Sequential([S.Constant(1.0), S.Constant(2.0)], [])
    with pytest.raises(ValueError):
        S.warmup_cosine(0.1, 10, 5)
    with pytest.raises(ValueError):
        S.StepDecay(0.1, 5)(-1)
    with pytest.raises(TypeError):
        S.StepDecay(0.1, 5)(1.5)


def test_optimizer_passes_zero_based_step_to_schedule(rng):
    """An optimizer with lr=schedule follows torch.optim + the matching scheduler."""
    torch = pytest.importorskip("torch")
    p0 = rng.standard_normal(11).astype(np.float64)
    grads = [rng.standard_normal(11) for _ in range(25)]
    ours_p = p0.copy()
    seen = []

    def sched(t):
        seen.append(t)
        return 0.1 * 0.5 ** (t // 4)
    opt = fastopt.SGD([ours_p], lr=sched, momentum=0.9)
    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    topt = torch.optim.SGD([tp], lr=0.1, momentum=0.9)
    tsched = torch.optim.lr_scheduler.StepLR(topt, 4, gamma=0.5)
    for g in grads:
        opt.step([g.copy()])
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
        tsched.step()
    assert seen == list(range(25))
    np.testing.assert_allclose(ours_p, tp.detach().numpy(), rtol=1e-12, atol=1e-14)
