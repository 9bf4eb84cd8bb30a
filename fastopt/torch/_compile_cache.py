"""torch's compile caches and fastopt's custom ops (:mod:`fastopt.torch.ops`)."""
from __future__ import annotations

import hashlib
import pathlib

import torch


def tag_compile_caches(config=None):
    """Adds a hash of the ops' definitions to torch's compile-cache key
    (``torch.compiler.config.cache_key_tag``, which keys inductor's FX graph cache and
    AOT autograd's cache). Those caches key on the traced graph, not on a custom op's
    tags, fake kernels or lowerings: without this, a graph compiled by another fastopt
    would be reused (after an upgrade, the old layout conversions around the ops, or
    output strides that the new ops no longer give). A tag the user set is kept; the
    call is idempotent."""
    config = config if config is not None else getattr(torch.compiler, "config", None)
    if config is None or not hasattr(config, "cache_key_tag"):   # pragma: no cover
        return
    here = pathlib.Path(__file__).parent
    digest = hashlib.sha256()
    # schemas, tags, fake kernels, lowering; the kernels' output strides; their checks
    for name in ("ops.py", "_io.py", "_layout.py", "_checks.py"):
        digest.update((here / name).read_bytes())
    token = f"fastopt-ops-{digest.hexdigest()[:16]}"
    tag = config.cache_key_tag
    if token not in tag.split("+"):
        config.cache_key_tag = f"{tag}+{token}" if tag else token
