"""The native fast path accepts only plainly valid calls; everything the Python
validator rejects must be refused by it first (returning False, touching nothing)."""
import numpy as np
import pytest

from conftest import CPU_BACKENDS
from test_optim_errors import BAD_ARRAYS, adam_arrays, assert_unchanged, snapshot

pytestmark = pytest.mark.skipif("cpp" not in CPU_BACKENDS, reason="C++ extension not built")

SCALARS = (0.9, 0.1, 0.999, 0.001, 1e-8, 0.0, 1.0, 0.1, 0.5, 1.0)  # AdamScalars order


def fast_adam(arrays, vmax=None, amsgrad=False, backend="auto"):
    from fastopt import _core
    return _core.adam_step_fast(*arrays, vmax, *SCALARS, 0, amsgrad, backend)


@pytest.mark.parametrize("mutate, error, match", BAD_ARRAYS)
def test_fast_path_refuses_every_bad_call(mutate, error, match, rng):
    arrays = adam_arrays(rng)
    mutate(arrays)
    before = snapshot(*arrays)
    assert fast_adam(arrays) is False
    assert_unchanged(arrays, before)


def test_fast_path_runs_plain_calls_and_lists(rng):
    arrays = adam_arrays(rng)
    before = snapshot(*arrays)
    assert fast_adam(arrays) is True
    assert not np.array_equal(arrays[0], before[0])
    lists = [[adam_arrays(rng, n)[k] for n in (3, 5)] for k in range(4)]
    assert fast_adam(lists) is True


def test_fast_path_leaves_other_backends_and_missing_state_to_python(rng, monkeypatch):
    arrays = adam_arrays(rng)
    before = snapshot(*arrays)
    assert fast_adam(arrays, backend="numpy") is False
    assert fast_adam(arrays, amsgrad=True) is False          # max_exp_avg_sq missing
    monkeypatch.setenv("FASTOPT_BACKEND", "numba")
    assert fast_adam(arrays) is False
    assert_unchanged(arrays, before)


def test_fast_path_refuses_bad_lists(rng):
    lists = [[adam_arrays(rng, n)[k] for n in (3, 5)] for k in range(4)]
    mismatched = [lists[0], lists[1][:1], lists[2], lists[3]]
    assert fast_adam(mismatched) is False
    overlapping = [lists[0], [lists[1][0], lists[0][1]], lists[2], lists[3]]
    assert fast_adam(overlapping) is False
    mixed = [lists[0], lists[1][0], lists[2], lists[3]]
    assert fast_adam(mixed) is False
    tuples = [tuple(x) for x in lists]   # the Python path takes tuples; the fast path declines
    assert fast_adam(tuples) is False


# ------------------------------------------------------------- batch norm
from test_batchnorm import (BACKWARD_ERRORS, FORWARD_ERRORS, _arrays,  # noqa: E402
                            _bwd_arrays, make)


def _fast_forward(d, training=True, momentum=0.1, eps=1e-5, backend="auto"):
    from fastopt import _core
    return _core.batch_norm_forward_fast(d["x"], d["gamma"], d["beta"], d["running_mean"],
                                         d["running_var"], training, momentum, eps, backend)


@pytest.mark.parametrize("case", [c for c in FORWARD_ERRORS if c[1] is not None],
                         ids=[c[0] for c in FORWARD_ERRORS if c[1] is not None])
def test_batch_norm_forward_fast_path_refuses_every_bad_call(case):
    _, mutate, kwargs, _, _ = case
    d = _arrays()
    mutate(d)
    before = {k: None if v is None else np.array(v, copy=True) for k, v in d.items()}
    assert _fast_forward(d, training=kwargs.get("training", True)) is None
    for k, v in d.items():
        if v is not None:
            np.testing.assert_array_equal(np.asarray(v), before[k])


@pytest.mark.parametrize("case", BACKWARD_ERRORS, ids=[c[0] for c in BACKWARD_ERRORS])
def test_batch_norm_backward_fast_path_refuses_every_bad_call(case):
    from fastopt import _core
    _, mutate, _, _ = case
    d = _bwd_arrays()
    mutate(d)
    assert _core.batch_norm_backward_fast(d["dy"], d["x"], d["gamma"], d["save_mean"],
                                          d["save_invstd"], True, "auto") is None


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(64, 300), (3, 40, 16, 16), (5, 7, 3, 3)],
                         ids=["rows", "planes", "small"])
def test_batch_norm_fast_path_equals_validated_path(shape, training, rng):
    """Plain calls run natively; the same call through the Python validator (a
    numpy-scalar momentum declines the fast path) gives identical bits."""
    import fastopt
    x, gamma, beta, rm, rv, dy = make(rng, shape, np.float32)
    d = dict(x=x, gamma=gamma, beta=beta, running_mean=rm.copy(), running_var=rv.copy())
    fast = _fast_forward(d, training=training)
    assert fast is not None
    rm2, rv2 = rm.copy(), rv.copy()
    slow = fastopt.batch_norm_forward(x, gamma, beta, rm2, rv2, training=training,
                                      momentum=np.float64(0.1), backend="cpp")
    for a, b in zip(fast + (d["running_mean"], d["running_var"]), slow + (rm2, rv2)):
        np.testing.assert_array_equal(a, b)
    from fastopt import _core
    fast_b = _core.batch_norm_backward_fast(dy, x, gamma, fast[1], fast[2], training, "cpp")
    slow_b = fastopt.batch_norm_backward(dy, x, gamma, slow[1], slow[2], training=np.bool_(training),
                                         backend="cpp")
    for a, b in zip(fast_b, slow_b):
        np.testing.assert_array_equal(a, b)


def test_batch_norm_fast_path_leaves_other_backends_to_python(rng, monkeypatch):
    d = _arrays()
    assert _fast_forward(d, backend="numpy") is None
    monkeypatch.setenv("FASTOPT_BACKEND", "numba")
    assert _fast_forward(d) is None


# -------------------------------------- every optimizer step (issue 17)
# The roles come from fastopt._specs, so each kernel's native fast path is
# tried on every array error of the error tables, for every one of its arrays.
from fastopt import _scalars  # noqa: E402
from fastopt._specs import KERNELS  # noqa: E402

STEPS = ["sgd_step", "rmsprop_step", "adam_step", "adagrad_step"]
ALL_ON = {"sgd_step": dict(lr=0.1, momentum=0.9),
          "rmsprop_step": dict(lr=0.01, momentum=0.9, centered=True),
          "adam_step": dict(step=2, lr=0.01, amsgrad=True), "adagrad_step": dict(step=2, lr=0.1)}


def native_roles(kernel):
    """The roles the native fast path takes (a master copy and found_inf never reach it:
    the pre-check sends them to the validated path, tests/test_mixed_precision.py)."""
    return [r for r in KERNELS[kernel].arrays if r.precision != "master" and r.dtype == "float"]


def step_arrays(kernel, rng, n=64):
    """Every array of the kernel (optional ones too), fresh random float32, by role."""
    out = {}
    for r in native_roles(kernel):
        a = rng.standard_normal(n)
        if r.name in ("exp_avg_sq", "max_exp_avg_sq", "square_avg", "state_sum"):
            a = np.abs(a) + 1.0
        out[r.name] = (a * 0.1 if r.name == "grad_avg" else a).astype(np.float32)
    return out


def fast_step(kernel, a, backend="auto", **opts):
    """The kernel's native fast function on the arrays ``a`` (missing roles: None)."""
    from fastopt import _core
    o = dict(ALL_ON[kernel], **opts)
    get = a.get
    if kernel == "sgd_step":
        return _core.sgd_step_fast(get("param"), get("grad"), get("momentum_buffer"), o["lr"],
                                   o["momentum"], 1.0, 0.0, 1.0, False, False, backend)
    if kernel == "rmsprop_step":
        s = _scalars.rmsprop(lr=o["lr"], alpha=0.99, eps=1e-8, weight_decay=0.0,
                             momentum=o["momentum"], maximize=False)
        return _core.rmsprop_step_fast(get("param"), get("grad"), get("square_avg"),
                                       get("grad_avg"), get("momentum_buffer"), *s,
                                       o["centered"], backend)
    if kernel == "adagrad_step":
        s = _scalars.adagrad(step=o["step"], lr=o["lr"], lr_decay=0.0, eps=1e-10,
                             weight_decay=0.0, maximize=False)
        return _core.adagrad_step_fast(get("param"), get("grad"), get("state_sum"), *s, backend)
    return _core.adam_step_fast(get("param"), get("grad"), get("exp_avg"), get("exp_avg_sq"),
                                get("max_exp_avg_sq"), *SCALARS, 0, o["amsgrad"], backend)


def _set(name, f):
    return lambda a: a.__setitem__(name, f(a[name]))


def _readonly(name):
    def mutate(a):
        a[name].setflags(write=False)
    return mutate


def step_errors(kernel):
    """(id, mutate, error, match): the error tables' array cases, for every role."""
    roles = native_roles(kernel)
    ref = roles[0].name
    cases = []
    for i, r in enumerate(roles):
        n = r.name
        cases += [
            (f"{n}-list", _set(n, lambda x: [x]), TypeError,
             f"{roles[1].name} must be a list of arrays like {ref}" if i == 0
             else f"{n} is a list but {ref}"),
            (f"{n}-memoryview", _set(n, lambda x: memoryview(x.tobytes())), TypeError,
             f"{n} must be a numpy.ndarray"),
            (f"{n}-noncontiguous", _set(n, lambda x: np.repeat(x, 2)[::2]), ValueError,
             f"{n} is not C-contiguous"),
            (f"{n}-byteswapped", _set(n, lambda x: x.astype(">f4")), TypeError, f"{n} has dtype >f4"),
        ]
        if i == 0:
            cases.append((f"{n}-int32", _set(n, lambda x: x.astype(np.int32)), TypeError,
                          f"{n} has dtype int32"))
        else:
            cases += [
                (f"{n}-float64", _set(n, lambda x: x.astype(np.float64)), TypeError,
                 f"{n} has dtype float64"),
                (f"{n}-short", _set(n, lambda x: x[:32]), ValueError, rf"{n} has shape \(32,\)"),
                (f"{n}-2d", _set(n, lambda x: x.reshape(8, 8)), ValueError, rf"{n} has shape \(8, 8\)"),
            ]
        if r.written is True:
            cases.append((f"{n}-readonly", _readonly(n), ValueError, f"{n} is read-only"))
        for other in roles[i + 1:]:
            cases.append((f"{n}-overlaps-{other.name}",
                          lambda a, n=n, o=other.name: a.__setitem__(o, a[n]),
                          ValueError, f"{n} and {other.name} overlap"))
    cases.append(("all-int16", lambda a: a.update({k: x.astype(np.int16) for k, x in a.items()}),
                  TypeError, "int16"))
    return cases


STEP_ERRORS = [(k,) + c for k in STEPS for c in step_errors(k)]


@pytest.mark.parametrize("kernel, case, mutate, error, match", STEP_ERRORS,
                         ids=[f"{k}-{c}" for k, c, *_ in STEP_ERRORS])
def test_step_fast_paths_refuse_every_bad_call(kernel, case, mutate, error, match, rng):
    import fastopt
    a = step_arrays(kernel, rng)
    mutate(a)
    arrays = [x for x in a.values() if isinstance(x, np.ndarray)]
    before = snapshot(*arrays)
    assert fast_step(kernel, a) is False
    assert_unchanged(arrays, before)
    # and it is a bad call: the validated path names it
    with pytest.raises(error, match=match):
        getattr(fastopt, kernel)(**a, **ALL_ON[kernel])
    assert_unchanged(arrays, before)


MISSING = [(k, r) for k in STEPS for r in KERNELS[k].arrays if r.when is not None]


@pytest.mark.parametrize("kernel, role", MISSING, ids=[f"{k}-{r.name}" for k, r in MISSING])
def test_step_fast_paths_refuse_missing_required_arrays(kernel, role, rng):
    a = step_arrays(kernel, rng)
    a[role.name] = None
    arrays = [x for x in a.values() if x is not None]
    before = snapshot(*arrays)
    assert fast_step(kernel, a) is False   # ALL_ON turns every option on
    assert_unchanged(arrays, before)


@pytest.mark.parametrize("kernel", STEPS)
def test_step_fast_paths_run_plain_calls_and_lists_and_leave_other_backends(kernel, rng,
                                                                           monkeypatch):
    a = step_arrays(kernel, rng)
    before = snapshot(*a.values())
    assert fast_step(kernel, a, backend="numpy") is False
    assert_unchanged(list(a.values()), before)
    assert fast_step(kernel, a) is True
    assert not np.array_equal(a["param"], before[0])
    lists = {}
    for n in (3, 5):
        for k, x in step_arrays(kernel, rng, n).items():
            lists.setdefault(k, []).append(x)
    assert fast_step(kernel, lists) is True
    assert fast_step(kernel, {k: tuple(x) for k, x in lists.items()}) is False   # tuples: Python
    monkeypatch.setenv("FASTOPT_BACKEND", "numba")
    assert fast_step(kernel, step_arrays(kernel, rng)) is False


def _typed(arrays, dtypes):
    from fastopt import _core
    dts = tuple(np.dtype(d) for d in dtypes)
    return _core.plainly_typed(tuple(None if a is None else [a] for a in arrays), dts, tuple(d.itemsize for d in dts),
                               (True, False) + (True,) * (len(arrays) - 2))


@pytest.mark.parametrize("mutate, error, match", BAD_ARRAYS)
def test_typed_check_refuses_every_bad_call(mutate, error, match, rng):
    """The optimizer classes' check of a mixed-precision plan (fastopt/optim/optimizer.py)
    refuses what the validator refuses, here with every role's type given."""
    arrays = adam_arrays(rng)
    assert _typed(arrays, [np.float32] * 4) is True
    mutate(arrays)
    assert _typed(arrays, [np.float32] * 4) is False


def test_typed_check_holds_each_role_to_its_type(rng):
    import ml_dtypes
    bf16, f32 = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float32)
    p, g, m, v = adam_arrays(rng)
    master = p.copy()
    arrays = [p.astype(bf16), g.astype(bf16), m, v, master]
    types = [bf16, bf16, f32, f32, f32]
    assert _typed(arrays, types) is True
    assert _typed(arrays[:2] + [None, None] + arrays[4:], types) is True   # absent states
    for k, other in [(0, f32), (1, f32), (2, bf16), (4, np.float16)]:
        swapped = list(arrays)
        swapped[k] = arrays[k].astype(other)
        assert _typed(swapped, types) is False, k
    assert _typed([None] + arrays[1:], types) is False
    assert _typed([arrays[4]] + arrays[1:], types) is False     # param is the master (overlap)
    from fastopt import _core
    lists = tuple([a, a.copy()] for a in arrays)
    sizes = tuple(np.dtype(t).itemsize for t in types)
    outs = (True, False, True, True, True)
    assert _core.plainly_typed(lists, tuple(types), sizes, outs) is True
    short = lists[:2] + ([m],) + lists[3:]
    assert _core.plainly_typed(short, tuple(types), sizes, outs) is False   # unequal lengths
    assert _core.plainly_typed(lists, tuple(types[:4]), sizes, outs) is False


# ------------------------------------------ 16-bit params on the native fast path
import ml_dtypes  # noqa: E402

BF16, F16, F32 = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16), np.dtype(np.float32)
FUNCTIONS = {"sgd_step": "_sgd_fast", "rmsprop_step": "_rmsprop_fast", "adam_step": "_adam_fast",
             "adagrad_step": "_adagrad_fast"}


def _typed_arrays(kernel, rng, P, G, S, n=64):
    a = step_arrays(kernel, rng, n)
    return {k: x.astype(P if k == "param" else G if k == "grad" else S) for k, x in a.items()}


@pytest.mark.parametrize("count", [1, 3], ids=["single", "list"])
@pytest.mark.parametrize("P, G, S", [(p, g, s) for p in (BF16, F16) for g in (p, F32)
                                     for s in (p, F32)], ids=str)
@pytest.mark.parametrize("kernel", STEPS)
def test_16_bit_calls_take_the_native_path_bit_for_bit(kernel, P, G, S, count, rng, monkeypatch):
    """A 16-bit param with a grad of its type or float32 and states of its type or float32
    runs natively (no Python validation), with the bits of the validated path."""
    import fastopt
    from fastopt import _validate
    from fastopt.functional import optim
    members = [_typed_arrays(kernel, rng, P, G, S, n) for n in ((1023,) if count == 1
                                                              else (7, 1, 4097))]
    a = members[0] if count == 1 else {k: [m[k] for m in members] for k in members[0]}
    b = {k: ([x.copy() for x in v] if count > 1 else v.copy()) for k, v in a.items()}
    original = [x.tobytes() for x in (b["param"] if count > 1 else [b["param"]])]

    def flat(d):
        return [x.tobytes() for v in d.values() for x in (v if count > 1 else [v])]

    with monkeypatch.context() as m:
        m.setattr(_validate, "call", lambda *args, **kw: pytest.fail("validated, not native"))
        getattr(fastopt, kernel)(**a, **ALL_ON[kernel])
    monkeypatch.setattr(optim, FUNCTIONS[kernel], None)   # the validated path
    getattr(fastopt, kernel)(**b, **ALL_ON[kernel])
    assert flat(a) == flat(b)
    assert flat({"param": a["param"]}) != original   # it did step


@pytest.mark.parametrize("kernel, case, mutate, error, match", STEP_ERRORS,
                         ids=[f"{k}-{c}" for k, c, *_ in STEP_ERRORS])
@pytest.mark.parametrize("S", ["own", "float32"])
def test_16_bit_fast_paths_refuse_every_bad_call(S, kernel, case, mutate, error, match, rng):
    import fastopt
    a = _typed_arrays(kernel, rng, BF16, BF16, BF16 if S == "own" else F32)
    mutate(a)
    arrays = [x for x in a.values() if isinstance(x, np.ndarray)]
    before = snapshot(*arrays)
    assert fast_step(kernel, a) is False
    assert_unchanged(arrays, before)
    with pytest.raises((TypeError, ValueError)):   # an overlap may also mix types
        getattr(fastopt, kernel)(**a, **ALL_ON[kernel])
    assert_unchanged(arrays, before)


def test_16_bit_fast_path_refuses_the_bad_type_mixes(rng):
    from test_mixed_precision import BAD, _bad_call, _flat
    for label, change, _ in BAD:
        if {"master", "found_inf", "grad_scale"} & set(change):
            continue   # the pre-check sends these to the validated path
        for count in (1, 3):
            kw = _bad_call(change, 33, rng, count)
            before = [x.tobytes() for x in _flat(kw)]
            from fastopt import _core
            assert _core.adam_step_fast(kw["param"], kw["grad"], kw["exp_avg"], kw["exp_avg_sq"],
                                        None, *SCALARS, 0, False, "auto") is False, label
            assert [x.tobytes() for x in _flat(kw)] == before


# ------------------------------------------ 16-bit batch norm on the native fast path
def _to16(d, dtype, names=("x", "dy")):
    return {k: (v.astype(dtype) if k in names and v is not None else v) for k, v in d.items()}


@pytest.mark.parametrize("dtype", [BF16, F16], ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(64, 300), (3, 40, 16, 16), (5, 7, 3, 3)],
                         ids=["rows", "planes", "small"])
def test_batch_norm_16_bit_fast_path_equals_validated_path(shape, training, dtype, rng):
    """A 16-bit x / dy with float32 gamma, beta and statistics runs natively, with the
    validated path's bits and output types."""
    import fastopt
    from fastopt import _core
    x, gamma, beta, rm, rv, dy = make(rng, shape, np.float32)
    x, dy = x.astype(dtype), dy.astype(dtype)
    d = dict(x=x, gamma=gamma, beta=beta, running_mean=rm.copy(), running_var=rv.copy())
    fast = _fast_forward(d, training=training)
    assert fast is not None and fast[0].dtype == dtype and fast[1].dtype == np.float32
    rm2, rv2 = rm.copy(), rv.copy()
    slow = fastopt.batch_norm_forward(x, gamma, beta, rm2, rv2, training=training,
                                      momentum=np.float64(0.1), backend="cpp")
    for a, b in zip(fast + (d["running_mean"], d["running_var"]), slow + (rm2, rv2)):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    fast_b = _core.batch_norm_backward_fast(dy, x, gamma, fast[1], fast[2], training, "cpp")
    assert fast_b is not None
    slow_b = fastopt.batch_norm_backward(dy, x, gamma, slow[1], slow[2], training=np.bool_(training),
                                         backend="cpp")
    for a, b in zip(fast_b, slow_b):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("case", [c for c in FORWARD_ERRORS if c[1] is not None],
                         ids=[c[0] for c in FORWARD_ERRORS if c[1] is not None])
def test_batch_norm_16_bit_forward_fast_path_refuses_every_bad_call(case):
    _, mutate, kwargs, _, _ = case
    d = _to16(_arrays(), BF16)
    mutate(d)
    assert _fast_forward(d, training=kwargs.get("training", True)) is None


@pytest.mark.parametrize("case", BACKWARD_ERRORS, ids=[c[0] for c in BACKWARD_ERRORS])
def test_batch_norm_16_bit_backward_fast_path_refuses_every_bad_call(case):
    from fastopt import _core
    _, mutate, _, _ = case
    d = _to16(_bwd_arrays(), BF16)
    mutate(d)
    assert _core.batch_norm_backward_fast(d["dy"], d["x"], d["gamma"], d["save_mean"],
                                          d["save_invstd"], True, "auto") is None


def test_batch_norm_16_bit_fast_path_refuses_type_mixes():
    from fastopt import _core
    good = _to16(_arrays(), BF16)
    assert _fast_forward(dict(good)) is not None
    for name, dtype in [("gamma", BF16), ("beta", np.float64), ("running_mean", BF16),
                        ("running_var", F16), ("x", np.float64)]:
        d = dict(good, **{name: good[name].astype(dtype)})
        assert _fast_forward(d) is None, name
    b = _to16(_bwd_arrays(), BF16)
    for name, dtype in [("dy", F16), ("dy", np.float32), ("gamma", BF16),
                        ("save_mean", np.float64), ("save_invstd", BF16)]:
        d = dict(b, **{name: b[name].astype(dtype)})
        assert _core.batch_norm_backward_fast(d["dy"], d["x"], d["gamma"], d["save_mean"],
                                              d["save_invstd"], True, "auto") is None, name


# ------------------------------------------------------ dropout's native fast path
@pytest.mark.parametrize("dtype", [np.float32, np.float64, BF16, F16], ids=str)
@pytest.mark.parametrize("n", [0, 1, 7, 1023, 4097])
@pytest.mark.parametrize("p", [0.0, 0.3, 1.0])
def test_dropout_fast_path_equals_validated_path(p, n, dtype, rng, monkeypatch):
    """A plain array of any storage type runs natively (no Python validation), with the
    validated path's bits: y, mask and dx."""
    import fastopt
    from fastopt import _validate
    from fastopt.functional import dropout as fdrop
    x = rng.standard_normal((n, 3) if n else (0,)).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    with monkeypatch.context() as m:
        m.setattr(_validate, "call", lambda *a, **k: pytest.fail("validated, not native"))
        y, mask = fastopt.dropout_forward(x, p, seed=2 ** 64 - 9)
        dx = fastopt.dropout_backward(dy, mask, p)
    monkeypatch.setattr(fdrop, "_forward_fast", None)
    monkeypatch.setattr(fdrop, "_backward_fast", None)
    y2, mask2 = fastopt.dropout_forward(x, p, seed=2 ** 64 - 9, backend="cpp")
    dx2 = fastopt.dropout_backward(dy, mask2, p, backend="cpp")
    for a, b in ((y, y2), (mask, mask2), (dx, dx2)):
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_dropout_fast_path_declines_what_python_decides(rng):
    from fastopt import _core
    x = rng.standard_normal(20).astype(np.float32)
    y, mask = _core.dropout_forward_fast(x, 0.5, 3, True, "auto")
    bad_x = [x.tolist(), x.astype(np.int32), x.astype(">f4"), np.repeat(x, 2)[::2],
             memoryview(x)]
    for b in bad_x:
        assert _core.dropout_forward_fast(b, 0.5, 3, True, "auto") is None
        assert _core.dropout_backward_fast(b, mask, 0.5, "auto") is None
    assert _core.dropout_forward_fast(x, 0.5, 3, False, "auto") is None    # eval: x itself
    assert _core.dropout_forward_fast(x, 0.5, 3, True, "numpy") is None
    bad_mask = [None, mask.astype(np.int8), mask[:2], np.concatenate([mask, mask]),
                mask.reshape(1, -1), np.repeat(mask, 2)[::2], mask.tolist()]
    for b in bad_mask:
        assert _core.dropout_backward_fast(x, b, 0.5, "auto") is None
    assert _core.dropout_backward_fast(x, mask, 0.5, "numpy") is None


# ------------------------------------------------------------ the EMA's fast path
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
@pytest.mark.parametrize("sizes", [(1023,), (7, 1, 4097, 0)], ids=["single", "list"])
def test_ema_fast_path_equals_validated_path(sizes, dtype, rng, monkeypatch):
    """ema_update on plain arrays (or lists) runs natively, with the validated path's bits
    (it took the Python validation on every call: 3.5 us an array)."""
    import fastopt
    from fastopt import _validate
    from fastopt.functional import averaging
    avgs = [rng.standard_normal(n).astype(dtype) for n in sizes]
    ps = [rng.standard_normal(n).astype(dtype) for n in sizes]
    twin = [a.copy() for a in avgs]
    one = len(sizes) == 1
    with monkeypatch.context() as m:
        m.setattr(_validate, "call", lambda *a, **k: pytest.fail("validated, not native"))
        fastopt.ema_update(avgs[0] if one else avgs, ps[0] if one else ps, 0.9)
    monkeypatch.setattr(averaging, "_ema_fast", None)
    fastopt.ema_update(twin[0] if one else twin, ps[0] if one else ps, 0.9, backend="cpp")
    assert [a.tobytes() for a in avgs] == [a.tobytes() for a in twin]
    assert sizes[0] == 0 or avgs[0].tobytes() != ps[0].tobytes()


def test_ema_fast_path_refuses_every_bad_call(rng):
    from fastopt import _core
    avg, p = (rng.standard_normal(64).astype(np.float32) for _ in range(2))
    ro = avg.copy()
    ro.setflags(write=False)
    bf = avg.astype(BF16)
    bad = [(avg, p.astype(np.float64)), (avg, p[:32]), (ro, p), (avg, avg), (avg, avg[::-1]),
           (np.repeat(avg, 2)[::2], p), (avg.astype(">f4"), p), (bf, bf), ([avg], p),
           ([avg, avg.copy()], [p]), (avg.tolist(), p), (avg, memoryview(p)),
           ([avg, avg.copy()], [p, p[:3]]), (avg.astype(np.int32), p.astype(np.int32))]
    for a, b in bad:
        before = [x.tobytes() for x in (avg, p)]
        assert _core.ema_update_fast(a, b, 0.9, "auto") is False
        assert [x.tobytes() for x in (avg, p)] == before
    assert _core.ema_update_fast(avg, p, 0.9, "numpy") is False
    assert _core.ema_update_fast(avg, p, 0.9, "auto") is True


# ------------------------------------------- grad_norm and clip_grad_norm fast paths
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=str)
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, float("inf")])
@pytest.mark.parametrize("max_norm", [1e-3, 1e9], ids=["clips", "no-op"])
@pytest.mark.parametrize("sizes", [(1023,), (7, 1, 4097, 0)], ids=["single", "list"])
def test_clip_fast_path_equals_validated_path(sizes, max_norm, norm_type, dtype, rng,
                                              monkeypatch):
    """clip_grad_norm and grad_norm on plain arrays run natively (they took the Python
    validation on every call: 19 us for one array, 370 us for 200), with the validated
    path's norm and bits. An infinite norm_type too (the pre-check sent it to Python: 280
    against 17.5 us over 200 arrays, benchmarks/RESULTS.md, "Session 19")."""
    import fastopt
    from fastopt import _validate
    from fastopt.functional import clipping
    gs = [rng.standard_normal(n).astype(dtype) for n in sizes]
    twin = [g.copy() for g in gs]
    original = gs[0].tobytes()
    one = len(sizes) == 1
    arg = (lambda x: x[0] if one else x)
    with monkeypatch.context() as m:
        m.setattr(_validate, "call", lambda *a, **k: pytest.fail("validated, not native"))
        norm0 = fastopt.grad_norm(arg(gs), norm_type)
        norm = fastopt.clip_grad_norm(arg(gs), max_norm, norm_type)
    monkeypatch.setattr(clipping, "_clip_fast", None)
    monkeypatch.setattr(clipping, "_norm_fast", None)
    want0 = fastopt.grad_norm(arg(twin), norm_type, backend="cpp")
    want = fastopt.clip_grad_norm(arg(twin), max_norm, norm_type, backend="cpp")
    assert type(norm) is float and norm == want and norm0 == want0 == norm
    assert [g.tobytes() for g in gs] == [g.tobytes() for g in twin]
    assert (gs[0].tobytes() == original) == (max_norm > 1)   # scaled exactly when it clips


def test_clip_fast_path_leaves_non_finite_errors_and_bad_calls_to_python(rng):
    import fastopt
    from fastopt import _core
    g = rng.standard_normal(64).astype(np.float32)
    g[3] = np.nan
    before = g.tobytes()
    assert _core.clip_grad_norm_fast(g, 1.0, 2.0, True, "auto", True) is None
    with pytest.raises(RuntimeError, match="non-finite"):
        fastopt.clip_grad_norm(g, 1.0, error_if_nonfinite=True)
    assert g.tobytes() == before
    h = rng.standard_normal(64).astype(np.float32)
    ro = h.copy()
    ro.setflags(write=False)
    bad = [[], [h, h], [h, h[10:20]], [h, h.astype(np.float64)], [h.astype(BF16)],
           (h, h.copy()), [h, h.tolist()], np.repeat(h, 2)[::2], h.astype(">f4"),
           h.astype(np.int32), memoryview(h)]
    for b in bad:
        assert _core.clip_grad_norm_fast(b, 1.0, 2.0, False, "auto", True) is None
        assert _core.grad_norm_fast(b, 2.0, "auto") is None
    assert _core.clip_grad_norm_fast(ro, 1.0, 2.0, False, "auto", True) is None   # scaled
    assert _core.grad_norm_fast(ro, 2.0, "auto") == fastopt.grad_norm(ro, backend="cpp")
    assert _core.grad_norm_fast(h, 2.0, "numpy") is None
    # the native function itself computes the max norm as the validated path does
    k = [h, rng.standard_normal(33).astype(np.float32)]
    want = fastopt.grad_norm(k, float("inf"), backend="cpp")
    assert _core.grad_norm_fast(k, float("inf"), "auto") == want == float(
        max(np.abs(h).max(), np.abs(k[1]).max()))
    twin = [x.copy() for x in k]
    assert _core.clip_grad_norm_fast(k, 0.1, float("inf"), False, "auto", True) == want
    fastopt.clip_grad_norm(twin, 0.1, float("inf"), backend="cpp")
    assert [x.tobytes() for x in k] == [x.tobytes() for x in twin]
