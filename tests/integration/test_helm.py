"""The Helm renderer against the real ``helm template``, option by option.

Every comparison runs the real helm directly with the equivalent flags on the same chart in the
same test and compares objects; nothing kiln produced is hard-coded. helm's output is read the
way Argo CD reads it, by helm's own ``fromYaml`` (``tests/integration/argo_yaml.py``), never by
kiln's parser.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.helm.servers import copy_chart, helm_env
from tests.helpers import assert_clean_failure, run_kiln, tool
from tests.integration.argo_yaml import argo_objects

pytestmark = pytest.mark.integration

HOST = "web.example.com"


@pytest.fixture
def helm() -> str:
    """The real helm binary."""
    return tool("helm")


@pytest.fixture
def chart(tmp_path: Path) -> Path:
    """A private copy of the test chart, as an app directory called ``webapp``."""
    return copy_chart(tmp_path / "webapp")


def write_app(app: Path, **settings: Any) -> None:
    """Write ``kiln.yaml`` into the app directory."""
    (app / "kiln.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))


def raw_helm(helm: str, home: Path, release: str, chart: Path, *flags: str) -> list[dict[str, Any]]:
    """Objects from the real ``helm template`` run directly (kiln's defaults spelled out)."""
    out = subprocess.run(
        [helm, "template", release, str(chart), *flags],
        check=True, capture_output=True, text=True, env=helm_env(home), cwd=chart,
    ).stdout
    return argo_objects(out)


def kiln(app: Path, cache: Path, *args: str, env: dict[str, str] | None = None
         ) -> list[dict[str, Any]]:
    """Objects from ``kiln render -o json``; the render must succeed."""
    proc = run_kiln("render", str(app), "-o", "json", "--cache-dir", str(cache), *args, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    data: list[dict[str, Any]] = json.loads(proc.stdout)
    return data


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return [o["kind"] for o in objects]


BASE = ["--namespace", "default", "--include-crds", "--set", f"hostname={HOST}"]
HOST_PARAM = {"name": "hostname", "value": HOST}


def test_default_render_matches_helm_template(helm: str, chart: Path, tmp_path: Path,
                                              cache_dir: Path) -> None:
    write_app(chart, helm={"parameters": [HOST_PARAM]})
    objects = kiln(chart, cache_dir)
    assert objects == raw_helm(helm, tmp_path / "h", "webapp", chart, *BASE)
    # CRDs and hooks are included, test hooks too, in Helm's order
    assert kinds(objects)[0] == "CustomResourceDefinition"
    assert {"Job", "Pod"} <= set(kinds(objects))
    text = run_kiln("render", str(chart), "--cache-dir", str(cache_dir)).stdout
    assert "# Source:" not in text and "kind: Deployment" in text


def test_release_name_and_namespace(helm: str, chart: Path, tmp_path: Path,
                                    cache_dir: Path) -> None:
    write_app(chart, namespace="shop", helm={"releaseName": "front", "parameters": [HOST_PARAM]})
    objects = kiln(chart, cache_dir)
    flags = ["--namespace", "shop", "--include-crds", "--set", f"hostname={HOST}"]
    assert objects == raw_helm(helm, tmp_path / "h", "front", chart, *flags)
    assert objects[1]["metadata"]["name"] == "front-webapp"


def test_release_name_defaults_to_app_name(helm: str, chart: Path, tmp_path: Path,
                                           cache_dir: Path) -> None:
    write_app(chart, name="storefront", helm={"parameters": [HOST_PARAM]})
    assert kiln(chart, cache_dir) == raw_helm(helm, tmp_path / "h", "storefront", chart, *BASE)


def test_value_files_in_order_with_globs(helm: str, chart: Path, tmp_path: Path,
                                         cache_dir: Path) -> None:
    envs = chart / "envs"
    envs.mkdir()
    (envs / "base.yaml").write_text(f"hostname: {HOST}\nreplicaCount: 3\n"
                                    "autoscaling: {enabled: false}\n")
    (envs / "b-extra.yaml").write_text("extraEnv: {FROM: b}\nreplicaCount: 4\n")
    (envs / "a-extra.yaml").write_text("extraEnv: {FROM: a, ONLY_A: 'yes'}\n")
    write_app(chart, helm={"valueFiles": ["envs/base.yaml", "envs/*-extra.yaml"]})
    objects = kiln(chart, cache_dir)
    flags = ["--namespace", "default", "--include-crds", "-f", "envs/base.yaml",
             "-f", "envs/a-extra.yaml", "-f", "envs/b-extra.yaml"]
    assert objects == raw_helm(helm, tmp_path / "h", "webapp", chart, *flags)
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["data"]["FROM"] == "b"  # lexical glob order: b-extra applied last


def test_ignore_missing_value_files(helm: str, chart: Path, tmp_path: Path,
                                    cache_dir: Path) -> None:
    (chart / "prod.yaml").write_text(f"hostname: {HOST}\n")
    write_app(chart, helm={"valueFiles": ["prod.yaml", "missing.yaml", "nothing-*.yaml"],
                           "ignoreMissingValueFiles": True})
    flags = ["--namespace", "default", "--include-crds", "-f", "prod.yaml"]
    assert kiln(chart, cache_dir) == raw_helm(helm, tmp_path / "h", "webapp", chart, *flags)


def test_values_string_and_precedence(helm: str, chart: Path, tmp_path: Path,
                                      cache_dir: Path) -> None:
    (chart / "file.yaml").write_text("hostname: from-file\nreplicaCount: 7\n")
    inline = f"hostname: {HOST}\nextraEnv: {{LEVEL: inline}}\n"
    write_app(chart, helm={"valueFiles": ["file.yaml"], "values": inline,
                           "parameters": [{"name": "extraEnv.LEVEL", "value": "param"}]})
    objects = kiln(chart, cache_dir)
    (tmp_path / "inline.yaml").write_text(inline)
    flags = ["--namespace", "default", "--include-crds", "-f", "file.yaml",
             "-f", str(tmp_path / "inline.yaml"), "--set", "extraEnv.LEVEL=param"]
    assert objects == raw_helm(helm, tmp_path / "h", "webapp", chart, *flags)
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["data"]["hostname"] == HOST and config["data"]["LEVEL"] == "param"


def test_values_object_replaces_values(helm: str, chart: Path, tmp_path: Path,
                                       cache_dir: Path) -> None:
    obj = {"hostname": HOST, "cache": {"enabled": True, "size": "large"}}
    write_app(chart, helm={"values": "hostname: ignored\nreplicaCount: 9\n",
                           "valuesObject": obj})
    objects = kiln(chart, cache_dir)
    (tmp_path / "obj.yaml").write_text(yaml.safe_dump(obj))
    flags = ["--namespace", "default", "--include-crds", "-f", str(tmp_path / "obj.yaml")]
    assert objects == raw_helm(helm, tmp_path / "h", "webapp", chart, *flags)
    # the subchart's condition turned it on
    sts = next(o for o in objects if o["kind"] == "StatefulSet")
    assert sts["metadata"]["labels"]["kiln.test/size"] == "large"


def test_parameters_force_string_and_commas(helm: str, chart: Path, tmp_path: Path,
                                            cache_dir: Path) -> None:
    params = [HOST_PARAM,
              {"name": "extraEnv.PORT", "value": "8080", "forceString": True},
              {"name": "extraEnv.HOSTS", "value": "a,b,c"},
              {"name": "replicaCount", "value": "5"},
              {"name": "autoscaling.enabled", "value": "false"}]
    write_app(chart, helm={"parameters": params})
    objects = kiln(chart, cache_dir)
    flags = [*BASE, "--set-string", "extraEnv.PORT=8080", "--set", "extraEnv.HOSTS=a\\,b\\,c",
             "--set", "replicaCount=5", "--set", "autoscaling.enabled=false"]
    assert objects == raw_helm(helm, tmp_path / "h", "webapp", chart, *flags)
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["data"]["HOSTS"] == "a,b,c"
    deploy = next(o for o in objects if o["kind"] == "Deployment")
    assert deploy["spec"]["replicas"] == 5


def test_file_parameters(helm: str, chart: Path, tmp_path: Path, cache_dir: Path) -> None:
    (chart / "motd.txt").write_text("welcome\nto the shop\n")
    write_app(chart, helm={"parameters": [HOST_PARAM],
                           "fileParameters": [{"name": "extraEnv.MOTD", "path": "motd.txt"}]})
    objects = kiln(chart, cache_dir)
    flags = [*BASE, "--set-file", "extraEnv.MOTD=motd.txt"]
    assert objects == raw_helm(helm, tmp_path / "h", "webapp", chart, *flags)
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["data"]["MOTD"] == "welcome\nto the shop\n"


def test_kube_version_and_api_versions(helm: str, chart: Path, tmp_path: Path,
                                       cache_dir: Path) -> None:
    write_app(chart, kubeVersion="1.29.4", apiVersions=["networking.k8s.io/v1/Ingress"],
              helm={"parameters": [HOST_PARAM]})
    objects = kiln(chart, cache_dir)
    flags = [*BASE, "--kube-version", "1.29.4", "--api-versions", "networking.k8s.io/v1/Ingress"]
    assert objects == raw_helm(helm, tmp_path / "h", "webapp", chart, *flags)
    ingress = next(o for o in objects if o["kind"] == "Ingress")
    assert ingress["apiVersion"] == "networking.k8s.io/v1"  # .Capabilities.APIVersions.Has
    hpa = next(o for o in objects if o["kind"] == "HorizontalPodAutoscaler")
    assert hpa["metadata"]["annotations"]["kiln.test/kube-version"] == "v1.29.4"
    # without the extra API version the chart falls back, as helm does
    write_app(chart, helm={"parameters": [HOST_PARAM]})
    plain = kiln(chart, cache_dir)
    assert next(o for o in plain if o["kind"] == "Ingress")["apiVersion"].endswith("v1beta1")


@pytest.mark.parametrize(("option", "flag"), [
    ("skipCrds", "--skip-crds"), ("skipTests", "--skip-tests"),
    ("passCredentials", "--pass-credentials"),
])
def test_boolean_flags(helm: str, chart: Path, tmp_path: Path, cache_dir: Path,
                       option: str, flag: str) -> None:
    write_app(chart, helm={"parameters": [HOST_PARAM], option: True})
    # passCredentials is guarded (kiln.core.trust): the operator allows it from kiln.yaml.
    objects = kiln(chart, cache_dir, env={"KILN_ALLOW_APP_SETTINGS": "helm.passCredentials"})
    flags = ["--namespace", "default", "--set", f"hostname={HOST}", flag]
    if option != "skipCrds":
        flags.append("--include-crds")
    assert objects == raw_helm(helm, tmp_path / "h", "webapp", chart, *flags)
    if option == "skipCrds":
        assert "CustomResourceDefinition" not in kinds(objects)
    if option == "skipTests":
        assert "Pod" not in kinds(objects)


def test_skip_schema_validation(helm: str, chart: Path, tmp_path: Path, cache_dir: Path) -> None:
    params = [HOST_PARAM, {"name": "image.pullPolicy", "value": "Sometimes"}]
    write_app(chart, helm={"parameters": params})
    proc = run_kiln("render", str(chart), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "chart", "schema")
    write_app(chart, helm={"parameters": params, "skipSchemaValidation": True})
    objects = kiln(chart, cache_dir)
    flags = [*BASE, "--set", "image.pullPolicy=Sometimes", "--skip-schema-validation"]
    assert objects == raw_helm(helm, tmp_path / "h", "webapp", chart, *flags)


def test_hcl_value_file(helm: str, chart: Path, tmp_path: Path, cache_dir: Path) -> None:
    (chart / "outputs.tfvars").write_text(
        f'hostname = "{HOST}"\nreplicaCount = 6\nautoscaling = {{\n  enabled = false\n}}\n'
        'extraEnv = {\n  REGION = "eu-west-1"\n}\n')
    write_app(chart, helm={"valueFiles": ["outputs.tfvars"]})
    objects = kiln(chart, cache_dir)
    (tmp_path / "same.yaml").write_text(
        f"hostname: {HOST}\nreplicaCount: 6\nautoscaling: {{enabled: false}}\n"
        "extraEnv: {REGION: eu-west-1}\n")
    flags = ["--namespace", "default", "--include-crds", "-f", str(tmp_path / "same.yaml")]
    assert objects == raw_helm(helm, tmp_path / "h", "webapp", chart, *flags)


def test_cli_option_flags(helm: str, chart: Path, tmp_path: Path, cache_dir: Path) -> None:
    objects = kiln(chart, cache_dir, "-O", f"helm.parameters=[{{name: hostname, value: {HOST}}}]",
                   "-O", "helm.releaseName=cli", "-n", "ops")
    flags = ["--namespace", "ops", "--include-crds", "--set", f"hostname={HOST}"]
    assert objects == raw_helm(helm, tmp_path / "h", "cli", chart, *flags)


def counting_helm(tmp_path: Path, helm: str) -> tuple[Path, Path]:
    """A KILN_HELM wrapper that logs each invocation, then runs the real helm."""
    log = tmp_path / "helm-calls.log"
    wrapper = tmp_path / "helm-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> {log}\nexec {helm} "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper, log


def calls(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


def test_cache_hit_spawns_no_helm(helm: str, chart: Path, tmp_path: Path,
                                  cache_dir: Path) -> None:
    wrapper, log = counting_helm(tmp_path, helm)
    env = {"KILN_HELM": str(wrapper)}
    write_app(chart, helm={"parameters": [HOST_PARAM]})
    first = kiln(chart, cache_dir, env=env)
    assert calls(log) == ["version", "template"]
    assert kiln(chart, cache_dir, env=env) == first
    assert calls(log) == ["version", "template"]  # the hit started no process at all
    # a file .helmignore excludes does not change the key; a template does
    (chart / "notes-draft.txt").write_text("scratch")
    kiln(chart, cache_dir, env=env)
    assert calls(log) == ["version", "template"]
    svc = chart / "templates" / "service.yaml"
    svc.write_text(svc.read_text().replace("name: http", "name: web"))
    changed = kiln(chart, cache_dir, env=env)
    assert calls(log) == ["version", "template", "template"]
    assert changed != first


def test_value_file_change_is_a_miss(chart: Path, cache_dir: Path) -> None:
    (chart / "v.yaml").write_text(f"hostname: {HOST}\n")
    write_app(chart, helm={"valueFiles": ["v.yaml"]})
    first = kiln(chart, cache_dir)
    (chart / "v.yaml").write_text("hostname: other.example.com\n")
    assert kiln(chart, cache_dir) != first


def test_helm_homes_stay_in_kiln_cache(chart: Path, tmp_path: Path, cache_dir: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    write_app(chart, helm={"parameters": [HOST_PARAM]})
    env = {"HOME": str(home)}
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME", "XDG_CONFIG_HOME",
                "XDG_DATA_HOME"):
        env[var] = ""
    kiln(chart, cache_dir, env=env)
    assert list(home.iterdir()) == []
    assert (cache_dir / "tools" / "helm" / "home" / "cache").is_dir()


# -- bad input ------------------------------------------------------------------------------


def test_required_failure_is_one_line(chart: Path, cache_dir: Path) -> None:
    proc = run_kiln("render", str(chart), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "chart", "webapp", "hostname is required")


def test_template_syntax_error(chart: Path, cache_dir: Path) -> None:
    (chart / "templates" / "broken.yaml").write_text("kind: {{ .Values.x \n")
    write_app(chart, helm={"parameters": [HOST_PARAM]})
    proc = run_kiln("render", str(chart), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "chart", "broken.yaml")


def test_missing_chart(tmp_path: Path, cache_dir: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    write_app(app, helm={"chart": "charts/nope"})
    proc = run_kiln("render", str(app), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "charts/nope", "chart directory not found")


def test_missing_value_file(chart: Path, cache_dir: Path) -> None:
    write_app(chart, helm={"valueFiles": ["prod.yaml"]})
    proc = run_kiln("render", str(chart), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "prod.yaml", "value file not found")


def test_value_file_outside_root(chart: Path, tmp_path: Path, cache_dir: Path) -> None:
    (tmp_path / "secret.yaml").write_text("hostname: x\n")
    write_app(chart, helm={"valueFiles": ["../secret.yaml"]})
    proc = run_kiln("render", str(chart), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "secret.yaml", "outside the source root")
    link = chart / "linked.yaml"
    link.symlink_to(tmp_path / "secret.yaml")
    write_app(chart, helm={"valueFiles": ["linked.yaml"]})
    proc = run_kiln("render", str(chart), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "linked.yaml", "outside the source root")


def test_malformed_chart_yaml(chart: Path, cache_dir: Path) -> None:
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: [unclosed\n")
    proc = run_kiln("render", str(chart), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "Chart.yaml", "malformed")


def test_malformed_hcl_value_file(chart: Path, cache_dir: Path) -> None:
    (chart / "bad.tfvars").write_text("hostname = = \n")
    write_app(chart, helm={"valueFiles": ["bad.tfvars"]})
    proc = run_kiln("render", str(chart), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "bad.tfvars", "malformed HCL")


def test_chart_over_size_cap(chart: Path, cache_dir: Path) -> None:
    write_app(chart, helm={"parameters": [HOST_PARAM], "maxChartBytes": 1000})
    proc = run_kiln("render", str(chart), "--cache-dir", str(cache_dir))
    assert_clean_failure(proc, "maxChartBytes")


def test_timeout_kills_process_group(helm: str, chart: Path, tmp_path: Path,
                                     cache_dir: Path) -> None:
    """helm is wrapped by a script that starts a child and hangs: both must be killed."""
    pidfile = tmp_path / "child.pid"
    wrapper = tmp_path / "slow-helm"
    wrapper.write_text(
        f'#!/bin/sh\nif [ "$1" = version ]; then exec {helm} "$@"; fi\n'
        f"sleep 300 &\necho $! > {pidfile}\nwait\n")
    wrapper.chmod(0o755)
    write_app(chart, helm={"parameters": [HOST_PARAM], "timeout": 1})
    started = time.monotonic()
    proc = run_kiln("render", str(chart), "--cache-dir", str(cache_dir),
                    env={"KILN_HELM": str(wrapper)})
    assert time.monotonic() - started < 30
    assert_clean_failure(proc, "chart", "timed out after 1s")
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat_file = Path(f"/proc/{pid}/stat")
    return not (stat_file.exists() and stat_file.read_text().split()[2] == "Z")


def test_release_name_from_directory_is_in_the_key(helm: str, chart: Path, tmp_path: Path,
                                                   cache_dir: Path) -> None:
    """Two identical charts in differently named directories must not share a cache entry."""
    write_app(chart, helm={"parameters": [HOST_PARAM]})
    twin = tmp_path / "twin"
    import shutil

    shutil.copytree(chart, twin)
    kiln(chart, cache_dir)
    assert kiln(twin, cache_dir) == raw_helm(helm, tmp_path / "h", "twin", twin, *BASE)


def test_chart_in_a_subdirectory(helm: str, tmp_path: Path, cache_dir: Path) -> None:
    """``helm.chart`` names a local chart directory: detected by the option alone."""
    app = tmp_path / "app"
    copy_chart(app / "chart")
    write_app(app, helm={"chart": "chart", "parameters": [HOST_PARAM]})
    objects = kiln(app, cache_dir)
    assert objects == raw_helm(helm, tmp_path / "h", "app", app / "chart", *BASE)
