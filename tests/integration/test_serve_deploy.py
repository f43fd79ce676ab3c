"""The deploy/kiln-serve kustomization: kiln's own kustomize renderer builds it (as kubectl
kustomize does), every object is valid for its kind against the Kubernetes schemas
(kubernetes-validate, strict), and the objects fit together: probes on the served paths and
port, selectors that match, NetworkPolicies and the PDB that select the right pods, Secrets
referenced and never included, and a Redis ACL that lets kiln do exactly what it needs."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import redis
import yaml

from kiln.core.cache.redis import RedisStore
from kiln.core.deadline import Deadline
from kiln.server.distlock import distlock_for
from tests.helpers import REPO, run_kiln, tool
from tests.servers import free_port, port_open, start, stop, wait_until

pytestmark = pytest.mark.integration

DEPLOY = REPO / "deploy" / "kiln-serve"
KUBE_VERSION = "1.31"


def _kubectl_kustomize() -> list[dict[str, Any]]:
    proc = subprocess.run([tool("kubectl"), "kustomize", str(DEPLOY)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@pytest.fixture(scope="module")
def objects(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    cache = tmp_path_factory.mktemp("cache")
    proc = run_kiln("render", str(DEPLOY), "--cache-dir", str(cache))
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def _by_key(objects: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {_key(o): o for o in objects}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector's meaning (matchLabels and matchExpressions), written from the
    Kubernetes API documentation."""
    for name, value in selector.get("matchLabels", {}).items():
        if labels.get(name) != value:
            return False
    for expr in selector.get("matchExpressions", []):
        present, value = expr["key"] in labels, labels.get(expr["key"])
        op = expr["operator"]
        if (op == "In" and value not in expr["values"]) or \
                (op == "NotIn" and present and value in expr["values"]) or \
                (op == "Exists" and not present) or (op == "DoesNotExist" and present):
            return False
    return True


def _pod_labels(deployment: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


def _container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    containers = {c["name"]: c for c in deployment["spec"]["template"]["spec"]["containers"]}
    return containers[name]


def test_kiln_renders_what_kubectl_kustomize_builds(objects: list[dict[str, Any]]) -> None:
    assert sorted(objects, key=_key) == sorted(_kubectl_kustomize(), key=_key)
    kinds = sorted(_key(o) for o in objects)
    assert kinds == [("Deployment", "kiln-redis"), ("Deployment", "kiln-serve"),
                     ("NetworkPolicy", "kiln-redis"), ("NetworkPolicy", "kiln-serve"),
                     ("PodDisruptionBudget", "kiln-serve"), ("Service", "kiln-redis"),
                     ("Service", "kiln-serve")]
    assert all(o["metadata"]["namespace"] == "kiln" for o in objects)


def test_every_object_is_valid_for_its_kind(objects: list[dict[str, Any]]) -> None:
    for obj in objects:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)


def test_the_validator_refuses_a_broken_object(objects: list[dict[str, Any]]) -> None:
    """The oracle can fail: a Deployment without a selector, or with a misspelt field."""
    deployment = _by_key(objects)["Deployment", "kiln-serve"]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    del broken["spec"]["selector"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSION, strict=True)
    misspelt = yaml.safe_load(yaml.safe_dump(deployment))
    misspelt["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(misspelt, KUBE_VERSION, strict=True)


def test_the_serve_deployment(objects: list[dict[str, Any]]) -> None:
    deployment = _by_key(objects)["Deployment", "kiln-serve"]
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    assert _selects(spec["selector"], _pod_labels(deployment))
    kiln = _container(deployment, "kiln")
    assert kiln["image"] == "ghcr.io/kiln-project/kiln-serve:0.1.0"
    assert kiln["command"] == ["kiln", "serve"]
    args = kiln["args"]
    listen = args[args.index("--listen") + 1]
    port = int(listen.rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in kiln["ports"]}
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        get = kiln[probe]["httpGet"]
        assert get["path"] == path
        assert ports.get(get["port"], get["port"]) == port
    # hardening
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["automountServiceAccountToken"] is False
    sc = kiln["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    requests = kiln["resources"]["requests"]
    assert requests["cpu"] and requests["memory"] and kiln["resources"]["limits"]["memory"]
    # what kiln writes is on a mounted emptyDir (the root filesystem is read-only)
    env = {e["name"]: e.get("value") for e in kiln["env"]}
    writable = [m["mountPath"] for m in kiln["volumeMounts"] if not m.get("readOnly")]
    for name in ("KILN_CACHE_DIR", "KILN_SERVE_GIT_CACHE_DIR", "HOME", "HELM_CACHE_HOME"):
        assert any(env[name] == p or env[name].startswith(p + "/") for p in writable), name
    # every mount names a volume; writable paths are emptyDirs
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in kiln["volumeMounts"]:
        assert mount["name"] in volumes, mount
        if not mount.get("readOnly"):
            assert "emptyDir" in volumes[mount["name"]], mount


def test_secrets_are_referenced_never_included(objects: list[dict[str, Any]]) -> None:
    assert not [o for o in objects if o["kind"] == "Secret"]
    deployment = _by_key(objects)["Deployment", "kiln-serve"]
    pod = deployment["spec"]["template"]["spec"]
    kiln = _container(deployment, "kiln")
    secret_volumes = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"]
                      if "secret" in v}
    mounts = {m["name"]: m["mountPath"] for m in kiln["volumeMounts"]}
    env = {e["name"]: e for e in kiln["env"]}
    # the bearer token: a file from the Secret kiln-serve-token
    token_file = env["KILN_SERVE_TOKEN_FILE"]["value"]
    token_volume = next(n for n, s in secret_volumes.items() if s == "kiln-serve-token")
    assert token_file.startswith(mounts[token_volume] + "/")
    # the Redis URL (with its password) from a Secret, never a literal value
    assert env["KILN_CACHE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "kiln-redis"
    assert "value" not in env["KILN_CACHE_URL"]
    rendered = yaml.safe_dump_all(objects)
    assert "redis://" not in rendered and "Bearer " not in rendered


def test_services_select_their_pods(objects: list[dict[str, Any]]) -> None:
    by_key = _by_key(objects)
    for name, port_name in (("kiln-serve", "http"), ("kiln-redis", "redis")):
        service, deployment = by_key["Service", name], by_key["Deployment", name]
        assert _selects({"matchLabels": service["spec"]["selector"]}, _pod_labels(deployment))
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        named = {p["name"] for p in container["ports"]}
        assert [p["targetPort"] for p in service["spec"]["ports"]] == [port_name]
        assert port_name in named
    assert not _selects({"matchLabels": by_key["Service", "kiln-serve"]["spec"]["selector"]},
                        _pod_labels(by_key["Deployment", "kiln-redis"]))


def test_the_pdb_keeps_one_serve_replica(objects: list[dict[str, Any]]) -> None:
    by_key = _by_key(objects)
    pdb = by_key["PodDisruptionBudget", "kiln-serve"]
    assert pdb["spec"]["minAvailable"] == 1
    assert _selects(pdb["spec"]["selector"], _pod_labels(by_key["Deployment", "kiln-serve"]))
    assert not _selects(pdb["spec"]["selector"],
                        _pod_labels(by_key["Deployment", "kiln-redis"]))
    assert by_key["Deployment", "kiln-serve"]["spec"]["replicas"] > pdb["spec"]["minAvailable"]


def test_network_policies(objects: list[dict[str, Any]]) -> None:
    by_key = _by_key(objects)
    serve_pods = _pod_labels(by_key["Deployment", "kiln-serve"])
    redis_pods = _pod_labels(by_key["Deployment", "kiln-redis"])
    serve_np, redis_np = by_key["NetworkPolicy", "kiln-serve"], by_key["NetworkPolicy",
                                                                       "kiln-redis"]
    # each policy applies to its own pods only
    assert _selects(serve_np["spec"]["podSelector"], serve_pods)
    assert not _selects(serve_np["spec"]["podSelector"], redis_pods)
    assert _selects(redis_np["spec"]["podSelector"], redis_pods)
    assert not _selects(redis_np["spec"]["podSelector"], serve_pods)
    for policy in (serve_np, redis_np):
        assert policy["spec"]["policyTypes"] == ["Ingress"]
    # Redis: only kiln-serve pods of this namespace (no namespaceSelector), only its port
    [rule] = redis_np["spec"]["ingress"]
    assert all(set(peer) == {"podSelector"} for peer in rule["from"])
    assert any(_selects(peer["podSelector"], serve_pods) for peer in rule["from"])
    assert all(not _selects(peer["podSelector"], {"app.kubernetes.io/name": "other"})
               for peer in rule["from"])
    assert [p["port"] for p in rule["ports"]] == ["redis"]
    # kiln-serve: callers are selected by namespace and pod labels, nobody else (no empty
    # peer, no ipBlock), only on the API port
    [rule] = serve_np["spec"]["ingress"]
    assert rule["from"] and all(peer and "ipBlock" not in peer for peer in rule["from"])
    for peer in rule["from"]:
        assert "namespaceSelector" in peer and peer["namespaceSelector"].get("matchLabels")
    kiln = _container(by_key["Deployment", "kiln-serve"], "kiln")
    assert [p["port"] for p in rule["ports"]] == [kiln["readinessProbe"]["httpGet"]["port"]]


def _redis_argv(objects: list[dict[str, Any]], password: str) -> list[str]:
    container = _container(_by_key(objects)["Deployment", "kiln-redis"], "redis")
    assert [e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]] == ["kiln-redis"]
    return [a.replace("$(REDIS_PASSWORD)", password) for a in container["args"]]


@pytest.fixture
def deployed_redis(objects: list[dict[str, Any]], tmp_path: Path) -> Iterator[str]:
    """A real redis-server with the Deployment's own arguments (the password substituted as
    Kubernetes would); yields its port as text."""
    port = free_port()
    argv = ["/usr/bin/redis-server", *_redis_argv(objects, "pw-for-the-test-0123"),
            "--bind", "127.0.0.1", "--port", str(port), "--dir", str(tmp_path)]
    proc = start(argv)
    try:
        wait_until(lambda: port_open(port), "redis-server", proc)
        yield str(port)
    finally:
        stop(proc)


def test_the_deployed_redis_acl_lets_kiln_cache_and_lock(deployed_redis: str) -> None:
    port = deployed_redis
    with pytest.raises(redis.AuthenticationError):  # the default user is off
        redis.Redis(port=int(port)).ping()
    url = f"redis://kiln:pw-for-the-test-0123@127.0.0.1:{port}/0"
    store = RedisStore(url)
    assert store.health()["ok"] is True
    store.put("a" * 64, b"payload")
    assert store.get("a" * 64) == b"payload"
    assert store.stats().entries == 1
    lock = distlock_for(store)
    assert lock is not None
    with lock.hold("request", Deadline(10)) as held:
        assert held
    assert store.clear() == 1
    assert store.status.errors == 0
    # nothing outside kiln's keys
    client = redis.Redis.from_url(url)
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.set("other:key", "x")
    with pytest.raises(redis.exceptions.NoPermissionError):
        client.execute_command("CONFIG", "GET", "maxmemory")


def test_the_documented_acl_is_the_deployed_one(objects: list[dict[str, Any]]) -> None:
    argv = _redis_argv(objects, "CHANGE-ME")
    users = [argv[i + 1:] for i, a in enumerate(argv) if a == "--user"]
    kiln_rules = next(u for u in users if u[0] == "kiln")
    kiln_rules = kiln_rules[:next((i for i, a in enumerate(kiln_rules) if a.startswith("--")),
                                  len(kiln_rules))]
    docs = (REPO / "docs" / "replicas.md").read_text()
    line = next(ln for ln in docs.splitlines() if ln.startswith("ACL SETUSER kiln "))
    assert line.split()[2:] == kiln_rules
