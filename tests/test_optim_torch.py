"""50-step trajectories of the functional steps against torch.optim, every option."""
import numpy as np
import pytest

import fastopt
from conftest import CPU_BACKENDS

torch = pytest.importorskip("torch")

STEPS = 50
# (torch class, torch kwargs, fastopt kernel, fastopt kwargs, state names: fastopt -> torch)
CONFIGS = [
    ("SGD", dict(lr=0.05), "sgd", {}),
    ("SGD", dict(lr=0.05, momentum=0.9), "sgd", {}),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.2, weight_decay=0.01), "sgd", {}),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True), "sgd", {}),
    ("RMSprop", dict(lr=0.01), "rmsprop", {}),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True, weight_decay=0.01), "rmsprop", {}),
    ("RMSprop", dict(lr=0.01, momentum=0.9, maximize=True), "rmsprop", {}),
    ("RMSprop", dict(lr=0.01, momentum=0.5, centered=True), "rmsprop", {}),
    ("Adam", dict(lr=0.01), "adam", {}),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, amsgrad=True), "adam", {}),
    ("Adam", dict(lr=0.01, maximize=True, eps=1e-6), "adam", {}),
    ("AdamW", dict(lr=0.01, weight_decay=0.1), "adam", {"decoupled_weight_decay": True}),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True, maximize=True), "adam",
     {"decoupled_weight_decay": True}),
    ("Adagrad", dict(lr=0.1), "adagrad", {}),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, maximize=True), "adagrad", {}),
]


def fastopt_kwargs(cls, kw):
    kw = dict(kw)
    if "betas" in kw:
        kw["beta1"], kw["beta2"] = kw.pop("betas")
    return kw


def run_trajectory(cls, torch_kw, kernel, extra, dtype, backend, seed, size=1000, fused=None):
    rng = np.random.default_rng(seed)
    x0 = rng.standard_normal(size).astype(dtype)
    grads = [rng.standard_normal(size).astype(dtype) for _ in range(STEPS)]

    tp = torch.nn.Parameter(torch.from_numpy(x0.copy()))
    opt_kw = dict(torch_kw)
    if fused is not None:
        opt_kw["fused"] = fused
    else:
        opt_kw["foreach"] = False
    opt = getattr(torch.optim, cls)([tp], **opt_kw)

    p = x0.copy()
    kw = fastopt_kwargs(cls, torch_kw)
    kw.update(extra)
    momentum = kw.get("momentum", 0.0)
    state = {}
    if kernel == "sgd" and momentum:
        state["momentum_buffer"] = np.zeros_like(p)
    if kernel == "rmsprop":
        state["square_avg"] = np.zeros_like(p)
        if momentum:
            state["momentum_buffer"] = np.zeros_like(p)
        if kw.get("centered"):
            state["grad_avg"] = np.zeros_like(p)
    if kernel == "adam":
        state["exp_avg"], state["exp_avg_sq"] = np.zeros_like(p), np.zeros_like(p)
        if kw.get("amsgrad"):
            state["max_exp_avg_sq"] = np.zeros_like(p)
    if kernel == "adagrad":
        state["state_sum"] = np.zeros_like(p)

    worst = 0.0
    for t in range(1, STEPS + 1):
        g = grads[t - 1]
        tp.grad = torch.from_numpy(g.copy())
        opt.step()
        if kernel == "sgd":
            fastopt.sgd_step(p, g, state.get("momentum_buffer"), first_step=(t == 1),
                             backend=backend, **kw)
        elif kernel == "rmsprop":
            fastopt.rmsprop_step(p, g, state["square_avg"],
                                 momentum_buffer=state.get("momentum_buffer"),
                                 grad_avg=state.get("grad_avg"), backend=backend, **kw)
        elif kernel == "adam":
            fastopt.adam_step(p, g, state["exp_avg"], state["exp_avg_sq"], step=t,
                              max_exp_avg_sq=state.get("max_exp_avg_sq"), backend=backend, **kw)
        else:
            fastopt.adagrad_step(p, g, state["state_sum"], step=t, backend=backend, **kw)
        expected = tp.detach().numpy()
        scale = np.maximum(np.abs(expected), 1.0)
        worst = max(worst, float(np.max(np.abs(p - expected) / scale)))
    return worst


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c[0]}-{c[1]}-{c[3]}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_trajectory_matches_torch(config, dtype, backend):
    cls, torch_kw, kernel, extra = config
    worst = run_trajectory(cls, torch_kw, kernel, extra, dtype, backend, seed=len(CONFIGS))
    # Over 50 steps float32 rounding differences grow but stay far below the
    # size of one update (lr ~ 1e-2).
    assert worst < (1e-5 if dtype == np.float32 else 1e-12), worst


@pytest.mark.parametrize("config", [c for c in CONFIGS if c[0] in ("Adam", "AdamW", "SGD")
                                    and not c[1].get("nesterov") and not c[1].get("dampening")],
                         ids=lambda c: f"{c[0]}-{c[1]}")
def test_trajectory_matches_torch_fused(config):
    cls, torch_kw, kernel, extra = config
    worst = run_trajectory(cls, torch_kw, kernel, extra, np.float32, "auto", seed=7, fused=True)
    assert worst < 1e-5, worst
