"""fastopt.SGD / RMSprop / Adam / AdamW / Adagrad: trajectories against torch.optim,
parameter groups, lazy state, one call per group, state dicts, .npz files."""
import copy
import importlib.util
import os

import numpy as np
import pytest

import fastopt
from fastopt import optim as O
from conftest import CPU_BACKENDS

# backends whose optim family exists on this branch (numba's arrives separately)
OPT_BACKENDS = [b for b in CPU_BACKENDS
                if b != "numba" or importlib.util.find_spec("fastopt.backends.numba.optim") is not None]

CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01, maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True, eps=1e-6)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.05, eps=1e-6)),
    ("Adam", dict(lr=0.01, amsgrad=True, maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, maximize=True, betas=(0.5, 0.9))),
    ("Adagrad", dict(lr=0.05)),
    ("Adagrad", dict(lr=0.05, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
    ("Adagrad", dict(lr=0.05, eps=1e-6, maximize=True)),
]
IDS = [f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in CASES]
SHAPES = [(13, 7), (5,), (1,), (300,), (2, 3, 4)]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}


def _groups(params, lr):
    """Two groups: the second with half the learning rate."""
    return [{"params": params[:2]}, {"params": params[2:], "lr": lr * 0.5}]


def _missing(step, j):
    """Which gradients are None: parameter 3 starts late (lazy state), 4 skips some steps."""
    return (j == 3 and step < 5) or (j == 4 and step % 7 == 3)


@pytest.mark.parametrize("backend", OPT_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_trajectory_matches_torch(name, kwargs, dtype, backend, rng):
    torch = pytest.importorskip("torch")
    p0 = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    ours = [p.copy() for p in p0]
    opt = getattr(fastopt, name)(_groups(ours, kwargs["lr"]), backend=backend, **kwargs)
    tps = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in p0]
    topt = getattr(torch.optim, name)(_groups(tps, kwargs["lr"]), **kwargs)
    for step in range(50):
        grads = []
        for j, p in enumerate(ours):
            g = None if _missing(step, j) else (rng.standard_normal(p.shape) + 0.3 * p).astype(dtype)
            grads.append(g)
        for t, g in zip(tps, grads):
            t.grad = None if g is None else torch.from_numpy(g.copy())
        opt.step(grads)
        topt.step()
    for a, t in zip(ours, tps):
        np.testing.assert_allclose(a, t.detach().numpy(), **TOL[dtype])
    # and the state, under torch's names
    sd, tsd = opt.state_dict(), topt.state_dict()
    assert sorted(sd["state"]) == sorted(tsd["state"])
    for i, st in tsd["state"].items():
        assert set(sd["state"][i]) == set(st)
        for k, val in st.items():
            if k == "step":
                assert sd["state"][i]["step"] == int(val)
            else:
                np.testing.assert_allclose(sd["state"][i][k], val.numpy(), **TOL[dtype])


@pytest.mark.parametrize("name", ["SGD", "RMSprop", "Adam", "AdamW", "Adagrad"])
def test_defaults_match_torch(name):
    torch = pytest.importorskip("torch")
    ours = getattr(fastopt, name)([np.zeros(3)]).param_groups[0]
    theirs = getattr(torch.optim, name)([torch.nn.Parameter(torch.zeros(3))]).param_groups[0]
    for k, val in ours.items():
        if k != "params":
            assert theirs[k] == val, k


def test_one_call_per_group_and_per_step_count(monkeypatch, rng):
    """Every native call is counted, whether it comes through the public
    functional step (first steps, uneven counts) or the cached fast path."""
    from fastopt import backends as _backends
    mod = _backends.module("optim", _backends.choose("auto", False))
    calls = []
    real = mod.adam

    def spy(params, *a, **kw):
        calls.append((len(params), kw["step"]))
        return real(params, *a, **kw)
    monkeypatch.setattr(mod, "adam", spy)
    # the functional step's native fast path would run without the backend module
    monkeypatch.setattr(fastopt.functional.optim, "_adam_fast", None)
    ps = [rng.standard_normal(s) for s in [(4,), (3, 3), (7,), (2,)]]
    opt = fastopt.Adam([{"params": ps[:3]}, {"params": ps[3:], "lr": 0.1}])
    gs = [rng.standard_normal(p.shape) for p in ps]
    opt.step(gs)
    assert calls == [(3, 1), (1, 1)]
    calls.clear()
    opt.step([gs[0], None, gs[2], gs[3]])        # param 1 skips a step
    assert calls == [(2, 2), (1, 2)]
    calls.clear()
    opt.step(gs)                                  # param 1 now lags: two counts in group 0
    assert sorted(calls[:2]) == [(1, 2), (2, 3)] and calls[2] == (1, 3)
    assert [opt.state_dict()["state"][i]["step"] for i in range(4)] == [3, 2, 3, 3]


def test_lazy_state(rng):
    ps = [rng.standard_normal(5), rng.standard_normal(3)]
    opt = fastopt.Adam(ps, amsgrad=True)
    assert opt.state_dict()["state"] == {}
    opt.step([rng.standard_normal(5), None])
    st = opt.state_dict()["state"]
    assert list(st) == [0] and set(st[0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    sgd = fastopt.SGD([rng.standard_normal(4)], lr=0.1)
    sgd.step([rng.standard_normal(4)])
    assert sgd.state_dict()["state"] == {}             # no momentum: no state, as torch
    ada = fastopt.Adagrad([rng.standard_normal(4)], initial_accumulator_value=0.5)
    st = ada.state_dict()["state"][0]                   # Adagrad: eager, as torch
    assert st["step"] == 0 and np.all(st["sum"] == 0.5)


def test_sgd_first_momentum_step_copies_gradient(rng):
    p = rng.standard_normal(6)
    g = rng.standard_normal(6)
    opt = fastopt.SGD([p], lr=0.1, momentum=0.9, dampening=0.5)
    opt.step([g])
    np.testing.assert_array_equal(opt.state_dict()["state"][0]["momentum_buffer"], g)


# ------------------------------------------------------------- validation
@pytest.mark.parametrize("name,kwargs,match", [
    ("Adam", dict(lr=-1.0), "lr"),
    ("Adam", dict(betas=(1.0, 0.9)), "beta"),
    ("Adam", dict(betas=(0.9, -0.1)), "beta"),
    ("Adam", dict(eps=-1.0), "eps"),
    ("AdamW", dict(weight_decay=-0.1), "weight_decay"),
    ("SGD", dict(momentum=-0.5), "momentum"),
    ("SGD", dict(nesterov=True), "Nesterov"),
    ("SGD", dict(momentum=0.9, dampening=0.1, nesterov=True), "Nesterov"),
    ("RMSprop", dict(alpha=-0.1), "alpha"),
    ("RMSprop", dict(eps=-1e-8), "eps"),
    ("Adagrad", dict(lr_decay=-1.0), "lr_decay"),
    ("Adagrad", dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
])
def test_constructor_validation(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        getattr(fastopt, name)([np.zeros(3)], **kwargs)


def test_constructor_structure_errors():
    a = np.zeros(3)
    with pytest.raises(ValueError, match="more than one"):
        fastopt.Adam([{"params": [a]}, {"params": [a]}])
    with pytest.raises(ValueError, match="empty"):
        fastopt.Adam([])
    with pytest.raises(TypeError):
        fastopt.Adam(a)
    with pytest.raises(TypeError):
        fastopt.Adam([np.zeros(3, np.int32)])
    with pytest.raises(ValueError, match="unknown"):
        fastopt.Adam([{"params": [a], "momentum": 0.9}])
    with pytest.raises(ValueError, match="lr"):
        fastopt.Adam([{"params": [a], "lr": -0.1}])
    with pytest.raises(ValueError, match="share memory"):
        fastopt.Adam([a, a[1:]])
    with pytest.raises(ValueError, match="contiguous"):
        fastopt.Adam([np.zeros(6)[::2]])
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        fastopt.Adam([ro])


def test_bad_step_changes_nothing(rng):
    ps = [rng.standard_normal(4), rng.standard_normal(3)]
    opt = fastopt.Adam([{"params": ps[:1]}, {"params": ps[1:]}])
    opt.step([rng.standard_normal(4), rng.standard_normal(3)])
    before = [p.copy() for p in ps]
    sd = opt.state_dict()
    for grads, exc in [([rng.standard_normal(4), rng.standard_normal(5)], ValueError),
                       ([rng.standard_normal(4), rng.standard_normal(3).astype(np.float32)], TypeError),
                       ([rng.standard_normal(4)], ValueError),
                       ([rng.standard_normal(4), "x"], TypeError)]:
        with pytest.raises(exc):
            opt.step(grads)
    for p, b in zip(ps, before):
        np.testing.assert_array_equal(p, b)
    _assert_state_equal(opt.state_dict(), sd)
    bad = fastopt.Adam([ps[0].copy()], lr=lambda t: -1.0)
    with pytest.raises(ValueError, match="lr"):
        bad.step([rng.standard_normal(4)])


# ------------------------------------------------------------- state dicts
def _assert_state_equal(a, b):
    assert a["param_groups"] == b["param_groups"]
    assert a.get("step_count") == b.get("step_count")
    assert sorted(a["state"]) == sorted(b["state"])
    for i in a["state"]:
        assert set(a["state"][i]) == set(b["state"][i])
        for k, val in a["state"][i].items():
            other = b["state"][i][k]
            if isinstance(val, np.ndarray):
                assert val.dtype == other.dtype
                np.testing.assert_array_equal(val, other)
            else:
                assert val == other


def _train(opt, params, grads_seq):
    for gs in grads_seq:
        opt.step([None if g is None else g.copy() for g in gs])


def _make(name, kwargs, params, backend="auto"):
    sched = fastopt.schedules.warmup_cosine(kwargs["lr"], 3, 40)
    groups = [{"params": params[:2], "lr": sched}, {"params": params[2:]}]
    return getattr(fastopt, name)(groups, backend=backend, **kwargs)


def _grads(rng, shapes, n, dtype=np.float64):
    return [[None if _missing(s, j) else rng.standard_normal(sh).astype(dtype)
             for j, sh in enumerate(shapes)] for s in range(n)]


@pytest.mark.parametrize("backend", OPT_BACKENDS)
@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_resume_from_state_dict_is_bit_exact(name, kwargs, backend, rng):
    p0 = [rng.standard_normal(s) for s in SHAPES]
    seq = _grads(rng, SHAPES, 20)
    a = [p.copy() for p in p0]
    opt = _make(name, kwargs, a, backend)
    _train(opt, a, seq[:10])
    sd = copy.deepcopy(opt.state_dict())
    b = [p.copy() for p in a]
    _train(opt, a, seq[10:])
    resumed = _make(name, kwargs, b, backend)
    resumed.load_state_dict(sd)
    _assert_state_equal(resumed.state_dict(), sd)
    _train(resumed, b, seq[10:])
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    _assert_state_equal(resumed.state_dict(), opt.state_dict())


@pytest.mark.skipif(len(OPT_BACKENDS) < 2, reason="needs two backends")
@pytest.mark.parametrize("name,kwargs", CASES[1::3], ids=IDS[1::3])
def test_state_dict_loads_on_another_backend(name, kwargs, rng):
    p0 = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    seq = _grads(rng, SHAPES, 12, np.float32)
    a = [p.copy() for p in p0]
    opt = _make(name, kwargs, a, OPT_BACKENDS[0])
    _train(opt, a, seq[:6])
    b = [p.copy() for p in a]
    other = _make(name, kwargs, b, OPT_BACKENDS[-1])
    other.load_state_dict(opt.state_dict())
    _train(opt, a, seq[6:])
    _train(other, b, seq[6:])
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def _corruptions(sd):
    """(description, state dict that must not load)."""
    out = []

    def variant(desc, fn):
        d = copy.deepcopy(sd)
        fn(d)
        out.append((desc, d))
    variant("wrong shape", lambda d: d["state"][0].__setitem__("exp_avg", np.zeros((2, 2))))
    variant("wrong dtype", lambda d: d["state"][1].__setitem__(
        "exp_avg_sq", d["state"][1]["exp_avg_sq"].astype(np.float32)))
    variant("missing key", lambda d: d["state"][2].pop("exp_avg_sq"))
    variant("extra key", lambda d: d["state"][0].__setitem__("max_exp_avg_sq", d["state"][0]["exp_avg"]))
    variant("missing step", lambda d: d["state"][0].pop("step"))
    variant("negative step", lambda d: d["state"][0].__setitem__("step", -3))
    variant("unknown index", lambda d: d["state"].__setitem__(99, d["state"][0]))
    variant("group count", lambda d: d["param_groups"].pop())
    variant("param count", lambda d: d["param_groups"][1]["params"].pop())
    variant("bad hyper-parameter", lambda d: d["param_groups"][1].__setitem__("eps", -1.0))
    variant("bad betas", lambda d: d["param_groups"][0].__setitem__("betas", (2.0, 0.9)))
    variant("missing hyper-parameter", lambda d: d["param_groups"][0].pop("amsgrad"))
    variant("not an array", lambda d: d["state"][0].__setitem__("exp_avg", [1, 2, 3]))
    variant("no state key", lambda d: d.pop("state"))
    return out


def test_failed_loads_leave_the_optimizer_unchanged(rng):
    p0 = [rng.standard_normal(s) for s in SHAPES]
    seq = _grads(rng, SHAPES, 12)
    ps = [p.copy() for p in p0]
    opt = fastopt.Adam([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.01}], lr=0.1)
    _train(opt, ps, seq[:6])
    good = copy.deepcopy(opt.state_dict())
    # a different, valid state to corrupt (so a partial load would be visible)
    other_ps = [p.copy() for p in p0]
    other = fastopt.Adam([{"params": other_ps[:2]}, {"params": other_ps[2:], "lr": 0.5}], lr=0.3)
    _train(other, other_ps, seq[:8])
    for desc, bad in _corruptions(other.state_dict()):
        with pytest.raises((ValueError, TypeError, KeyError)):
            opt.load_state_dict(bad)
        _assert_state_equal(opt.state_dict(), good)
    # and it still steps exactly as an untouched copy does
    twin_ps = [p.copy() for p in ps]
    twin = fastopt.Adam([{"params": twin_ps[:2]}, {"params": twin_ps[2:], "lr": 0.01}], lr=0.1)
    twin.load_state_dict(good)
    _train(opt, ps, seq[6:])
    _train(twin, twin_ps, seq[6:])
    for x, y in zip(ps, twin_ps):
        np.testing.assert_array_equal(x, y)


def test_torch_state_dict_layout_both_ways(rng):
    torch = pytest.importorskip("torch")
    p0 = [rng.standard_normal(s).astype(np.float32) for s in SHAPES[:3]]
    seq = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES[:3]] for _ in range(10)]
    tps = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in p0]
    topt = torch.optim.Adam(tps, lr=0.01, amsgrad=True)
    for gs in seq[:5]:
        for t, g in zip(tps, gs):
            t.grad = torch.from_numpy(g.copy())
        topt.step()
    # torch -> fastopt (tensors are accepted)
    ours_p = [t.detach().numpy().copy() for t in tps]
    opt = fastopt.Adam(ours_p, lr=0.01, amsgrad=True)
    opt.load_state_dict(topt.state_dict())
    # fastopt -> torch (steps as tensors, arrays as tensors)
    sd = opt.state_dict()
    tsd = {"param_groups": sd["param_groups"],
           "state": {i: {k: torch.tensor(float(val)) if k == "step" else torch.from_numpy(val)
                         for k, val in st.items()} for i, st in sd["state"].items()}}
    tps2 = [torch.nn.Parameter(torch.from_numpy(p.copy())) for p in ours_p]
    topt2 = torch.optim.Adam(tps2, lr=0.01, amsgrad=True)
    topt2.load_state_dict(tsd)
    for gs in seq[5:]:
        opt.step([g.copy() for g in gs])
        for tl, ol in ((tps, topt), (tps2, topt2)):
            for t, g in zip(tl, gs):
                t.grad = torch.from_numpy(g.copy())
            ol.step()
    for a, t1, t2 in zip(ours_p, tps, tps2):
        np.testing.assert_allclose(a, t1.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(t1.detach().numpy(), t2.detach().numpy())


# ------------------------------------------------------------------ .npz
@pytest.mark.parametrize("name,kwargs", [CASES[3], CASES[7], CASES[10], CASES[15]],
                         ids=[IDS[3], IDS[7], IDS[10], IDS[15]])
def test_npz_save_load_round_trip(name, kwargs, tmp_path, rng):
    ps = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    seq = _grads(rng, SHAPES, 16, np.float32)
    opt = _make(name, kwargs, ps)
    _train(opt, ps, seq[:8])
    path = tmp_path / "opt.npz"
    opt.save(path)
    assert path.exists()
    assert [f for f in os.listdir(tmp_path)] == ["opt.npz"]
    qs = [p.copy() for p in ps]
    other = _make(name, kwargs, qs)
    other.load(path)
    _assert_state_equal(other.state_dict(), opt.state_dict())
    loaded = fastopt.load_state(path)
    assert isinstance(loaded["param_groups"][0]["lr"], float)
    _train(opt, ps, seq[8:])
    _train(other, qs, seq[8:])
    for x, y in zip(ps, qs):
        np.testing.assert_array_equal(x, y)


def test_npz_crash_mid_write_keeps_old_file(tmp_path, monkeypatch, rng):
    ps = [rng.standard_normal(s) for s in SHAPES]
    opt = fastopt.Adam(ps, lr=0.01)
    _train(opt, ps, _grads(rng, SHAPES, 3))
    path = tmp_path / "ckpt.npz"
    opt.save(path)
    old_bytes = path.read_bytes()
    old = fastopt.load_state(path)
    _train(opt, ps, _grads(rng, SHAPES, 3))

    def crashing_write(f, arrays):
        f.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full (simulated)")
    monkeypatch.setattr(O.state, "_write_npz", crashing_write)
    with pytest.raises(OSError, match="simulated"):
        opt.save(path)
    assert path.read_bytes() == old_bytes
    _assert_state_equal(fastopt.load_state(path), old)
    assert os.listdir(tmp_path) == ["ckpt.npz"]       # the temporary file is gone
    monkeypatch.undo()
    opt.save(path)
    _assert_state_equal(fastopt.load_state(path), opt.state_dict())


def test_schedule_survives_state_dict(rng):
    ps = [rng.standard_normal(4)]
    sched = fastopt.schedules.StepDecay(0.1, 3, 0.5)
    opt = fastopt.SGD(ps, lr=sched, momentum=0.9)
    for _ in range(7):
        opt.step([rng.standard_normal(4)])
    sd = opt.state_dict()
    assert sd["step_count"] == 7 and sd["param_groups"][0]["lr"] == pytest.approx(0.1 * 0.25)
    other = fastopt.SGD([ps[0].copy()], lr=sched, momentum=0.9)
    other.load_state_dict(sd)
    assert other.param_groups[0]["lr"] is sched and other.step_count == 7


@pytest.mark.parametrize("name,kwargs", CASES, ids=IDS)
def test_cached_fast_path_equals_functional_path(name, kwargs, monkeypatch, rng):
    """Steps over cached, validated lists are bit-identical to the public functional step."""
    p0 = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    seq = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(8)]
    a, b = [p.copy() for p in p0], [p.copy() for p in p0]
    fast = getattr(fastopt, name)(_groups(a, kwargs["lr"]), **kwargs)
    _train(fast, a, seq)
    assert all(plan is not None for plan in fast._plans)
    monkeypatch.setattr(O.Optimizer, "_replan", lambda self, gi, grads=None: None)
    slow = getattr(fastopt, name)(_groups(b, kwargs["lr"]), **kwargs)
    _train(slow, b, seq)
    assert all(plan is None for plan in slow._plans)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    _assert_state_equal(fast.state_dict(), slow.state_dict())


def test_overlapping_or_strided_gradients_raise_before_any_update(rng):
    ps = [rng.standard_normal(8), rng.standard_normal(8)]
    opt = fastopt.Adam([{"params": ps[:1]}, {"params": ps[1:]}])
    opt.step([rng.standard_normal(8), rng.standard_normal(8)])
    before, sd = [p.copy() for p in ps], opt.state_dict()
    g = rng.standard_normal(8)
    with pytest.raises(ValueError, match="overlap"):
        opt.step([g, g])                                   # the same gradient twice
    with pytest.raises(ValueError, match="overlap"):
        opt.step([rng.standard_normal(8), ps[0]])          # a parameter as a gradient
    with pytest.raises(ValueError, match="overlap"):
        opt.step([opt.state[1]["exp_avg"], rng.standard_normal(8)])
    with pytest.raises(ValueError, match="contiguous"):
        opt.step([rng.standard_normal(16)[::2], rng.standard_normal(8)])
    for p, b in zip(ps, before):
        np.testing.assert_array_equal(p, b)
    _assert_state_equal(opt.state_dict(), sd)


def test_state_lives_in_aligned_per_group_slabs(rng):
    ps = [rng.standard_normal(s).astype(np.float32) for s in [(3,), (5, 7), (1,), (100,)]]
    opt = fastopt.Adam(ps)
    opt.step([rng.standard_normal(p.shape).astype(np.float32) for p in ps])
    for name in ("exp_avg", "exp_avg_sq"):
        arrays = [st[name] for st in opt.state]
        bases = {id(a.base) for a in arrays}
        assert len(bases) == 1                       # one slab per state name
        for a, p in zip(arrays, ps):
            assert a.shape == p.shape and a.flags.c_contiguous and a.flags.writeable
            assert a.__array_interface__["data"][0] % 64 == 0
    assert fastopt._validate.first_overlap([st[n] for st in opt.state for n in st]) is None
