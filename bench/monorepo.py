"""A deterministic git monorepo of many small Argo CD apps, for the benchmarks.

``make_monorepo(root, apps)`` writes N apps under ``apps/<kind>-<NNNN>/`` (kinds taken in turn
from ``mix``), one Argo CD ``Application`` per app under ``argocd/``, and commits everything with
a fixed identity and date, so the same arguments give the same commit ids. Each kind is a small
but realistic app:

* ``helm``: a chart (``_helpers.tpl``, Deployment, Service, ConfigMap), ``values.yaml`` and a
  ``values-prod.yaml`` the Application selects with ``valueFiles``, plus a ``parameters`` entry;
* ``kustomize``: a base (Deployment, Service, a ``configMapGenerator``) and an overlay
  ``overlays/prod`` (a replicas patch, labels) the Application points at, with ``namePrefix``
  and ``images``;
* ``directory``: YAML manifests, one in a sub-directory (the Application sets ``recurse``);
* ``jsonnet``: ``main.jsonnet`` (a function of a top-level argument) importing its own
  ``params.libsonnet`` and the repository's shared ``lib/bench.libsonnet`` (Application:
  ``directory.jsonnet`` with ``libs`` and ``tlas``).

``one_app_commit(repo, index)`` changes one app's input (its rendered output changes) and commits.

The raw tools, as Argo CD's repo-server would run them for each Application, are
``raw_command(repo, app, scratch)``: ``helm template``, ``kubectl kustomize`` on the overlay as
``kustomize edit`` would have left it (written into ``scratch``), go-jsonnet in a fresh Python
process (there is no ``jsonnet`` binary; the PyPI binding is what kiln uses), and ``cat`` of the
manifest files for a directory app (Argo CD reads them in-process; one small process is the
cheapest honest stand-in). ``parse_output`` turns their stdout into objects with PyYAML, so a
benchmark can check kiln's objects against them.

Used by ``bench/many_apps.py`` and ``bench/serve.py``; tested by
``tests/unit/test_bench_monorepo.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("helm", "kustomize", "directory", "jsonnet")
REPO_URL = "https://git.example.com/platform/monorepo.git"
"""The ``spec.source.repoURL`` of every generated Application (the checkout itself)."""
ARGOCD_NAMESPACE = "argocd"
GIT_DATE = "2026-01-01T00:00:00+00:00"
_IDENTITY = {"GIT_AUTHOR_NAME": "kiln bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
             "GIT_COMMITTER_NAME": "kiln bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}


@dataclass(frozen=True)
class BenchApp:
    """One generated app and its Application."""

    index: int
    kind: str          # helm | kustomize | directory | jsonnet
    name: str          # the Application's metadata.name, e.g. "helm-0000"
    directory: str     # the app's own directory, POSIX, relative to the root: "apps/helm-0000"
    path: str          # spec.source.path (the kustomize overlay for kustomize apps)
    namespace: str     # spec.destination.namespace
    application: str   # the Application file, relative to the root: "argocd/helm-0000.yaml"
    source: dict[str, Any] = field(compare=False, hash=False)  # spec.source as written


@dataclass
class Monorepo:
    """A generated repository: its work tree ``root`` and its apps in index order."""

    root: Path
    apps: list[BenchApp]

    @property
    def applications(self) -> Path:
        """The directory of Application manifests (``argocd/``)."""
        return self.root / "argocd"

    def head(self) -> str:
        """The commit id HEAD names."""
        return git(self.root, "rev-parse", "HEAD").strip()

    def by_kind(self, kind: str) -> list[BenchApp]:
        """The apps of one kind, in index order."""
        return [a for a in self.apps if a.kind == kind]


# -- git ---------------------------------------------------------------------------------------

def git(root: Path, *args: str, date: str = GIT_DATE) -> str:
    """Run git in ``root`` with a fixed identity and date (no user configuration read);
    return its stdout."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root),
           "LANG": "C", "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           **_IDENTITY, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    proc = subprocess.run(["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgSign=false",
                           *args], cwd=root, env=env, capture_output=True, text=True,
                          timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout


# -- the apps ----------------------------------------------------------------------------------

HELPERS = """\
{{- define "app.fullname" -}}
{{- printf "%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "app.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "app.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
"""

HELM_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "app.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "app.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels:
      {{- include "app.selector" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "app.selector" . | nindent 8 }}
      annotations:
        checksum/config: {{ .Values.config | toJson | sha256sum | quote }}
    spec:
      containers:
        - name: app
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          ports:
            - name: http
              containerPort: {{ .Values.service.targetPort }}
          envFrom:
            - configMapRef:
                name: {{ include "app.fullname" . }}-config
          resources:
            {{- toYaml .Values.resources | nindent 12 }}
"""

HELM_SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: {{ include "app.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "app.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "app.selector" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .Values.service.port }}
      targetPort: http
"""

HELM_CONFIGMAP = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "app.fullname" . }}-config
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "app.labels" . | nindent 4 }}
data:
  {{- range $key, $value := .Values.config }}
  {{ $key }}: {{ $value | quote }}
  {{- end }}
"""


def _helm_values(i: int, revision: int) -> str:
    return (
        "replicaCount: 1\n"
        "image:\n"
        f"  repository: registry.example.com/team-{i % 16}/app-{i:04d}\n"
        "  tag: \"1.0.0\"\n"
        "service:\n"
        "  port: 80\n"
        f"  targetPort: {8000 + i % 1000}\n"
        "resources:\n"
        "  requests: {cpu: 10m, memory: 16Mi}\n"
        "  limits: {memory: 64Mi}\n"
        "config:\n"
        f"  APP_INDEX: \"{i}\"\n"
        f"  REVISION: \"r{revision}\"\n"
        "  LOG_LEVEL: info\n"
    )


def _write_helm(d: Path, i: int, name: str) -> dict[str, Any]:
    (d / "templates").mkdir(parents=True)
    (d / "Chart.yaml").write_text(
        f"apiVersion: v2\nname: {name}\ndescription: bench app {i}\ntype: application\n"
        "version: 0.1.0\nappVersion: \"1.0.0\"\n")
    (d / "values.yaml").write_text(_helm_values(i, 1))
    (d / "values-prod.yaml").write_text(
        "replicaCount: 2\nconfig:\n  LOG_LEVEL: warn\n  ENVIRONMENT: prod\n")
    (d / "templates" / "_helpers.tpl").write_text(HELPERS)
    (d / "templates" / "deployment.yaml").write_text(HELM_DEPLOYMENT)
    (d / "templates" / "service.yaml").write_text(HELM_SERVICE)
    (d / "templates" / "configmap.yaml").write_text(HELM_CONFIGMAP)
    (d / ".helmignore").write_text(".git/\n*.md\n")
    return {"helm": {"releaseName": name, "valueFiles": ["values-prod.yaml"],
                     "parameters": [{"name": "image.tag", "value": f"1.{i % 7}.0"}]}}


def _deployment(name: str, image: str, port: int, config: str | None) -> str:
    env = (f"          envFrom:\n            - configMapRef:\n                name: {config}\n"
           if config else "")
    return (
        "apiVersion: apps/v1\n"
        "kind: Deployment\n"
        "metadata:\n"
        f"  name: {name}\n"
        f"  labels: {{app.kubernetes.io/name: {name}}}\n"
        "spec:\n"
        "  replicas: 1\n"
        f"  selector: {{matchLabels: {{app.kubernetes.io/name: {name}}}}}\n"
        "  template:\n"
        f"    metadata: {{labels: {{app.kubernetes.io/name: {name}}}}}\n"
        "    spec:\n"
        "      containers:\n"
        "        - name: app\n"
        f"          image: {image}\n"
        f"          ports: [{{name: http, containerPort: {port}}}]\n"
        f"{env}"
    )


def _service(name: str, port: int) -> str:
    return (
        "apiVersion: v1\n"
        "kind: Service\n"
        "metadata:\n"
        f"  name: {name}\n"
        f"  labels: {{app.kubernetes.io/name: {name}}}\n"
        "spec:\n"
        f"  selector: {{app.kubernetes.io/name: {name}}}\n"
        f"  ports: [{{name: http, port: 80, targetPort: {port}}}]\n"
    )


def _kustomize_base(i: int, revision: int) -> str:
    return (
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "resources: [deployment.yaml, service.yaml]\n"
        "configMapGenerator:\n"
        "  - name: settings\n"
        f"    literals: [APP_INDEX={i}, REVISION=r{revision}, LOG_LEVEL=info]\n"
    )


def _write_kustomize(d: Path, i: int, name: str) -> dict[str, Any]:
    base, overlay = d / "base", d / "overlays" / "prod"
    base.mkdir(parents=True)
    overlay.mkdir(parents=True)
    port = 8000 + i % 1000
    (base / "deployment.yaml").write_text(_deployment(name, "nginx:1.25", port, "settings"))
    (base / "service.yaml").write_text(_service(name, port))
    (base / "kustomization.yaml").write_text(_kustomize_base(i, 1))
    (overlay / "replicas.yaml").write_text(
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\n"
        "spec: {replicas: 3}\n")
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "resources: [../../base]\n"
        "labels:\n"
        "  - pairs: {environment: prod}\n"
        "patches:\n"
        "  - path: replicas.yaml\n")
    return {"kustomize": {"namePrefix": "prod-", "images": [f"nginx:1.27.{i % 5}"]}}


def _directory_configmap(i: int, name: str, revision: int) -> str:
    return (
        "---\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata:\n"
        f"  name: {name}-config\n"
        "data:\n"
        f"  APP_INDEX: \"{i}\"\n"
        f"  REVISION: \"r{revision}\"\n"
    )


def _write_directory(d: Path, i: int, name: str) -> dict[str, Any]:
    (d / "config").mkdir(parents=True)
    port = 8000 + i % 1000
    image = f"registry.example.com/team-{i % 16}/{name}:2.{i % 9}.0"
    (d / "deployment.yaml").write_text(
        "---\n" + _deployment(name, image, port, f"{name}-config"))
    (d / "service.yaml").write_text("---\n" + _service(name, port))
    (d / "config" / "configmap.yaml").write_text(_directory_configmap(i, name, 1))
    (d / "README.md").write_text(f"# {name}\n\nPlain manifests.\n")
    return {"directory": {"recurse": True}}


LIBSONNET = """\
{
  labels(name):: { 'app.kubernetes.io/name': name, 'app.kubernetes.io/managed-by': 'jsonnet' },
  deployment(p, replicas):: {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: p.name, labels: $.labels(p.name) },
    spec: {
      replicas: replicas,
      selector: { matchLabels: $.labels(p.name) },
      template: {
        metadata: { labels: $.labels(p.name) },
        spec: { containers: [{
          name: 'app',
          image: p.image,
          ports: [{ name: 'http', containerPort: p.port }],
          env: [{ name: k, value: std.toString(p.env[k]) } for k in std.objectFields(p.env)],
        }] },
      },
    },
  },
  service(p):: {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: p.name, labels: $.labels(p.name) },
    spec: { selector: $.labels(p.name), ports: [{ name: 'http', port: 80, targetPort: p.port }] },
  },
  configMap(p):: {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: p.name + '-config', labels: $.labels(p.name) },
    data: { 'config.json': std.manifestJsonEx(p.env, '  ') },
  },
}
"""

MAIN_JSONNET = """\
local bench = import 'bench.libsonnet';
local p = import 'params.libsonnet';
function(replicas=1) [
  bench.deployment(p, replicas),
  bench.service(p),
  bench.configMap(p),
]
"""


def _jsonnet_params(i: int, name: str, revision: int) -> str:
    params = {"name": name, "image": f"registry.example.com/team-{i % 16}/{name}:3.{i % 4}.0",
              "port": 8000 + i % 1000,
              "env": {"APP_INDEX": str(i), "REVISION": f"r{revision}", "LOG_LEVEL": "info"}}
    return json.dumps(params, indent=2, sort_keys=True) + "\n"


def _write_jsonnet(d: Path, i: int, name: str) -> dict[str, Any]:
    d.mkdir(parents=True)
    (d / "main.jsonnet").write_text(MAIN_JSONNET)
    (d / "params.libsonnet").write_text(_jsonnet_params(i, name, 1))
    return {"directory": {"jsonnet": {
        "libs": ["lib"], "tlas": [{"name": "replicas", "value": str(1 + i % 3), "code": True}]}}}


_WRITERS = {"helm": _write_helm, "kustomize": _write_kustomize,
            "directory": _write_directory, "jsonnet": _write_jsonnet}


def _application(app: BenchApp, repo_url: str) -> str:
    doc = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": app.name, "namespace": ARGOCD_NAMESPACE,
                     "labels": {"bench.kiln.dev/kind": app.kind}},
        "spec": {
            "project": "default",
            "source": {"repoURL": repo_url, "targetRevision": "HEAD", "path": app.path,
                       **app.source},
            "destination": {"server": "https://kubernetes.default.svc",
                            "namespace": app.namespace},
            "syncPolicy": {"syncOptions": ["CreateNamespace=true"]},
        },
    }
    import yaml

    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def make_monorepo(root: Path, apps: int, *, mix: Sequence[str] = KINDS,
                  repo_url: str = REPO_URL) -> Monorepo:
    """Create a git repository at ``root`` (which must not exist or be empty) holding ``apps``
    apps, app ``i`` of kind ``mix[i % len(mix)]``, each with its Application in ``argocd/``;
    one commit with a fixed identity and date. Same arguments, same commit id."""
    if apps < 1:
        raise ValueError("apps must be at least 1")
    unknown = [k for k in mix if k not in _WRITERS]
    if unknown or not mix:
        raise ValueError(f"unknown kinds {unknown}; choose from {KINDS}")
    root.mkdir(parents=True, exist_ok=True)
    if any(root.iterdir()):
        raise ValueError(f"{root}: not empty")
    (root / "argocd").mkdir()
    (root / "lib").mkdir()
    (root / "lib" / "bench.libsonnet").write_text(LIBSONNET)
    (root / "README.md").write_text(f"# bench monorepo\n\n{apps} apps, generated.\n")
    made = []
    for i in range(apps):
        kind = mix[i % len(mix)]
        name = f"{kind}-{i:04d}"
        directory = f"apps/{name}"
        source = _WRITERS[kind](root / directory, i, name)
        path = f"{directory}/overlays/prod" if kind == "kustomize" else directory
        app = BenchApp(index=i, kind=kind, name=name, directory=directory, path=path,
                       namespace=f"team-{i % 16}", application=f"argocd/{name}.yaml",
                       source=source)
        (root / app.application).write_text(_application(app, repo_url))
        made.append(app)
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"bench monorepo: {apps} apps")
    return Monorepo(root=root, apps=made)


def one_app_commit(repo: Monorepo, index: int) -> str:
    """Change app ``index``'s input so that its rendered objects change (a new revision
    string in its config), commit it, and return the new commit id. Only files under the app's
    own directory change; each call makes a new revision (the commit count), one second after
    the previous commit's date."""
    app = repo.apps[index]
    count = int(git(repo.root, "rev-list", "--count", "HEAD").strip())
    revision = count + 1
    d = repo.root / app.directory
    if app.kind == "helm":
        (d / "values.yaml").write_text(_helm_values(app.index, revision))
    elif app.kind == "kustomize":
        (d / "base" / "kustomization.yaml").write_text(_kustomize_base(app.index, revision))
    elif app.kind == "directory":
        (d / "config" / "configmap.yaml").write_text(
            _directory_configmap(app.index, app.name, revision))
    else:
        (d / "params.libsonnet").write_text(_jsonnet_params(app.index, app.name, revision))
    date = f"2026-01-01T00:{count // 60 % 60:02d}:{count % 60:02d}+00:00"
    git(repo.root, "commit", "-q", "-am", f"change {app.name} (r{revision})", date=date)
    return repo.head()


# -- the raw tools -----------------------------------------------------------------------------

@dataclass(frozen=True)
class RawCommand:
    """One raw tool process for one app: what Argo CD's repo-server would run."""

    app: BenchApp
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    output: str        # "yaml" or "json"

    def run(self, timeout: float = 300) -> bytes:
        """Run it; return stdout (raise RuntimeError naming the app on failure)."""
        proc = subprocess.run(self.argv, cwd=self.cwd, env=self.env, capture_output=True,
                              timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{self.app.name}: {self.argv[0]} failed: "
                               f"{proc.stderr.decode(errors='replace')[-500:]}")
        return proc.stdout


def tool_path(name: str) -> str:
    """A tool beside this Python (the venv's helm/kubectl), else on PATH."""
    import shutil

    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found (install kiln[tools])")
    return found


_JSONNET_RAW = (
    "import json, sys, _gojsonnet\n"
    "main, jpath, tlas = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])\n"
    "sys.stdout.write(_gojsonnet.evaluate_file(main, jpathdir=[jpath], tla_codes=tlas))\n"
)


def raw_command(repo: Monorepo, app: BenchApp, scratch: Path) -> RawCommand:
    """The raw tool invocation for ``app`` honouring its Application's options; set-up it
    needs (the edited kustomization, helm's private home) goes under ``scratch``."""
    root = repo.root
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(scratch / "home"),
           "LANG": "C.UTF-8", "TMPDIR": str(scratch / "tmp")}
    (scratch / "home").mkdir(parents=True, exist_ok=True)
    (scratch / "tmp").mkdir(parents=True, exist_ok=True)
    if app.kind == "helm":
        helm = app.source["helm"]
        hhome = scratch / "helm"
        env.update(HELM_CACHE_HOME=str(hhome / "cache"), HELM_CONFIG_HOME=str(hhome / "config"),
                   HELM_DATA_HOME=str(hhome / "data"))
        argv = [tool_path("helm"), "template", helm["releaseName"], str(root / app.path),
                "--namespace", app.namespace, "--include-crds"]
        for vf in helm["valueFiles"]:
            argv += ["--values", str(root / app.path / vf)]
        for p in helm["parameters"]:
            argv += ["--set", f"{p['name']}={p['value']}"]
        return RawCommand(app, argv, root / app.path, env, "yaml")
    if app.kind == "kustomize":
        # Argo CD runs `kustomize edit set nameprefix/image` in its checkout, then builds: the
        # same edit, written by hand into a copy of the app.
        import shutil

        import yaml

        opts = app.source["kustomize"]
        copy = scratch / "kustomize" / app.directory
        if copy.exists():
            shutil.rmtree(copy)
        shutil.copytree(root / app.directory, copy)
        overlay = copy / Path(app.path).relative_to(app.directory)
        kfile = overlay / "kustomization.yaml"
        doc = yaml.safe_load(kfile.read_text())
        doc["namePrefix"] = opts["namePrefix"]
        images = []
        for ref in opts["images"]:
            image, _, tag = ref.partition(":")
            images.append({"name": image, "newTag": tag})
        doc["images"] = images
        kfile.write_text(yaml.safe_dump(doc, sort_keys=False))
        return RawCommand(app, [tool_path("kubectl"), "kustomize", str(overlay)], overlay, env,
                          "yaml")
    if app.kind == "jsonnet":
        opts = app.source["directory"]["jsonnet"]
        tlas = {t["name"]: t["value"] if t.get("code") else json.dumps(t["value"])
                for t in opts["tlas"]}
        argv = [sys.executable, "-I", "-c", _JSONNET_RAW, str(root / app.path / "main.jsonnet"),
                str(root / opts["libs"][0]), json.dumps(tlas)]
        return RawCommand(app, argv, root / app.path, env, "json")
    files = sorted(str(p.relative_to(root / app.path)) for p in (root / app.path).rglob("*")
                   if p.suffix in (".yaml", ".yml") and p.is_file())
    return RawCommand(app, ["cat", *files], root / app.path, env, "yaml")


def parse_output(text: bytes | str, output: str = "yaml") -> list[dict[str, Any]]:
    """The Kubernetes objects in a raw tool's stdout (PyYAML for YAML; JSON arrays and
    ``*List`` kinds flattened), in order."""
    import yaml

    if output == "json":
        docs: Iterable[Any] = [json.loads(text)]
    else:
        docs = yaml.load_all(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    found: list[dict[str, Any]] = []

    def walk(doc: Any) -> None:
        if doc is None:
            return
        if isinstance(doc, list):
            for item in doc:
                walk(item)
        elif isinstance(doc, dict) and "apiVersion" in doc and "kind" in doc:
            if str(doc["kind"]).endswith("List") and isinstance(doc.get("items"), list):
                walk(doc["items"])
            else:
                found.append(doc)
        elif isinstance(doc, dict):
            for key in sorted(doc):
                walk(doc[key])
        else:
            raise ValueError(f"not a Kubernetes object: {doc!r:.80}")

    for doc in docs:
        walk(doc)
    return found


def canonical(objects: Iterable[dict[str, Any]]) -> list[str]:
    """Objects as sorted canonical JSON strings: equal lists mean equal objects, any order."""
    return sorted(json.dumps(o, sort_keys=True, separators=(",", ":")) for o in objects)


def kiln_flags(app: BenchApp) -> list[str]:
    """``kiln render`` flags with the effect of ``app``'s Application (for one ``kiln render
    PATH`` process per app): the destination namespace, then the source's options."""
    flags = ["--app-name", app.name, "-n", app.namespace]
    if app.kind == "helm":
        helm = app.source["helm"]
        flags += ["--release-name", helm["releaseName"]]
        for vf in helm["valueFiles"]:
            flags += ["-f", vf]
        for p in helm["parameters"]:
            flags += ["--set", f"{p['name']}={p['value']}"]
    elif app.kind == "kustomize":
        opts = app.source["kustomize"]
        flags += ["--nameprefix", opts["namePrefix"]]
        for image in opts["images"]:
            flags += ["--kustomize-image", image]
    elif app.kind == "jsonnet":
        opts = app.source["directory"]["jsonnet"]
        for lib in opts["libs"]:
            flags += ["--jsonnet-libs", lib]
        for t in opts["tlas"]:
            kind = "code" if t.get("code") else "str"
            flags += [f"--jsonnet-tla-{kind}", f"{t['name']}={t['value']}"]
    elif app.source.get("directory", {}).get("recurse"):
        flags.append("--recurse")
    return flags
