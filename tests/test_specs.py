"""Walks the table of fastopt._specs for every kernel: each hyper-parameter's
out-of-range values raise ValueError naming it and its wrong types TypeError,
on every CPU backend and through the fast path, writing nothing; each array an
option requires is refused when missing; the functions' signatures and
defaults are the table's; the optimizer classes check their groups from it."""
import inspect
import math
import re

import numpy as np
import pytest

import fastopt
from conftest import CPU_BACKENDS
from fastopt import _entry
from fastopt._specs import KERNELS, REQUIRED

INF = float("inf")


def _arrays(rng, n=37, dtype=np.float32):
    return rng.standard_normal(n).astype(dtype)


def _positive(rng, n=37):
    return (np.abs(rng.standard_normal(n)) + 0.1).astype(np.float32)


# A valid call of each kernel: every array given (optional ones too) and the
# required hyper-parameters. Only these shapes are kernel knowledge; the rest
# of this module reads the table.
def _valid_call(kernel, rng):
    a = lambda: _arrays(rng)   # noqa: E731
    x = rng.standard_normal((6, 3, 4)).astype(np.float32)
    c = lambda: rng.standard_normal(3).astype(np.float32)   # noqa: E731
    return {
        "sgd_step": lambda: dict(param=a(), grad=a(), momentum_buffer=a(), lr=0.1, momentum=0.9),
        "rmsprop_step": lambda: dict(param=a(), grad=a(), square_avg=_positive(rng) + 1.0,
                                     momentum_buffer=a(), grad_avg=a() * 0.1, lr=0.01),
        "adam_step": lambda: dict(param=a(), grad=a(), exp_avg=a(), exp_avg_sq=_positive(rng),
                                  max_exp_avg_sq=_positive(rng), step=2, lr=0.01),
        "adagrad_step": lambda: dict(param=a(), grad=a(), state_sum=_positive(rng), step=2, lr=0.1),
        "batch_norm_forward": lambda: dict(x=x, gamma=c(), beta=c(), running_mean=c(),
                                           running_var=np.abs(c()) + 0.5),
        "batch_norm_backward": lambda: dict(dy=rng.standard_normal(x.shape).astype(np.float32),
                                            x=x, gamma=c(), save_mean=c(),
                                            save_invstd=np.abs(c()) + 0.5),
        "dropout_forward": lambda: dict(x=a(), p=0.3, seed=7),
        "dropout_backward": lambda: dict(dy=a(), mask=fastopt.dropout_mask(37, 0.3, seed=7), p=0.3),
        "dropout_mask": lambda: dict(shape=(5, 7), p=0.3, seed=7),
        "ema_update": lambda: dict(avg=a(), param=a(), decay=0.9),
        "clip_grad_norm": lambda: dict(grads=[a(), _arrays(rng, 5)], max_norm=0.5),
        "grad_norm": lambda: dict(grads=[a(), _arrays(rng, 5)]),
    }[kernel]()


def out_of_range(kind):
    """Values of the right type outside the kind's range (derived from its bounds)."""
    if kind.type in ("real", "scale"):
        bad = [math.nan]
        if kind.low != -INF:
            bad.append(kind.low if kind.low_open else kind.low - 0.5)
        elif kind.low_open:
            bad.append(-INF)
        if kind.high != INF:
            bad.append(kind.high if kind.high_open else kind.high + 0.5)
        elif kind.high_open:
            bad.append(INF)
        return bad
    if kind.type == "int":
        return [kind.low - 1] + ([kind.high if kind.high_open else kind.high + 1]
                                 if kind.high != INF else [])
    return {"bool": [], "str": ["gpu"], "shape": [(-1,), (2, -3)]}[kind.type]


WRONG_TYPES = {"real": ["0.5", True, None], "int": [1.5, True, "1"], "bool": [1, "yes", None],
               "str": [1, None], "shape": [("a",), 2.5],
               "scale": ["0.5", True, np.ones(1, np.float64), np.ones(2, np.float32)]}


def wrong_types(kind):
    return [w for w in WRONG_TYPES[kind.type] if not (w is None and kind.optional)]


CASES = [(k, h.name, bad, err) for k, spec in KERNELS.items() for h in spec.hypers
         for err, values in ((ValueError, out_of_range(h.kind)), (TypeError, wrong_types(h.kind)))
         for bad in values]


def _fn(kernel):
    return getattr(fastopt, kernel)


def _flat(call):
    out = []
    for v in call.values():
        if isinstance(v, np.ndarray):
            out.append(v)
        elif isinstance(v, list):
            out.extend(v)
    return out


def _assert_refused(kernel, call, error, match):
    arrays = _flat(call)
    before = [a.tobytes() for a in arrays]
    with pytest.raises(error, match=match):
        _fn(kernel)(**call)
    assert [a.tobytes() for a in arrays] == before   # bit-identical: nothing written


def _names(name):
    return rf"\b{re.escape(name)}\b"


# every case on every CPU backend and "auto" (the fast path first); a bad backend once
BACKEND_CASES = [c + (b,) for c in CASES for b in (["auto"] if c[1] == "backend"
                                                  else CPU_BACKENDS + ["auto"])]


@pytest.mark.parametrize("kernel, name, bad, error, backend", BACKEND_CASES,
                         ids=[f"{k}-{n}={x!r}-{b}" for k, n, x, _, b in BACKEND_CASES])
def test_bad_hyper_parameter_is_refused(kernel, name, bad, error, backend, rng):
    call = _valid_call(kernel, rng)
    call["backend"] = backend
    call[name] = bad
    # the message names the parameter (a wrong backend name: "backend must be one of ...")
    _assert_refused(kernel, call, error, _names(name))


FAST = [k for k in KERNELS if hasattr(_fn(k), "source")]   # entry points with a fast path


def _precheck(kernel):
    """The pre-check the generated entry point inlines, as a function of its arguments."""
    code = compile(f"({_entry.plain_expr(KERNELS[kernel])})", kernel, "eval")
    return lambda values: eval(code, _entry.precheck_scope(KERNELS[kernel]), values)


def _full(kernel, call):
    sig = inspect.signature(_fn(kernel))
    return {n: call.get(n, p.default) for n, p in sig.parameters.items()}


# A backend name that is a str passes the pre-check: the native function declines
# every backend but the cpp one itself (tests/test_fast_path.py).
PRECHECK_CASES = [c for c in CASES if c[0] in FAST and not (c[1] == "backend" and c[3] is ValueError)]


@pytest.mark.parametrize("kernel, name, bad, error", PRECHECK_CASES,
                         ids=[f"{k}-{n}={b!r}" for k, n, b, _ in PRECHECK_CASES])
def test_fast_path_precheck_declines_every_bad_value(kernel, name, bad, error, rng):
    call = _full(kernel, _valid_call(kernel, rng))
    plain = _precheck(kernel)
    assert plain(call) is True          # plain calls do take the fast path
    call[name] = bad
    assert not plain(call)


def test_fast_kernels_are_the_native_ones():
    # native (cpp) fast paths, and the numba backend's (fastopt/backends/numba/_fast.py)
    assert set(FAST) == {"sgd_step", "rmsprop_step", "adam_step", "adagrad_step",
                         "batch_norm_forward", "batch_norm_backward"} | _entry.NUMBA_FAST
    for k in FAST:   # the generated entry point inlines exactly this pre-check
        assert " ".join(_entry.plain_expr(KERNELS[k]).split()) in " ".join(_fn(k).source.split())


def _trigger(spec, need):
    """A valid value of ``need.option`` under which ``need`` holds."""
    if need.op == "==":
        return need.value
    return spec.hyper(need.option).kind.example


REQUIRED_ROLES = [(k, r) for k, spec in KERNELS.items() for r in spec.arrays if r.when]


@pytest.mark.parametrize("backend", CPU_BACKENDS + ["auto"])
@pytest.mark.parametrize("kernel, role", REQUIRED_ROLES,
                         ids=[f"{k}-{r.name}" for k, r in REQUIRED_ROLES])
def test_array_an_option_requires_is_refused_when_missing(kernel, role, backend, rng):
    spec = KERNELS[kernel]
    call = _valid_call(kernel, rng)
    call["backend"] = backend
    call[role.when.option] = _trigger(spec, role.when)
    if kernel == "batch_norm_forward":   # the pair rule: both running statistics go
        call["running_mean"] = call["running_var"] = None
    call[role.name] = None
    _assert_refused(kernel, call, ValueError, re.escape(role.missing))
    if kernel in FAST:
        assert not _precheck(kernel)(_full(kernel, call))


@pytest.mark.parametrize("kernel", [k for k, spec in KERNELS.items() if spec.rules])
def test_rules_are_enforced(kernel, rng):
    """Each cross-parameter rule: a call breaking it is refused with its message."""
    breakers = {"Nesterov momentum requires a momentum and zero dampening":
                [dict(nesterov=True, momentum=0.0), dict(nesterov=True, dampening=0.1)],
                "running_mean and running_var must both be arrays or both be None":
                [dict(running_mean=None), dict(running_var=None)],
                KERNELS["sgd_step"].rules[-1].message: [dict(stochastic_rounding=True)]}
    for rule in KERNELS[kernel].rules:
        assert rule.message in breakers, f"no breaking case for the rule {rule.expr!r}"
        for change in breakers[rule.message]:
            call = dict(_valid_call(kernel, rng), **change)
            _assert_refused(kernel, call, ValueError, rule.message)
            if kernel in FAST:
                assert not _precheck(kernel)(_full(kernel, call))


@pytest.mark.parametrize("kernel", KERNELS)
def test_signature_is_the_table(kernel):
    spec = KERNELS[kernel]
    params = inspect.signature(_fn(kernel)).parameters
    if kernel in FAST:   # the generated entry point has the validated function's signature
        assert inspect.signature(_fn(kernel).__wrapped__) == inspect.signature(_fn(kernel))
    arrays, hypers = [r.name for r in spec.arrays], [h.name for h in spec.hypers]
    assert set(params) == set(arrays) | set(hypers)
    assert [n for n in params if n in arrays] == arrays      # same order as the table
    assert [n for n in params if n in hypers] == hypers
    for r in spec.arrays:   # only optional arrays may default to None (some have no default)
        assert params[r.name].default in ((inspect.Parameter.empty, None) if r.optional
                                          else (inspect.Parameter.empty,))
    for h in spec.hypers:
        want = inspect.Parameter.empty if h.default is REQUIRED else h.default
        assert params[h.name].default == want, h.name
        if h.default is not REQUIRED:   # and the default is itself valid
            from fastopt import _validate
            assert _validate.check(h.kind, h.name, h.default) == h.default


@pytest.mark.parametrize("kernel", KERNELS)
def test_docstring_lists_the_table(kernel):
    doc = _fn(kernel).__doc__
    assert _entry.parameters_doc(KERNELS[kernel]) in doc
    for r in KERNELS[kernel].arrays:
        assert f"\n    {r.name}: " in doc
    for h in KERNELS[kernel].hypers:
        assert f"\n    {h.name}: " in doc


def test_kind_examples_are_valid():
    from fastopt import _validate
    for spec in KERNELS.values():
        for h in spec.hypers:
            assert _validate.check(h.kind, h.name, h.kind.example) == h.kind.example


# ---------------------------------------------------------------- classes
CLASSES = [("SGD", "sgd_step"), ("RMSprop", "rmsprop_step"), ("Adam", "adam_step"),
           ("AdamW", "adam_step"), ("Adagrad", "adagrad_step")]
GROUP_CASES = [(cls, h, bad, err) for cls, k in CLASSES
               for h in KERNELS[k].hypers + KERNELS[k].group_options if not h.per_call
               for err, values in ((ValueError, out_of_range(h.kind)),
                                   (TypeError, wrong_types(h.kind)))
               for bad in values]


def _group_kwargs(h, bad):
    if h.name in ("beta1", "beta2"):   # the classes take torch's betas pair
        return {"betas": (bad, 0.999) if h.name == "beta1" else (0.9, bad)}
    return {h.name: bad}


def _message(h, error):
    if h.name in ("beta1", "beta2"):   # "Invalid beta parameter at index 0: 1.0", "betas[0] must be..."
        index = int(h.name[-1]) - 1
        return rf"beta parameter at index {index}|betas\[{index}\]"
    return _names(h.name)


@pytest.mark.parametrize("cls, h, bad, error", GROUP_CASES,
                         ids=[f"{c}-{h.name}={b!r}" for c, h, b, _ in GROUP_CASES])
def test_optimizer_groups_are_checked_from_the_table(cls, h, bad, error, rng):
    p = _arrays(rng)
    kwargs = _group_kwargs(h, bad)
    with pytest.raises(error, match=_message(h, error)):
        getattr(fastopt, cls)([p], **kwargs)
    opt = getattr(fastopt, cls)([p])            # and a group changed later, before step()
    opt.param_groups[0].update(kwargs)
    before = p.copy()
    with pytest.raises(error, match=_message(h, error)):
        opt.step([_arrays(rng)])
    np.testing.assert_array_equal(p, before)


@pytest.mark.parametrize("cls, h, bad, error", GROUP_CASES,
                         ids=[f"{c}-{h.name}={b!r}" for c, h, b, _ in GROUP_CASES])
def test_torch_dropin_checks_groups_from_the_table(cls, h, bad, error):
    """fastopt.torch's constructors are torch's own (torch's checks and messages); every
    step() then checks each group with the table, before writing anything."""
    torch = pytest.importorskip("torch")
    import fastopt.torch as fot
    p = torch.nn.Parameter(torch.randn(5))
    opt = getattr(fot, cls)([p])
    opt.param_groups[0].update(_group_kwargs(h, bad))
    p.grad = torch.randn(5)
    before = p.detach().clone()
    with pytest.raises(error, match=_message(h, error)):
        opt.step()
    assert torch.equal(p.detach(), before)


def test_nesterov_rule_in_the_classes(rng):
    with pytest.raises(ValueError, match="Nesterov momentum requires"):
        fastopt.SGD([_arrays(rng)], momentum=0.0, nesterov=True)


def test_precheck_default_shortcuts_are_the_signatures_valid_defaults():
    """``momentum is _D_momentum or ...``: the shortcut names the signature's own default
    object, which passes the test it skips; another object of equal value takes the test,
    and a default that would fail its test is refused when the entry point is built."""
    spec = KERNELS["sgd_step"]
    scope = _entry.precheck_scope(spec)
    assert {"_D_momentum", "_D_dampening", "_D_weight_decay"} <= set(scope)
    src = fastopt.sgd_step.source
    assert "momentum is _D_momentum or type(momentum) is float" in src
    default = inspect.signature(fastopt.sgd_step).parameters["momentum"].default
    fn = fastopt.sgd_step
    cells = dict(zip(fn.__code__.co_freevars, fn.__closure__))
    assert cells["_D_momentum"].cell_contents is default
    plain = _precheck("sgd_step")
    call = _full("sgd_step", {"param": np.ones(3), "grad": np.ones(3), "lr": 0.1})
    assert plain(call) is True
    for bad in (-1.0, float("nan"), float("inf"), 1, True):
        assert not plain({**call, "momentum": bad})
    h = spec.hyper("momentum")
    with pytest.raises(ValueError, match="fails its pre-check"):
        _entry._check_default(spec, h, _entry.kind_test(h.kind, h.name), -1.0)
