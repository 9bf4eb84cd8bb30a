"""Child interpreters that import the parent's fastopt."""
from __future__ import annotations

import os

import fastopt


def same_fastopt() -> dict:
    """subprocess arguments (``cwd``, ``env``) making a child Python import this process's
    fastopt: ``python -c`` and ``python -m`` put the cwd first on sys.path, and a checkout's
    fastopt/ may lack the built extension that the installed one has."""
    home = os.path.dirname(os.path.dirname(os.path.abspath(fastopt.__file__)))
    env = dict(os.environ, PYTHONPATH=home + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return {"cwd": home, "env": env}
