"""Optimizer steps: SGD (plain, momentum, Nesterov), RMSprop, Adam (AdamW,
AMSGrad), Adagrad; their NumPy and torch baselines. In place: one pass,
no outputs."""
from __future__ import annotations

import math
from typing import List, Sequence

import numpy as np

import fastopt
from fastopt.bench.registry import Kernel, Traffic, as_torch, rand

LR = 1e-3
STEP = 10  # a fixed, later step: bias corrections are constants


def _optim_setup(states: Sequence[str], positive: Sequence[str] = ()):
    def setup(n, dtype, rng):
        a = {"param": rand(rng, n, dtype), "grad": rand(rng, n, dtype)}
        for s in states:
            a[s] = rand(rng, n, dtype, positive=s in positive)
        return a
    return setup


def _fo(api, state_args, keyword_states=(), **kw):
    """Runner factory calling ``fastopt.<api>(param, grad, *states, **kw, backend=)``
    as a user writes the call: a closure whose keywords are written out in its source.
    ``lambda: fn(*args, **kw)`` merged ``**kw`` into a new dict on each call (0.4-0.5
    us), and a ``functools.partial`` still passes them as a dict (0.13 us), which a
    call written out does not pay (benchmarks/RESULTS.md, "Session 16", "Session 19")."""
    def factory(a, backend):
        args = [a[s] for s in ("param", "grad", *state_args, *keyword_states)]
        names = [f"a{i}" for i in range(len(args))]
        positional = names[:len(names) - len(keyword_states)]
        by_name = [f"{k}={n}" for k, n in zip(keyword_states, names[len(positional):])]
        call = ", ".join(positional + by_name
                         + [f"{k}={v!r}" for k, v in {**kw, "backend": backend}.items()])
        src = f"def make(fn, {', '.join(names)}):\n    return lambda: fn({call})\n"
        scope = {}
        exec(src, scope)
        return scope["make"](getattr(fastopt, api), *args)
    return factory


def _torch_opt(cls_name, state_map, **kw):
    """torch.optim.<cls>(fused/foreach) with its state set to our (random) arrays."""
    def factory(a):
        import torch
        p = as_torch(a["param"]).requires_grad_(True)
        p.grad = as_torch(a["grad"])
        opt = getattr(torch.optim, cls_name)([p], **kw)
        opt.step()  # creates the state (zeros) ...
        st = opt.state[p]
        for tk, ak in state_map.items():  # ... which we replace by the random arrays
            st[tk] = as_torch(a[ak])
        return opt.step
    return factory


def _torch_fused_adam(decoupled, amsgrad, wd):
    def factory(a):
        import torch
        fn = torch._fused_adamw_ if decoupled else torch._fused_adam_
        p, g, m, v = (as_torch(a[k]) for k in ("param", "grad", "exp_avg", "exp_avg_sq"))
        vmax = [as_torch(a["max_exp_avg_sq"])] if amsgrad else []
        step = [torch.tensor(float(STEP))]
        return lambda: fn([p], [g], [m], [v], vmax, step, amsgrad=amsgrad, lr=LR, beta1=0.9,
                          beta2=0.999, weight_decay=wd, eps=1e-8, maximize=False,
                          grad_scale=None, found_inf=None)
    return factory


def _plain_sgd(momentum, nesterov):
    def factory(a):
        x, dx = a["param"], a["grad"]
        st = {"v": a.get("momentum_buffer")}
        mu = 0.9

        def sgd():
            x[...] += -LR * dx  # x += -learning_rate * dx

        def momentum_():
            st["v"] = mu * st["v"] - LR * dx
            x[...] += st["v"]

        def nesterov_():
            v_prev = st["v"]
            st["v"] = mu * st["v"] - LR * dx
            x[...] += -mu * v_prev + (1 + mu) * st["v"]
        return nesterov_ if nesterov else (momentum_ if momentum else sgd)
    return factory


def _out_sgd(momentum, nesterov):
    def factory(a):
        x, dx = a["param"], a["grad"]
        v = a.get("momentum_buffer")
        t = np.empty_like(x)
        mu = 0.9

        def sgd():
            np.multiply(dx, LR, out=t)
            np.subtract(x, t, out=x)

        def momentum_():  # torch form: buf = mu*buf + g ; x -= lr*buf
            np.multiply(v, mu, out=v)
            np.add(v, dx, out=v)
            np.multiply(v, LR, out=t)
            np.subtract(x, t, out=x)

        def nesterov_():  # buf = mu*buf + g ; x -= lr*(g + mu*buf)
            np.multiply(v, mu, out=v)
            np.add(v, dx, out=v)
            np.multiply(v, mu, out=t)
            np.add(t, dx, out=t)
            np.multiply(t, LR, out=t)
            np.subtract(x, t, out=x)
        return nesterov_ if nesterov else (momentum_ if momentum else sgd)
    return factory


def _plain_rmsprop(a):
    x, dx = a["param"], a["grad"]
    st = {"cache": a["square_avg"]}
    decay, eps = 0.99, 1e-8

    def run():
        st["cache"] = decay * st["cache"] + (1 - decay) * dx ** 2
        x[...] += -LR * dx / (np.sqrt(st["cache"]) + eps)
    return run


def _out_rmsprop(a):
    x, dx, c = a["param"], a["grad"], a["square_avg"]
    t, u = np.empty_like(x), np.empty_like(x)
    decay, eps = 0.99, 1e-8

    def run():
        np.multiply(dx, dx, out=t)
        np.multiply(t, 1 - decay, out=t)
        np.multiply(c, decay, out=c)
        np.add(c, t, out=c)
        np.sqrt(c, out=u)
        np.add(u, eps, out=u)
        np.divide(dx, u, out=t)
        np.multiply(t, LR, out=t)
        np.subtract(x, t, out=x)
    return run


def _plain_adam(decoupled, amsgrad):
    def factory(a):
        x, dx = a["param"], a["grad"]
        st = {"m": a["exp_avg"], "v": a["exp_avg_sq"], "vmax": a.get("max_exp_avg_sq")}
        beta1, beta2, eps, wd, t = 0.9, 0.999, 1e-8, 0.01, STEP

        def run():
            if decoupled:
                x[...] *= 1 - LR * wd
            st["m"] = beta1 * st["m"] + (1 - beta1) * dx
            mt = st["m"] / (1 - beta1 ** t)
            st["v"] = beta2 * st["v"] + (1 - beta2) * (dx ** 2)
            v = st["v"]
            if amsgrad:
                st["vmax"] = np.maximum(st["vmax"], v)
                v = st["vmax"]
            vt = v / (1 - beta2 ** t)
            x[...] += -LR * mt / (np.sqrt(vt) + eps)
        return run
    return factory


def _out_adam(decoupled, amsgrad):
    def factory(a):
        x, dx, m, v = a["param"], a["grad"], a["exp_avg"], a["exp_avg_sq"]
        vmax = a.get("max_exp_avg_sq")
        t, u = np.empty_like(x), np.empty_like(x)
        beta1, beta2, eps, wd = 0.9, 0.999, 1e-8, 0.01
        bc1, bc2 = 1 - beta1 ** STEP, 1 - beta2 ** STEP

        def run():
            if decoupled:
                np.multiply(x, 1 - LR * wd, out=x)
            np.multiply(m, beta1, out=m)
            np.multiply(dx, 1 - beta1, out=t)
            np.add(m, t, out=m)
            np.multiply(v, beta2, out=v)
            np.multiply(dx, dx, out=t)
            np.multiply(t, 1 - beta2, out=t)
            np.add(v, t, out=v)
            w = v
            if amsgrad:
                np.maximum(vmax, v, out=vmax)
                w = vmax
            np.sqrt(w, out=u)
            np.multiply(u, 1 / math.sqrt(bc2), out=u)
            np.add(u, eps, out=u)
            np.divide(m, u, out=t)
            np.multiply(t, LR / bc1, out=t)
            np.subtract(x, t, out=x)
        return run
    return factory


def _plain_adagrad(a):
    x, dx, cache = a["param"], a["grad"], a["state_sum"]
    eps = 1e-10

    def run():
        cache[...] += dx ** 2
        x[...] += -LR * dx / (np.sqrt(cache) + eps)
    return run


def _out_adagrad(a):
    x, dx, c = a["param"], a["grad"], a["state_sum"]
    t, u = np.empty_like(x), np.empty_like(x)

    def run():
        np.multiply(dx, dx, out=t)
        np.add(c, t, out=c)
        np.sqrt(c, out=u)
        np.add(u, 1e-10, out=u)
        np.divide(dx, u, out=t)
        np.multiply(t, LR, out=t)
        np.subtract(x, t, out=x)
    return run


def kernels() -> List[Kernel]:
    ks = []
    ro = ("grad",)
    ks.append(Kernel(
        "sgd", "optim", "sgd_step", "SGD, no momentum: p -= lr*g",
        (Traffic(ro, ("param",)),), _optim_setup(()),
        _fo("sgd_step", (), lr=LR),
        {"numpy-plain": _plain_sgd(False, False), "numpy-out": _out_sgd(False, False),
         "torch": _torch_opt("SGD", {}, lr=LR, fused=True)}))
    for name, nesterov in (("sgd-momentum", False), ("nesterov", True)):
        ks.append(Kernel(
            name, "optim", "sgd_step",
            "SGD with Nesterov momentum 0.9" if nesterov else "SGD with momentum 0.9",
            (Traffic(ro, ("param", "momentum_buffer")),),
            _optim_setup(("momentum_buffer",)),
            _fo("sgd_step", ("momentum_buffer",), lr=LR, momentum=0.9, nesterov=nesterov),
            {"numpy-plain": _plain_sgd(True, nesterov), "numpy-out": _out_sgd(True, nesterov),
             "torch": _torch_opt("SGD", {"momentum_buffer": "momentum_buffer"}, lr=LR,
                                 momentum=0.9, nesterov=nesterov, fused=True)}))
    ks.append(Kernel(
        "rmsprop", "optim", "rmsprop_step", "RMSProp, alpha 0.99",
        (Traffic(ro, ("param", "square_avg")),), _optim_setup(("square_avg",), ("square_avg",)),
        _fo("rmsprop_step", ("square_avg",), lr=LR),
        {"numpy-plain": _plain_rmsprop, "numpy-out": _out_rmsprop,
         "torch": _torch_opt("RMSprop", {"square_avg": "square_avg"}, lr=LR, foreach=True)}))
    for name, decoupled, amsgrad in (("adam", False, False), ("adamw", True, False),
                                     ("amsgrad", False, True)):
        states = ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ())
        wd = 0.01 if decoupled else 0.0
        kw = dict(step=STEP, lr=LR, weight_decay=wd, decoupled_weight_decay=decoupled,
                  amsgrad=amsgrad)
        factory = _fo("adam_step", ("exp_avg", "exp_avg_sq"),
                      ("max_exp_avg_sq",) if amsgrad else (), **kw)
        tmap = {"exp_avg": "exp_avg", "exp_avg_sq": "exp_avg_sq"}
        if amsgrad:
            tmap["max_exp_avg_sq"] = "max_exp_avg_sq"
        cls = "AdamW" if decoupled else "Adam"
        ks.append(Kernel(
            name, "optim", "adam_step",
            {"adam": "Adam", "adamw": "AdamW, weight decay 0.01", "amsgrad": "Adam, AMSGrad"}[name],
            (Traffic(ro, ("param",) + states),),
            _optim_setup(states, ("exp_avg_sq", "max_exp_avg_sq")), factory,
            {"numpy-plain": _plain_adam(decoupled, amsgrad),
             "numpy-out": _out_adam(decoupled, amsgrad),
             "torch": _torch_opt(cls, tmap, lr=LR, weight_decay=wd, amsgrad=amsgrad, fused=True),
             "torch-raw": _torch_fused_adam(decoupled, amsgrad, wd)}))
    ks.append(Kernel(
        "adagrad", "optim", "adagrad_step", "Adagrad",
        (Traffic(ro, ("param", "state_sum")),), _optim_setup(("state_sum",), ("state_sum",)),
        _fo("adagrad_step", ("state_sum",), step=STEP, lr=LR),
        {"numpy-plain": _plain_adagrad, "numpy-out": _out_adagrad,
         "torch": _torch_opt("Adagrad", {"sum": "state_sum"}, lr=LR, foreach=True)}))
    return ks
