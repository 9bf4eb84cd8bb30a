"""The table of optimizer cases that drives the tests of every backend.

Each case is (kernel, options). ``make_arrays`` builds fresh random state for
it (positive where the maths needs it), and ``call`` runs it on a backend.
"""
import numpy as np

import fastopt

CASES = [
    ("sgd", {}),
    ("sgd", {"weight_decay": 0.1, "maximize": True}),
    ("sgd", {"momentum": 0.9}),
    ("sgd", {"momentum": 0.9, "first_step": True}),
    ("sgd", {"momentum": 0.8, "dampening": 0.3, "weight_decay": 0.01}),
    ("sgd", {"momentum": 0.9, "nesterov": True}),
    ("sgd", {"momentum": 0.9, "nesterov": True, "maximize": True, "weight_decay": 0.1,
             "first_step": True}),
    ("rmsprop", {}),
    ("rmsprop", {"centered": True}),
    ("rmsprop", {"momentum": 0.9, "weight_decay": 0.1}),
    ("rmsprop", {"centered": True, "momentum": 0.9, "maximize": True, "alpha": 0.9}),
    ("adam", {}),
    ("adam", {"weight_decay": 0.1}),
    ("adam", {"weight_decay": 0.1, "decoupled_weight_decay": True}),
    ("adam", {"amsgrad": True}),
    ("adam", {"amsgrad": True, "maximize": True, "weight_decay": 0.05,
              "decoupled_weight_decay": True, "beta1": 0.8, "beta2": 0.99}),
    ("adagrad", {}),
    ("adagrad", {"lr_decay": 0.01, "weight_decay": 0.1, "maximize": True}),
    # eps large enough to matter next to sqrt(state) >= 0.3: where eps enters the formula
    # (inside or outside the sqrt, scaled by the bias correction or not) changes results by
    # far more than rounding, so the float32 tests alone catch a misplaced eps.
    ("rmsprop", {"eps": 1e-3}),
    ("rmsprop", {"eps": 1e-3, "centered": True}),
    ("adam", {"eps": 1e-3}),
    ("adam", {"eps": 1e-3, "amsgrad": True}),
    ("adagrad", {"eps": 1e-3}),
]

LR = {"sgd": 0.1, "rmsprop": 0.01, "adam": 0.01, "adagrad": 0.1}


def case_id(case):
    kernel, opts = case
    return kernel + ("-" + "-".join(f"{k}={v}" for k, v in opts.items()) if opts else "")


def state_names(kernel, opts):
    """The state arrays this case reads and writes, in keyword order."""
    if kernel == "sgd":
        return ["momentum_buffer"] if opts.get("momentum", 0) else []
    if kernel == "rmsprop":
        names = ["square_avg"]
        if opts.get("momentum", 0):
            names.append("momentum_buffer")
        if opts.get("centered"):
            names.append("grad_avg")
        return names
    if kernel == "adam":
        return ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if opts.get("amsgrad") else [])
    return ["state_sum"]


def make_arrays(kernel, opts, shape, dtype, rng):
    """Fresh random param, grad and state (never zeros), as a dict of arrays."""
    a = {"param": rng.standard_normal(shape), "grad": rng.standard_normal(shape)}
    for name in state_names(kernel, opts):
        if name in ("exp_avg_sq", "square_avg", "state_sum", "max_exp_avg_sq"):
            a[name] = np.abs(rng.standard_normal(shape)) + 0.1
        else:
            a[name] = rng.standard_normal(shape)
    if "grad_avg" in a:  # keep square_avg - grad_avg**2 > 0, as real state is
        a["grad_avg"] = np.sqrt(a["square_avg"]) * rng.uniform(-0.9, 0.9, shape)
    return {k: v.astype(dtype) for k, v in a.items()}


def call(kernel, opts, arrays, backend):
    """Runs one step; ``arrays`` values may be arrays or lists of arrays."""
    kwargs = dict(opts)
    kwargs["lr"] = LR[kernel]
    if kernel in ("adam", "adagrad"):
        kwargs["step"] = 3
    fn = getattr(fastopt, f"{kernel}_step")
    positional = [arrays["param"], arrays["grad"]]
    if kernel == "adam":
        positional += [arrays["exp_avg"], arrays["exp_avg_sq"]]
        if "max_exp_avg_sq" in arrays:
            kwargs["max_exp_avg_sq"] = arrays["max_exp_avg_sq"]
    elif kernel == "rmsprop":
        positional.append(arrays["square_avg"])
        for name in ("momentum_buffer", "grad_avg"):
            if name in arrays:
                kwargs[name] = arrays[name]
    elif kernel == "adagrad":
        positional.append(arrays["state_sum"])
    elif "momentum_buffer" in arrays:
        positional.append(arrays["momentum_buffer"])
    fn(*positional, backend=backend, **kwargs)
