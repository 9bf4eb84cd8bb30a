"""The asv dashboard end to end: a quick asv run of a tiny subset of the suite,
``asv publish``, then the published page opened in headless Chromium, whose
benchmark list must show fastopt's benchmarks.

Skipped (with the reason) when Chromium or asv is missing, or when the
checkout is not a git repository (asv records results against a commit).
CI installs Chromium and the dashboard's JavaScript libraries from Debian:
``apt-get install -y chromium libjs-jquery libjs-jquery-flot
libjs-jquery-stupidtable libjs-bootstrap node-blueimp-md5``.
"""
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading

import pytest

import fastopt

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(ROOT, "benchmarks")
CHROMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
SWALLOW = "Can not determine continental origin of swallow"  # asv's "JS failed to load" page


def _chromium():
    for name in CHROMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _git_head():
    try:
        out = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _asv_config(tmp_path):
    """benchmarks/asv.conf.json with results and html redirected to tmp_path."""
    with open(os.path.join(BENCH_DIR, "asv.conf.json")) as f:
        text = "\n".join(line for line in f if not line.lstrip().startswith("//"))
    conf = json.loads(text)
    conf.update(repo=ROOT, benchmark_dir=os.path.join(BENCH_DIR, conf["benchmark_dir"]),
                results_dir=str(tmp_path / "results"), html_dir=str(tmp_path / "html"))
    path = tmp_path / "asv.conf.json"
    path.write_text(json.dumps(conf))
    return str(path)


def _run(cmd, env, timeout):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                         cwd=BENCH_DIR)
    return out


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_published_dashboard_lists_fastopt_benchmarks(tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium not found (apt-get install chromium)")
    pytest.importorskip("asv", reason="asv not installed (pip install 'fastopt[bench]')")
    head = _git_head()
    if head is None:
        pytest.skip("not a git checkout: asv records results against a commit")

    conf = _asv_config(tmp_path)
    env = dict(os.environ)
    env["HOME"] = str(tmp_path)            # asv machine writes ~/.asv-machine.json
    env["FASTOPT_ASV_SUBSET"] = "1"        # a few kernels, one size, three runners
    # asv's runner drops PYTHONPATH and reads ASV_PYTHONPATH: time this fastopt
    env["ASV_PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(fastopt.__file__)))
    py = sys.executable
    out = _run([py, "-m", "asv", "machine", "--yes", "--config", conf], env, 120)
    assert out.returncode == 0, out.stdout + out.stderr
    out = _run([py, "-m", "asv", "run", "--config", conf, "--python=same", "--quick",
                "--set-commit-hash", head, "--show-stderr"], env, 300)
    # exit status 2 means a benchmark failed: that is a failure here too
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    res = tmp_path / "results"
    results = [f for f in os.listdir(res) if os.path.isdir(res / f)]
    assert results, "asv saved no results"
    out = _run([py, "-m", "asv", "publish", "--config", conf], env, 120)
    assert out.returncode == 0, out.stdout + out.stderr
    html = tmp_path / "html"
    out = _run([py, os.path.join(BENCH_DIR, "offline_dashboard.py"), str(html)], env, 60)
    assert out.returncode == 0, out.stdout + out.stderr
    offline_ok = "kept CDN" not in out.stdout

    handler = functools.partial(_Quiet, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/index.html#/summarylist"
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--no-first-run",
               f"--user-data-dir={tmp_path / 'profile'}",
               "--virtual-time-budget=15000", "--dump-dom", url]
        dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    finally:
        server.shutdown()
        server.server_close()
    if SWALLOW in dom and not offline_ok:
        pytest.skip("the dashboard's JavaScript libraries are neither installed locally nor "
                    "reachable: apt-get install libjs-jquery libjs-jquery-flot "
                    "libjs-jquery-stupidtable libjs-bootstrap node-blueimp-md5")
    assert SWALLOW not in dom, "the dashboard failed to load its JavaScript"
    assert "fastopt" in dom
    listed = set(re.findall(r"bench_\w+\.\w+\.(?:time|track)_\w+", dom))
    for name in ("bench_optim.Optimizers.time_step", "bench_optim.Optimizers.track_gbps"):
        assert name in listed, f"{name} not in the rendered benchmark list: {sorted(listed)}"
    # values rendered for a run that worked (the NumPy baseline needs nothing built)
    assert re.search(r"\d+(\.\d+)?\s*(ns|μs|us|ms|s)\b", dom), "no timing shown"
    assert "GB/s" in dom
