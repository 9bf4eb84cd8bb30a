"""Reliability (issue 14): threads, fork, interpreter exit, backend probes, bad inputs,
and optimizers acting on the arrays they hold now. Every child process runs under
a timeout, so a regression to a hang fails instead of stalling the suite."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastopt
from conftest import CPU_BACKENDS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fastopt.__file__)))
HAS_CPP = "cpp" in CPU_BACKENDS
HAS_NUMBA = "numba" in CPU_BACKENDS


def run_child(*parts, timeout=120, env=None):
    """Runs the code ``parts`` (each dedented) in a fresh interpreter importing this
    fastopt; (rc, output)."""
    code = "".join(textwrap.dedent(p) for p in parts)
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = ROOT + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    try:
        # cwd=ROOT: `python -c` puts the cwd first on sys.path, and in CI the cwd is the
        # checkout, whose fastopt/ has no built extension; ROOT holds the one imported here
        r = subprocess.run([sys.executable, "-c", code], env=full_env, cwd=ROOT,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"child hung (killed after {timeout} s): {exc.stdout!r} {exc.stderr!r}")
    return r.returncode, r.stdout + r.stderr


# ------------------------------------------------------------------ 1. lists
@pytest.mark.skipif(not HAS_CPP, reason="the native list fast path needs the cpp backend")
def test_list_member_replaced_by_another_thread_during_a_call():
    # Before: the fast path kept raw pointers only; P[0] = ... freed the array
    # the kernel was writing (segfault, 3 of 3 runs).
    rc, out = run_child("""
        import threading, numpy as np, fastopt
        N = 20_000_000
        P = [np.ones(N, np.float32)]; G = [np.ones(N, np.float32)]
        stop = False
        def swap():
            while not stop:
                P[0] = np.zeros(N, np.float32)
        t = threading.Thread(target=swap); t.start()
        for _ in range(30):
            fastopt.sgd_step(P, G, lr=1e-3)
        stop = True; t.join()
        print("ok")
    """)
    assert rc == 0 and "ok" in out, out


# ------------------------------------------------------------------ 2. numba
@pytest.mark.skipif(not HAS_NUMBA, reason="numba not installed")
def test_numba_from_two_threads():
    # Before: "Numba workqueue threading layer is terminating: Concurrent access".
    rc, out = run_child("""
        import threading, numpy as np, fastopt
        N = 10**6
        rng = np.random.default_rng(0)
        p0 = rng.standard_normal(N).astype(np.float32); g = rng.standard_normal(N).astype(np.float32)
        fastopt.sgd_step(p0.copy(), g, lr=1e-3, backend="numba")   # compile first
        out = {}
        def work(k):
            p = p0.copy()
            for _ in range(100):
                fastopt.sgd_step(p, g, lr=1e-3, backend="numba")
                fastopt.dropout_forward(p, 0.5, seed=k, backend="numba")
            out[k] = p
        ts = [threading.Thread(target=work, args=(k,)) for k in range(2)]
        [t.start() for t in ts]; [t.join() for t in ts]
        ref = p0.copy()
        for _ in range(100):
            fastopt.sgd_step(ref, g, lr=1e-3, backend="numpy")
        for k in range(2):
            assert np.allclose(out[k], ref, rtol=1e-5, atol=1e-5), k
        print("ok")
    """, timeout=300)
    assert rc == 0 and "ok" in out, out


# ------------------------------------------------------------------ 3, 4. fork
FORK_CHILDREN = """
    import os, time
    def bn():
        c = 64
        x = np.random.default_rng(2).standard_normal((4096, c)).astype(np.float32)
        one, zero = np.ones(c, np.float32), np.zeros(c, np.float32)
        return fastopt.batch_norm_forward(x, one, zero, zero.copy(), one.copy())
    def child_call():
        x = np.random.default_rng(1).standard_normal(10**6).astype(np.float32)
        g = np.ones_like(x)
        fastopt.sgd_step(x, g, lr=1e-3)                       # a parallel call
        for _ in range(2):   # y (1 MiB) comes from the buffer cache, then goes back to it
            bn()
        assert np.allclose(x, np.random.default_rng(1).standard_normal(10**6).astype(np.float32) - 1e-3)
    def fork_and_wait(n, timeout):
        pids = []
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                try:
                    child_call(); os._exit(0)
                except BaseException:
                    os._exit(3)
            pids.append(pid)
        deadline = time.monotonic() + timeout
        codes = {}
        while pids and time.monotonic() < deadline:
            for pid in list(pids):
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    codes[pid] = os.waitstatus_to_exitcode(status); pids.remove(pid)
            time.sleep(0.01)
        for pid in pids:
            os.kill(pid, 9); os.waitpid(pid, 0)
        return len(pids), sorted(codes.values())
"""


@pytest.mark.skipif(not HAS_CPP, reason="the pool is the cpp backend's")
def test_fork_after_torch_import_child_calls_work():
    pytest.importorskip("torch")
    # Before: children hung on their first parallel call (torch's libgomp team
    # does not exist in a forked child).
    rc, out = run_child("""
        import torch, numpy as np, fastopt
        torch.ones(10**6).add_(1)
        fastopt.sgd_step(np.ones(10**6, np.float32), np.ones(10**6, np.float32), lr=1e-3)
    """, FORK_CHILDREN, """
        hung, codes = fork_and_wait(4, timeout=60)
        print("hung", hung, "codes", codes)
        assert hung == 0 and codes == [0] * 4
        print("ok")
    """, timeout=150)
    assert rc == 0 and "ok" in out, out


@pytest.mark.skipif(not HAS_CPP, reason="the pool is the cpp backend's")
def test_fork_while_another_thread_is_inside_a_kernel():
    # Before: 2-6 of 10 children hung, having inherited a locked pool mutex.
    rc, out = run_child("""
        import threading, numpy as np, fastopt
        p = np.ones(4 * 10**6, np.float32); g = np.ones_like(p)
        stop = False
        def busy():
            while not stop:
                fastopt.adam_step(p, g, np.zeros_like(p), np.zeros_like(p), step=1, lr=1e-9)
                bn()
    """, FORK_CHILDREN, """
        t = threading.Thread(target=busy); t.start()
        try:
            hung, codes = fork_and_wait(12, timeout=60)
        finally:
            stop = True; t.join()
        print("hung", hung, "codes", codes)
        assert hung == 0 and codes == [0] * 12
        print("ok")
    """, timeout=150)
    assert rc == 0 and "ok" in out, out


# ------------------------------------------------------------------ 5. exit
@pytest.mark.parametrize("call", [
    "fastopt.sgd_step(p, g, lr=1e-3)",
    "fastopt.sgd_step([p], [g], lr=1e-3, backend='cpp')",
    "fastopt.dropout_forward(p, 0.5, seed=1)",
    "fastopt.clip_grad_norm([g], 1e9)",
])
@pytest.mark.skipif(not HAS_CPP, reason="the GIL release is the cpp backend's")
def test_daemon_thread_in_a_kernel_at_interpreter_exit(call):
    # Before: "terminate called without an active exception" (abort), every run.
    for _ in range(3):
        rc, out = run_child(f"""
            import threading, time, numpy as np, fastopt
            p = np.ones(10**7, np.float32); g = np.ones_like(p)
            def work():
                while True:
                    {call}
            threading.Thread(target=work, daemon=True).start()
            time.sleep(0.2)
        """, timeout=60)
        assert rc == 0 and "terminate" not in out, out


# ------------------------------------------------------------------ 16. no threads
@pytest.mark.skipif(not HAS_CPP, reason="the pool is the cpp backend's")
def test_large_calls_run_on_the_caller_when_no_thread_can_be_made():
    # Before: RuntimeError (std::system_error from std::thread).
    rc, out = run_child("""
        import os, resource, threading, numpy as np, fastopt
        from fastopt import _core
        _core.set_num_threads(4)
        x = np.random.default_rng(0).standard_normal(4 * 10**6)
        p = x.copy(); g = np.ones_like(p)
        fastopt.sgd_step(p[:10], g[:10], lr=0.0)   # imports done before the limit
        if os.getuid() == 0:               # root ignores RLIMIT_NPROC
            os.setgid(65534); os.setuid(65534)
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))
        try:
            threading.Thread(target=print).start()
            print("threads still possible: cannot test"); raise SystemExit(0)
        except RuntimeError:
            pass
        fastopt.sgd_step(p, g, lr=0.5)
        assert np.array_equal(p, x - 0.5)
        print("ok")
    """, env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "FASTOPT_REUSE_OPENMP": "0"})
    if "cannot test" in out:
        pytest.skip("this machine lets the child create threads past RLIMIT_NPROC")
    assert rc == 0 and "ok" in out, out


# ------------------------------------------------------------------ 15. probes
def test_backend_probe_failure_is_retried():
    # Before: an exception while numba was first imported marked it unavailable forever.
    rc, out = run_child("""
        import sys, time
        class Interrupted:
            hits = 0
            def find_spec(self, name, path=None, target=None):
                if name == "numba" and Interrupted.hits == 0:
                    Interrupted.hits += 1
                    raise RuntimeError("signal during import")
                return None
        sys.meta_path.insert(0, Interrupted())
        from fastopt import backends
        assert backends.unavailable_reason("numba") is not None
        time.sleep(backends.RETRY_SECONDS + 0.05)
        try:
            import numba  # noqa
        except ImportError:
            print("no numba"); raise SystemExit(0)
        assert backends.unavailable_reason("numba") is None, backends.unavailable_reason("numba")
        print("ok")
    """)
    if "no numba" in out:
        pytest.skip("numba not installed")
    assert rc == 0 and "ok" in out, out


# ------------------------------------------------------------------ 6, 10. inputs
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_dropout_refuses_lists(backend):
    # Before: a list silently used its first array only.
    xs = [np.random.default_rng(i).standard_normal(100).astype(np.float32) for i in range(2)]
    with pytest.raises(TypeError, match="one array"):
        fastopt.dropout_forward(xs, 0.5, seed=1, backend=backend)
    mask = fastopt.dropout_mask((100,), 0.5, seed=1)
    with pytest.raises(TypeError, match="one array"):
        fastopt.dropout_backward(xs, mask, 0.5, backend=backend)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_masked_arrays_are_refused(backend):
    rng = np.random.default_rng(0)
    p = np.ma.masked_array(rng.standard_normal(64), mask=rng.random(64) < 0.5)
    g = rng.standard_normal(64)
    before = p.data.copy()
    with pytest.raises(TypeError, match="MaskedArray"):
        fastopt.sgd_step(p, g, lr=0.1, backend=backend)
    with pytest.raises(TypeError, match="MaskedArray"):
        fastopt.sgd_step(p.data, np.ma.masked_array(g), lr=0.1, backend=backend)
    with pytest.raises(TypeError, match="MaskedArray"):
        fastopt.dropout_forward(p, 0.5, seed=1, backend=backend)
    with pytest.raises(TypeError, match="MaskedArray"):
        fastopt.Adam([p], backend=backend)
    assert np.array_equal(p.data, before)


_SUBCLASS_CHILD = """
import numpy as np, fastopt

class Tagged(np.ndarray):
    pass

rng = np.random.default_rng(5)
plain = [rng.standard_normal((4, 6)).astype(np.float32) for _ in range(4)]
plain[3] = np.abs(plain[3])
mask = fastopt.dropout_mask((4, 6), 0.3, seed=2)
mean, invstd = rng.standard_normal(6).astype(np.float32), np.ones(6, np.float32)
gamma, beta = rng.standard_normal(6).astype(np.float32), rng.standard_normal(6).astype(np.float32)
for wrap in (np.matrix, lambda a: a.view(Tagged)):
    def calls(a):   # in-place results are the arrays themselves
        p, g, m, v = a
        return [
            ("sgd", lambda: fastopt.sgd_step(p, g, m, lr=0.1, momentum=0.9, backend=BACKEND)),
            ("adam", lambda: fastopt.adam_step(p, g, m, v, step=2, lr=0.1, backend=BACKEND)),
            ("ema", lambda: fastopt.ema_update(p, g, 0.9, backend=BACKEND)),
            ("clip", lambda: fastopt.clip_grad_norm([p, g], 0.5, backend=BACKEND)),
            ("grad_norm", lambda: fastopt.grad_norm(p, backend=BACKEND)),
            ("dropout", lambda: fastopt.dropout_forward(p, 0.3, seed=2, backend=BACKEND)),
            ("dropout backward", lambda: fastopt.dropout_backward(p, mask, 0.3, backend=BACKEND)),
            ("batch norm", lambda: fastopt.batch_norm_forward(p, gamma, beta, None, None,
                                                              backend=BACKEND)),
            ("batch norm backward", lambda: fastopt.batch_norm_backward(
                p, g, gamma, mean, invstd, backend=BACKEND)),
        ]
    want_arrays = [a.copy() for a in plain]
    got_arrays = [wrap(a.copy()) for a in plain]
    for (what, want), (_, got) in zip(calls(want_arrays), calls(got_arrays)):
        w, r = want(), got()
        w = w if isinstance(w, tuple) else (w,)
        r = r if isinstance(r, tuple) else (r,)
        for x, y in zip(w, r):
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes(), what
            assert np.asarray(x).shape == np.asarray(y).shape, what
        for x, y in zip(want_arrays, got_arrays):   # the subclass object itself was updated
            assert x.tobytes() == np.asarray(y).tobytes(), what
import gc
gc.collect()
junk = [np.empty(i % 977 + 1) for i in range(200000)]   # a corrupted heap aborts here
print("SUBCLASSES OK")
"""


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_ndarray_subclasses_run_as_their_plain_arrays(backend):
    """np.matrix (whose reshape(-1) stays 2-D) and other ndarray subclasses reached the
    backends as they were: numba's EMA then wrote past the arrays (a heap corruption
    that aborted the interpreter later), numba's clipping and dropout failed in typing
    and the NumPy reference's dropout raised IndexError. The validator now hands every
    backend a plain ndarray view of the same memory: the same results as plain arrays,
    written into the caller's object."""
    rc, out = run_child(f"BACKEND = {backend!r}\n", _SUBCLASS_CHILD)
    assert rc == 0 and "SUBCLASSES OK" in out, out[-3000:]


# ------------------------------------------------------------------ 7. optimizers
def _adam_pair(backend, groups=1, n=3):
    rng = np.random.default_rng(7)
    ps = [rng.standard_normal(50 + 17 * i) for i in range(groups * n)]
    ref = [p.copy() for p in ps]
    split = [ps[k * n:(k + 1) * n] for k in range(groups)]
    split_ref = [ref[k * n:(k + 1) * n] for k in range(groups)]
    opt = fastopt.Adam([{"params": s} for s in split], lr=0.01, backend=backend)
    ref_opt = fastopt.Adam([{"params": s} for s in split_ref], lr=0.01, backend="numpy")
    grads = [rng.standard_normal(p.shape) for p in ps]
    return opt, ref_opt, ps, ref, grads


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_read_only_param_after_construction_is_refused_untouched(backend):
    opt, _, ps, _, grads = _adam_pair(backend, groups=2)
    opt.step(grads)
    opt.step(grads)
    ps[4].flags.writeable = False          # a parameter of the second group
    before = [p.copy() for p in ps]
    state_before = [{k: a.copy() for k, a in st.items()} for st in opt.state]
    with pytest.raises(ValueError, match="read-only"):
        opt.step(grads)
    for a, b in zip(ps, before):
        assert np.array_equal(a, b)        # the first group was not updated either
    for st, sb in zip(opt.state, state_before):
        for k in st:
            assert np.array_equal(st[k], sb[k])


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_replaced_state_array_is_the_one_updated(backend):
    opt, ref_opt, ps, ref, grads = _adam_pair(backend)
    for o in (opt, ref_opt):
        o.step(grads)
    new = opt.state[1]["exp_avg"].copy()
    opt.state[1]["exp_avg"] = new
    for o in (opt, ref_opt):
        o.step(grads)
    assert np.allclose(new, ref_opt.state[1]["exp_avg"], rtol=1e-12, atol=0)
    assert np.allclose(opt.state_dict()["state"][1]["exp_avg"], ref_opt.state[1]["exp_avg"])
    for a, b in zip(ps, ref):
        assert np.allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_param_swapped_into_param_groups_is_stepped(backend):
    opt, ref_opt, ps, ref, grads = _adam_pair(backend)
    for o in (opt, ref_opt):
        o.step(grads)
    swapped = ps[2].copy()
    opt.param_groups[0]["params"][2] = swapped
    for o in (opt, ref_opt):
        o.step(grads)
    assert np.allclose(swapped, ref[2], rtol=1e-12, atol=1e-15)
    assert not np.allclose(ps[2], ref[2])   # the old array was left alone


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_state_replaced_by_an_overlapping_array_is_refused(backend):
    opt, _, ps, _, grads = _adam_pair(backend, groups=2)
    opt.step(grads)
    before = [p.copy() for p in ps]
    opt.state[4]["exp_avg"] = grads[5][:ps[4].size]   # state of group 2 = a gradient's memory
    with pytest.raises(ValueError, match="overlap"):
        opt.step(grads)
    for a, b in zip(ps, before):
        assert np.array_equal(a, b)
