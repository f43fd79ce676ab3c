"""Engine.for_request and the CMP server's request environment: nothing of one request
reaches another, and a request cannot set the server's own variables."""

from __future__ import annotations

import os
from pathlib import Path

from kiln.cmp.service import request_variables
from kiln.core.engine import Engine
from tests.helpers import write_tree


def test_a_request_view_has_its_own_environment_and_redactor(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "cache", env={"KILN_X": "operator"}, entry_points=False)
    before = dict(os.environ)
    first = engine.for_request({"KILN_X": "operator", "ARGOCD_APP_NAME": "one"})
    second = engine.for_request({"KILN_X": "operator", "ARGOCD_APP_NAME": "two"})
    first.redactor.register("value-only-the-first-request-saw")
    assert first.env["ARGOCD_APP_NAME"] == "one"
    assert second.env["ARGOCD_APP_NAME"] == "two"
    assert "ARGOCD_APP_NAME" not in engine.env
    assert second.redactor.redact("value-only-the-first-request-saw") == \
        "value-only-the-first-request-saw"
    assert engine.redactor.redact("value-only-the-first-request-saw") == \
        "value-only-the-first-request-saw"
    assert "<redacted>" in first.redactor.redact("value-only-the-first-request-saw")
    assert first.store is engine.store and first.plugins is engine.plugins
    assert dict(os.environ) == before


def test_the_request_environment_reaches_the_render_context(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "cache", env={}, entry_points=False)
    view = engine.for_request({"ARGOCD_ENV_COLOUR": "blue"})
    assert view.render_context().env["ARGOCD_ENV_COLOUR"] == "blue"
    assert "ARGOCD_ENV_COLOUR" not in engine.render_context().env


def test_render_cached_returns_what_render_stored_under_the_key(tmp_path: Path) -> None:
    app_dir = tmp_path / "app"
    write_tree(app_dir, {"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: chosen\n"})
    engine = Engine(tmp_path / "cache", env={}, entry_points=False)
    app = engine.load_app(app_dir)
    first = engine.render(app)
    assert first.key is not None
    again = engine.render_cached(app, first.key, renderer=first.renderer, inputs=first.inputs)
    assert again is not None and again.cache_hit
    assert [o["metadata"]["name"] for o in again.objects] == ["chosen"]
    assert engine.render_cached(app, "0" * 64, renderer=first.renderer) is None


def test_only_argo_cd_request_variables_are_passed_on() -> None:
    env = [("ARGOCD_APP_NAME", "guestbook"), ("ARGOCD_ENV_AVP_TYPE", "vault"),
           ("PARAM_HELM_VALUES", "x"), ("KUBE_VERSION", "1.30"),
           ("KUBE_API_VERSIONS", "v1"), ("ARGOCD_APP_PARAMETERS", "[]"),
           ("KILN_ALLOW_APP_SETTINGS", "vault.address"), ("VAULT_ADDR", "http://evil"),
           ("PATH", "/evil"), ("KILN_HELM", "/tmp/evil-helm"), ("LD_PRELOAD", "/evil.so"),
           ("ARGOCD_APP_NAME", "later-wins")]
    kept, dropped = request_variables(env)
    assert kept == {"ARGOCD_APP_NAME": "later-wins", "ARGOCD_ENV_AVP_TYPE": "vault",
                    "PARAM_HELM_VALUES": "x", "KUBE_VERSION": "1.30",
                    "KUBE_API_VERSIONS": "v1", "ARGOCD_APP_PARAMETERS": "[]"}
    assert sorted(dropped) == ["KILN_ALLOW_APP_SETTINGS", "KILN_HELM", "LD_PRELOAD", "PATH",
                               "VAULT_ADDR"]
