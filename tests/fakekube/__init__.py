"""A fake Kubernetes API server for kiln's apply and diff tests (see :mod:`tests.fakekube.server`).

Use the ``fake_kube`` fixture from :mod:`tests.fakekube.fixtures`, or :class:`FakeKube` directly.
"""

from __future__ import annotations

from tests.fakekube.server import FakeKube, LoggedRequest

__all__ = ["FakeKube", "LoggedRequest"]
