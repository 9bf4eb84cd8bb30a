"""Benchmark library shared by ``fastopt bench``, the asv suite (benchmarks/)
and per-family scripts: the kernel registry (bytes per element, fresh random
inputs, runners per backend and baseline, the same-traffic twin), the
interleaved round-robin timer and the copy-bandwidth measurement. The rules
are BENCHMARKING.md's. Importing it never imports torch.
"""
from fastopt.bench.kernels import (BACKENDS, BASELINES, FAMILIES, KERNELS, RUNNERS, Kernel,
                                   Traffic, by_family, get, make_twin)
from fastopt.bench.suite import (DEFAULT_SIZES, QUICK_SIZES, copy_bandwidth, format_table, plot,
                                 run_cell, run_suite, save_json)
from fastopt.bench.timer import Timing, calibrate, interleaved

__all__ = ["BACKENDS", "BASELINES", "FAMILIES", "KERNELS", "RUNNERS", "Kernel", "Traffic",
           "by_family", "get", "make_twin", "DEFAULT_SIZES", "QUICK_SIZES", "copy_bandwidth",
           "format_table", "plot", "run_cell", "run_suite", "save_json", "Timing", "calibrate",
           "interleaved"]
