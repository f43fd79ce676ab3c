"""Pytest fixtures for the fake Kubernetes API; import them explicitly where they are used::

    from tests.fakekube.fixtures import fake_kube  # noqa: F401
    from tests.fakekube.fixtures import fake_kube_factory  # noqa: F401

``fake_kube`` (function scope) is a started :class:`~tests.fakekube.server.FakeKube` (plain
HTTP, no token required, no delays) whose ``kubeconfig`` attribute is a kubeconfig file in the
test's ``tmp_path`` (contexts ``fake`` — current, user ``kiln-test``, namespace ``default`` —,
``fake-alt`` — user ``kiln-alt``, namespace ``alt`` — and ``unreachable`` — a closed port);
``fake_kube.kubeconfig(directory)`` writes another copy and returns its path.
``fake_kube_factory(**options)`` starts more, with :class:`FakeKube`'s options (``tls``,
``require_token``, ``crd_delay``, ``rollout_delay``); each gets its own kubeconfig file and is
stopped at the end of the test.

Both fixtures point ``TMPDIR`` (and :data:`tempfile.tempdir`) at a directory inside
``tmp_path``: the ``kubernetes`` client caches discovery in ``$TMPDIR/osrcp-<md5(url)>.json``,
and a cache left by an earlier test on the same port would describe another cluster.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakekube.server import FakeKube


def _private_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))


@pytest.fixture
def fake_kube_factory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
                      ) -> Iterator[Callable[..., FakeKube]]:
    """A function starting a FakeKube with the given options (kubeconfig written in
    ``tmp_path/fakekube-<n>/kubeconfig``); every one started is stopped after the test."""
    _private_tmp(monkeypatch, tmp_path)
    started: list[FakeKube] = []

    def make(**options: Any) -> FakeKube:
        fake = FakeKube(**options).start()
        started.append(fake)
        fake.write_kubeconfig(tmp_path / f"fakekube-{len(started)}")
        return fake

    try:
        yield make
    finally:
        for fake in started:
            fake.stop()


@pytest.fixture
def fake_kube(fake_kube_factory: Callable[..., FakeKube]) -> FakeKube:
    """A fresh fake API server for one test (``.url``, ``.kubeconfig``, ``.log``, hooks)."""
    return fake_kube_factory()
