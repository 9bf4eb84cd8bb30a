"""Mixed-precision optimizer kernels (issue 18), called on the backend modules
directly (the validated functional API is tested in tests/test_mixed_precision.py).

The expected bits are built from kernels tested elsewhere against the float64
NumPy reference: the cpp backend's plain float32 step, run on float32 copies
(16-bit arrays widened, the master as it is, gradients pre-divided by
grad_scale in float32), then each stored result rounded once with
fastopt/_rounding.py (nearest-even, or stochastically with the Philox words of
docs/rounding.md). That is what torch's fused kernels do for 16-bit params, and
what the mixed loops must give bit for bit. numba must equal cpp bit for bit,
stochastic rounding and thread counts included.
"""
import itertools

import ml_dtypes
import numpy as np
import pytest

from fastopt import _rounding as R
from fastopt.backends.numpy.dropout import philox4x32_10

cpp = pytest.importorskip("fastopt.backends.cpp.optim")
from fastopt import _core  # noqa: E402
from fastopt.backends.numba import optim as nb  # noqa: E402

BF16, F16, F32 = np.dtype(ml_dtypes.bfloat16), np.dtype(np.float16), np.dtype(np.float32)
SIZES = [0, 1, 7, 15, 17, 1023, 4097]
LARGE = (1 << 20) + 4099   # numba's parallel build (>= 2^20) and cpp's split (2 threads)
U64 = np.uint64

# option sets per optimizer: every template branch of the loops at least once
OPTIONS = {
    "sgd": [dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False,
                 maximize=False, first_step=False),
            dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01, nesterov=False,
                 maximize=False, first_step=True),
            dict(lr=0.05, momentum=0.9, dampening=0.0, weight_decay=0.0, nesterov=True,
                 maximize=True, first_step=False),
            dict(lr=0.2, momentum=0.5, dampening=0.2, weight_decay=0.1, nesterov=False,
                 maximize=False, first_step=False)],
    "rmsprop": [dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                     maximize=False, centered=False),
                dict(lr=0.01, alpha=0.9, eps=1e-6, weight_decay=0.05, momentum=0.9,
                     maximize=True, centered=True),
                dict(lr=0.02, alpha=0.95, eps=1e-8, weight_decay=0.0, momentum=0.5,
                     maximize=False, centered=False),
                dict(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.01, momentum=0.0,
                     maximize=False, centered=True)],
    "adam": [dict(step=3, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0,
                  decoupled=False, maximize=False, amsgrad=False),
             dict(step=7, lr=1e-2, beta1=0.8, beta2=0.99, eps=1e-6, weight_decay=0.1,
                  decoupled=True, maximize=False, amsgrad=True),
             dict(step=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01,
                  decoupled=False, maximize=True, amsgrad=False)],
    "adagrad": [dict(step=1, lr=0.1, lr_decay=0.0, eps=1e-10, weight_decay=0.0, maximize=False),
                dict(step=5, lr=0.05, lr_decay=0.01, eps=1e-8, weight_decay=0.1, maximize=True)],
}


def state_roles(opt, o):
    """Names of the state roles in backend argument order; None where unused."""
    if opt == "sgd":
        return ["buf" if o["momentum"] != 0.0 else None]
    if opt == "rmsprop":
        return ["square_avg", "grad_avg" if o["centered"] else None,
                "buf" if o["momentum"] != 0.0 else None]
    if opt == "adam":
        return ["exp_avg", "exp_avg_sq", "max_exp_avg_sq" if o["amsgrad"] else None]
    return ["state_sum"]


POSITIVE = {"square_avg", "exp_avg_sq", "max_exp_avg_sq", "state_sum"}


def make_tensor(opt, o, n, ptype, gtype, stype, rng):
    """Fresh random arrays of one tensor (never zeros), in their storage types."""
    t = {"param": rng.standard_normal(n).astype(np.float32).astype(ptype),
         "grad": rng.standard_normal(n).astype(np.float32).astype(gtype),
         "master": rng.standard_normal(n).astype(np.float32)}
    for name in filter(None, state_roles(opt, o)):
        x = rng.standard_normal(n).astype(np.float32) * np.float32(0.1)
        if name in POSITIVE:
            x = np.abs(x) * np.float32(0.1) + np.float32(1e-3)
        t[name] = x.astype(stype)
    return t


def call(mod, opt, o, tensors, **mp):
    """The backend function of ``mod`` on lists (one entry per tensor)."""
    kw = {k: v for k, v in o.items() if k not in ("centered", "amsgrad")}
    roles = state_roles(opt, o)
    states = [None if r is None else [t[r] for t in tensors] for r in roles]
    params = [t["param"] for t in tensors]
    grads = [t["grad"] for t in tensors]
    getattr(mod, opt)(params, grads, *states, **kw, **mp)


def widen(a):
    if a.dtype == BF16:
        return R.bf16_to_f32(a.view(np.uint16).astype(U64)).astype(np.uint32).view(np.float32)
    if a.dtype == F16:
        return R.f16_to_f32(a.view(np.uint16).astype(U64)).astype(np.uint32).view(np.float32)
    return a.astype(np.float32)


def round_to(x32, dtype, words=None):
    """float32 -> dtype: RNE, or stochastic with ``words`` (docs/rounding.md)."""
    if dtype == F32:
        return x32.copy()
    kind = "bf16" if dtype == BF16 else "f16"
    u = x32.view(np.uint32).astype(U64)
    bits = (getattr(R, f"f32_to_{kind}_rne")(u) if words is None
            else getattr(R, f"f32_to_{kind}_sr")(u, words))
    return bits.astype(np.uint16).view(dtype)


def philox_words(n, seed, step):
    j = np.arange((n + 3) // 4, dtype=U64)
    w = philox4x32_10(j & U64(0xFFFFFFFF), j >> U64(32), step & 0xFFFFFFFF,
                      0x53520000 | (step >> 32 & 0xFFFF), seed & 0xFFFFFFFF, seed >> 32)
    return np.stack(w, axis=1).reshape(-1)[:n]


def expected(opt, o, tensors, mode, grad_scale, seed, step):
    """Each tensor after the step, from the float32 cpp kernel on float32 copies."""
    roles = [r for r in state_roles(opt, o) if r]
    if "step" in o:          # adam, adagrad: the step of the update is also the SR counter
        step = o["step"]
    out = []
    for t in tensors:
        w = {k: widen(v) for k, v in t.items()}
        if mode == "master":
            w["param"] = t["master"].copy()
        if grad_scale is not None:
            w["grad"] = w["grad"] / np.float32(grad_scale)
        call(cpp, opt, o, [w])
        r = {k: round_to(w[k], t[k].dtype) for k in roles}
        r["grad"] = t["grad"]
        if mode == "master":
            r["master"] = w["param"]
            r["param"] = round_to(w["param"], t["param"].dtype)
        else:
            r["master"] = t["master"]
            words = philox_words(w["param"].size, seed, step) if mode == "sr" else None
            r["param"] = round_to(w["param"], t["param"].dtype, words)
        out.append(r)
    return out


def run(mod, opt, o, tensors, mode, grad_scale, seed, step):
    """Copies of the tensors after ``mod``'s mixed step."""
    ts = [{k: v.copy() for k, v in t.items()} for t in tensors]
    mp = dict(grad_scale=grad_scale, stochastic_rounding=(mode == "sr"), seed=seed)
    if mode == "master":
        mp["masters"] = [t["master"] for t in ts]
    if opt in ("sgd", "rmsprop"):
        mp["step"] = step
    call(mod, opt, o, ts, **mp)
    return ts


def assert_bits_equal(got, want, what):
    for k in want:
        a, b = got[k], want[k]
        assert a.dtype == b.dtype, (what, k)
        assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), (
            f"{what}: {k} differs at {np.flatnonzero(a.view(np.uint8) != b.view(np.uint8))[:5]}")


TYPE_COMBOS = [(p, g, s) for p in (BF16, F16) for g in (p, F32) for s in (p, F32)]
MODES = ["rne", "master", "sr"]


def name_of(d):
    return {BF16: "bf16", F16: "f16", F32: "f32"}[d]


def cases():
    for opt, opts in OPTIONS.items():
        for k, o in enumerate(opts):
            for (p, g, s), mode in itertools.product(TYPE_COMBOS, MODES):
                yield pytest.param(opt, o, p, g, s, mode,
                                   id=f"{opt}{k}-{name_of(p)}{name_of(g)}{name_of(s)}-{mode}")


@pytest.mark.parametrize("opt,o,p,g,s,mode", list(cases()))
def test_cpp_mixed_equals_rounded_float32_kernel(opt, o, p, g, s, mode):
    rng = np.random.default_rng(hash((opt, name_of(p), name_of(g), name_of(s), mode)) % 2 ** 32)
    for n in SIZES:
        for grad_scale in (None, 1024.0):
            tensors = [make_tensor(opt, o, n, p, g, s, rng), make_tensor(opt, o, 5, p, g, s, rng)]
            seed, step = 0x1234_5678_9ABC + n, 3 + n
            got = run(cpp, opt, o, tensors, mode, grad_scale, seed, step)
            want = expected(opt, o, tensors, mode, grad_scale, seed, step)
            for a, b in zip(got, want):
                assert_bits_equal(a, b, f"cpp n={n} scale={grad_scale}")


def numba_cases():
    """Every type combination, mode and option set at least once, without the
    full product (each combination is a numba compilation)."""
    for opt, opts in OPTIONS.items():
        for k, ((p, g, s), mode) in enumerate(itertools.product(TYPE_COMBOS, MODES)):
            o = opts[k % len(opts)]
            yield pytest.param(opt, o, p, g, s, mode,
                               id=f"{opt}{k % len(opts)}-{name_of(p)}{name_of(g)}{name_of(s)}-{mode}")


@pytest.mark.parametrize("opt,o,p,g,s,mode", list(numba_cases()))
def test_numba_equals_cpp_bit_for_bit(opt, o, p, g, s, mode):
    rng = np.random.default_rng(7)
    for n in SIZES:
        tensors = [make_tensor(opt, o, n, p, g, s, rng), make_tensor(opt, o, 3, p, g, s, rng)]
        for grad_scale in (None, 65536.0):
            args = (opt, o, tensors, mode, grad_scale, 99 + n, 2 ** 40 + n)
            for a, b in zip(run(nb, opt, o, tensors, mode, grad_scale, 99 + n, 2 ** 40 + n),
                            run(cpp, *args)):
                assert_bits_equal(a, b, f"numba vs cpp n={n} scale={grad_scale}")


@pytest.mark.parametrize("opt", list(OPTIONS))
@pytest.mark.parametrize("mode", MODES)
def test_large_arrays_and_thread_counts(opt, mode):
    """Across thread splits: cpp with 1 and 2 threads, numba's parallel build
    with 1 and 2 threads, all equal to the expected bits."""
    import numba
    o = OPTIONS[opt][-1]
    rng = np.random.default_rng(11)
    tensors = [make_tensor(opt, o, LARGE, BF16, F32, F32, rng),
               make_tensor(opt, o, 70001, F16, F16, F16, rng)]
    want = [expected(opt, o, [t], mode, 8.0, 5, 9)[0] for t in tensors]
    saved_cpp, saved_nb = _core.get_num_threads(), numba.get_num_threads()
    try:
        for threads in (1, 2):
            _core.set_num_threads(threads)
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            for mod in (cpp, nb):
                for t, w in zip(tensors, want):
                    got = run(mod, opt, o, [t], mode, 8.0, 5, 9)[0]
                    assert_bits_equal(got, w, f"{mod.__name__} threads={threads}")
    finally:
        _core.set_num_threads(saved_cpp)
        numba.set_num_threads(saved_nb)


@pytest.mark.parametrize("mod", [cpp, nb], ids=["cpp", "numba"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grad_scale_on_wide_params_equals_predivided_gradients(mod, dtype):
    rng = np.random.default_rng(3)
    for opt, opts in OPTIONS.items():
        for o in opts:
            for n in (1, 17, 4097):
                t = {k: v.astype(dtype) for k, v in make_tensor(opt, o, n, F32, F32, F32,
                                                                   rng).items()}
                scaled = {k: v.copy() for k, v in t.items()}
                pre = {k: v.copy() for k, v in t.items()}
                pre["grad"] = pre["grad"] / dtype(1000.0)
                mp = {"grad_scale": 1000.0}
                call(mod, opt, o, [scaled], **mp)
                call(cpp, opt, o, [pre])
                del pre["grad"], scaled["grad"]
                assert_bits_equal(scaled, pre, f"{opt} {dtype.__name__}")


def test_stochastic_rounding_depends_on_seed_and_step_not_threads():
    rng = np.random.default_rng(5)
    o = OPTIONS["adam"][0]
    t = make_tensor("adam", o, 4096, BF16, F32, F32, rng)
    a = run(cpp, "adam", o, [t], "sr", None, 1, 1)[0]["param"]
    b = run(cpp, "adam", o, [t], "sr", None, 2, 1)[0]["param"]
    rne = run(cpp, "adam", o, [t], "rne", None, 1, 1)[0]["param"]
    # The rates the data implies: with f the position of the float32 result
    # between its bfloat16 neighbours toward and away from zero, two seeds
    # disagree with probability 2 f (1 - f) and SR differs from RNE with
    # probability min(f, 1 - f) (about 0.15 and 0.10 here: a 1e-3 Adam step is a
    # fraction of a bfloat16 ulp). 0.03 is about 5 standard deviations at n=4096.
    w = {k: widen(v) for k, v in t.items()}
    call(cpp, "adam", o, [w])
    low = w["param"].view(np.uint32) & np.uint32(0xFFFF0000)
    lo, hi = low.view(np.float32), (low + np.uint32(0x10000)).view(np.float32)
    f = (np.abs(w["param"].astype(np.float64) - lo) / np.abs(hi.astype(np.float64) - lo))
    assert abs((a.view(np.uint16) != b.view(np.uint16)).mean() - (2 * f * (1 - f)).mean()) < 0.03
    assert abs((a.view(np.uint16) != rne.view(np.uint16)).mean() - np.minimum(f, 1 - f).mean()) \
        < 0.03
    # the list form rounds each tensor as if it were called alone
    t2 = make_tensor("adam", o, 33, BF16, F32, F32, rng)
    both = run(cpp, "adam", o, [t, t2], "sr", None, 1, 1)
    assert np.array_equal(both[0]["param"].view(np.uint16), a.view(np.uint16))
    alone = run(cpp, "adam", o, [t2], "sr", None, 1, 1)[0]
    assert np.array_equal(both[1]["param"].view(np.uint16), alone["param"].view(np.uint16))


def test_cpp_mixed_rejects_wrong_dtypes_and_writes_nothing():
    o = OPTIONS["adam"][0]
    t = make_tensor("adam", o, 8, BF16, BF16, F32, np.random.default_rng(1))
    before = {k: v.copy() for k, v in t.items()}
    bad = dict(t, exp_avg=t["exp_avg"].astype(np.float16))
    with pytest.raises(TypeError):
        call(cpp, "adam", o, [bad], grad_scale=2.0)
    for k in before:
        assert np.array_equal(t[k].view(np.uint8), before[k].view(np.uint8))


# ---- CUDA (skipped without a GPU): the same bits as cpp; found_inf writes nothing
from fastopt import backends as _backends  # noqa: E402

_CUDA_WHY = _backends.unavailable_reason("cuda")
needs_gpu = pytest.mark.skipif(_CUDA_WHY is not None,
                               reason=f"cuda backend unavailable: {_CUDA_WHY}")


def _to_device(t):
    import cupy
    # CuPy has no bfloat16: the cuda backend takes its bits as uint16
    return {k: cupy.asarray(v.view(np.uint16) if v.dtype == BF16 else v) for k, v in t.items()}


def _to_host(d, like):
    import cupy
    return {k: cupy.asnumpy(v).view(like[k].dtype) for k, v in d.items()}


@needs_gpu
@pytest.mark.parametrize("opt", list(OPTIONS))
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("p,g,s", TYPE_COMBOS, ids=lambda d: name_of(d))
def test_cuda_mixed_equals_cpp(opt, mode, p, g, s):
    import cupy
    from fastopt.backends.cuda import optim as cu
    rng = np.random.default_rng(13)
    for o in OPTIONS[opt]:
        for n in SIZES + [LARGE]:
            t = make_tensor(opt, o, n, p, g, s, rng)
            want = run(cpp, opt, o, [t], mode, 512.0, 77, 5)[0]
            for scale in (512.0, cupy.full(1, 512.0, dtype=np.float32)):
                d = _to_device(t)
                mp = dict(grad_scale=scale, stochastic_rounding=(mode == "sr"), seed=77)
                if mode == "master":
                    mp["masters"] = [d["master"]]
                if opt in ("sgd", "rmsprop"):
                    mp["step"] = 5
                call(cu, opt, o, [d], **mp)
                assert_bits_equal(_to_host(d, t), want, f"cuda n={n}")


@needs_gpu
def test_cuda_found_inf_writes_nothing():
    import cupy
    from fastopt.backends.cuda import optim as cu
    o = OPTIONS["adam"][1]
    t = make_tensor("adam", o, 4097, BF16, BF16, F32, np.random.default_rng(2))
    d = _to_device(t)
    call(cu, "adam", o, [d], masters=[d["master"]], found_inf=cupy.ones(1, np.float32),
         grad_scale=cupy.full(1, 8.0, np.float32))
    assert_bits_equal(_to_host(d, t), t, "found_inf")
