"""Mixed precision of the optimizer steps (docs/mixed-precision.md), on every backend.

ONE table of cases (optimizer x options x types of param/grad/state x master copy /
grad_scale / stochastic rounding) drives every available backend through the public
functional API:

- every compiled backend (cpp, numba, and cuda when present) is within one 16-bit step
  of the float64 NumPy reference for 16-bit values (a float32 kernel rounds its result
  once; near a rounding boundary the reference may round the other way), and within the
  float32 bound of tests/conftest.py for float32 values;
- cpp and numba (and cuda) are bit-identical, stochastic rounding included;
- a master copy's param is the master rounded to nearest even, bit for bit;
- ``found_inf`` nonzero leaves every array bit-identical;
- ``grad_scale`` equals passing float32 gradients pre-divided by it, bit for bit;
- bad type mixes raise TypeError naming the array and write nothing (list members too).
"""
import re

import ml_dtypes
import numpy as np
import pytest

import fastopt
from conftest import OPTIM_ULPS, UNIT_ROUNDOFF, element_scale

BF16, F16 = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16)
F32, F64 = np.dtype(np.float32), np.dtype(np.float64)
HALVES = (BF16, F16)
COMPILED = [b for b in ("cpp", "numba", "cuda") if b in fastopt.available_backends()]

FN = {"sgd": fastopt.sgd_step, "rmsprop": fastopt.rmsprop_step, "adam": fastopt.adam_step,
      "adagrad": fastopt.adagrad_step}
STATES = {"sgd": ("momentum_buffer",), "rmsprop": ("square_avg", "grad_avg", "momentum_buffer"),
          "adam": ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"), "adagrad": ("state_sum",)}
BASE = {"sgd": dict(lr=0.05), "rmsprop": dict(lr=0.01), "adam": dict(lr=0.01, step=3),
        "adagrad": dict(lr=0.1, step=3)}
# every option of every optimizer, each on at least one row
OPTIONS = {
    "sgd": [dict(), dict(momentum=0.9, first_step=True), dict(momentum=0.9, dampening=0.1,
            weight_decay=0.01), dict(momentum=0.9, nesterov=True, maximize=True)],
    "rmsprop": [dict(), dict(centered=True, momentum=0.9, weight_decay=0.01),
                dict(momentum=0.5, alpha=0.9, maximize=True)],
    "adam": [dict(), dict(amsgrad=True, weight_decay=0.01),
             dict(decoupled_weight_decay=True, weight_decay=0.1, maximize=True, beta1=0.8)],
    "adagrad": [dict(), dict(lr_decay=0.01, weight_decay=0.01, maximize=True, eps=1e-6)],
}
# (param, grad, state, mode): mode is "" | "master" | "scale" (a float) | "scale_array" | "sr"
TYPES = [(P, P, P, "") for P in HALVES] + [(P, P, F32, "") for P in HALVES] + [
    (BF16, F32, F32, ""), (F16, F32, F32, "master"), (BF16, BF16, F32, "master"),
    (BF16, BF16, BF16, "master"), (F16, F16, F32, "scale"), (BF16, F32, F32, "scale_array"),
    (BF16, BF16, F32, "sr"), (F16, F16, F16, "sr"), (F32, F32, F32, "scale_array"),
    (F64, F64, F64, "scale"), (BF16, BF16, F32, "master+scale_array")]
SCALE = 512.0


def _needs(opt, options):
    """The state roles in use."""
    need = {"momentum_buffer": options.get("momentum", 0.0) != 0.0,
            "grad_avg": options.get("centered", False),
            "max_exp_avg_sq": options.get("amsgrad", False)}
    return [r for r in STATES[opt] if need.get(r, True)]


def make_call(opt, options, n, P, G, S, mode, rng):
    """Fresh random arrays (never zeros) and the keywords of one call."""
    kw = dict(BASE[opt], **options)
    master = rng.standard_normal(n).astype(np.float32)
    kw["param"] = master.astype(P)
    g = rng.standard_normal(n)
    scale = SCALE if "scale" in mode else 1.0
    kw["grad"] = (g * scale).astype(G)
    for role in _needs(opt, options):
        if role in ("square_avg", "exp_avg_sq", "max_exp_avg_sq", "state_sum"):
            value = rng.uniform(0.5, 2.0, n)
        else:
            value = 0.3 * rng.standard_normal(n)
        kw[role] = value.astype(S)
    if "grad_avg" in kw:   # reachable centered state: square_avg >= grad_avg**2 (as on a real
        # trajectory from zeros); otherwise sqrt of a negative makes the reference NaN
        kw["square_avg"] = (kw["grad_avg"].astype(np.float64) ** 2 + rng.uniform(0.5, 2.0, n)
                            ).astype(S)
    if opt == "adam" and options.get("amsgrad"):
        kw["max_exp_avg_sq"] = (kw["exp_avg_sq"].astype(np.float64) * rng.uniform(0.5, 1.5, n)
                                ).astype(S)
    if "master" in mode:
        kw["master_param"] = master
    if "scale_array" in mode:
        kw["grad_scale"] = np.array([scale], np.float32)
    elif "scale" in mode:
        kw["grad_scale"] = scale
    if mode == "sr":
        kw.update(stochastic_rounding=True, seed=int(rng.integers(2 ** 63)), step=kw.get("step", 3))
    return kw


def _written(opt, kw):
    return ["param", "master_param", *STATES[opt]]


def copy_call(kw, to=None):
    """A deep copy of the call's arrays (``to``: the array module of the copies)."""
    out = {}
    for k, v in kw.items():
        if isinstance(v, np.ndarray):
            out[k] = v.copy() if to is None else to(v)
        else:
            out[k] = v
    return out


def run(opt, kw, backend):
    """Runs a copy of the call on ``backend``; returns its arrays as NumPy arrays."""
    if backend == "cuda":
        import cupy
        call = copy_call(kw, cupy.asarray)
        FN[opt](**call, backend=backend)
        return {k: cupy.asnumpy(v) if isinstance(v, cupy.ndarray) else v for k, v in call.items()}
    call = copy_call(kw)
    FN[opt](**call, backend=backend)
    return call


def _monotone(a):
    """16-bit patterns as integers ordered like the values (-0 and +0 equal)."""
    b = a.view(np.uint16).astype(np.int32)
    return np.where(b & 0x8000, -(b & 0x7FFF), b)


def assert_within_one_step(got, want, scale, err_msg):
    """A stored value of a compiled backend against the reference's: 16-bit values at most
    one step apart (or within the float32 bound of the element's scale, for values that
    cancel); float32/float64 ones within OPTIM_ULPS units of roundoff of their scale."""
    dt = got.dtype
    if dt in HALVES:
        steps = np.abs(_monotone(got) - _monotone(want))
        err = np.abs(got.astype(np.float64) - want.astype(np.float64))
        bound = OPTIM_ULPS * UNIT_ROUNDOFF[F32] * scale
        bad = (steps > 1) & ~(err <= bound) & ~(np.isnan(got.astype(np.float32))
                                                 & np.isnan(want.astype(np.float32)))
    else:
        err = np.abs(got.astype(np.float64) - want.astype(np.float64))
        bad = ~(err <= OPTIM_ULPS * UNIT_ROUNDOFF[dt] * scale)
    if bad.any():
        i = int(np.flatnonzero(bad.reshape(-1))[0])
        raise AssertionError(f"{err_msg}: {int(bad.sum())} of {bad.size} off; first at {i}: got "
                             f"{got.reshape(-1)[i]!r}, reference {want.reshape(-1)[i]!r}")


CASES = [(opt, i, t) for opt in FN for i in range(len(OPTIONS[opt])) for t in range(len(TYPES))]


def _case_id(c):
    opt, i, t = c
    P, G, S, mode = TYPES[t]
    return f"{opt}{i}-{P}/{G}/{S}-{mode or 'plain'}"


def _compare(opt, kw, got, want, where):
    arrays = [kw[k] for k in _written(opt, kw) if k in kw] + [kw["grad"]]
    scale = element_scale(*arrays, *[want[k] for k in _written(opt, kw) if k in kw])
    if "grad_scale" in kw:   # the gradient's scale is its unscaled value's
        scale = element_scale(*[kw[k] for k in _written(opt, kw) if k in kw],
                              np.asarray(kw["grad"], np.float64) / SCALE,
                              *[want[k] for k in _written(opt, kw) if k in kw])
    for k in _written(opt, kw):
        if k in kw:
            assert_within_one_step(got[k], want[k], scale, f"{where}: {k}")


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_backend_against_the_float64_reference(case, backend, rng):
    opt, i, t = case
    P, G, S, mode = TYPES[t]
    if backend == "cuda" and BF16 in (P, G, S):
        pytest.skip("cupy has no bfloat16 arrays (cuda takes bfloat16 as torch tensors)")
    kw = make_call(opt, OPTIONS[opt][i], 1023, P, G, S, mode, rng)
    want = run(opt, kw, "numpy")
    got = run(opt, kw, backend)
    _compare(opt, kw, got, want, f"{backend} {_case_id(case)}")
    if "master" in mode:   # the param is its master's rounding, bit for bit
        assert got["param"].tobytes() == got["master_param"].astype(P).tobytes()


SIZES = [0, 1, 7, 15, 17, 1023, 4097]
SPLIT = 1_000_003   # crosses the thread split of the compiled backends
SIZE_TYPES = [0, 2, 5, 6, 10]   # rows of TYPES swept over the sizes


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("n", SIZES + [SPLIT])
@pytest.mark.parametrize("opt", FN)
@pytest.mark.parametrize("t", SIZE_TYPES, ids=[_case_id(("", 0, t))[3:] for t in SIZE_TYPES])
def test_sizes(opt, t, n, backend, rng):
    P, G, S, mode = TYPES[t]
    if n == SPLIT and t not in (2, 5):
        pytest.skip("the thread split is swept on two rows")
    if backend == "cuda" and BF16 in (P, G, S):
        pytest.skip("cupy has no bfloat16 arrays")
    options = OPTIONS[opt][-1]
    kw = make_call(opt, options, n, P, G, S, mode, rng)
    want = run(opt, kw, "numpy")
    got = run(opt, kw, backend)
    _compare(opt, kw, got, want, f"{backend} n={n}")


CROSS = [c for c in CASES if c[1] == len(OPTIONS[c[0]]) - 1 or TYPES[c[2]][3] == "sr"]


@pytest.mark.skipif(len(COMPILED) < 2, reason="needs two compiled backends")
@pytest.mark.parametrize("n", [4097, SPLIT])
@pytest.mark.parametrize("case", CROSS, ids=[_case_id(c) for c in CROSS])
def test_compiled_backends_are_bit_identical(case, n, rng):
    opt, i, t = case
    P, G, S, mode = TYPES[t]
    kw = make_call(opt, OPTIONS[opt][i], n, P, G, S, mode, rng)
    backends = [b for b in COMPILED if not (b == "cuda" and BF16 in (P, G, S))]
    results = [run(opt, kw, b) for b in backends]
    for b, r in zip(backends[1:], results[1:]):
        for k in _written(opt, kw):
            if k in kw:
                assert r[k].tobytes() == results[0][k].tobytes(), f"{k}: {b} != {backends[0]}"


@pytest.mark.parametrize("backend", ["numpy"] + COMPILED)
@pytest.mark.parametrize("opt", FN)
@pytest.mark.parametrize("t", [0, 3, 5, 9, 12])
def test_found_inf_writes_nothing(opt, t, backend, rng):
    P, G, S, mode = TYPES[t]
    if backend == "cuda" and BF16 in (P, G, S):
        pytest.skip("cupy has no bfloat16 arrays")
    kw = make_call(opt, OPTIONS[opt][-1], 1023, P, G, S, mode, rng)
    skipped = run(opt, dict(kw, found_inf=np.array([np.inf], np.float32)), backend)
    for k, v in kw.items():
        if isinstance(v, np.ndarray):
            assert skipped[k].tobytes() == v.tobytes(), k
    ran = run(opt, dict(kw, found_inf=np.zeros(1, np.float32)), backend)
    plain = run(opt, kw, backend)
    for k in _written(opt, kw):   # found_inf == 0 is the plain step
        if k in kw:
            assert ran[k].tobytes() == plain[k].tobytes(), k


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("opt", FN)
@pytest.mark.parametrize("P", [BF16, F16, F32, F64], ids=str)
@pytest.mark.parametrize("as_array", [False, True], ids=["float", "array"])
def test_grad_scale_equals_pre_divided_gradients(opt, P, as_array, backend, rng):
    if backend == "cuda" and P == BF16:
        pytest.skip("cupy has no bfloat16 arrays")
    G = F64 if P == F64 else F32
    kw = make_call(opt, OPTIONS[opt][-1], 4097, P, P, F64 if P == F64 else F32, "", rng)
    scale = 384.0
    kw["grad"] = (rng.standard_normal(4097) * scale).astype(P)
    scaled = run(opt, dict(kw, grad_scale=np.array([scale], np.float32) if as_array else scale),
                 backend)
    pre = run(opt, dict(kw, grad=(kw["grad"].astype(G) / G.type(scale))), backend)
    for k in _written(opt, kw):
        if k in kw:
            assert scaled[k].tobytes() == pre[k].tobytes(), k


# ------------------------------------------------------------------ bad type mixes
# (label, change, the array the message names); the list form puts the bad type in the
# last of three members (a rule on param's own type fails on the first member)
BAD = [
    ("bf16 grad, float32 param without master", dict(P=F32, grad=BF16), "grad"),
    ("float16 grad with bf16 param", dict(P=BF16, grad=F16), "grad"),
    ("float32 grad with float64 param", dict(P=F64, grad=F32), "grad"),
    ("float16 master", dict(P=BF16, master=F16), "master_param"),
    ("bfloat16 master", dict(P=F16, master=BF16), "master_param"),
    ("master beside a float32 param", dict(P=F32, master=F32), "master_param[0]"),
    ("master beside a float64 param", dict(P=F64, master=F32), "master_param[0]"),
    ("state narrower than the param", dict(P=F32, state=BF16), "exp_avg"),
    ("float32 state beside float64", dict(P=F64, state=F32), "exp_avg"),
    ("float16 state beside bf16", dict(P=BF16, state=F16), "exp_avg"),
    ("float64 state beside bf16", dict(P=BF16, state=F64), "exp_avg"),
    # (in the list form the first bad member's exp_avg already differs from the others')
    ("two state types", dict(P=BF16, state=F32, exp_avg_sq=BF16), "exp_avg_sq|exp_avg[2]"),
    ("integer param", dict(P=np.dtype(np.int16)), "param[0]"),
    ("found_inf float64", dict(P=BF16, found_inf=F64), "found_inf"),
    ("grad_scale float16 array", dict(P=BF16, grad_scale=F16), "grad_scale"),
]


def _member(change, bad, n, rng):
    """One member's arrays of an Adam call; ``bad``: with the change applied."""
    P = change["P"]
    G, S = (change.get("grad", P), change.get("state", P)) if bad else (P, P)
    out = dict(param=rng.standard_normal(n).astype(P), grad=rng.standard_normal(n).astype(G),
               exp_avg=rng.standard_normal(n).astype(S),
               exp_avg_sq=rng.uniform(0.5, 1.5, n).astype(change.get("exp_avg_sq", S) if bad else S))
    if "master" in change:
        out["master_param"] = rng.standard_normal(n).astype(change["master"] if bad else F32)
    return out


def _bad_call(change, n, rng, count):
    members = [_member(change, i == count - 1, n, rng) for i in range(count)]
    kw = {k: [m[k] for m in members] for k in members[0]} if count > 1 else members[0]
    if "found_inf" in change:
        kw["found_inf"] = np.zeros(1, change["found_inf"])
    if "grad_scale" in change:
        kw["grad_scale"] = np.ones(1, change["grad_scale"])
    return dict(kw, step=2, lr=0.01)


def _flat(kw):
    out = []
    for v in kw.values():
        out.extend(v if isinstance(v, list) else [v] if isinstance(v, np.ndarray) else [])
    return out


@pytest.mark.parametrize("backend", ["auto", "numpy"] + [b for b in COMPILED if b != "cuda"])
@pytest.mark.parametrize("label, change, name", BAD, ids=[b[0] for b in BAD])
@pytest.mark.parametrize("count", [1, 3], ids=["single", "list"])
def test_bad_type_mix_raises_and_writes_nothing(label, change, name, count, backend, rng):
    kw = _bad_call(change, 33, rng, count)
    before = [x.tobytes() for x in _flat(kw)]
    name = name.split("|")[count > 1] if "|" in name else name
    base = name.split("[")[0]
    if count == 1 or base in ("found_inf", "grad_scale"):
        want = rf"^{base}\b"
    else:
        want = "^" + re.escape(name if "[" in name else f"{name}[2]")
    with pytest.raises(TypeError, match=want):
        fastopt.adam_step(**kw, backend=backend)
    assert [x.tobytes() for x in _flat(kw)] == before


def test_stochastic_rounding_needs_step_for_sgd_and_rmsprop(rng):
    p, g = rng.standard_normal(8).astype(BF16), rng.standard_normal(8).astype(BF16)
    before = p.tobytes()
    for fn, extra in ((fastopt.sgd_step, {}), (fastopt.rmsprop_step,
                                               dict(square_avg=np.ones(8, np.float32)))):
        with pytest.raises(ValueError, match="needs step="):
            fn(p, g, lr=0.1, stochastic_rounding=True, **extra)
        assert p.tobytes() == before


def test_stochastic_rounding_differs_by_seed_and_is_reproducible(rng):
    """The reference: same (seed, step) -> same bits; another seed -> other bits."""
    kw = make_call("sgd", {}, 4097, BF16, BF16, BF16, "sr", rng)
    a = run("sgd", kw, "numpy")["param"]
    b = run("sgd", kw, "numpy")["param"]
    c = run("sgd", dict(kw, seed=kw["seed"] + 1), "numpy")["param"]
    d = run("sgd", dict(kw, step=kw["step"] + 1), "numpy")["param"]
    assert a.tobytes() == b.tobytes()
    assert a.tobytes() != c.tobytes() and a.tobytes() != d.tobytes()
    nearest = run("sgd", dict(kw, stochastic_rounding=False), "numpy")["param"]
    # every result is one of the two neighbours of the float32 value
    assert np.all(np.abs(_monotone(a) - _monotone(nearest)) <= 1)


def test_list_call_equals_each_member_alone(rng):
    """A list call with stochastic rounding and a master copy equals calling each member."""
    sizes = [7, 4097, 33]
    calls = [make_call("adam", OPTIONS["adam"][1], n, BF16, BF16, F32, mode, rng)
             for n, mode in zip(sizes, ["sr", "sr", "sr"])]
    seed = calls[0]["seed"]
    for backend in ["numpy"] + [b for b in COMPILED if b != "cuda"]:
        alone = [run("adam", dict(c, seed=seed), backend) for c in calls]
        listed = {k: [c[k].copy() for c in calls] for k in calls[0] if isinstance(calls[0][k], np.ndarray)}
        fastopt.adam_step(**listed, **{k: v for k, v in calls[0].items() if k not in listed},
                          backend=backend)
        for k in listed:
            for i in range(len(sizes)):
                assert listed[k][i].tobytes() == alone[i][k].tobytes(), (backend, k, i)


def test_stochastic_rounding_of_the_reference_is_unbiased(rng):
    """Over many seeds the mean of the stochastically rounded param is the float32 value
    it rounds: within 5 sigma of the Bernoulli rounding per element (and 3 over all)."""
    n, seeds = 64, 400
    kw = make_call("sgd", {}, n, BF16, BF16, BF16, "sr", rng)
    exact = run("sgd", dict(kw, stochastic_rounding=False, param=kw["param"].astype(np.float32),
                            grad=kw["grad"].astype(np.float32)), "numpy")["param"].astype(np.float64)
    total = np.zeros(n)
    for s in range(seeds):
        total += run("sgd", dict(kw, seed=s), "numpy")["param"].astype(np.float64)
    t = (exact.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)   # toward zero
    gap = np.abs((t + np.uint16(1)).view(BF16).astype(np.float64) - t.view(BF16).astype(np.float64))
    err = total / seeds - exact
    sigma = 0.5 * gap / np.sqrt(seeds)          # a Bernoulli's deviation is at most gap / 2
    z = err / sigma   # per element: rounding toward zero, or to nearest, gives |z| ~ 20-40
    assert np.abs(z).max() <= 5 and abs(z.sum()) <= 3 * np.sqrt(n)


def test_native_fast_path_runs_16_bit_as_the_validated_path(rng):
    """A 16-bit call that passes the pre-check (no master, scale, found_inf or stochastic
    rounding) runs on the native fast path, with the validated path's bits
    (every kernel and type mix: tests/test_fast_path.py)."""
    from fastopt import _core
    from fastopt import _scalars
    p, g, m, v = (rng.standard_normal(33).astype(F16) for _ in range(4))
    v = np.abs(v)
    q, h, n, w = (x.copy() for x in (p, g, m, v))
    assert _core.adam_step_fast(p, g, m, v, None, *_scalars.adam(
        step=1, lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, decoupled=False,
        maximize=False), 0, False, "auto") is True
    fastopt.adam_step(q, h, n, w, step=1, lr=0.1, master_param=None, grad_scale=1.0)
    assert [x.tobytes() for x in (p, m, v)] == [x.tobytes() for x in (q, n, w)]


def test_float32_plain_calls_still_take_the_fast_path():
    """The generated pre-check sends every new form to the validated path and keeps the
    plain float32 call on the native one."""
    from fastopt._entry import plain_expr
    from fastopt._specs import KERNELS
    expr = plain_expr(KERNELS["adam_step"])
    for test in ("master_param is None", "grad_scale is None", "found_inf is None",
                 "stochastic_rounding is False"):
        assert test in expr

