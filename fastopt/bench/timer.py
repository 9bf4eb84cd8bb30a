"""Interleaved round-robin timing (docs/notes-bench.md: interleaved medians).

Every variant of one cell (kernel x size x dtype) is timed in the same window,
A B C A B C ..., each sample lasting at least ``min_time`` seconds (several
calls when one call is shorter), and variants are compared by their medians.
A ratio measured this way is stable to a few percent on a noisy machine; an
absolute time is not.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional


@dataclass
class Timing:
    """Samples of one variant: seconds per call, one value per round."""
    name: str
    samples: List[float] = field(default_factory=list)
    calls_per_sample: int = 1

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else math.nan

    @property
    def min(self) -> float:
        return min(self.samples) if self.samples else math.nan

    def as_dict(self) -> dict:
        return {"median_s": self.median, "min_s": self.min, "samples_s": list(self.samples),
                "calls_per_sample": self.calls_per_sample}


def calibrate(fn: Callable[[], object], min_time: float, max_calls: int = 1 << 20,
              clock=time.perf_counter) -> int:
    """How many back-to-back calls of ``fn`` last at least ``min_time``."""
    calls = 1
    while True:
        t0 = clock()
        for _ in range(calls):
            fn()
        elapsed = clock() - t0
        if elapsed >= min_time or calls >= max_calls:
            break
        if elapsed <= 0:
            calls *= 10
        else:  # aim 20% past the target, at most 10x more per try
            calls = min(max_calls, max(calls + 1, min(calls * 10,
                                                      math.ceil(calls * 1.2 * min_time / elapsed))))
    return calls


def interleaved(variants: Dict[str, Callable[[], object]], *, repeat: int = 7,
                min_time: float = 0.01, warmup: int = 1, clock=time.perf_counter,
                log: Optional[list] = None, gap: float = 0.0,
                before: Optional[Callable[[], object]] = None) -> Dict[str, Timing]:
    """Times ``variants`` (name -> zero-argument callable) round-robin.

    Each variant is first called ``warmup`` times (compilation, page faults),
    then calibrated so that one sample lasts ``min_time``; then ``repeat``
    rounds each run every variant once, in the order given, and record its
    time per call. ``log``, when a list, receives the variant names in the
    order their samples ran (for tests). ``gap`` seconds of sleep precede
    each sample, untimed: an OpenMP runtime (torch's) keeps its threads
    spinning for a while after a parallel region, and without a pause the
    variant that follows torch in the round pays for it (measured here: Adam
    10^7 float32 20-30% slower right after torch's fused Adam). ``before``,
    when given, runs untimed before each sample, after the gap (to time a
    variant right after something else ran).
    Returns name -> :class:`Timing`.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    out = {name: Timing(name) for name in variants}
    for name, fn in variants.items():
        for _ in range(warmup):
            fn()
        out[name].calls_per_sample = calibrate(fn, min_time, clock=clock)
    for _ in range(repeat):
        for name, fn in variants.items():
            calls = out[name].calls_per_sample
            if gap > 0:
                time.sleep(gap)
            if before is not None:
                before()
            t0 = clock()
            for _ in range(calls):
                fn()
            out[name].samples.append((clock() - t0) / calls)
            if log is not None:
                log.append(name)
    return out
