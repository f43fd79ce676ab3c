"""End to end: the Argo CD CMP flow, as the sidecar runs it.

For each case the harness builds a small git-repo-like tree, copies it the way
``argocd-cmp-server`` unpacks the repository (``<workdir>/_cmp_server/<id>/``, ``.git``
excluded, file modes reset), sets exactly the environment Argo CD documents for plugins
(build environment, ``KUBE_VERSION``/``KUBE_API_VERSIONS``, ``ARGOCD_ENV_*`` from
``plugin.env``, ``ARGOCD_APP_PARAMETERS`` and the ``PARAM_*`` variables) on top of the
sidecar's own environment, runs the generate command in the app directory as a subprocess,
and compares the stream with the raw tool run directly on the same input.

The generate command is always the real ``kiln generate .``, and every case runs: a renderer
or resolver missing from kiln is a failure, never an expected one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from kiln.core.engine import Engine
from kiln.core.envsubst import envsubst
from tests.helpers import EXAMPLES, REPO, assert_clean_failure, param_vars, tool
from tests.integration.openbao import start_openbao, stop_openbao
from tests.secrets_scan import assert_no_plaintext

pytestmark = pytest.mark.integration

REVISION = "8d2f7c1e9b4a6f3d2c1b0a9e8f7d6c5b4a3f2e1d"
REPO_URL = "https://git.example.com/platform/gitops.git"
KUBE_VERSION = "1.31.0"
API_VERSIONS = ("v1", "apps/v1", "batch/v1", "networking.k8s.io/v1",
                "monitoring.coreos.com/v1")

GENERATE_ARGV = [sys.executable, "-m", "kiln", "generate", "."]


# -- the Argo CD side ----------------------------------------------------------------------------



def argocd_env(*, app_name: str, namespace: str, source_path: str,
               params: Sequence[Mapping[str, Any]] = (),
               plugin_env: Mapping[str, str] | None = None,
               revision: str = REVISION, param_json: bool = True) -> dict[str, str]:
    """Exactly the variables Argo CD's repo-server hands a CMP's generate command."""
    env = {
        "ARGOCD_APP_NAME": app_name,
        "ARGOCD_APP_NAMESPACE": namespace,
        "ARGOCD_APP_PROJECT_NAME": "default",
        "ARGOCD_APP_REVISION": revision,
        "ARGOCD_APP_REVISION_SHORT": revision[:7],
        "ARGOCD_APP_REVISION_SHORT_8": revision[:8],
        "ARGOCD_APP_SOURCE_PATH": source_path,
        "ARGOCD_APP_SOURCE_REPO_URL": REPO_URL,
        "ARGOCD_APP_SOURCE_TARGET_REVISION": "main",
        "KUBE_VERSION": KUBE_VERSION,
        "KUBE_API_VERSIONS": ",".join(API_VERSIONS),
    }
    # plugin.env values are env-substituted against the build environment, then prefixed.
    for key, value in (plugin_env or {}).items():
        env[f"ARGOCD_ENV_{key}"] = envsubst(value, env)
    if param_json:
        env["ARGOCD_APP_PARAMETERS"] = json.dumps(list(params))
    env.update(param_vars(params))
    return env


def sidecar_env(home: Path, cache: Path, extra: Mapping[str, str] | None = None
                ) -> dict[str, str]:
    """The sidecar container's own environment (deploy/argocd/repo-server-patch.yaml)."""
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/local/bin",
                                 "/usr/bin", "/bin"]),
        "HOME": str(home),
        "KILN_CACHE_DIR": str(cache),
        "PYTHONPATH": str(REPO),
        "LANG": "C.UTF-8",
    }
    env.update(extra or {})
    return env


def unpack_like_cmp_server(repo: Path, workdir: Path) -> Path:
    """Copy ``repo`` the way argocd-cmp-server unpacks its tarball; return the copy's root."""
    dest = workdir / "_cmp_server" / uuid.uuid4().hex
    shutil.copytree(repo, dest, ignore=shutil.ignore_patterns(".git"))
    for dirpath, _, filenames in os.walk(dest):
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o644)  # preserveFileMode: false
    return dest


def run_generate(repo: Path, source_path: str, env: Mapping[str, str], tmp: Path, *,
                 cache: Path | None = None, extra_sidecar_env: Mapping[str, str] | None = None
                 ) -> subprocess.CompletedProcess[str]:
    """Unpack ``repo`` like the sidecar and run the generate command in the app directory."""
    root = unpack_like_cmp_server(repo, tmp / "cmp-workdir")
    full = sidecar_env(tmp / "home", cache or tmp / "kiln-cache", extra_sidecar_env)
    full.update(env)
    return subprocess.run(GENERATE_ARGV, cwd=root / source_path, env=full,
                          capture_output=True, text=True, timeout=180)


def objects(stream: str) -> list[dict[str, Any]]:
    """Parse a YAML stream; drop empty documents, flatten ``*List`` kinds like Argo CD."""
    out: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(stream):
        if not doc:
            continue
        if isinstance(doc, list):
            out.extend(doc)
        elif str(doc.get("kind", "")).endswith("List") and "items" in doc:
            out.extend(doc["items"] or [])
        else:
            out.append(doc)
    return out


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return str(obj.get("kind")), str(meta.get("namespace", "")), str(meta.get("name"))


def same_objects(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    """Assert both streams hold the same objects (order-insensitive, as Argo CD applies)."""
    assert sorted(got, key=_key) == sorted(want, key=_key)


# -- cases ---------------------------------------------------------------------------------------

Expected = Callable[[Path, Mapping[str, str], Path], list[dict[str, Any]]]


@dataclass(frozen=True)
class CmpCase:
    """One app run through the CMP flow.

    ``make_repo`` writes the repository; the app lives at ``source_path`` in it. ``expected``
    computes, with the raw tool, the objects for the pristine app directory and the Argo CD
    env.
    """

    id: str
    make_repo: Callable[[Path], dict[str, str]]
    expected: Expected
    source_path: str = "apps/web"
    params: tuple[dict[str, Any], ...] = ()
    plugin_env: dict[str, str] = field(default_factory=dict)
    param_json: bool = True


def _write(root: Path, files: Mapping[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _repo_with(app_files: Mapping[str, str], source_path: str = "apps/web"
               ) -> Callable[[Path], dict[str, str]]:
    def make(repo: Path) -> dict[str, str]:
        _write(repo, {"README.md": "gitops\n", "apps/other/cm.yaml": CONFIGMAP})
        (repo / ".git").mkdir(parents=True, exist_ok=True)
        _write(repo / source_path, app_files)
        return {}
    return make


CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata: {a: '1'}\n"


def _guestbook_repo(repo: Path) -> dict[str, str]:
    (repo / ".git").mkdir(parents=True)
    shutil.copytree(EXAMPLES / "guestbook", repo / "apps" / "guestbook")
    (repo / "apps" / "guestbook" / "kiln.yaml").unlink()
    return {}


def _yaml_files(names: Sequence[str]) -> Expected:
    """Raw expectation for a directory app: the named files parsed with PyYAML."""
    def expected(app_dir: Path, env: Mapping[str, str], tmp: Path) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for name in names:
            out += objects((app_dir / name).read_text())
        return out
    return expected


DIRECTORY_APP = {
    "deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"
                   "spec:\n  replicas: 2\n",
    "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n",
    "extra/cm.yml": CONFIGMAP.replace("other", "extra"),
    "extra/skip-me.yaml": CONFIGMAP.replace("other", "skipped"),
    "notes.txt": "not a manifest\n",
}

DIRECTORY_PARAMS = (
    {"name": "directory-recurse", "string": "true"},
    {"name": "directory-exclude", "string": "*skip*"},
)

CHART_FILES = {
    "Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "values.yaml": "replicas: 1\nimage:\n  repository: nginx\n  tag: latest\n",
    "values-prod.yaml": "replicas: 3\n",
    "crds/crd.yaml": (
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n"
        "  name: widgets.example.com\nspec:\n  group: example.com\n  names:\n"
        "    kind: Widget\n    plural: widgets\n  scope: Namespaced\n  versions: []\n"),
    "templates/deploy.yaml": textwrap.dedent("""\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{ .Release.Name }}
          namespace: {{ .Release.Namespace }}
          annotations:
            kube: {{ .Capabilities.KubeVersion.Version | quote }}
            monitoring: {{ .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" | quote }}
        spec:
          replicas: {{ .Values.replicas }}
          template:
            spec:
              containers:
                - name: web
                  image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
        """),
}

HELM_PARAMS = (
    {"name": "helm-values-files", "array": ["values-prod.yaml"]},
    {"name": "helm-parameters", "map": {"image.tag": "$ARGOCD_APP_REVISION_SHORT"}},
)


def _helm_expected_with(value_files: Sequence[str]) -> Expected:
    """Raw ``helm template`` with the flags Argo CD passes for HELM_PARAMS."""
    def expected(app_dir: Path, env: Mapping[str, str], tmp: Path) -> list[dict[str, Any]]:
        argv = [tool("helm"), "template", env["ARGOCD_APP_NAME"], str(app_dir),
                "--namespace", env["ARGOCD_APP_NAMESPACE"]]
        for path in value_files:
            argv += ["--values", str(app_dir / path)]
        argv += ["--set", f"image.tag={env['ARGOCD_APP_REVISION_SHORT']}",
                 "--kube-version", env["KUBE_VERSION"], "--include-crds"]
        for api in env["KUBE_API_VERSIONS"].split(","):
            argv += ["--api-versions", api]
        home = str(tmp / "helm-home")
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                              env={**os.environ, "HELM_CACHE_HOME": home,
                                   "HELM_CONFIG_HOME": home, "HELM_DATA_HOME": home})
        assert proc.returncode == 0, proc.stderr
        return objects(proc.stdout)
    return expected


def _shared_values_repo(repo: Path) -> dict[str, str]:
    """A chart whose value file lives elsewhere in the repo: only reachable when the source
    root is the unpacked repository (the tarball carries no .git to find it by)."""
    _repo_with(CHART_FILES)(repo)
    _write(repo, {"shared/values-prod.yaml": "replicas: 4\n"})
    return {}


SHARED_PARAMS = (
    {"name": "helm-values-files", "array": ["../../shared/values-prod.yaml"]},
    HELM_PARAMS[1],
)


KUSTOMIZE_FILES = {
    "kustomization.yaml": "resources: [deploy.yaml]\n",
    "deploy.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n"
                   "  template:\n    spec:\n      containers:\n        - name: web\n"
                   "          image: nginx:latest\n",
}

KUSTOMIZE_PARAMS = (
    {"name": "kustomize-images", "array": ["nginx=nginx:$ARGOCD_APP_REVISION_SHORT"]},
    {"name": "kustomize-name-prefix", "string": "prod-"},
    {"name": "kustomize-common-labels", "map": {"team": "web"}},
)


def _kustomize_expected(app_dir: Path, env: Mapping[str, str], tmp: Path
                        ) -> list[dict[str, Any]]:
    """kubectl kustomize on a copy carrying the same edits `kustomize edit` would make."""
    copy = tmp / "raw-kustomize"
    shutil.copytree(app_dir, copy)
    data = yaml.safe_load((copy / "kustomization.yaml").read_text())
    data["images"] = [{"name": "nginx", "newName": "nginx",
                       "newTag": env["ARGOCD_APP_REVISION_SHORT"]}]
    data["namePrefix"] = "prod-"
    data["labels"] = [{"pairs": {"team": "web"}, "includeSelectors": True}]
    (copy / "kustomization.yaml").write_text(yaml.safe_dump(data))
    proc = subprocess.run([tool("kubectl"), "kustomize", str(copy)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return objects(proc.stdout)


JSONNET_FILES = {
    "main.jsonnet": textwrap.dedent("""\
        function(replicas='1') [
          {
            apiVersion: 'v1',
            kind: 'ConfigMap',
            metadata: { name: 'web-' + std.extVar('env') },
            data: { replicas: replicas, revision: std.extVar('revision') },
          },
        ]
        """),
}

JSONNET_PARAMS = (
    {"name": "jsonnet-tlas", "map": {"replicas": "3"}},
    {"name": "jsonnet-ext-vars", "map": {"env": "prod", "revision": "$ARGOCD_APP_REVISION"}},
)


def _jsonnet_expected(app_dir: Path, env: Mapping[str, str], tmp: Path
                      ) -> list[dict[str, Any]]:
    import _gojsonnet  # go-jsonnet's own binding: the raw tool

    text = _gojsonnet.evaluate_file(
        str(app_dir / "main.jsonnet"), tla_vars={"replicas": "3"},
        ext_vars={"env": "prod", "revision": env["ARGOCD_APP_REVISION"]})
    data = json.loads(text)
    return data if isinstance(data, list) else [data]


SECRET_PLAIN = textwrap.dedent("""\
    apiVersion: v1
    kind: Secret
    metadata:
      name: db
    type: Opaque
    stringData:
      password: s3cr3t-from-sops
    """)


def _sops_repo(repo: Path) -> dict[str, str]:
    """A directory app whose Secret is SOPS-encrypted to a throwaway age key."""
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    _repo_with({"deploy.yaml": DIRECTORY_APP["deploy.yaml"]})(repo)
    plain = repo / "plain.yaml"
    plain.write_text(SECRET_PLAIN)
    proc = subprocess.run(
        [tool("sops"), "--encrypt", "--age", str(identity.to_public()),
         "--encrypted-regex", "^(data|stringData)$", str(plain)],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    plain.unlink()
    assert "s3cr3t-from-sops" not in proc.stdout
    (repo / "apps" / "web" / "secret.enc.yaml").write_text(proc.stdout)
    return {"SOPS_AGE_KEY": str(identity)}


def _sops_expected(app_dir: Path, env: Mapping[str, str], tmp: Path) -> list[dict[str, Any]]:
    return objects(DIRECTORY_APP["deploy.yaml"]) + objects(SECRET_PLAIN)


CASES = [
    CmpCase("directory-guestbook", _guestbook_repo,
            _yaml_files(["guestbook-ui-deployment.yaml", "guestbook-ui-svc.yaml"]),
            source_path="apps/guestbook"),
    CmpCase("directory-params", _repo_with(DIRECTORY_APP),
            _yaml_files(["deploy.yaml", "extra/cm.yml", "svc.yaml"]), params=DIRECTORY_PARAMS),
    CmpCase("directory-param-vars-only", _repo_with(DIRECTORY_APP),
            _yaml_files(["deploy.yaml", "extra/cm.yml", "svc.yaml"]), params=DIRECTORY_PARAMS,
            param_json=False),
    CmpCase("helm", _repo_with(CHART_FILES), _helm_expected_with(["values-prod.yaml"]),
            params=HELM_PARAMS),
    CmpCase("helm-value-file-elsewhere-in-repo", _shared_values_repo,
            _helm_expected_with(["../../shared/values-prod.yaml"]), params=SHARED_PARAMS),
    CmpCase("kustomize", _repo_with(KUSTOMIZE_FILES), _kustomize_expected,
            params=KUSTOMIZE_PARAMS),
    CmpCase("jsonnet", _repo_with(JSONNET_FILES), _jsonnet_expected, params=JSONNET_PARAMS),
    CmpCase("directory-sops", _sops_repo, _sops_expected),
]
# Vault cases: test_cmp_generate_with_vault below (a real OpenBao). Not covered here yet: a
# Kustomize app with AVP placeholders, SOPS secrets inside a Helm chart.


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_cmp_generate(case: CmpCase, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    sidecar_extra = case.make_repo(repo)
    app_name = case.source_path.rsplit("/", 1)[-1]
    env = argocd_env(app_name=app_name, namespace="web-prod", source_path=case.source_path,
                     params=case.params, plugin_env=case.plugin_env,
                     param_json=case.param_json)
    proc = run_generate(repo, case.source_path, env, tmp_path,
                        extra_sidecar_env=sidecar_extra)
    assert proc.returncode == 0, proc.stderr
    want = case.expected(repo / case.source_path, env, tmp_path)
    assert want, "the raw tool produced nothing: the case is broken"
    same_objects(objects(proc.stdout), want)
    for secret in sidecar_extra.values():
        assert secret not in proc.stderr


def test_cache_hit_across_revisions(tmp_path: Path) -> None:
    """Two revisions of an unchanged app share one cache entry in the sidecar's cache dir."""
    repo = tmp_path / "repo"
    _repo_with(DIRECTORY_APP)(repo)
    cache = tmp_path / "shared-cache"
    outputs = []
    for revision in (REVISION, "0" * 40):
        env = argocd_env(app_name="web", namespace="web-prod", source_path="apps/web",
                         params=DIRECTORY_PARAMS, revision=revision)
        proc = run_generate(repo, "apps/web", env, tmp_path, cache=cache)
        assert proc.returncode == 0, proc.stderr
        outputs.append(proc.stdout)
    assert outputs[0] == outputs[1]
    assert Engine(cache_dir=cache, entry_points=False, env={}).store.stats().entries == 1


def test_cache_follows_substituted_parameters(tmp_path: Path) -> None:
    """A Helm parameter referencing $ARGOCD_APP_REVISION_SHORT must not be served stale from
    the cache when the revision changes (same files, same parameters, new value)."""
    repo = tmp_path / "repo"
    _repo_with(CHART_FILES)(repo)
    cache = tmp_path / "shared-cache"
    for revision in (REVISION, "1234567" + "0" * 33):
        env = argocd_env(app_name="web", namespace="web-prod", source_path="apps/web",
                         params=HELM_PARAMS, revision=revision)
        proc = run_generate(repo, "apps/web", env, tmp_path, cache=cache)
        assert proc.returncode == 0, proc.stderr
        want = _helm_expected_with(["values-prod.yaml"])(repo / "apps/web", env, tmp_path)
        same_objects(objects(proc.stdout), want)


def test_unknown_parameter_fails_with_nothing_on_stdout(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _repo_with(DIRECTORY_APP)(repo)
    env = argocd_env(app_name="web", namespace="web-prod", source_path="apps/web",
                     params=[{"name": "helm-valuefiles", "array": ["x.yaml"]}])
    proc = run_generate(repo, "apps/web", env, tmp_path)
    assert_clean_failure(proc, "ARGOCD_APP_PARAMETERS", "helm-valuefiles")


def test_broken_manifest_fails_with_nothing_on_stdout(tmp_path: Path) -> None:
    """One bad file among good ones: no partial stream (Argo CD would prune the rest)."""
    repo = tmp_path / "repo"
    _repo_with({**DIRECTORY_APP, "zz-broken.yaml": "kind: [unclosed\n"})(repo)
    env = argocd_env(app_name="web", namespace="web-prod", source_path="apps/web")
    assert_clean_failure(run_generate(repo, "apps/web", env, tmp_path), "zz-broken.yaml")


# -- Vault (argocd-vault-plugin placeholders) ------------------------------------------------------

VAULT_PLACEHOLDER = "<path:secret/data/web#password>"
VAULT_SECRET = (
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\nstringData:\n"
    f"  password: {VAULT_PLACEHOLDER}\n")
VAULT_CHART = {
    **{k: v for k, v in CHART_FILES.items() if not k.startswith("crds/")},
    "values.yaml": CHART_FILES["values.yaml"] + f"dbPassword: {VAULT_PLACEHOLDER!r}\n",
    "templates/secret.yaml": (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-db\n"
        "stringData:\n  password: {{ .Values.dbPassword | quote }}\n"),
}


@pytest.fixture(scope="module")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A real OpenBao dev server for the module."""
    server = start_openbao(tmp_path_factory.mktemp("openbao"))
    try:
        yield server
    finally:
        stop_openbao(server)


@pytest.mark.parametrize("kind", ["directory", "helm"], ids=["directory-vault", "helm-vault"])
def test_cmp_generate_with_vault(kind: str, bao: Any, tmp_path: Path) -> None:
    """AVP placeholders resolved from a real OpenBao: settings from plugin.env
    (ARGOCD_ENV_AVP_TYPE, ARGOCD_ENV_VAULT_ADDR...), the token only in the sidecar's env,
    whose operator allows the application to name the address and auth method (AVP's setup)."""
    value = "pw-" + uuid.uuid4().hex
    bao.kv2_put("secret", "web", {"password": value})
    repo = tmp_path / "repo"
    files = {"secret.yaml": VAULT_SECRET} if kind == "directory" else VAULT_CHART
    _repo_with(files)(repo)
    plugin_env = {"AVP_TYPE": "vault", "AVP_AUTH_TYPE": "token", "VAULT_ADDR": bao.addr}
    params = HELM_PARAMS if kind == "helm" else ()
    env = argocd_env(app_name="web", namespace="web-prod", source_path="apps/web",
                     params=params, plugin_env=plugin_env)
    cache = tmp_path / "cache"
    proc = run_generate(repo, "apps/web", env, tmp_path, cache=cache,
                        extra_sidecar_env={"VAULT_TOKEN": bao.token,
                                           "KILN_ALLOW_APP_SETTINGS": "VAULT_ADDR,AVP_AUTH_TYPE"})
    assert proc.returncode == 0, proc.stderr
    app_dir = repo / "apps" / "web"
    raw = (_yaml_files(["secret.yaml"])(app_dir, env, tmp_path) if kind == "directory"
           else _helm_expected_with(["values-prod.yaml"])(app_dir, env, tmp_path))
    want = objects(yaml.safe_dump_all(raw).replace(VAULT_PLACEHOLDER, value))
    same_objects(objects(proc.stdout), want)
    assert value not in proc.stderr and bao.token not in proc.stderr
    assert assert_no_plaintext([cache], [value]) > 0
