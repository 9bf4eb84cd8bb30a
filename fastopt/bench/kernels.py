"""The registry of benchmarked kernels, one module per family (optim,
batchnorm, dropout, ema_clip); what a kernel is: registry.py; the twin:
twin.py. Shared by ``fastopt bench`` and the asv suite (benchmarks/)."""
from __future__ import annotations

from typing import Dict, List

from fastopt.bench import batchnorm, dropout, ema_clip, optim
from fastopt.bench.registry import (BACKENDS, BASELINES, OUTPUT_POLICIES, RUNNERS, Kernel,
                                    Traffic, torch_unavailable)
from fastopt.bench.twin import make_twin, twin_is_fused

KERNELS: Dict[str, Kernel] = {k.name: k for k in
                              optim.kernels() + batchnorm.kernels() + dropout.kernels()
                              + ema_clip.kernels()}
FAMILIES = ("optim", "batchnorm", "dropout", "utils")

__all__ = ["BACKENDS", "BASELINES", "OUTPUT_POLICIES", "RUNNERS", "Kernel", "Traffic",
           "torch_unavailable", "make_twin", "twin_is_fused", "KERNELS", "FAMILIES", "get",
           "by_family"]


def get(name: str) -> Kernel:
    try:
        return KERNELS[name]
    except KeyError:
        raise KeyError(f"unknown kernel {name!r}; known: {', '.join(KERNELS)}") from None


def by_family(family: str) -> List[Kernel]:
    return [k for k in KERNELS.values() if k.family == family]
