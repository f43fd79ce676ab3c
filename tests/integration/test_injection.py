"""No argument injection into tools (issue 11 §1), with the real kiln CLI, helm and kubectl.

Every input that reaches a tool's command line is given flag-shaped and shell-metacharacter
values through the command line, kiln.yaml and Argo CD's CMP environment (``kiln generate .``
with ``ARGOCD_APP_*``, ``ARGOCD_APP_PARAMETERS`` JSON and ``PARAM_*``). The helm chart's only
template is a line that is both valid YAML and a shell command creating a marker file, so a
value that became ``--post-renderer=/bin/sh`` would run it. The oracle: the marker never
exists, the exit status is non-zero, stdout is empty, and the one error line names the option.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import assert_clean_failure, param_vars, run_kiln, tool, write_tree

pytestmark = pytest.mark.integration

PAYLOADS = ["--post-renderer=/bin/sh", "-f/etc/passwd", "$(touch {M})", ";touch {M}",
            "`touch {M}`", "x\n;touch {M}"]
"""Flag-shaped, shell-substitution, shell-separator and newline-injection values; ``{M}`` is
the marker file's path."""
PRIMARY = PAYLOADS[0]
REPO_URL = "https://127.0.0.1:9/charts"
"""A repository that is never contacted (every case fails before a download)."""

Payload = Callable[[str], Any]


@dataclass(frozen=True)
class Case:
    """One argv-bound input: how to give it a value in each face, and what the error names.

    ``flag``, ``yaml`` and ``cmp`` turn the payload into CLI arguments, kiln.yaml settings and
    (parameters, environment) for ``kiln generate .``; None where that face has no such input.
    ``param_vars`` tells whether the PARAM_* form carries the payload as it is (a map *key* is
    escaped by Argo CD, so it cannot).
    """

    name: str
    kind: str
    needles: tuple[str, ...]
    flag: Payload | None = None
    yaml: Payload | None = None
    cmp: Payload | None = None
    param_vars: bool = True
    extra_flags: tuple[str, ...] = field(default_factory=tuple)


def _param(name: str, collection: str, value: Any) -> tuple[list[dict[str, Any]], dict[str, str]]:
    return [{"name": name, collection: value}], {}


def _env(**env: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    return [], env


CASES = [
    # Helm
    Case("helm-release-name", "helm", ("helm.releaseName",),
         flag=lambda p: ["--release-name", p], yaml=lambda p: {"helm": {"releaseName": p}},
         cmp=lambda p: _param("helm-release-name", "string", p)),
    Case("app-name", "helm", ("name (the default Helm release name)",),
         flag=lambda p: ["--app-name", p], yaml=lambda p: {"name": p},
         cmp=lambda p: _env(ARGOCD_APP_NAME=p)),
    Case("namespace", "helm", ("namespace",), flag=lambda p: ["-n", p],
         yaml=lambda p: {"namespace": p}, cmp=lambda p: _env(ARGOCD_APP_NAMESPACE=p)),
    Case("helm-namespace", "helm", ("helm.namespace",), flag=lambda p: ["--helm-namespace", p],
         yaml=lambda p: {"helm": {"namespace": p}},
         cmp=lambda p: _param("helm-namespace", "string", p)),
    Case("kube-version", "helm", ("kubeVersion",), flag=lambda p: ["--kube-version", p],
         yaml=lambda p: {"kubeVersion": p}, cmp=lambda p: _env(KUBE_VERSION=p)),
    Case("api-versions", "helm", ("apiVersions",), flag=lambda p: ["--api-versions", p],
         yaml=lambda p: {"apiVersions": [p]}, cmp=lambda p: _env(KUBE_API_VERSIONS=p)),
    Case("repo-url", "helm", ("helm.repoURL",), flag=lambda p: ["--repo", p, "--chart", "c"],
         yaml=lambda p: {"helm": {"repoURL": p, "chart": "c"}}),
    Case("chart-name", "helm", ("helm.chart",), flag=lambda p: ["--repo", REPO_URL, "--chart", p],
         yaml=lambda p: {"helm": {"repoURL": REPO_URL, "chart": p}}),
    Case("chart-version", "helm", ("helm.version",),
         flag=lambda p: ["--repo", REPO_URL, "--chart", "c", "--chart-version", p],
         yaml=lambda p: {"helm": {"repoURL": REPO_URL, "chart": "c", "version": p}}),
    Case("set-key", "helm", ("helm.parameters[0].name",), flag=lambda p: ["--set", f"{p}=1"],
         yaml=lambda p: {"helm": {"parameters": [{"name": p, "value": "1"}]}},
         cmp=lambda p: _param("helm-parameters", "map", {p: "1"}), param_vars=False),
    Case("set-string-key", "helm", ("helm.parameters[0].name",),
         flag=lambda p: ["--set-string", f"{p}=1"],
         cmp=lambda p: _param("helm-string-parameters", "map", {p: "1"}), param_vars=False),
    Case("set-file-key", "helm", ("helm.fileParameters[0].name",),
         flag=lambda p: ["--set-file", f"{p}=Chart.yaml"],
         yaml=lambda p: {"helm": {"fileParameters": [{"name": p, "path": "Chart.yaml"}]}},
         cmp=lambda p: _param("helm-file-parameters", "map", {p: "Chart.yaml"}),
         param_vars=False),
    Case("value-file", "helm", ("value file not found", "helm.valueFiles"),
         flag=lambda p: ["-f", p], yaml=lambda p: {"helm": {"valueFiles": [p]}},
         cmp=lambda p: _param("helm-values-files", "array", [p])),
    # Kustomize
    Case("name-prefix", "kustomize", ("kustomize.namePrefix",),
         flag=lambda p: ["--nameprefix", p], yaml=lambda p: {"kustomize": {"namePrefix": p}},
         cmp=lambda p: _param("kustomize-name-prefix", "string", p)),
    Case("name-suffix", "kustomize", ("kustomize.nameSuffix",),
         flag=lambda p: ["--namesuffix", p], yaml=lambda p: {"kustomize": {"nameSuffix": p}},
         cmp=lambda p: _param("kustomize-name-suffix", "string", p)),
    Case("images", "kustomize", ("kustomize.images[0]",),
         flag=lambda p: ["--kustomize-image", p], yaml=lambda p: {"kustomize": {"images": [p]}},
         cmp=lambda p: _param("kustomize-images", "array", [p])),
    Case("replicas", "kustomize", ("kustomize.replicas[0].name",),
         yaml=lambda p: {"kustomize": {"replicas": [{"name": p, "count": 2}]}},
         cmp=lambda p: _param("kustomize-replicas", "map", {p: "2"}), param_vars=False),
    Case("label-key", "kustomize", ("kustomize.commonLabels key",),
         flag=lambda p: ["--kustomize-common-label", f"{p}=v"],
         yaml=lambda p: {"kustomize": {"commonLabels": {p: "v"}}},
         cmp=lambda p: _param("kustomize-common-labels", "map", {p: "v"}), param_vars=False),
    Case("label-value", "kustomize", ("kustomize.commonLabels[k]", "kustomize.commonLabels[K]"),
         flag=lambda p: ["--kustomize-common-label", f"k={p}"],
         yaml=lambda p: {"kustomize": {"commonLabels": {"k": p}}},
         cmp=lambda p: _param("kustomize-common-labels", "map", {"k": p})),
    Case("annotation-key", "kustomize", ("kustomize.commonAnnotations key",),
         flag=lambda p: ["--kustomize-common-annotation", f"{p}=v"],
         yaml=lambda p: {"kustomize": {"commonAnnotations": {p: "v"}}}),
    Case("kustomize-namespace", "kustomize", ("kustomize.namespace",),
         flag=lambda p: ["--kustomize-namespace", p],
         yaml=lambda p: {"kustomize": {"namespace": p}},
         cmp=lambda p: _param("kustomize-namespace", "string", p)),
    Case("build-options", "kustomize", ("kustomize.buildOptions",),
         flag=lambda p: ["--kustomize-build-options", p],
         yaml=lambda p: {"kustomize": {"buildOptions": p}},
         cmp=lambda p: _param("kustomize-build-options", "string", p)),
    Case("kustomize-helm-kube-version", "kustomize", ("kubeVersion",),
         flag=lambda p: ["--kube-version", p, "--kustomize-build-options", "--enable-helm"],
         yaml=lambda p: {"kubeVersion": p, "kustomize": {"buildOptions": "--enable-helm"}}),
    # Jsonnet
    Case("tla-name", "jsonnet", ("tlas[0].name",), flag=lambda p: ["--jsonnet-tla-str", f"{p}=v"],
         yaml=lambda p: {"jsonnet": {"tlas": [{"name": p, "value": "v"}]}},
         cmp=lambda p: _param("jsonnet-tlas", "map", {p: "v"}), param_vars=False),
    Case("ext-var-name", "jsonnet", ("extVars[0].name",),
         flag=lambda p: ["--jsonnet-ext-code", f"{p}=1"],
         yaml=lambda p: {"jsonnet": {"extVars": [{"name": p, "value": "1", "code": True}]}},
         cmp=lambda p: _param("jsonnet-ext-vars", "map", {p: "v"}), param_vars=False),
]


def shell_chart(app: Path, marker: Path) -> Path:
    """A chart whose only template is valid YAML and a shell command creating ``marker``."""
    write_tree(app, {"Chart.yaml": "apiVersion: v2\nname: c\nversion: 0.1.0\n"})
    (app / "templates").mkdir()
    (app / "templates" / "x.yaml").write_text(f"touch {marker};: x\n")
    return app


def make_app(kind: str, app: Path, marker: Path) -> Path:
    """An app of ``kind`` under ``app`` (helm: the shell chart)."""
    if kind == "helm":
        return shell_chart(app, marker)
    if kind == "kustomize":
        return write_tree(app, {
            "kustomization.yaml": "resources: [cm.yaml]\n",
            "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\n"})
    return write_tree(app, {"main.jsonnet": 'function(env="x") {apiVersion: "v1", '
                            'kind: "ConfigMap", metadata: {name: "j"}, data: {env: env}}\n'})




def run_face(case: Case, face: str, payload: str, app: Path, cache: Path
             ) -> subprocess.CompletedProcess[str]:
    """Give ``payload`` to ``case``'s input through ``face`` and run kiln."""
    if face == "flag":
        assert case.flag is not None
        return run_kiln("render", str(app), "--cache-dir", str(cache), *case.flag(payload))
    if face == "yaml":
        assert case.yaml is not None
        (app / "kiln.yaml").write_text(yaml.safe_dump(case.yaml(payload)))
        return run_kiln("render", str(app), "--cache-dir", str(cache))
    assert case.cmp is not None
    params, extra = case.cmp(payload)
    env = {"ARGOCD_APP_NAME": "web", "ARGOCD_APP_NAMESPACE": "web", "KILN_CACHE_DIR": str(cache),
           **extra}
    if face == "cmp-json":
        env["ARGOCD_APP_PARAMETERS"] = json.dumps(params)
    else:
        env.update(param_vars(params))
    return run_kiln("generate", ".", cwd=app, env=env)


def _faces(case: Case) -> list[str]:
    faces = [f for f, given in (("flag", case.flag), ("yaml", case.yaml)) if given is not None]
    if case.cmp is not None:
        params, _ = case.cmp(PRIMARY)
        faces.append("cmp-json")
        if params and case.param_vars:
            faces.append("cmp-param-vars")
        if not params:
            faces[-1] = "cmp-env"
    return faces


ALL_PAYLOADS = {"helm-release-name": "yaml", "app-name": "cmp-env", "namespace": "cmp-env",
                "set-key": "cmp-json", "value-file": "yaml", "images": "cmp-json",
                "build-options": "yaml", "tla-name": "flag", "label-value": "cmp-json"}
"""Inputs that also get every payload, and through which face. (Every checker meets every
payload in tests/unit/test_argv_safety.py; here each run is a kiln process, so the whole
cross product would be minutes of CPU.)"""


def _matrix() -> list[Any]:
    """Every case through every face with the flag-shaped payload; the inputs of
    :data:`ALL_PAYLOADS` with every payload through one face."""
    out = []
    for case in CASES:
        for face in _faces(case):
            every = ALL_PAYLOADS.get(case.name) == face
            for index, payload in enumerate(PAYLOADS if every else [PRIMARY]):
                out.append(pytest.param(case, face, payload, id=f"{case.name}-{face}-{index}"))
    return out


def assert_refused(proc: subprocess.CompletedProcess[str], marker: Path,
                   needles: tuple[str, ...]) -> None:
    """Fail closed: the marker never exists, no stdout, one error line naming the option."""
    assert not marker.exists(), "a payload was executed"
    assert proc.returncode != 0, proc.stdout
    assert proc.stdout == "", proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    first = proc.stderr.strip().splitlines()[0]
    assert first.startswith("kiln: error: "), proc.stderr
    assert any(n in first for n in needles), (needles, first)


@pytest.mark.parametrize(("case", "face", "payload"), _matrix())
def test_argv_bound_input_refuses_payload(case: Case, face: str, payload: str,
                                          tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    app = make_app(case.kind, tmp_path / "app", marker)
    proc = run_face(case, face, payload.replace("{M}", str(marker)), app, tmp_path / "cache")
    assert_refused(proc, marker, case.needles)


# -- the exact reproductions of the issue -----------------------------------------------------


def test_issue_reproduction_release_name_post_renderer(tmp_path: Path) -> None:
    """``--release-name=--post-renderer=/bin/sh`` on a chart whose template is a shell line:
    helm is never told to post-render (before the fix the marker was created, exit 0)."""
    marker = tmp_path / "MARKER"
    app = shell_chart(tmp_path / "chart", marker)
    proc = run_kiln("render", str(app), "--cache-dir", str(tmp_path / "c"),
                    "--release-name=--post-renderer=/bin/sh")
    assert_refused(proc, marker, ("helm.releaseName",))
    # The chart itself is harmless when rendered normally: helm runs, nothing executes.
    ok = subprocess.run([tool("helm"), "template", "r", str(app)], capture_output=True,
                        text=True, env={**os.environ, "HELM_CACHE_HOME": str(tmp_path / "h"),
                                        "HELM_CONFIG_HOME": str(tmp_path / "h"),
                                        "HELM_DATA_HOME": str(tmp_path / "h")})
    assert ok.returncode == 0 and f"touch {marker};: x" in ok.stdout
    assert not marker.exists()


def test_issue_reproduction_through_the_cmp_parameter(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    app = shell_chart(tmp_path / "chart", marker)
    params = [{"name": "helm-release-name", "string": "--post-renderer=/bin/sh"}]
    for env in ({"ARGOCD_APP_PARAMETERS": json.dumps(params)}, param_vars(params),
                {"ARGOCD_APP_NAME": "--post-renderer=/bin/sh"}):
        proc = run_kiln("generate", ".", cwd=app,
                        env={"KILN_CACHE_DIR": str(tmp_path / "c"), **env})
        assert_refused(proc, marker, ("helm.releaseName", "name"))


@pytest.mark.parametrize("field_name", ["releaseName", "name", "namespace", "version"])
def test_kustomize_helm_charts_cannot_inject_into_helm(field_name: str, tmp_path: Path) -> None:
    """kustomize puts ``helmCharts[].releaseName`` on helm's command line as a positional: a
    repository's kustomization must not turn it into ``--post-renderer``."""
    marker = tmp_path / "MARKER"
    app = tmp_path / "app"
    shell_chart(app / "charts" / "c", marker)
    (app / "charts" / "c" / "values.yaml").write_text("")
    chart = {"name": "c", "releaseName": "r", field_name: "--post-renderer=/bin/sh"}
    (app / "kustomization.yaml").write_text(yaml.safe_dump({"helmCharts": [chart]}))
    proc = run_kiln("render", str(app), "--cache-dir", str(tmp_path / "c"),
                    "--kustomize-build-options", "--enable-helm")
    assert_refused(proc, marker, (f"helmCharts['{chart['name']}'].{field_name}",
                                  f".{field_name}"))


# -- values are values --------------------------------------------------------------------------

VALUE_CHART = {
    "Chart.yaml": "apiVersion: v2\nname: v\nversion: 0.1.0\n",
    "templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: values\n"
                         "data:\n  a: {{ .Values.a | quote }}\n",
}


@pytest.mark.parametrize("payload", PAYLOADS)
def test_set_values_reach_helm_as_values(payload: str, tmp_path: Path) -> None:
    """A ``--set`` value that looks like a flag or a shell command is rendered as data."""
    marker = tmp_path / "MARKER"
    value = payload.replace("{M}", str(marker))
    app = write_tree(tmp_path / "app", VALUE_CHART)
    procs = [
        run_kiln("render", str(app), "--cache-dir", str(tmp_path / "c1"), "--set-string",
                 f"a={value}"),
        run_kiln("generate", ".", cwd=app, env={
            "KILN_CACHE_DIR": str(tmp_path / "c2"), "ARGOCD_APP_NAME": "web",
            "ARGOCD_APP_PARAMETERS": json.dumps(
                [{"name": "helm-string-parameters", "map": {"a": value}}])}),
    ]
    for proc in procs:
        assert proc.returncode == 0, proc.stderr
        docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
        assert [d["data"]["a"] for d in docs] == [value]
    assert not marker.exists()


# -- helm.namespace -----------------------------------------------------------------------------

NS_CHART = {
    "Chart.yaml": "apiVersion: v2\nname: ns\nversion: 0.1.0\n",
    "templates/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ns\n"
                         "  namespace: {{ .Release.Namespace }}\n",
}


def raw_helm_objects(app: Path, namespace: str, home: Path) -> list[dict[str, Any]]:
    """The objects the real ``helm template --namespace`` renders (parsed by PyYAML)."""
    env = {**os.environ, "HELM_CACHE_HOME": str(home), "HELM_CONFIG_HOME": str(home),
           "HELM_DATA_HOME": str(home)}
    out = subprocess.run([tool("helm"), "template", "r", str(app), "--namespace", namespace],
                         check=True, capture_output=True, text=True, env=env).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.parametrize(("face", "expected"), [
    ("flag-app", "appns"), ("flag", "helmns"), ("yaml", "helmns"), ("cmp", "helmns"),
    ("cmp-app", "appns"), ("cmp-param-vars", "helmns"),
])
def test_helm_namespace(face: str, expected: str, tmp_path: Path) -> None:
    app = write_tree(tmp_path / "app", NS_CHART)
    cache = str(tmp_path / "c")
    if face == "flag-app":
        proc = run_kiln("render", str(app), "--cache-dir", cache, "-n", "appns")
    elif face == "flag":
        proc = run_kiln("render", str(app), "--cache-dir", cache, "-n", "appns",
                        "--helm-namespace", "helmns")
    elif face == "yaml":
        (app / "kiln.yaml").write_text("namespace: appns\nhelm: {namespace: helmns}\n")
        proc = run_kiln("render", str(app), "--cache-dir", cache)
    else:
        params = [] if face == "cmp-app" else [{"name": "helm-namespace", "string": "helmns"}]
        env = {"KILN_CACHE_DIR": cache, "ARGOCD_APP_NAME": "r", "ARGOCD_APP_NAMESPACE": "appns"}
        if face == "cmp-param-vars":
            env.update(param_vars(params))
        else:
            env["ARGOCD_APP_PARAMETERS"] = json.dumps(params)
        proc = run_kiln("generate", ".", cwd=app, env=env)
    assert proc.returncode == 0, proc.stderr
    got = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert [d["metadata"]["namespace"] for d in got] == [expected]
    assert got == raw_helm_objects(app, expected, tmp_path / "h")


# -- the environment tools run in -------------------------------------------------------------

CREDENTIALS = {
    "VAULT_TOKEN": "hvs.secret-token", "AVP_SECRET_ID": "avp-secret",
    "AWS_SECRET_ACCESS_KEY": "aws-secret", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "SOPS_AGE_KEY": "AGE-SECRET-KEY-1EXAMPLE", "GOOGLE_APPLICATION_CREDENTIALS": "/gcp.json",
    "ARGOCD_ENV_DB_PASSWORD": "app-secret", "KILN_HELM_PASSWORD": "repo-secret",
    "KUBECONFIG": "/kubeconfig",
}
PASSED = {"NO_PROXY": "internal.example.com", "LC_ALL": "C.UTF-8"}


def env_dumping_tool(real: str, dumps: Path, path: Path) -> Path:
    """A stand-in for ``real`` that writes the environment it was given to ``dumps`` (one
    NUL-separated file per run), then runs ``real`` with the same arguments."""
    dumps.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\n/usr/bin/env -0 > "{dumps}/env.$$"\nexec "{real}" "$@"\n')
    path.chmod(0o755)
    return path


def dumped(dumps: Path) -> list[dict[str, str]]:
    """Each recorded environment as a mapping."""
    out = []
    for file in sorted(dumps.iterdir()):
        items = [e for e in file.read_bytes().decode().split("\0") if e]
        out.append(dict(e.split("=", 1) for e in items))
    return out


@pytest.mark.parametrize("kind", ["helm", "kustomize"])
def test_tools_do_not_inherit_credentials(kind: str, tmp_path: Path) -> None:
    dumps = tmp_path / "dumps"
    if kind == "helm":
        app = write_tree(tmp_path / "app", NS_CHART)
        fake = env_dumping_tool(tool("helm"), dumps, tmp_path / "helm")
        setting = {"KILN_HELM": str(fake)}
    else:
        app = make_app("kustomize", tmp_path / "app", tmp_path / "MARKER")
        fake = env_dumping_tool(tool("kubectl"), dumps, tmp_path / "kubectl")
        setting = {"KILN_KUBECTL": str(fake)}
    proc = run_kiln("render", str(app), "--cache-dir", str(tmp_path / "c"),
                    env={**CREDENTIALS, **PASSED, **setting})
    assert proc.returncode == 0, proc.stderr
    assert [d for d in yaml.safe_load_all(proc.stdout) if d]
    runs = dumped(dumps)
    assert len(runs) >= 2  # the version query and the render itself
    for env in runs:
        assert not set(CREDENTIALS) & set(env), sorted(set(CREDENTIALS) & set(env))
        assert not [k for k in env if k.startswith(("KILN_", "ARGOCD_", "AWS_", "AVP_"))]
        for secret in CREDENTIALS.values():
            assert all(secret not in v for v in env.values())
        assert {k: env.get(k) for k in PASSED} == PASSED
        assert env["PATH"] == os.environ["PATH"]
    if kind == "helm":
        assert all(Path(env["HELM_CACHE_HOME"]).is_dir() for env in runs)

    # The operator (kiln's own environment, never the app) can hand a variable on.
    shutil_dumps = tmp_path / "dumps2"
    env_dumping_tool(tool(kind if kind == "helm" else "kubectl"), shutil_dumps, fake)
    proc = run_kiln("render", str(app), "--cache-dir", str(tmp_path / "c2"),
                    env={**CREDENTIALS, **setting, "KILN_TOOL_ENV_ALLOW": "VAULT_TOKEN"})
    assert proc.returncode == 0, proc.stderr
    runs = dumped(shutil_dumps)
    assert runs and all(env.get("VAULT_TOKEN") == CREDENTIALS["VAULT_TOKEN"] for env in runs)
    assert all("AWS_SECRET_ACCESS_KEY" not in env for env in runs)


def test_assert_refused_helper_detects_an_executed_payload(tmp_path: Path) -> None:
    """The marker oracle works: a shell that runs the payload creates the marker."""
    marker = tmp_path / "MARKER"
    subprocess.run(["/bin/sh", "-c", f"touch {marker};: x"], check=True)
    proc = subprocess.CompletedProcess([], 1, "", "kiln: error: x: helm.releaseName: bad\n")
    with pytest.raises(AssertionError, match="executed"):
        assert_refused(proc, marker, ("helm.releaseName",))
    marker.unlink()
    assert_refused(proc, marker, ("helm.releaseName",))
    assert_clean_failure(proc, "helm.releaseName")


def test_every_all_payloads_face_exists() -> None:
    faces = {case.name: _faces(case) for case in CASES}
    assert all(face in faces[name] for name, face in ALL_PAYLOADS.items())


def test_jsonnet_helm_template_cannot_inject_into_helm(tmp_path: Path) -> None:
    """``helmTemplate(name, chart, conf)`` reaches helm through the Helm renderer's checks."""
    marker = tmp_path / "MARKER"
    app = tmp_path / "app"
    shell_chart(app / "c", marker)
    calls = {"name": "t('--post-renderer=/bin/sh', './c', {calledFrom: std.thisFile})",
             "namespace": "t('ok', './c', {calledFrom: std.thisFile, "
                          "namespace: '--post-renderer=/bin/sh'})"}
    for needle, call in calls.items():
        (app / "main.jsonnet").write_text(f"local t = std.native('helmTemplate');\n{call}\n")
        proc = run_kiln("render", str(app), "--cache-dir", str(tmp_path / "c"))
        assert_refused(proc, marker, ("helm.releaseName" if needle == "name" else "namespace",))


def test_helm_credentials_cannot_carry_other_secrets(tmp_path: Path) -> None:
    """An app names the repository its credentials go to, so ``helm.password`` must not be
    able to pull e.g. ``$VAULT_TOKEN`` out of kiln's environment — even once the operator
    allows credentials in kiln.yaml."""
    app = write_tree(tmp_path / "app", VALUE_CHART)
    token = "hvs.must-not-leave"
    (app / "kiln.yaml").write_text(yaml.safe_dump({"helm": {
        "repoURL": REPO_URL, "chart": "c", "version": "1.0.0", "username": "u",
        "password": "${VAULT_TOKEN}"}}))
    proc = run_kiln("render", str(app), "--cache-dir", str(tmp_path / "c"),
                    env={"VAULT_TOKEN": token,
                         "KILN_ALLOW_APP_SETTINGS": "helm.username,helm.password"})
    assert_clean_failure(proc, "helm.password", "KILN_HELM_")
    assert token not in proc.stderr


class _HeaderRecorder(http.server.BaseHTTPRequestHandler):
    """Answers 404 to everything and records the Authorization header of each request."""

    seen: list[str | None] = []

    def do_GET(self) -> None:
        self.seen.append(self.headers.get("Authorization"))
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str | None]]]:
    """A loopback HTTP "chart repository" that records the credentials it is sent."""
    seen: list[str | None] = []
    handler = type("Recorder", (_HeaderRecorder,), {"seen": seen})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/charts", seen
    finally:
        server.shutdown()
        server.server_close()


def test_operator_credentials_go_only_to_allowed_repositories(
        recorder: tuple[str, list[str | None]], tmp_path: Path) -> None:
    url, seen = recorder
    app = write_tree(tmp_path / "app", VALUE_CHART)
    (app / "kiln.yaml").write_text(yaml.safe_dump(
        {"helm": {"repoURL": url, "chart": "c", "version": "1.0.0"}}))
    creds = {"KILN_HELM_USERNAME": "deployer", "KILN_HELM_PASSWORD": "operator-secret"}
    expected = "Basic " + base64.b64encode(b"deployer:operator-secret").decode()
    # (URL list, trust allowlist, whether the credentials reach the repository)
    for cache, allowed, trusted, sent in (("c1", "https://charts.example.com", "", False),
                                          ("c2", url, "", True),
                                          ("c3", "", "helm.repoURL", True)):
        seen.clear()
        proc = run_kiln("render", str(app), "--cache-dir", str(tmp_path / cache),
                        env={**creds, "KILN_HELM_CREDENTIALS_URLS": allowed,
                             "KILN_ALLOW_APP_SETTINGS": trusted})
        assert_clean_failure(proc, "404")
        assert "operator-secret" not in proc.stderr
        assert seen, "helm never asked the repository"
        assert all((h == expected) is sent for h in seen), (allowed, seen)
    # Neither switch: the repository the app chose gets nothing, and the render is refused.
    seen.clear()
    proc = run_kiln("render", str(app), "--cache-dir", str(tmp_path / "c4"), env=creds)
    assert_clean_failure(proc, "helm.repoURL")
    assert not seen
