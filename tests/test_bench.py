"""The benchmark library and ``fastopt bench``: structure, never speed."""
import json
import math

import numpy as np
import pytest

import fastopt
from fastopt import bench
from fastopt.__main__ import main
from fastopt.bench import kernels as K
from fastopt.bench import suite

# BENCHMARKING.md rule 4, float32 bytes per element; EMA and clipping are not in
# that table: EMA reads param and avg and writes avg (12), clipping reads the
# gradients for the norm, then reads and writes them to scale (4 + 8).
BENCHMARKING_MD_F32 = {
    "sgd": 12, "sgd-momentum": 20, "nesterov": 20, "rmsprop": 20, "adagrad": 20,
    "adam": 28, "adamw": 28, "amsgrad": 36, "bn-forward": 8, "bn-backward": 12,
    "drop-forward": 8 + 1 / 8, "drop-backward": 8 + 1 / 8, "ema": 12, "clip-norm": 12,
}


def present_kernels():
    return [k for k in bench.KERNELS.values() if k.missing() is None]


def test_bytes_per_element_match_benchmarking_md():
    assert set(bench.KERNELS) == set(BENCHMARKING_MD_F32)
    for name, expected in BENCHMARKING_MD_F32.items():
        k = bench.get(name)
        assert k.bytes_per_element(np.float32) == pytest.approx(expected), name
        # float64 doubles the array traffic, not the bit mask
        mask = expected - int(expected)
        assert k.bytes_per_element(np.float64) == pytest.approx(2 * (expected - mask) + mask)


def test_optimizers_are_registered():
    for name in ("sgd", "sgd-momentum", "nesterov", "rmsprop", "adam", "adamw", "amsgrad",
                 "adagrad"):
        assert bench.get(name).missing() is None
    with pytest.raises(KeyError, match="unknown kernel"):
        bench.get("nope")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_timer_interleaves_round_robin_and_calibrates():
    clock = FakeClock()
    calls = []
    cost = {"A": 1e-3, "B": 4e-3, "C": 2.5e-2}

    def variant(name):
        def run():
            calls.append(name)
            clock.now += cost[name]
        return run

    log = []
    t = bench.interleaved({n: variant(n) for n in "ABC"}, repeat=5, min_time=0.01,
                          warmup=1, clock=clock, log=log)
    assert log == list("ABC") * 5
    # each sample lasts at least min_time: A needs >= 10 calls, B >= 3, C one
    assert t["A"].calls_per_sample >= 10 and t["B"].calls_per_sample >= 3
    assert t["C"].calls_per_sample == 1
    timed = calls[-sum(t[n].calls_per_sample for n in "ABC") * 5:]
    expected = []
    for _ in range(5):
        for n in "ABC":
            expected += [n] * t[n].calls_per_sample
    assert timed == expected  # A..A B..B C A..A B..B C ...: never two rounds of one in a row
    for n in "ABC":
        assert len(t[n].samples) == 5
        assert t[n].median == pytest.approx(cost[n])


def test_timer_rejects_bad_repeat():
    with pytest.raises(ValueError):
        bench.interleaved({"a": lambda: None}, repeat=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_setup_gives_fresh_random_inputs(dtype):
    for k in bench.KERNELS.values():
        a = k.setup(5000, np.dtype(dtype), np.random.default_rng(0))
        b = k.setup(5000, np.dtype(dtype), np.random.default_rng(1))
        for name, arr in a.items():
            if name.startswith(("_twin", "mask")) or arr.dtype.kind != "f":
                continue
            assert arr.dtype == dtype, (k.name, name)
            assert np.all(np.isfinite(arr)) and np.count_nonzero(arr) > 0.9 * arr.size, (
                k.name, name)
            if arr.size > 1000:
                assert not np.array_equal(arr, b[name]), (k.name, name)


def test_every_available_runner_runs():
    """One call of each runner of each present kernel (a smoke test, not a timing)."""
    for k in present_kernels():
        for r in k.runner_names():
            if k.unavailable(r) is not None:
                continue
            arrays = k.setup(3000, np.dtype(np.float32), np.random.default_rng(0))
            k.make(r, arrays)()
            for name, arr in arrays.items():
                if arr.dtype.kind == "f" and not name.startswith("_twin"):
                    assert np.all(np.isfinite(arr)), (k.name, r, name)


def test_unavailable_runner_raises_not_implemented():
    k = bench.get("sgd")
    with pytest.raises(NotImplementedError):
        k.make("torch-raw", k.setup(100, np.dtype(np.float32), np.random.default_rng(0)))


@pytest.mark.skipif(not bench.kernels.twin_is_fused(), reason="C++ extension not built")
def test_twin_moves_the_same_arrays_without_changing_state():
    k = bench.get("amsgrad")
    a = k.setup(10_001, np.dtype(np.float32), np.random.default_rng(0))
    before = {n: v.copy() for n, v in a.items()}
    bench.make_twin(k.passes, a)()
    for n in a:  # the twin reads and writes every state array but leaves its values
        np.testing.assert_array_equal(a[n], before[n])
    from fastopt import _core
    x = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
    y = np.empty_like(x)
    _core.bench_twin([x], [], [y])
    np.testing.assert_array_equal(x, y)
    assert _core.bench_twin([x], [], []) == pytest.approx(float(x.sum()), rel=1e-4, abs=1e-3)


def test_absent_kernel_is_skipped_with_a_note(monkeypatch):
    ghost = K.Kernel("ghost", "optim", "no_such_function", "absent", (K.Traffic(("grad",)),),
                     lambda n, d, r: {"grad": np.ones(n, d)}, lambda a, b: (lambda: None))
    assert "no_such_function" in ghost.missing()
    assert ghost.unavailable("numpy-plain") is not None  # baselines of it skip too
    monkeypatch.setitem(K.KERNELS, "ghost", ghost)
    report = bench.run_suite(["ghost", "sgd"], [1000], runners=["numpy"], repeat=1,
                             min_time=1e-4, copy_n=10_000, progress=False)
    assert report["skipped"] == [{"kernel": "ghost", "reason": ghost.missing()}]
    assert {r["runner"] for r in report["results"]} == {"numpy", "twin"}
    assert "skipped ghost" in bench.format_table(report)


def _fake_report():
    rows = []
    for kname in bench.KERNELS:
        for n in (1000, 30_000_000):
            for r in bench.RUNNERS:
                rows.append({"kernel": kname, "family": "x", "dtype": "float64", "size": n,
                             "n": n, "runner": r, "bytes_per_element": 36.0,
                             "median_s": 123456.7, "min_s": 1.0, "samples_s": [1.0],
                             "calls_per_sample": 1, "gbps": 123456.78})
    suite._derive(rows, 0.001)
    return {"environment": {"fastopt": "0.1.0", "cpu": "A" * 200, "cpus": 2,
                            "cpp": {"isa": "avx512", "threads": 2}, "torch": "2.13.0",
                            "torch_threads": 2},
            "copy_bandwidth": {"n": 25_000_000, "gbps": 12345.6, "pool_copy_gbps": 12345.6,
                               "numpy_copyto_gbps": 1.0},
            "config": {"repeat": 7, "min_time_s": 0.01}, "results": rows,
            "skipped": [{"kernel": "ghost", "reason": "x " * 100}], "notes": ["y " * 100]}


def test_table_fits_80_columns_even_with_extreme_values():
    text = bench.format_table(_fake_report())
    assert max(len(line) for line in text.splitlines()) <= 80


def test_cli_bench_table_and_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = main(["bench", "--kernels", "sgd,adam", "--sizes", "1e3,2000", "--repeat", "2",
               "--min-time", "0.0005", "--backends", "numpy,numpy-plain,numpy-out",
               "--no-progress", "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert any(line.startswith("sgd ") for line in lines)
    assert any(line.startswith("adam ") for line in lines)
    assert "copy bandwidth" in text
    d = json.loads(out.read_text())
    assert set(d) >= {"environment", "copy_bandwidth", "config", "results", "skipped", "notes"}
    assert d["config"]["sizes"] == [1000, 2000] and d["config"]["repeat"] == 2
    assert d["copy_bandwidth"]["gbps"] > 0
    cells = {(r["kernel"], r["size"], r["runner"]) for r in d["results"]}
    for kname in ("sgd", "adam"):
        for n in (1000, 2000):
            for r in ("numpy", "numpy-plain", "numpy-out", "twin"):
                assert (kname, n, r) in cells
    for r in d["results"]:
        assert len(r["samples_s"]) == 2 and r["median_s"] > 0
        assert r["bytes_per_element"] == BENCHMARKING_MD_F32[r["kernel"]]
        assert math.isclose(r["gbps"], r["bytes_per_element"] * r["n"] / r["median_s"] / 1e9)
        assert r["share_twin"] is not None and r["speedup_numpy_plain"] is not None
        if r["runner"] == "numpy-plain":
            assert r["speedup_numpy_plain"] == 1.0


def test_cli_plot_writes_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    rc = main(["bench", "--kernels", "sgd", "--sizes", "1000,3000", "--repeat", "1",
               "--min-time", "0.0005", "--backends", "numpy,numpy-plain", "--no-progress",
               "--plot", str(png)])
    assert rc == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 5000


def test_cli_plot_without_matplotlib_is_a_clear_error(monkeypatch, capsys, tmp_path):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(SystemExit) as e:
        main(["bench", "--kernels", "sgd", "--plot", str(tmp_path / "x.png")])
    assert e.value.code == 2
    assert "matplotlib" in capsys.readouterr().err


@pytest.mark.parametrize("args", [["--kernels", "nope"], ["--backends", "gpu9000"],
                                  ["--dtype", "float16"], ["--sizes", "abc"],
                                  ["--sizes", "0"], ["--repeat", "0"],
                                  ["--min-time", "-1"]])
def test_cli_rejects_bad_arguments(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(["bench"] + args)
    assert e.value.code == 2


def test_cli_list_and_info(capsys):
    assert main(["bench", "--list"]) == 0
    out = capsys.readouterr().out
    for name in bench.KERNELS:
        assert name in out
    assert main(["info"]) == 0
    assert "backends" in capsys.readouterr().out


def test_importing_bench_does_not_import_torch():
    import subprocess
    import sys
    code = "import sys, fastopt.bench; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**__import__("os").environ})
    assert out.stdout.strip() == "False"
    assert fastopt.bench is bench


def test_timer_gap_is_untimed():
    clock = FakeClock()
    slept = []
    import time as _time
    orig = _time.sleep
    try:
        _time.sleep = lambda s: (slept.append(s), setattr(clock, "now", clock.now + 1.0))
        t = bench.interleaved({"a": lambda: setattr(clock, "now", clock.now + 0.01)},
                              repeat=3, min_time=0.01, clock=clock, gap=0.02)
    finally:
        _time.sleep = orig
    assert slept == [0.02] * 3
    assert t["a"].median == pytest.approx(0.01)
