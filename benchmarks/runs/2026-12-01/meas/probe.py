import json, re, sys, pathlib
sys.path.insert(0, "tests")
import test_dashboard as t
html = pathlib.Path(sys.argv[1]); tmp = pathlib.Path(sys.argv[2]); tmp.mkdir(exist_ok=True)
(html / "probe.html").write_text(t.PROBE % {"graph": t.GRAPH})
dom = t._render(t._chromium(), html, tmp, "probe.html")
m = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
r = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
print(json.dumps({"series": r.get("series") and [(s["label"], s["points"], len(set(s["xs"]))) for s in r["series"]],
                  "legend": r.get("legend"), "thumb": (r.get("thumbnails") or {}).get("summarygrid-" + t.GRAPH),
                  "thumb_points": {k: [x["points"] for x in (v or [])] for k, v in (r.get("thumbnails") or {}).items()}, "error": r.get("error")}, indent=0)[:3000])
