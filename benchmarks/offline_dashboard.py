"""Makes asv's published dashboard work without internet access.

asv's index.html loads jQuery, flot, bootstrap, stupidtable and blueimp-md5
from CDNs; on a machine without internet the page shows "Can not determine
continental origin of swallow" instead of the benchmarks. This rewrites those
tags to local copies under ``html/vendor/``, taken from Debian's packages
(``apt-get install libjs-jquery libjs-jquery-flot libjs-jquery-stupidtable
libjs-bootstrap node-blueimp-md5``) and, for flot-orderbars (not packaged),
a stand-in in benchmarks/vendor/. A library not found locally keeps its CDN
tag. Usage: ``python offline_dashboard.py [html_dir]`` (default: html beside
this file). Prints what it replaced; idempotent.

Debian's flot is a 3.x bundle, not the 0.8.3 asv was written for, and two of
its changes break asv's graph page: its legend is an SVG whose background
rect is filled by a stylesheet flot ships separately (without it the fill
is SVG's default, black, over black labels: a black box), and it has the
axis-labels plugin built in, so asv's own copy draws every axis label twice.
When the local flot is such a bundle, the page gets the legend's stylesheet
and loses asv's axis-labels script.
"""
from __future__ import annotations

import os
import re
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEBIAN = "/usr/share/javascript"
# CDN file name (the end of the URL) -> local candidates, first found wins
LOCAL = {
    "jquery-3.3.1.min.js": [f"{DEBIAN}/jquery/jquery.min.js"],
    "jquery.flot.min.js": [f"{DEBIAN}/jquery-flot/jquery.flot.min.js",
                           f"{DEBIAN}/jquery-flot/jquery.flot.js"],
    "jquery.flot.time.min.js": [f"{DEBIAN}/jquery-flot/jquery.flot.time.min.js",
                                f"{DEBIAN}/jquery-flot/jquery.flot.time.js"],
    "jquery.flot.selection.min.js": [f"{DEBIAN}/jquery-flot/jquery.flot.selection.min.js",
                                     f"{DEBIAN}/jquery-flot/jquery.flot.selection.js"],
    "jquery.flot.categories.min.js": [f"{DEBIAN}/jquery-flot/jquery.flot.categories.min.js",
                                      f"{DEBIAN}/jquery-flot/jquery.flot.categories.js"],
    "jquery.flot.orderBars.js": [os.path.join(HERE, "vendor", "jquery.flot.orderBars.js")],
    "stupidtable.min.js": [f"{DEBIAN}/jquery-stupidtable/stupidtable.min.js",
                           f"{DEBIAN}/jquery-stupidtable/stupidtable.js"],
    "md5.min.js": [f"{DEBIAN}/blueimp-md5/md5.min.js", f"{DEBIAN}/blueimp-md5/md5.js",
                   "/usr/share/nodejs/blueimp-md5/js/md5.min.js",
                   "/usr/share/nodejs/blueimp-md5/js/md5.js"],
    "bootstrap.min.js": [f"{DEBIAN}/bootstrap/js/bootstrap.min.js"],
    "bootstrap.min.css": [f"{DEBIAN}/bootstrap/css/bootstrap.min.css"],
}
AXISLABELS = re.compile(r'\s*<script[^>]*src="jquery\.flot\.axislabels\.js"[^>]*></script>')
# flot 3's legend stylesheet (its source tree's jquery.flot.legend.css, in part)
LEGEND_CSS = ("<style>.legendLayer .background { fill: rgba(255, 255, 255, 0.85); "
              "stroke: rgba(0, 0, 0, 0.85); stroke-width: 1; }</style>")
TAG = re.compile(r'<(script|link)\b[^>]*?(?:src|href)="(https?://[^"]+)"[^>]*>', re.S)


def localize(html_dir: str) -> dict:
    """Rewrites ``html_dir/index.html``; returns {cdn url: local path or None}."""
    index = os.path.join(html_dir, "index.html")
    with open(index, encoding="utf-8") as f:
        text = f.read()
    vendor = os.path.join(html_dir, "vendor")
    done: dict = {}

    def replace(m):
        tag, url = m.group(1), m.group(2)
        name = url.rsplit("/", 1)[-1]
        if name not in LOCAL:
            return m.group(0)
        src = next((p for p in LOCAL[name] if os.path.isfile(p)), None)
        done[url] = src
        if src is None:
            return m.group(0)
        os.makedirs(vendor, exist_ok=True)
        shutil.copyfile(src, os.path.join(vendor, name))
        if tag == "script":
            return f'<script src="vendor/{name}" onerror="js_load_failure()">'
        return f'<link rel="stylesheet" href="vendor/{name}">'

    text = TAG.sub(replace, text)
    flot = os.path.join(vendor, "jquery.flot.min.js")
    if os.path.isfile(flot) and "legendLayer" in open(flot, encoding="utf-8").read():
        text = AXISLABELS.sub("", text)
        if LEGEND_CSS not in text:
            text = text.replace("</head>", LEGEND_CSS + "\n  </head>", 1)
        done["flot 3 legend and axis labels"] = flot
    with open(index, "w", encoding="utf-8") as f:
        f.write(text)
    return done


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    html_dir = argv[0] if argv else os.path.join(HERE, "html")
    done = localize(html_dir)
    for url, src in done.items():
        print(f"{'local ' + src if src else 'kept CDN (no local copy)'}: {url.rsplit('/', 1)[-1]}")
    missing = [u for u, s in done.items() if s is None]
    if missing:
        print(f"{len(missing)} libraries still load from the internet; install Debian's "
              "libjs-jquery libjs-jquery-flot libjs-jquery-stupidtable libjs-bootstrap "
              "node-blueimp-md5 for an offline dashboard", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
