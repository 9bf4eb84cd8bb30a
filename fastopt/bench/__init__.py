"""Benchmark library shared by ``fastopt bench`` and the asv suite
(benchmarks/): the kernel registry (bytes per element, fresh random inputs,
runners per backend and baseline, output policy), the same-traffic twin, the
interleaved round-robin timer, the copy-bandwidth measurement, and the
multi-tensor and coexistence benchmarks. Importing it never imports torch.
"""
from fastopt.bench.kernels import (BACKENDS, BASELINES, FAMILIES, KERNELS, OUTPUT_POLICIES,
                                   RUNNERS, Kernel, Traffic, by_family, get, make_twin)
from fastopt.bench.suite import (DEFAULT_SIZES, QUICK_SIZES, copy_bandwidth, format_table, plot,
                                 run_cell, run_suite, save_json)
from fastopt.bench.timer import Timing, calibrate, interleaved

__all__ = ["BACKENDS", "BASELINES", "FAMILIES", "KERNELS", "OUTPUT_POLICIES", "RUNNERS",
           "Kernel", "Traffic", "by_family", "get", "make_twin", "DEFAULT_SIZES",
           "QUICK_SIZES", "copy_bandwidth", "format_table", "plot", "run_cell", "run_suite",
           "save_json", "Timing", "calibrate", "interleaved"]
