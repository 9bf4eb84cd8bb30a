"""Mixed precision in the classes fastopt.SGD/RMSprop/Adam/AdamW/Adagrad: state types,
master copies, per-parameter stochastic rounding seeds, state dicts and .npz resume."""
import ml_dtypes
import numpy as np
import pytest

import fastopt
from fastopt.optim._mixed import param_seed

BF16, F16, F32 = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16), np.dtype(np.float32)
BACKENDS = ["numpy"] + [b for b in ("cpp", "numba") if b in fastopt.available_backends()]
CLASSES = {"SGD": dict(lr=0.05, momentum=0.9), "RMSprop": dict(lr=0.01, centered=True),
           "Adam": dict(lr=0.01, amsgrad=True), "AdamW": dict(lr=0.01),
           "Adagrad": dict(lr=0.1)}
SHAPES = [(7,), (33, 5), (1023,)]


def _params(rng, dtype):
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _grads(rng, dtype):
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _bits(arrays):
    return [a.tobytes() for a in arrays]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("dtype", [BF16, F16], ids=str)
def test_state_types(cls, dtype, backend, rng):
    ps = _params(rng, dtype)
    default = getattr(fastopt, cls)(ps, backend=backend, **CLASSES[cls])
    pure = getattr(fastopt, cls)([p.copy() for p in ps], backend=backend, state_dtype=dtype,
                                 **CLASSES[cls])
    for opt in (default, pure):
        opt.step(_grads(rng, dtype))
    for st in default.state:
        assert st and all(a.dtype == F32 for a in st.values())   # float32 by default
    for st in pure.state:
        assert st and all(a.dtype == dtype for a in st.values())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", CLASSES)
def test_master_weights_and_exact_resume_through_npz(cls, backend, rng, tmp_path):
    ps = _params(rng, BF16)
    opt = getattr(fastopt, cls)(ps, backend=backend, master_weights=True, **CLASSES[cls])
    for _ in range(3):
        opt.step(_grads(rng, BF16))
    for p, st in zip(ps, opt.state):
        assert st["master_param"].dtype == F32
        assert p.tobytes() == st["master_param"].astype(BF16).tobytes()   # its rounding
    sd = opt.state_dict()
    assert sd["mixed_precision"]["master_weights"] is True
    opt.save(tmp_path / "s.npz")
    qs = [p.copy() for p in ps]
    again = getattr(fastopt, cls)(qs, backend=backend, master_weights=True, **CLASSES[cls])
    again.load(tmp_path / "s.npz")
    for _ in range(2):
        g = _grads(rng, BF16)
        opt.step(g)
        again.step(g)
    assert _bits(ps) == _bits(qs)
    for a, b in zip(opt.state, again.state):
        assert _bits(a.values()) == _bits(b.values())


@pytest.mark.parametrize("backend", BACKENDS)
def test_bfloat16_state_survives_npz(backend, rng, tmp_path):
    ps = _params(rng, BF16)
    opt = fastopt.Adam(ps, lr=0.01, backend=backend, state_dtype=BF16)
    opt.step(_grads(rng, BF16))
    opt.save(tmp_path / "s.npz")
    loaded = fastopt.load_state(tmp_path / "s.npz")
    assert loaded["state"][0]["exp_avg"].dtype == BF16
    assert loaded["state"][0]["exp_avg"].tobytes() == opt.state[0]["exp_avg"].tobytes()


def test_a_state_dict_of_other_types_is_refused(rng):
    ps = _params(rng, BF16)
    opt = fastopt.Adam(ps, lr=0.01, backend="numpy")
    opt.step(_grads(rng, BF16))
    sd = opt.state_dict()
    other = fastopt.Adam([p.copy() for p in ps], lr=0.01, backend="numpy", state_dtype=BF16)
    with pytest.raises(TypeError, match=r"exp_avg.*dtype float32 but must have dtype bfloat16"):
        other.load_state_dict(sd)
    assert all(not st for st in other.state)
    with pytest.raises(ValueError, match="master_param"):   # a master is expected, not there
        fastopt.Adam([p.copy() for p in ps], lr=0.01, master_weights=True).load_state_dict(sd)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", ["SGD", "RMSprop", "Adam", "Adagrad"])
def test_stochastic_rounding_seeds_per_parameter(cls, backend, rng):
    """Parameter k rounds with (seed + 0x9E3779B97F4A7C15 (k + 1)) mod 2**64 at its own
    step: equal to the functional step called with that seed."""
    ps = _params(rng, BF16)
    qs = [p.copy() for p in ps]
    seed = 2 ** 64 - 5   # wraps around
    # two groups: a parameter's seed follows its index over all groups
    opt = getattr(fastopt, cls)([{"params": ps[:1]}, {"params": ps[1:]}], backend=backend,
                                stochastic_rounding=True, seed=seed, state_dtype=BF16,
                                **CLASSES[cls])
    ref = getattr(fastopt, cls)(qs, backend=backend, state_dtype=BF16, **CLASSES[cls])
    fn = {"SGD": fastopt.sgd_step, "RMSprop": fastopt.rmsprop_step, "Adam": fastopt.adam_step,
          "Adagrad": fastopt.adagrad_step}[cls]
    for step in (1, 2):
        g = _grads(rng, BF16)
        opt.step(g)
        ref.step(g)   # round to nearest: the stochastic result is one of its neighbours
    g = _grads(rng, BF16)
    before = [p.copy() for p in ps]
    states = [{k: a.copy() for k, a in st.items()} for st in opt.state]
    opt.step(g)
    for k, (p, st) in enumerate(zip(before, states)):
        kw = dict(CLASSES[cls])
        kw.pop("amsgrad", None)
        roles = {"SGD": lambda: dict(momentum_buffer=st["momentum_buffer"]),
                 "RMSprop": lambda: dict(square_avg=st["square_avg"], grad_avg=st["grad_avg"]),
                 "Adam": lambda: dict(exp_avg=st["exp_avg"], exp_avg_sq=st["exp_avg_sq"],
                                      amsgrad=True, max_exp_avg_sq=st["max_exp_avg_sq"]),
                 "Adagrad": lambda: dict(state_sum=st["sum"])}[cls]()
        fn(p, g[k], **roles, **kw, stochastic_rounding=True, seed=param_seed(seed, k), step=3,
           backend=backend)
        assert p.tobytes() == ps[k].tobytes(), k
    assert param_seed(seed, 0) == (seed + 0x9E3779B97F4A7C15) % 2 ** 64


def test_bad_options_are_refused(rng):
    ps = _params(rng, BF16)
    with pytest.raises(TypeError, match="state_dtype"):
        fastopt.Adam(ps, state_dtype=np.int8)
    with pytest.raises(TypeError, match="master_weights"):
        fastopt.Adam(ps, master_weights=1)
    with pytest.raises(ValueError, match="seed"):
        fastopt.SGD(ps, stochastic_rounding=True, seed=-1)


MODES = {"float32 state": {}, "own-type state": "own", "master": dict(master_weights=True),
         "stochastic rounding": dict(stochastic_rounding=True, seed=2 ** 64 - 3)}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("dtype", [BF16, F16], ids=str)
def test_16_bit_groups_reuse_a_plan_and_notice_edits(dtype, cls, mode, backend, rng):
    """After its first (validated) step a 16-bit group steps as one planned call, with no
    Python validation, bit for bit as the validated path; replaced arrays are noticed."""
    kw = dict(CLASSES[cls], **({"state_dtype": dtype} if MODES[mode] == "own" else MODES[mode]))
    ps = _params(rng, dtype)
    qs = [p.copy() for p in ps]
    opt = getattr(fastopt, cls)(ps, backend=backend, **kw)
    ref = getattr(fastopt, cls)(qs, backend=backend, **kw)

    def step_both(g):
        ref._plans = [None] * len(ref._plans)   # the reference validates every step
        ref.step([x.copy() for x in g])
        opt.step(g)
        assert _bits(ps) == _bits(qs)
        for a, b in zip(opt.state, ref.state):
            assert sorted(a) == sorted(b) and _bits(a[k] for k in a) == _bits(b[k] for k in a)

    step_both(_grads(rng, dtype))
    assert opt._plans[0] is not None and opt._plans[0].typed is not None

    def refuse(*a, **k):
        raise AssertionError("a planned step took the validated path")

    opt._update = refuse
    for _ in range(3):
        step_both(_grads(rng, dtype))
    del opt._update
    # float32 gradients of 16-bit params: the plan's types no longer hold, so the step is
    # validated, then planned again with float32 gradients
    step_both([g.astype(np.float32) for g in _grads(rng, dtype)])
    opt._update = refuse
    step_both([g.astype(np.float32) for g in _grads(rng, dtype)])
    del opt._update
    # a replaced state array (or master) is the one updated
    name = "master_param" if mode == "master" else sorted(opt.state[1])[0]
    opt.state[1][name] = opt.state[1][name].copy()
    ref.state[1][name] = ref.state[1][name].copy()
    step_both([g.astype(np.float32) for g in _grads(rng, dtype)])
    # a state array of a wrong type is refused with the validator's error, nothing written
    before = _bits(ps)
    opt.state[2][name] = opt.state[2][name].astype(np.float64)
    with pytest.raises(TypeError):
        opt.step(_grads(rng, dtype))
    assert _bits(ps) == before


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", MODES)
def test_planned_16_bit_groups_step_together_and_check_across_groups(mode, backend, rng):
    """Two planned groups of 16-bit parameters in one step (each its own call), bit for bit
    as the validated path; an array shared across the groups is refused, nothing written."""
    kw = dict(lr=0.01, **({"state_dtype": BF16} if MODES[mode] == "own" else MODES[mode]))
    shapes = [(1023,), (7,), (33, 5)]   # group 1: the first; group 2: the others
    ps = [rng.standard_normal(s).astype(BF16) for s in shapes]
    qs = [p.copy() for p in ps]
    opt = fastopt.Adam([{"params": ps[:1]}, {"params": ps[1:]}], backend=backend, **kw)
    ref = fastopt.Adam([{"params": qs[:1]}, {"params": qs[1:]}], backend=backend, **kw)

    def grads():
        return [rng.standard_normal(s).astype(BF16) for s in shapes]
    for _ in range(4):
        g = grads()
        ref._plans = [None] * len(ref._plans)
        ref.step([x.copy() for x in g])
        opt.step(g)
        assert _bits(ps) == _bits(qs)
    assert all(pl is not None and pl.typed is not None for pl in opt._plans)
    snapshot = _bits(ps) + [a.tobytes() for st in opt.state for a in st.values()]
    name = "master_param" if mode == "master" else "exp_avg"
    g = grads()
    g[2] = opt.state[0][name].view(BF16)[:165].reshape(33, 5)   # in group 1's state
    with pytest.raises(ValueError, match="overlap"):
        opt.step(g)
    assert _bits(ps) + [a.tobytes() for st in opt.state for a in st.values()] == snapshot
