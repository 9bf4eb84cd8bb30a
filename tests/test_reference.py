"""docs/reference.md cannot silently drift from the code, and the docs link only
inside the repository.

Every public name appears in the reference with the signature ``inspect``
reports (annotations left out: the reference states types in prose), and so
does every public method of the public classes. README.md and docs/*.md never
point readers to files outside the repository, and every relative link in
them resolves to a file of the repository.
"""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import fastopt
import fastopt.schedules

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference.md"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _reference():
    return REFERENCE.read_text(encoding="utf-8")


def _signature(obj) -> str:
    """``inspect.signature`` text without annotations, e.g. ``(x, *, seed, backend='auto')``."""
    sig = inspect.signature(obj)
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


def _public_methods(cls):
    """(name, object) of the public methods and properties fastopt itself defines on cls."""
    out = []
    for name in dir(cls):
        if name.startswith("_"):
            continue
        attr = inspect.getattr_static(cls, name)
        owner = next(k for k in cls.__mro__ if name in vars(k))
        if not owner.__module__.startswith("fastopt"):
            continue   # inherited from torch.optim.Optimizer: torch documents it
        if isinstance(attr, property) or callable(attr):
            out.append((name, attr))
    return out


def _expected_entries(module, prefix):
    names = list(module.__all__)
    assert names, f"{prefix} exports nothing"
    entries = []
    for name in names:
        obj = getattr(module, name)
        if inspect.ismodule(obj):
            entries.append((f"{prefix}.{name}", f"`{prefix}.{name}`"))
            continue
        entries.append((f"{prefix}.{name}", f"{prefix}.{name}{_signature(obj)}"))
        if inspect.isclass(obj):
            for meth, attr in _public_methods(obj):
                if isinstance(attr, property):
                    entries.append((f"{prefix}.{name}.{meth}", f".{meth}`"))
                else:
                    fn = attr.__func__ if isinstance(attr, (staticmethod, classmethod)) else attr
                    sig = _signature(fn).replace("(self, ", "(").replace("(self)", "()")
                    entries.append((f"{prefix}.{name}.{meth}", f".{meth}{sig}"))
    return entries


def _missing(entries):
    text = _reference()
    return [f"{label}: {needle}" for label, needle in entries if needle not in text]


def test_every_fastopt_name_is_in_the_reference_with_its_signature():
    missing = _missing(_expected_entries(fastopt, "fastopt"))
    assert not missing, "docs/reference.md lacks (or has a stale signature for):\n" + "\n".join(missing)


def test_every_schedule_is_in_the_reference_with_its_signature():
    missing = _missing(_expected_entries(fastopt.schedules, "fastopt.schedules"))
    assert not missing, "docs/reference.md lacks (or has a stale signature for):\n" + "\n".join(missing)


def test_every_fastopt_torch_name_is_in_the_reference_with_its_signature():
    pytest.importorskip("torch")
    import fastopt.torch

    missing = _missing(_expected_entries(fastopt.torch, "fastopt.torch"))
    assert not missing, "docs/reference.md lacks (or has a stale signature for):\n" + "\n".join(missing)


def test_the_check_itself_notices_a_stale_signature():
    # The needle for adam_step carries every keyword and default: changing any
    # default in the code would make it disappear from the reference text.
    needle = dict(_expected_entries(fastopt, "fastopt"))["fastopt.adam_step"]
    assert "beta2=0.999" in needle and needle in _reference()
    assert needle.replace("beta2=0.999", "beta2=0.99") not in _reference()


def test_cli_commands_and_environment_variables_are_documented():
    text = _reference()
    for command in ("fastopt demo", "fastopt bench", "fastopt info"):
        assert f"`{command}" in text, command
    for var in ("FASTOPT_BACKEND", "FASTOPT_NUM_THREADS", "FASTOPT_SPIN_US",
                "FASTOPT_REUSE_OPENMP", "FASTOPT_BUFFER_CACHE_MB", "FASTOPT_CUDA_SYNC"):
        assert f"| `{var}` |" in text, var


_OUTSIDE = re.compile(r"\.\./shared|shared folder|DESIGN\.md", re.IGNORECASE)


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_never_point_outside_the_repository(path):
    hits = [f"{path.name}:{i}: {line.strip()}"
            for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if _OUTSIDE.search(line)]
    assert not hits, "users have no shared folder and no DESIGN.md:\n" + "\n".join(hits)


_LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _relative_links(text):
    for target in _LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("#"):
            continue   # http(s):, mailto:, in-page anchors
        yield target.split("#", 1)[0]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve_to_files_of_the_repository(path):
    bad = []
    for target in _relative_links(path.read_text(encoding="utf-8")):
        resolved = (path.parent / target).resolve()
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            bad.append(target)
    assert not bad, f"{path.name} links to files that are not in the repository: {bad}"


def test_link_check_sees_links():
    links = list(_relative_links("[a](docs/x.md) [b](https://e.org) [c](#s) [d](../y.md#z)"))
    assert links == ["docs/x.md", "../y.md"]
