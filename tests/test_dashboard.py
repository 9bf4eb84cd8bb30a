"""The asv dashboard end to end, with history: asv runs a tiny subset of the
suite at each of 5 commits, ``asv publish`` builds the dashboard, and
headless Chromium renders it. Read from the DOM after rendering: the graph
page plots one point per commit (not a single point at x = 0), its legend
shows its labels readable (not a black box), and the grid's thumbnails are
drawn from more than one point.

How the test gets history (bounded in time): asv's per-commit builds take a
minute or more each, so instead the commits are 5 empty commits of a
throwaway git repository, and at each the working tree's fastopt is timed
(an ``existing`` environment with ``--set-commit-hash``). That exercises what
the dashboard shows of a history; building each commit is what
``benchmarks/asv.conf.json`` (virtualenv) and ``benchmarks/asv_compare.sh``
do, outside the test suite.

Skipped (with the reason) when Chromium, asv or git is missing. CI installs
Chromium and the dashboard's JavaScript libraries from Debian:
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
COMMITS = 5
GRAPH = "bench_optim.Optimizers.time_step"

# Loaded beside index.html (same origin): renders the graph page and the grid
# in iframes, then writes what flot drew into #out for --dump-dom.
PROBE = """<!doctype html><html><body>
<iframe id="graph" width="1200" height="900" src="index.html#%(graph)s?p-kernel='adam'"></iframe>
<iframe id="grid" width="1200" height="2400" src="index.html"></iframe>
<pre id="out">pending</pre>
<script>
function series(w, el) {
  var plot = w.$(el).data("plot");
  if (!plot) return null;
  return plot.getData().map(function (s) {
    return {label: s.label || "", points: s.data.filter(function (p) {
      return p[1] !== null && isFinite(p[1]); }).length,
      xs: s.data.map(function (p) { return p[0]; })};
  });
}
function probe() {
  var r = {};
  try {
    var g = document.getElementById("graph").contentWindow;
    r.swallow = g.document.body.innerText.indexOf("swallow") >= 0;
    r.series = series(g, "#main-graph");
    var labels = g.document.querySelectorAll("#main-graph .legend text, #main-graph .legendLabel");
    r.legend = Array.prototype.map.call(labels, function (t) {
      var box = t.closest(".legend");
      var bg = box && box.querySelector("rect.background");
      return {text: t.textContent,
              color: g.getComputedStyle(t).fill !== "none" && t.tagName === "text"
                     ? g.getComputedStyle(t).fill : g.getComputedStyle(t).color,
              background: bg ? g.getComputedStyle(bg).fill : null};
    });
    var d = document.getElementById("grid").contentWindow;
    r.thumbnails = {};
    d.$(".benchmark-plot").each(function () { r.thumbnails[this.id] = series(d, this); });
  } catch (e) { r.error = String(e); }
  document.getElementById("out").textContent = JSON.stringify(r);
}
setTimeout(probe, 10000);
</script></body></html>
"""


def _chromium():
    for name in CHROMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _throwaway_repo(path):
    """COMMITS empty commits, a day apart, on branch main."""
    os.makedirs(path)
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@t")
    subprocess.run(["git", "init", "-q", "-b", "main", path], check=True, env=env)
    for i in range(COMMITS):
        date = f"2026-11-{10 + i}T10:00:00"
        subprocess.run(["git", "-C", path, "commit", "-q", "--allow-empty", "-m", f"c{i}"],
                       check=True, env=dict(env, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date))
    out = subprocess.run(["git", "-C", path, "rev-list", "--reverse", "main"], check=True,
                         capture_output=True, text=True)
    return out.stdout.split()


def _asv_config(tmp_path, repo):
    """benchmarks/asv.conf.json, "existing" environment, results and html in tmp_path."""
    with open(os.path.join(BENCH_DIR, "asv.conf.json")) as f:
        text = "\n".join(line for line in f if not line.lstrip().startswith("//"))
    conf = json.loads(text)
    for key in ("matrix", "pythons", "build_command", "install_command", "uninstall_command"):
        conf.pop(key, None)
    conf.update(repo=repo, environment_type="existing", branches=["main"],
                benchmark_dir=os.path.join(BENCH_DIR, conf["benchmark_dir"]),
                results_dir=str(tmp_path / "results"), html_dir=str(tmp_path / "html"))
    path = tmp_path / "asv.conf.json"
    path.write_text(json.dumps(conf))
    return str(path)


def _run(cmd, env, timeout):
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                         cwd=BENCH_DIR)
    assert out.returncode == 0, " ".join(cmd) + "\n" + out.stdout[-4000:] + out.stderr[-4000:]
    return out


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _render(chromium, html, tmp_path, page):
    handler = functools.partial(_Quiet, directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{page}"
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--no-first-run",
               f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000",
               "--virtual-time-budget=30000", "--dump-dom", url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=180).stdout
    finally:
        server.shutdown()
        server.server_close()


def test_dashboard_plots_history_with_a_readable_legend(tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("Chromium not found (apt-get install chromium)")
    pytest.importorskip("asv", reason="asv not installed (pip install 'fastopt[bench]')")
    if shutil.which("git") is None:
        pytest.skip("git not found: asv records results against commits")
    commits = _throwaway_repo(str(tmp_path / "repo"))
    conf = _asv_config(tmp_path, str(tmp_path / "repo"))
    env = dict(os.environ)
    env["HOME"] = str(tmp_path)            # asv machine writes ~/.asv-machine.json
    env["FASTOPT_ASV_SUBSET"] = "1"        # a few kernels, one size, three runners
    # asv's runner drops PYTHONPATH and reads ASV_PYTHONPATH: time this fastopt
    env["ASV_PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(fastopt.__file__)))
    py = sys.executable
    _run([py, "-m", "asv", "machine", "--yes", "--config", conf], env, 120)
    for i, commit in enumerate(commits):  # exit status 2 (a benchmark failed) fails here too
        bench = "Optimizers" if i == len(commits) - 1 else "Optimizers.time_step"
        _run([py, "-m", "asv", "run", "--config", conf, "--python=same", "--quick",
              "--set-commit-hash", commit, "--bench", bench, "--show-stderr"], env, 600)
    _run([py, "-m", "asv", "publish", "--config", conf], env, 120)
    html = tmp_path / "html"
    out = _run([py, os.path.join(BENCH_DIR, "offline_dashboard.py"), str(html)], env, 60)
    if "kept CDN" in out.stdout:
        pytest.skip("the dashboard's JavaScript libraries are not installed locally: apt-get "
                    "install libjs-jquery libjs-jquery-flot libjs-jquery-stupidtable "
                    "libjs-bootstrap node-blueimp-md5")

    dom = _render(chromium, html, tmp_path, "index.html#/summarylist")
    assert SWALLOW not in dom, "the dashboard failed to load its JavaScript"
    listed = set(re.findall(r"bench_\w+\.\w+\.(?:time|track)_\w+", dom))
    for name in (GRAPH, "bench_optim.Optimizers.track_gbps"):
        assert name in listed, f"{name} not in the rendered benchmark list: {sorted(listed)}"
    assert re.search(r"\d+(\.\d+)?\s*(ns|μs|us|ms|s)\b", dom), "no timing shown"
    assert "GB/s" in dom

    (html / "probe.html").write_text(PROBE % {"graph": GRAPH})
    dom = _render(chromium, html, tmp_path, "probe.html")
    m = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert m and m.group(1) != "pending", "the probe did not run: " + dom[-2000:]
    r = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert "error" not in r, r
    assert not r["swallow"], "the graph page failed to load its JavaScript"
    # the graph: one series per backend of the subset, each a point per commit
    assert r["series"], "no plot on the graph page"
    for s in r["series"]:
        assert s["points"] == COMMITS, s
        assert len(set(s["xs"])) == COMMITS, f"points share an x (all at 0?): {s}"
    # the legend: one label per series, drawn in a colour its background is not
    labels = [e for e in r["legend"] if e["text"].strip()]
    assert sorted(e["text"] for e in labels) == sorted(s["label"] for s in r["series"]), r
    for runner in ("cpp", "numpy-plain", "twin"):
        assert any(runner in e["text"] for e in labels), (runner, labels)
    for e in labels:
        assert e["background"] is None or e["background"] != e["color"], (
            f"legend label drawn in its background's colour (a black box): {e}")
    # the grid: the benchmarks that ran have thumbnails drawn from the history
    thumb = r["thumbnails"].get("summarygrid-" + GRAPH)
    assert thumb, f"no thumbnail for {GRAPH}: {sorted(r['thumbnails'])}"
    assert thumb[0]["points"] == COMMITS, thumb
