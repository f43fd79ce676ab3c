"""Apply order: Argo CD sync waves, then Flux's stages (definitions, classes, the rest) and its
kind order; prune runs in reverse."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.apply.staging import SYNC_WAVE, apply_order, delete_order, plan, ref_of, wave_of
from kiln.core.errors import ApplyError


def obj(kind: str, name: str, api: str = "v1", ns: str | None = None,
        wave: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if ns:
        meta["namespace"] = ns
    if wave is not None:
        meta["annotations"] = {SYNC_WAVE: wave}
    return {"apiVersion": api, "kind": kind, "metadata": meta}


def names(objects: list[dict[str, Any]]) -> list[str]:
    return [f"{o['kind']}/{o['metadata']['name']}" for o in objects]


def test_flux_stages_and_kind_order() -> None:
    """CRDs, Namespaces, ClusterRoles(+Bindings) first, waited on; then *Class kinds; then the
    rest in Flux's kind order, unlisted kinds after the listed ones, webhooks last."""
    batch = [
        obj("ValidatingWebhookConfiguration", "hook", "admissionregistration.k8s.io/v1"),
        obj("Widget", "w", "example.com/v1", "app"),
        obj("Deployment", "web", "apps/v1", "app"),
        obj("Service", "web", ns="app"),
        obj("ConfigMap", "conf", ns="app"),
        obj("StorageClass", "fast", "storage.k8s.io/v1"),
        obj("ClusterRoleBinding", "crb", "rbac.authorization.k8s.io/v1"),
        obj("Namespace", "app"),
        obj("CustomResourceDefinition", "widgets.example.com", "apiextensions.k8s.io/v1"),
        obj("ClusterRole", "cr", "rbac.authorization.k8s.io/v1"),
        obj("Secret", "s", ns="app"),
    ]
    stages = plan(batch)
    assert [(s.wave, s.name, s.wait) for s in stages] == [
        (0, "definitions", True), (0, "classes", False), (0, "resources", False)]
    assert names(list(stages[0].objects)) == [
        "CustomResourceDefinition/widgets.example.com", "Namespace/app", "ClusterRole/cr",
        "ClusterRoleBinding/crb"]
    assert names(list(stages[1].objects)) == ["StorageClass/fast"]
    assert names(list(stages[2].objects)) == [
        "ConfigMap/conf", "Secret/s", "Service/web", "Deployment/web", "Widget/w",
        "ValidatingWebhookConfiguration/hook"]


def test_waves_run_in_order_each_staged() -> None:
    batch = [obj("ConfigMap", "late", wave="5"), obj("Namespace", "late-ns", wave="5"),
             obj("ConfigMap", "early", wave="-1"), obj("ConfigMap", "zero")]
    stages = plan(batch, wait=True)
    assert [(s.wave, s.name) for s in stages] == [
        (-1, "resources"), (0, "resources"), (5, "definitions"), (5, "resources")]
    assert all(s.wait for s in stages)
    assert names(apply_order(batch)) == [
        "ConfigMap/early", "ConfigMap/zero", "Namespace/late-ns", "ConfigMap/late"]


def test_delete_order_is_the_reverse() -> None:
    batch = [obj("Deployment", "d", "apps/v1", "n"), obj("Namespace", "n"),
             obj("ConfigMap", "c", ns="n")]
    assert names(delete_order(batch)) == ["Deployment/d", "ConfigMap/c", "Namespace/n"]


def test_names_sort_inside_a_kind() -> None:
    batch = [obj("ConfigMap", n, ns=ns) for n, ns in (("b", "x"), ("a", "y"), ("a", "x"))]
    assert [ref_of(o) for o in apply_order(batch)] == [
        "ConfigMap/x/a", "ConfigMap/x/b", "ConfigMap/y/a"]


def test_a_bad_wave_names_the_object() -> None:
    with pytest.raises(ApplyError) as err:
        wave_of(obj("ConfigMap", "c", ns="n", wave="soon"))
    assert err.value.one_line().startswith("ConfigMap/n/c: annotation argocd.argoproj.io/")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["ConfigMap", "Namespace", "StorageClass",
                                           "Deployment", "Thing"]),
                          st.text("abc", min_size=1, max_size=3),
                          st.integers(-3, 3)), max_size=20))
def test_every_object_is_planned_once_in_wave_order(items: list[tuple[str, str, int]]) -> None:
    batch = [obj(k, n, wave=str(w)) for k, n, w in items]
    stages = plan(batch)
    planned = [o for s in stages for o in s.objects]
    assert sorted(map(id, planned)) == sorted(map(id, batch))
    waves = [s.wave for s in stages]
    assert waves == sorted(waves)
    assert all(s.wait for s in stages if s.name == "definitions")
