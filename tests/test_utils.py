"""fastopt.functional.averaging / clipping: ema_update, clip_grad_norm, grad_norm, EMA on every CPU backend,
against the float64 NumPy reference and torch."""
import math

import numpy as np
import pytest

import fastopt
from fastopt.backends.numpy import averaging as ref_avg, clipping as ref
from conftest import COMPILED_BACKENDS, CPU_BACKENDS, DTYPES, SIZES, tol

NORMS = [2.0, 1.0, math.inf, 3.0, 0.5]


def _rand(rng, n, dtype, scale=1.0):
    return (rng.standard_normal(n) * scale).astype(dtype)


def _list(rng, dtype, sizes=(0, 1, 7, 17, 1023, 4097)):
    return [_rand(rng, n, dtype) for n in sizes]


# ------------------------------------------------------------------ EMA
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", SIZES)
def test_ema_update_matches_reference(backend, dtype, n, rng):
    avg, p = _rand(rng, n, dtype), _rand(rng, n, dtype)
    expect = 0.9 * avg.astype(np.float64) + 0.1 * p.astype(np.float64)
    fastopt.ema_update(avg, p, 0.9, backend=backend)
    np.testing.assert_allclose(avg, expect, **tol(dtype))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_ema_update_list_equals_each_member(backend, dtype, rng):
    avgs, ps = _list(rng, dtype), _list(rng, dtype)
    one = [a.copy() for a in avgs]
    fastopt.ema_update(avgs, ps, 0.99, backend=backend)
    for a, p in zip(one, ps):
        fastopt.ema_update(a, p, 0.99, backend=backend)
    for a, b in zip(avgs, one):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("decay", [0.0, 1.0])
def test_ema_update_decay_bounds(decay, rng):
    avg, p = _rand(rng, 33, np.float32), _rand(rng, 33, np.float32)
    before = avg.copy()
    fastopt.ema_update(avg, p, decay)
    np.testing.assert_array_equal(avg, before if decay == 1.0 else p)


def test_ema_update_validation(rng):
    avg, p = _rand(rng, 8, np.float32), _rand(rng, 8, np.float32)
    with pytest.raises(ValueError, match="decay"):
        fastopt.ema_update(avg, p, 1.5)
    with pytest.raises(ValueError, match="decay"):
        fastopt.ema_update(avg, p, -0.1)
    with pytest.raises(TypeError):
        fastopt.ema_update(avg, p.astype(np.float64), 0.9)
    with pytest.raises(ValueError, match="shape"):
        fastopt.ema_update(avg, p[:4], 0.9)
    ro = avg.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastopt.ema_update(ro, p, 0.9)
    with pytest.raises(ValueError, match="overlap"):
        fastopt.ema_update(avg, avg, 0.9)
    # a bad list member: nothing is written to the others
    avgs = [avg.copy(), avg.copy()]
    before = [a.copy() for a in avgs]
    with pytest.raises(ValueError):
        fastopt.ema_update(avgs, [p, p[:3]], 0.9)
    for a, b in zip(avgs, before):
        np.testing.assert_array_equal(a, b)


def test_ema_matches_torch_averaged_model(rng):
    torch = pytest.importorskip("torch")
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    model = torch.nn.Sequential(torch.nn.Linear(7, 5), torch.nn.Linear(5, 3))
    avg_model = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    params = [p.detach().numpy() for p in model.parameters()]
    ema = fastopt.EMA(params, decay=0.9)
    for _ in range(20):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.from_numpy(_rand(rng, p.numel(), np.float32).reshape(p.shape)) * 0.1)
        avg_model.update_parameters(model)
        ema.update()
    assert ema.n_averaged == int(avg_model.n_averaged)
    for a, t in zip(ema.averaged, avg_model.module.parameters()):
        np.testing.assert_allclose(a, t.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_ema_class_state_and_copy_to(rng):
    params = _list(rng, np.float32, sizes=(5, 9))
    ema = fastopt.EMA(params, decay=0.5)
    ema.update()                               # first update copies
    np.testing.assert_array_equal(ema.averaged[0], params[0])
    old = [p.copy() for p in params]
    for p in params:
        p += 1.0
    ema.update()
    np.testing.assert_allclose(ema.averaged[0], 0.5 * old[0] + 0.5 * params[0], rtol=1e-6)
    sd = ema.state_dict()
    other = fastopt.EMA([p.copy() for p in params], decay=0.9)
    other.load_state_dict(sd)
    assert other.n_averaged == 2 and other.decay == 0.5
    np.testing.assert_array_equal(other.averaged[1], ema.averaged[1])
    bad = dict(sd, averaged=[sd["averaged"][0]])
    with pytest.raises(ValueError):
        other.load_state_dict(bad)
    out = [np.zeros_like(p) for p in params]
    ema.copy_to(out)
    np.testing.assert_array_equal(out[1], ema.averaged[1])


def test_ema_copy_to_refuses_a_misfit_before_writing(rng):
    """Before: ``p[...] = avg`` broadcast a (5,) average into a (2, 5) array (every row),
    cast dtypes silently, and wrote the arrays before a misfit one raised."""
    params = _list(rng, np.float32, sizes=(5, 9))
    ema = fastopt.EMA(params, decay=0.5)
    ema.update()
    good = np.zeros(5, np.float32)
    ro = np.zeros(9, np.float32)
    ro.flags.writeable = False
    for bad, exc in ((np.zeros((2, 9), np.float32), ValueError),
                     (np.zeros(9, np.float64), TypeError), (ro, ValueError),
                     ([0.0] * 9, TypeError)):
        good[...] = 0
        with pytest.raises(exc, match=r"params\[1\]"):
            ema.copy_to([good, bad])
        assert not good.any()
    ema.copy_to([good, np.zeros(9, np.float32)])
    np.testing.assert_array_equal(good, ema.averaged[0])
    torch = pytest.importorskip("torch")   # DLPack arrays are taken, as at construction
    t = [torch.zeros(5), torch.zeros(9)]
    ema.copy_to(t)
    np.testing.assert_array_equal(t[1].numpy(), ema.averaged[1])


@pytest.mark.parametrize("state", [5, {"decay": 0.5}, {"averaged": [], "decay": 0.5},
                                   "state", {"decay": 0.5, "n_averaged": 2.5, "averaged": None},
                                   {"decay": 0.5, "n_averaged": True, "averaged": None},
                                   {"decay": 0.5, "n_averaged": "3", "averaged": None}])
def test_ema_load_state_dict_refuses_malformed_states(state, rng):
    """Before: KeyError for a missing entry, TypeError "'int' object is not subscriptable"
    for a non-dict, and n_averaged = 2.5 or True loaded as 2 or 1."""
    params = _list(rng, np.float32, sizes=(5, 9))
    ema = fastopt.EMA(params, decay=0.5)
    ema.update()
    if isinstance(state, dict) and state.get("averaged", 0) is None:
        state = dict(state, averaged=[a.copy() for a in ema.averaged])
    before = ema.state_dict()
    with pytest.raises((TypeError, ValueError), match="n_averaged|state"):
        ema.load_state_dict(state)
    after = ema.state_dict()
    assert after["decay"] == before["decay"] and after["n_averaged"] == before["n_averaged"]
    assert all(np.array_equal(a, b) for a, b in zip(after["averaged"], before["averaged"]))


# ------------------------------------------------------------- grad norm
@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_type", NORMS)
def test_grad_norm_matches_reference(backend, dtype, norm_type, rng):
    grads = _list(rng, dtype, sizes=(0, 1, 7, 17, 1023, 40_000, 1_000_003))
    got = fastopt.grad_norm(grads, norm_type, backend=backend)
    expect = ref.grad_norm([g.astype(np.float64) for g in grads], norm_type=norm_type)
    # double accumulators: the order of summation is the only difference
    assert got == pytest.approx(expect, rel=1e-12 if norm_type in (1.0, 2.0, math.inf) else 1e-10)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("n", SIZES)
def test_grad_norm_sizes_single_array(backend, n, rng):
    g = _rand(rng, n, np.float32)
    expect = float(np.sqrt(np.sum(g.astype(np.float64) ** 2)))
    assert fastopt.grad_norm(g, backend=backend) == pytest.approx(expect, rel=1e-12, abs=0)


@pytest.mark.parametrize("threads", [2, 3, 4])
def test_block_loops_split_blocks_evenly_across_threads(threads):
    # The norm pass (blocks of 16384 elements) and the 8-bit steps (blocks of 256)
    # hand whole blocks to threads through parallel_for_units; at 10^6 (61 norm
    # blocks) it once gave all of them to one thread, at 10^7 (611) a 256 / 355 split.
    if "cpp" not in CPU_BACKENDS:
        pytest.skip("cpp backend not built")
    from fastopt import _core

    saved = _core.get_num_threads()
    try:
        _core.set_num_threads(threads)
        for units in (1, 2, 3, 61, 64, 65, 391, 611, 4097, 39063):
            parts = _core.parallel_units_split(units, 1)
            assert len(parts) == min(units, threads)
            assert parts[0][0] == 0 and parts[-1][1] == units
            assert all(a[1] == b[0] for a, b in zip(parts, parts[1:]))
            sizes = [e - b for b, e in parts]
            assert max(sizes) - min(sizes) <= 1, (units, parts)
        assert _core.parallel_units_split(100, 60) == [(0, 100)]   # below two threads' grain
    finally:
        _core.set_num_threads(saved)


def _l2_in_cpp_order(grads, block=1 << 14, lanes=32):
    """The cpp backend's L2 norm, its summation order written out in float64: blocks
    of 16384 elements per array; in each, lane j sums the squares of elements j,
    j + 32, ... in order; the lanes merge pairwise (j += j + 16, j + 8, ..., j + 1);
    the blocks' sums add in order. The squares of float32 or float64 values in
    float64 (exact for float32) are the only other rounding."""
    total = 0.0
    for g in grads:
        sq = g.astype(np.float64) ** 2
        for o in range(0, sq.size, block):
            part = sq[o:o + block]
            rows = np.zeros((-(-part.size // lanes), lanes))
            rows.reshape(-1)[:part.size] = part      # zeros add nothing to a lane's sum
            acc = np.cumsum(rows, axis=0)[-1]      # cumsum: strictly in order
            w = lanes // 2
            while w:
                acc[:w] = acc[:w] + acc[w:2 * w]
                w //= 2
            total = total + acc[0]
    return math.sqrt(total)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [1e-30, 1.0, 1e30])
def test_grad_norm_l2_bits_follow_the_documented_order(dtype, scale, rng):
    # The float32 loop fuses square and sum (FMA, one rounding) where the order
    # above rounds twice; the square being exact in double makes them equal.
    if "cpp" not in CPU_BACKENDS:
        pytest.skip("cpp backend not built")
    grads = _list(rng, dtype, sizes=(0, 1, 31, 33, 1023, 16384, 16417, 100_003))
    grads = [(g * scale).astype(dtype) for g in grads]
    for one in [[g] for g in grads] + [grads]:
        assert fastopt.grad_norm(one, 2.0, backend="cpp") == _l2_in_cpp_order(one)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_grad_norm_empty_list(backend):
    assert fastopt.grad_norm([], backend=backend) == 0.0
    assert fastopt.clip_grad_norm([], 1.0, backend=backend) == 0.0


def test_grad_norm_deterministic_across_thread_counts(rng):
    if "cpp" not in CPU_BACKENDS:
        pytest.skip("cpp backend not built")
    from fastopt import _core

    grads = _list(rng, np.float32, sizes=(3, 100_000, 2_000_003, 77))
    saved = _core.get_num_threads()
    try:
        results = {}
        for threads in (1, 2, 3, 4):
            _core.set_num_threads(threads)
            results[threads] = [fastopt.grad_norm(grads, p, backend="cpp") for p in NORMS]
        for threads, r in results.items():
            assert r == results[1], threads     # bit for bit
    finally:
        _core.set_num_threads(saved)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_grad_norm_nonfinite(backend, rng):
    g = _rand(rng, 100, np.float32)
    g[17] = np.nan
    assert math.isnan(fastopt.grad_norm(g, 2.0, backend=backend))
    assert math.isnan(fastopt.grad_norm(g, math.inf, backend=backend))
    g[17] = np.inf
    assert fastopt.grad_norm(g, 2.0, backend=backend) == math.inf
    assert fastopt.grad_norm(g, math.inf, backend=backend) == math.inf


# ------------------------------------------------------------- clipping
@pytest.mark.parametrize("backend", COMPILED_BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("norm_type", NORMS)
@pytest.mark.parametrize("max_norm", [0.5, 1e9])
def test_clip_grad_norm_matches_reference(backend, dtype, norm_type, max_norm, rng):
    grads = _list(rng, dtype)
    f64 = [g.astype(np.float64) for g in grads]
    expect_norm = ref.grad_norm(f64, norm_type=norm_type)
    coef = min(1.0, max_norm / (expect_norm + 1e-6))
    got = fastopt.clip_grad_norm(grads, max_norm, norm_type, backend=backend)
    assert got == pytest.approx(expect_norm, rel=1e-10)
    for g, e in zip(grads, f64):
        np.testing.assert_allclose(g, e * coef, **tol(dtype))
    if max_norm > expect_norm:   # no clipping: untouched, bit for bit
        for g, e in zip(grads, f64):
            np.testing.assert_array_equal(g, e.astype(dtype))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
def test_clip_grad_norm_matches_torch(backend, norm_type, rng):
    torch = pytest.importorskip("torch")
    shapes = [(7, 5), (5,), (300, 40), (1,)]
    tensors = [torch.nn.Parameter(torch.zeros(s)) for s in shapes]
    grads = [_rand(rng, math.prod(s), np.float32).reshape(s) for s in shapes]
    for t, g in zip(tensors, grads):
        t.grad = torch.from_numpy(g.copy())
    expect = torch.nn.utils.clip_grad_norm_(tensors, 2.0, norm_type=norm_type)
    got = fastopt.clip_grad_norm(grads, 2.0, norm_type, backend=backend)
    assert got == pytest.approx(float(expect), rel=2e-6)
    for t, g in zip(tensors, grads):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=4e-6, atol=1e-8)


def test_clip_grad_norm_error_if_nonfinite(rng):
    g = _rand(rng, 10, np.float32)
    g[3] = np.inf
    before = g.copy()
    with pytest.raises(RuntimeError, match="non-finite"):
        fastopt.clip_grad_norm(g, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(g, before)
    assert fastopt.clip_grad_norm(g, 1.0) == math.inf   # torch: scales by 0 (inf*0 = nan)
    assert np.isnan(g[3]) and np.all(g[np.arange(10) != 3] == 0)


def test_clip_grad_norm_validation(rng):
    g = _rand(rng, 10, np.float32)
    with pytest.raises(ValueError, match="max_norm"):
        fastopt.clip_grad_norm(g, -1.0)
    with pytest.raises(ValueError, match="norm_type"):
        fastopt.clip_grad_norm(g, 1.0, norm_type=0.0)
    with pytest.raises(ValueError, match="norm_type"):
        fastopt.clip_grad_norm(g, 1.0, norm_type=float("nan"))
    with pytest.raises(TypeError):
        fastopt.clip_grad_norm([g, g.astype(np.float64)], 1.0)
    with pytest.raises(ValueError, match="overlap"):
        fastopt.clip_grad_norm([g, g[2:]], 1.0)
    with pytest.raises(TypeError):
        fastopt.clip_grad_norm([g, [1.0, 2.0]], 1.0)
    with pytest.raises(ValueError, match="backend"):
        fastopt.clip_grad_norm(g, 1.0, backend="fortran")
