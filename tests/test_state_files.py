"""State files and state dicts that must be refused or kept intact (issue 14, 11-14).
Children run under timeouts."""
from __future__ import annotations

import io
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

import fastopt
from fastopt.optim import state as state_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastopt.__file__)))


def _adam(n=3, seed=0):
    rng = np.random.default_rng(seed)
    ps = [rng.standard_normal(10 + 7 * i).astype(np.float32) for i in range(n)]
    opt = fastopt.Adam(ps, lr=1e-2)
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in ps]
    opt.step(grads)
    return opt, ps, grads


def _snapshot(opt, ps):
    return ([p.copy() for p in ps], [{k: a.copy() for k, a in st.items()} for st in opt.state],
            list(opt._steps), opt.step_count)


def _same(opt, ps, snap):
    p0, st0, steps0, count0 = snap
    assert all(np.array_equal(a, b) for a, b in zip(ps, p0))
    assert list(opt._steps) == steps0 and opt.step_count == count0
    for st, sb in zip(opt.state, st0):
        assert st.keys() == sb.keys() and all(np.array_equal(st[k], sb[k]) for k in st)


# ------------------------------------------------------------------ 11
@pytest.mark.parametrize("bad", [10**400, float("inf"), 2**53 + 1, -1, float("nan")])
@pytest.mark.parametrize("where", ["step", "step_count"])
def test_impossible_step_counts_are_refused_at_load(bad, where):
    # Before: step = 10**400 loaded, then every step() raised OverflowError.
    opt, ps, grads = _adam()
    sd = opt.state_dict()
    if where == "step":
        sd["state"][1]["step"] = bad
    else:
        sd["step_count"] = bad
    snap = _snapshot(opt, ps)
    with pytest.raises(ValueError, match="2\\*\\*53"):
        opt.load_state_dict(sd)
    _same(opt, ps, snap)
    opt.step(grads)    # still works


# ------------------------------------------------------------------ 12
def _npy_header_only(shape, dtype, payload=b""):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": shape})
    return buf.getvalue() + payload


def _crafted(path, opt, shape, dtype=np.float32):
    sd = opt.state_dict()
    state_files.save_state(sd, path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    members["state/0/exp_avg.npy"] = _npy_header_only(shape, dtype, b"\0" * (4 << 20))
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)


@pytest.mark.parametrize("shape", [(2**30,), (11,), (2**15, 2**15)])
def test_crafted_member_is_refused_before_its_data_is_read(tmp_path, shape):
    # Before: a 4 MB file declaring a 2**30-element member made load() allocate 4 GB.
    opt, ps, _ = _adam()
    path = tmp_path / "crafted.npz"
    _crafted(path, opt, shape)
    snap = _snapshot(opt, ps)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError):
            opt.load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20, f"load allocated {peak} bytes"
    _same(opt, ps, snap)


def test_member_declaring_more_than_the_file_holds_is_refused(tmp_path):
    opt, _, _ = _adam()
    path = tmp_path / "short.npz"
    _crafted(path, opt, (2**28,))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="more than the file holds"):
            state_files.load_state(path)          # no optimizer to compare with
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 << 20


def test_meta_must_be_a_string(tmp_path):
    path = tmp_path / "meta.npz"
    np.savez(path, __meta__=np.zeros(3))
    with pytest.raises(ValueError):
        state_files.load_state(path)


def _damaged(data, rng):
    """Truncations at 64 places and 64 single bit flips of the bytes of a state file."""
    for cut in np.linspace(0, len(data) - 1, 64).astype(int):
        yield f"cut at {cut}", data[:cut]
    for _ in range(64):
        b = bytearray(data)
        pos = int(rng.integers(len(b)))
        b[pos] ^= 1 << int(rng.integers(8))
        yield f"bit flipped at {pos}", bytes(b)


def test_damaged_files_raise_value_error_and_change_nothing(tmp_path):
    """Before: a file that was not a zip archive, or one cut short or with a flipped bit,
    raised zipfile.BadZipFile or NotImplementedError ("That compression method is not
    supported"), which a caller catching the documented ValueError missed."""
    opt, ps, grads = _adam()
    path = tmp_path / "good.npz"
    opt.save(path)
    data = path.read_bytes()
    bad = tmp_path / "bad.npz"
    cases = [("empty", b""), ("text", b"not a state file"), ("zip magic only", b"PK\x03\x04" * 8)]
    for what, blob in cases + list(_damaged(data, np.random.default_rng(3))):
        bad.write_bytes(blob)
        other, qs, _ = _adam(seed=1)
        snap = _snapshot(other, qs)
        try:
            other.load(bad)
        except (ValueError, TypeError):
            _same(other, qs, snap)
        else:   # a flip the format does not see (a timestamp, a comment): loads the state
            for st, want in zip(other.state, opt.state):
                assert all(np.array_equal(st[k], want[k]) for k in want), what


def test_member_with_an_unclosed_npy_header_raises_value_error(tmp_path):
    """Before: numpy's header parser raised tokenize.TokenError for "(10, }"."""
    opt, ps, _ = _adam()
    path = tmp_path / "header.npz"
    state_files.save_state(opt.state_dict(), path)
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (10, }"
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    members["state/0/exp_avg.npy"] = (b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little")
                                      + header + b"\0" * 40)
    with zipfile.ZipFile(path, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    snap = _snapshot(opt, ps)
    with pytest.raises(ValueError, match="state file"):
        opt.load(path)
    _same(opt, ps, snap)


_GOOD_META = {"format": "fastopt-optimizer-state-1", "state": {}, "param_groups": []}


@pytest.mark.parametrize("meta", [
    {"format": "fastopt-optimizer-state-1"},
    {**_GOOD_META, "state": []},
    {**_GOOD_META, "state": {"x": {}}},
    {**_GOOD_META, "state": {"0": 5}},
    {**_GOOD_META, "param_groups": 3},
    {**_GOOD_META, "param_groups": [5]},
    {**_GOOD_META, "param_groups": [{"params": 7}]},
    {**_GOOD_META, "bfloat16": 4},
    {**_GOOD_META, "extra": [1]},
    [1, 2],
])
def test_malformed_meta_raises_value_error(tmp_path, meta):
    """Before: KeyError, AttributeError or TypeError from inside the reader."""
    path = tmp_path / "meta.npz"
    np.savez(path, **{"__meta__": np.array(json.dumps(meta)),
                      "state/0/exp_avg": np.zeros(10, np.float32)})
    with pytest.raises(ValueError, match="state file"):
        state_files.load_state(path)
    opt, ps, _ = _adam()
    snap = _snapshot(opt, ps)
    with pytest.raises(ValueError):
        opt.load(path)
    _same(opt, ps, snap)


def test_round_trip_still_exact(tmp_path):
    opt, ps, grads = _adam()
    path = tmp_path / "ok.npz"
    opt.save(path)
    other, ps2, _ = _adam(seed=1)
    other.load(path)
    for st, st2 in zip(opt.state, other.state):
        assert all(np.array_equal(st[k], st2[k]) for k in st)
    assert other._steps == opt._steps


# ------------------------------------------------------------------ 13
def test_save_keeps_the_mode_of_an_existing_file(tmp_path):
    # Before: a 0644 checkpoint became 0600.
    opt, _, _ = _adam()
    path = tmp_path / "ckpt.npz"
    opt.save(path)
    os.chmod(path, 0o644)
    opt.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    os.chmod(path, 0o640)
    opt.save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_new_file_gets_the_umask_mode(tmp_path):
    opt, _, _ = _adam()
    old = os.umask(0o027)
    try:
        opt.save(tmp_path / "new.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.npz").st_mode) == 0o640


def test_save_writes_through_a_symlink(tmp_path):
    # Before: the link was replaced by a regular file and its target never updated.
    opt, ps, grads = _adam()
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "ckpt.npz"
    opt.save(target)
    link = tmp_path / "latest.npz"
    os.symlink(target, link)
    opt.step(grads)
    opt.save(link)
    assert os.path.islink(link) and os.readlink(link) == str(target)
    saved = state_files.load_state(target)
    assert saved["state"][0]["step"] == 2
    assert not [n for n in os.listdir(tmp_path) if n.endswith(state_files._TEMP_SUFFIX)]


# ------------------------------------------------------------------ 14
KILLED_SAVER = """
import numpy as np, fastopt, sys
ps = [np.ones(4 * 10**6, np.float32) for _ in range(4)]
opt = fastopt.Adam(ps)
opt.step([np.ones_like(p) for p in ps])
print("ready", flush=True)
while True:
    opt.save(sys.argv[1])
"""


def _temps(directory):
    return [n for n in os.listdir(directory) if n.startswith(".ckpt.npz.")]


def test_next_save_removes_the_temp_file_of_a_killed_save(tmp_path):
    # Before: every SIGKILL mid-save left a full-size hidden temp file for good.
    path = tmp_path / "ckpt.npz"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    left = []
    for _ in range(5):
        child = subprocess.Popen([sys.executable, "-c", KILLED_SAVER, str(path)], env=env,
                                 stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            deadline = time.monotonic() + 60
            while not _temps(tmp_path) and time.monotonic() < deadline:
                time.sleep(0.001)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            child.stdout.close()
        left = _temps(tmp_path)
        if left:
            break
    if not left:
        pytest.skip("no kill landed mid-save in 5 tries")
    opt, _, _ = _adam()
    opt.save(path)
    assert _temps(tmp_path) == []
    state_files.load_state(path)


def test_temp_file_of_a_live_writer_is_kept(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        base = "ckpt.npz"
        name = state_files._temp_prefix(base, pid=live.pid) + "abc123" + state_files._TEMP_SUFFIX
        (tmp_path / name).write_bytes(b"being written")
        other = ".ckpt.npz.somewhere-else.1." + "x" + state_files._TEMP_SUFFIX   # another host
        (tmp_path / other).write_bytes(b"")
        opt, _, _ = _adam()
        opt.save(tmp_path / base)
        assert (tmp_path / name).exists() and (tmp_path / other).exists()
    finally:
        live.kill()
        live.wait(timeout=30)
    opt.save(tmp_path / base)       # now its writer is gone
    assert not (tmp_path / name).exists() and (tmp_path / other).exists()
