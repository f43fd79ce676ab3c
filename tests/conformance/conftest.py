"""Conformance suites run from fetched copies of kubernetes/client-go and argocd-vault-plugin.

They need the repositories, which CI does not fetch (no network guarantee), so this directory
is collected only when ``KILN_CLIENTGO_MIRROR`` or ``KILN_AVP_MIRROR`` is set, or when it is
named on the command line (``pytest tests/conformance``). Collected without its variable, a
module fails at collection, loudly: nothing here is ever skipped. Each variable is the path of
a git directory (bare or not) of the repository, e.g. what the ``fetch`` tool returns::

    KILN_CLIENTGO_MIRROR=/work/.mirror/kubernetes+client-go/repo \\
    KILN_AVP_MIRROR=/work/.mirror/argoproj-labs+argocd-vault-plugin/repo \\
    .venv/bin/python -m pytest tests/conformance -q

The variables are read when this file is imported: the suite-wide fixture in
``tests/conftest.py`` clears every ``KILN_*`` variable before each test runs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ENV_VARS = ("KILN_CLIENTGO_MIRROR", "KILN_AVP_MIRROR")
MIRRORS = {name: os.environ.get(name, "") for name in ENV_VARS}


def mirror(name: str) -> str:
    """The git directory named by ``name``; a collection failure when it is unset or absent."""
    path = MIRRORS.get(name, "")
    if not path:
        pytest.fail(f"{name} is not set: point it at a git directory of the repository "
                    "(see tests/conformance/conftest.py)", pytrace=False)
    if not Path(path).is_dir():
        pytest.fail(f"{name}={path}: no such directory", pytrace=False)
    return path


def _named(config: pytest.Config) -> bool:
    base = Path(config.invocation_params.dir)
    for arg in config.args:
        target = (base / arg.split("::", 1)[0]).resolve()
        if target == HERE or HERE in target.parents:
            return True
    return False


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """Leave the suite out of a default run unless a mirror is given or it is named."""
    if HERE not in collection_path.resolve().parents:
        return None
    if any(MIRRORS.values()) or _named(config):
        return None
    return True
