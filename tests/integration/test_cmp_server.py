"""``kiln cmp serve`` end to end: the real server as a subprocess on a unix socket, a client
that streams real git repositories exactly as Argo CD's repo-server does (tests/cmp_client.py),
real helm, kustomize, go-jsonnet, sops and OpenBao.

The oracle for generation, discovery and parameters is the CLI run in the same app directory
with the same environment (the issue demands the very same output: one implementation behind
both faces), plus values the test chose, which must appear in the output.
"""

from __future__ import annotations

import functools
import gzip
import io
import json
import os
import tarfile
import textwrap
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import json_format

from kiln.cmp.proto import kiln_repository_pb2, plugin_pb2
from tests.cmp_client import (
    Entry,
    file_requests,
    metadata_request,
    prepare,
    sha256_hex,
    tgz_of_entries,
)
from tests.integration.cmp_serve import (
    SERVING,
    Server,
    argo_env,
    cli,
    cli_objects,
    cli_yaml_objects,
    commit,
    git_repo,
    one_line,
    response_objects,
    rpc_error,
    short_dir,
    start_server,
)
from tests.integration.openbao import OpenBao, openbao  # noqa: F401  (fixture)
from tests.integration.sops_helpers import AgeKey, new_age_key, sops_encrypt, sops_env
from tests.secrets_scan import assert_no_plaintext

pytestmark = pytest.mark.integration

MAX_STREAM = 8 * 1024 * 1024
MAX_FILES = 3000
MAX_TREE = 32 * 1024 * 1024
ERROR_CODES = (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INVALID_ARGUMENT)

MARK = uuid.uuid4().hex[:10]
"""Chosen by the test and written into the apps: must come out of the server."""

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "values.yaml": f"replicas: 1\nmarker: helm-{MARK}\nimage:\n  tag: latest\n",
    "values-prod.yaml": "replicas: 3\n",
    "templates/deploy.yaml": """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{ .Release.Name }}
          namespace: {{ .Release.Namespace }}
          annotations:
            kube: {{ .Capabilities.KubeVersion.Version | quote }}
        spec:
          replicas: {{ .Values.replicas }}
          template:
            spec:
              containers:
                - name: web
                  image: "nginx:{{ .Values.image.tag }}"
        """,
    "templates/cm.yaml": """\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: {{ .Release.Name }}-marker
        data:
          marker: {{ .Values.marker | quote }}
        """,
}
HELM_PARAMS = (
    {"name": "helm-values-files", "array": ["values-prod.yaml"]},
    {"name": "helm-parameters", "map": {"image.tag": "$ARGOCD_APP_REVISION_SHORT"}},
)

KUSTOMIZE = {
    "kustomization.yaml": "resources: [deploy.yaml]\n",
    "deploy.yaml": """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          template:
            spec:
              containers:
                - name: web
                  image: nginx:latest
        """,
}
KUSTOMIZE_PARAMS = (
    {"name": "kustomize-images", "array": [f"nginx=nginx:k-{MARK}"]},
    {"name": "kustomize-name-prefix", "string": "prod-"},
)

JSONNET = {
    "main.jsonnet": """\
        function(replicas='1') [
          {
            apiVersion: 'v1',
            kind: 'ConfigMap',
            metadata: { name: 'jsonnet-' + std.extVar('tag') },
            data: { replicas: replicas, tag: std.extVar('tag') },
          },
        ]
        """,
}
JSONNET_PARAMS = (
    {"name": "jsonnet-tlas", "map": {"replicas": "3"}},
    {"name": "jsonnet-ext-vars", "map": {"tag": "$ARGOCD_ENV_TAG"}},
)

DIRECTORY = {
    "deploy.yaml": """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: dir-web
        spec:
          replicas: 2
        """,
    "cm.yaml": f"""\
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: dir-marker
        data:
          marker: dir-{MARK}
        """,
}

VAULT_PATH = f"cmpserve{MARK}"
VAULT_APP = {
    "secret.yaml": f"""\
        apiVersion: v1
        kind: Secret
        metadata:
          name: db
        type: Opaque
        stringData:
          password: <path:secret/data/{VAULT_PATH}#password>
        """,
    "deploy.yaml": DIRECTORY["deploy.yaml"],
}

HELM_VAULT = {
    **{k: v for k, v in CHART.items() if k != "values.yaml"},
    "values.yaml": CHART["values.yaml"]
    + f"dbPassword: '<path:secret/data/{VAULT_PATH}#password>'\n",
    "templates/secret.yaml": """\
        apiVersion: v1
        kind: Secret
        metadata:
          name: {{ .Release.Name }}-db
        stringData:
          password: {{ .Values.dbPassword | quote }}
        """,
}

SOPS_SECRET = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: sops-db
type: Opaque
stringData:
  password: sops-{MARK}-plain
"""


@dataclass
class Fixture:
    """The module's repository, server and secrets."""

    repo: Path
    server: Server
    vault_value: str
    bao: OpenBao
    age: AgeKey
    work: Path

    def cli_env(self, request_env: dict[str, str], cache: str = "cli-cache") -> dict[str, str]:
        """The CLI oracle's environment: the server's own plus the request's, another cache."""
        return {**self.server.env, "KILN_CACHE_DIR": str(self.work / cache), **request_env}


def _vault_plugin_env(bao: OpenBao) -> dict[str, str]:
    return {"AVP_TYPE": "vault", "AVP_AUTH_TYPE": "token", "VAULT_ADDR": bao.addr}


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory, openbao: OpenBao) -> Iterator[Fixture]:  # noqa: F811
    work = tmp_path_factory.mktemp("cmpserve")
    age = new_age_key()
    enc = sops_encrypt(SOPS_SECRET.encode(), "yaml", work, "--age", age.recipient,
                       "--encrypted-regex", "^(data|stringData)$",
                       env=sops_env(age)).decode()
    assert f"sops-{MARK}-plain" not in enc
    vault_value = "pw-" + uuid.uuid4().hex
    openbao.kv2_put("secret", VAULT_PATH, {"password": vault_value})
    files: dict[str, str] = {"README.md": "# gitops\n", "docs/notes.md": "notes\n"}
    for prefix, app in (("apps/helm-web/", CHART), ("apps/kustomize-web/", KUSTOMIZE),
                        ("apps/jsonnet-web/", JSONNET), ("apps/dir-web/", DIRECTORY),
                        ("apps/vault-web/", VAULT_APP), ("apps/helm-vault/", HELM_VAULT),
                        ("apps/sops-web/", {"deploy.yaml": DIRECTORY["deploy.yaml"]}),
                        ("apps/kustomize-sops/", {
                            "kustomization.yaml": "resources: [deploy.yaml, secret.enc.yaml]\n",
                            "deploy.yaml": KUSTOMIZE["deploy.yaml"]})):
        files.update({prefix + k: v for k, v in app.items()})
    repo = git_repo(work / "repo", files)
    (repo / "apps/sops-web/secret.enc.yaml").write_text(enc)
    (repo / "apps/kustomize-sops/secret.enc.yaml").write_text(enc)
    commit(repo, {}, "sops secret")
    with short_dir() as sockets:
        server = start_server(work / "server", socket=sockets / "kiln.sock", extra_env={
            "VAULT_TOKEN": openbao.token,
            "KILN_ALLOW_APP_SETTINGS": "VAULT_ADDR,AVP_AUTH_TYPE",
            "SOPS_AGE_KEY": age.identity,
            "KILN_CMP_MAX_STREAM_BYTES": str(MAX_STREAM),
            "KILN_CMP_MAX_FILES": str(MAX_FILES),
            "KILN_CMP_MAX_TREE_BYTES": str(MAX_TREE),
        })
        try:
            yield Fixture(repo, server, vault_value, openbao, age, work)
        finally:
            server.close()


# -- generation equals the CLI -------------------------------------------------------------------

@dataclass(frozen=True)
class Case:
    id: str
    path: str
    params: tuple[dict[str, Any], ...] = ()
    plugin_env: tuple[tuple[str, str], ...] = ()
    vault: bool = False
    must_contain: tuple[str, ...] = ()


CASES = [
    Case("helm", "apps/helm-web", HELM_PARAMS,
         must_contain=(f"helm-{MARK}", "nginx:8d2f7c1", '"replicas": 3')),
    Case("kustomize", "apps/kustomize-web", KUSTOMIZE_PARAMS,
         must_contain=(f"nginx:k-{MARK}", '"prod-web"')),
    Case("jsonnet", "apps/jsonnet-web", JSONNET_PARAMS, (("TAG", f"j{MARK}"),),
         must_contain=(f'"jsonnet-j{MARK}"', '"replicas": "3"')),
    Case("directory", "apps/dir-web", must_contain=(f"dir-{MARK}",)),
    Case("vault", "apps/vault-web", vault=True, must_contain=("<vault>",)),
    Case("sops", "apps/sops-web", must_contain=(f"sops-{MARK}-plain",)),
    Case("helm-vault", "apps/helm-vault", HELM_PARAMS, vault=True,
         must_contain=("<vault>", f"helm-{MARK}")),
    Case("kustomize-sops", "apps/kustomize-sops", must_contain=(f"sops-{MARK}-plain",)),
]


def _request_env(fx: Fixture, case: Case) -> dict[str, str]:
    plugin_env = dict(case.plugin_env)
    if case.vault:
        plugin_env.update(_vault_plugin_env(fx.bao))
    return argo_env(app_name=case.path.rsplit("/", 1)[1], source_path=case.path,
                    params=case.params, plugin_env=plugin_env)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_generate_manifest_equals_the_cli(fx: Fixture, case: Case) -> None:
    env = _request_env(fx, case)
    response = fx.server.client().generate_manifest(fx.repo, case.path, env)
    got = response_objects(response.manifests)
    want = cli_objects(fx.repo / case.path, fx.cli_env(env))
    assert got, "the server rendered nothing"
    assert got == want
    text = json.dumps(got)
    for needle in case.must_contain:
        assert needle.replace("<vault>", fx.vault_value) in text, needle
    # The YAML the plugin.yaml command prints holds the same objects.
    assert got == cli_yaml_objects(fx.repo / case.path, fx.cli_env(env, "cli-cache-yaml"))
    # Rule 1: a resolved secret reaches neither the server's log nor its cache.
    secrets = [fx.vault_value] if case.vault else \
        [f"sops-{MARK}-plain"] if "sops" in case.id else []
    if secrets:
        for value in secrets:
            assert value not in fx.server.log_text()
        assert assert_no_plaintext([Path(fx.server.env["KILN_CACHE_DIR"])], secrets) > 0


def test_repeat_and_excluded_git_and_large_chunks_give_the_same_objects(fx: Fixture) -> None:
    """The same app streamed with `.git/*` excluded and 64 KiB chunks (the recommended
    repo-server settings), and again after a commit elsewhere: the same objects."""
    case = CASES[0]
    env = _request_env(fx, case)
    client = fx.server.client()
    first = response_objects(client.generate_manifest(fx.repo, case.path, env).manifests)
    lean = client.generate_manifest(fx.repo, case.path, env, exclude=[".git/*"],
                                    chunk_size=65536)
    assert response_objects(lean.manifests) == first
    commit(fx.repo, {"docs/notes.md": f"notes {uuid.uuid4().hex}\n"}, "docs only")
    again = client.generate_manifest(fx.repo, case.path, env)
    assert response_objects(again.manifests) == first


def test_app_at_the_repository_root(tmp_path: Path, fx: Fixture) -> None:
    """appRelPath '.': the app is the whole checkout."""
    repo = git_repo(tmp_path / "rootapp", DIRECTORY)
    env = argo_env(app_name="rootapp", source_path=".")
    stream = prepare(repo, repo, env)
    assert stream.metadata.metadata.appRelPath == "."
    response = fx.server.client().send("GenerateManifest", stream)
    assert response_objects(response.manifests) == cli_objects(repo, fx.cli_env(env))


def test_render_error_is_one_line_naming_the_parameter(fx: Fixture) -> None:
    params = ({"name": "helm-valuefiles", "array": ["x.yaml"]},)
    env = argo_env(app_name="dir-web", source_path="apps/dir-web", params=params)
    client = fx.server.client()
    exc = rpc_error(lambda: client.generate_manifest(fx.repo, "apps/dir-web", env))
    assert exc.code() in ERROR_CODES, exc
    details = one_line(exc.details())
    assert "helm-valuefiles" in details
    proc = cli(["generate", "."], fx.repo / "apps/dir-web", fx.cli_env(env))
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.strip().removeprefix("kiln: error: ") in details
    # The server serves on.
    ok = client.generate_manifest(fx.repo, "apps/dir-web",
                                  argo_env(app_name="dir-web", source_path="apps/dir-web"))
    assert response_objects(ok.manifests)


def test_operator_env_never_reaches_the_render_from_the_request(fx: Fixture) -> None:
    """An app naming a credential-routing setting the operator did not allow fails cleanly,
    and the request's env does not leak into the next request."""
    bad = argo_env(app_name="vault-web", source_path="apps/vault-web",
                   plugin_env={**_vault_plugin_env(fx.bao), "AVP_K8S_ROLE": "x",
                               "AVP_AUTH_TYPE": "k8s"})
    client = fx.server.client()
    exc = rpc_error(lambda: client.generate_manifest(fx.repo, "apps/vault-web", bad))
    assert exc.code() in ERROR_CODES
    assert "AVP_K8S_ROLE" in one_line(exc.details())
    good = _request_env(fx, CASES[4])
    ok = client.generate_manifest(fx.repo, "apps/vault-web", good)
    assert fx.vault_value in json.dumps(response_objects(ok.manifests))


def test_a_request_cannot_set_the_servers_own_variables(fx: Fixture) -> None:
    """metadata.env naming an operator variable (the allowlist itself, VAULT_ADDR, PATH) is
    dropped: the credential-routing setting is still refused, and nothing reaches the render."""
    bad = argo_env(app_name="vault-web", source_path="apps/vault-web",
                   plugin_env={**_vault_plugin_env(fx.bao), "AVP_K8S_ROLE": "x",
                               "AVP_AUTH_TYPE": "k8s"})
    bad.update({"KILN_ALLOW_APP_SETTINGS": "AVP_K8S_ROLE,AVP_AUTH_TYPE,ARGOCD_ENV_AVP_K8S_ROLE,"
                "ARGOCD_ENV_AVP_AUTH_TYPE", "PATH": "/nonexistent", "KILN_HELM": "/nonexistent"})
    client = fx.server.client()
    exc = rpc_error(lambda: client.generate_manifest(fx.repo, "apps/vault-web", bad))
    assert exc.code() in ERROR_CODES
    assert "AVP_K8S_ROLE" in one_line(exc.details())
    good = _request_env(fx, CASES[4])
    good.update({"PATH": "/nonexistent", "KILN_HELM": "/nonexistent"})
    ok = client.generate_manifest(fx.repo, "apps/vault-web", good)
    assert fx.vault_value in json.dumps(response_objects(ok.manifests))


# -- discovery, parameters, configuration, health ------------------------------------------------

@pytest.mark.parametrize("path", ["apps/helm-web", "apps/kustomize-web", "apps/jsonnet-web",
                                  "apps/dir-web", "docs"])
def test_match_repository_equals_kiln_cmp_discover(fx: Fixture, path: str) -> None:
    env = argo_env(app_name=path.rsplit("/", 1)[-1], source_path=path)
    response = fx.server.client().match_repository(fx.repo, path, env)
    proc = cli(["cmp", "discover"], fx.repo / path, fx.cli_env(env))
    assert response.isDiscoveryEnabled is True
    assert response.isSupported is (proc.returncode == 0)
    assert response.isSupported is (path != "docs")  # docs holds no manifest


def _plugin_config(fx: Fixture) -> dict[str, Any]:
    proc = cli(["cmp", "plugin-yaml"], fx.work, fx.server.env)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = yaml.safe_load(proc.stdout)
    return data


@pytest.mark.parametrize("path,params", [("apps/helm-web", HELM_PARAMS),
                                         ("apps/kustomize-web", KUSTOMIZE_PARAMS),
                                         ("apps/jsonnet-web", JSONNET_PARAMS),
                                         ("apps/dir-web", ())],
                         ids=["helm", "kustomize", "jsonnet", "directory"])
def test_parameters_announcement_equals_kiln_cmp_parameters(
        fx: Fixture, path: str, params: tuple[dict[str, Any], ...]) -> None:
    """Argo CD's cmp-server answers the dynamic command's list, then plugin.yaml's static
    list (so static wins); the dynamic part is what `kiln cmp parameters` prints."""
    env = argo_env(app_name=path.rsplit("/", 1)[1], source_path=path, params=params)
    response = fx.server.client().get_parameters_announcement(fx.repo, path, env)
    proc = cli(["cmp", "parameters"], fx.repo / path, fx.cli_env(env))
    assert proc.returncode == 0, proc.stderr

    def parse(item: dict[str, Any]) -> kiln_repository_pb2.ParameterAnnouncement:
        return json_format.ParseDict(item, kiln_repository_pb2.ParameterAnnouncement())

    dynamic = [parse(item) for item in json.loads(proc.stdout)]
    if path == "apps/helm-web":
        assert dynamic, "kiln cmp parameters announced nothing: the case is broken"
    static = [parse(item) for item in _plugin_config(fx)["spec"]["parameters"]["static"]]
    got = list(response.parameterAnnouncements)
    assert got[:len(dynamic)] == dynamic
    assert got[len(dynamic):] == static


def test_check_plugin_configuration_follows_plugin_yaml(fx: Fixture) -> None:
    spec = _plugin_config(fx)["spec"]
    response = fx.server.client().check_plugin_configuration()
    assert response.isDiscoveryConfigured is ("discover" in spec) is True
    assert response.provideGitCreds is bool(spec.get("provideGitCreds")) is False


def test_health_service(fx: Fixture) -> None:
    client = fx.server.client()
    assert client.health("") == SERVING
    assert client.health("plugin.ConfigManagementPluginService") == SERVING
    exc = rpc_error(lambda: client.health("no.such.Service"))
    assert exc.code() == grpc.StatusCode.NOT_FOUND


# -- malformed streams ---------------------------------------------------------------------------

VALID_CM = textwrap.dedent(DIRECTORY["cm.yaml"]).encode()
"""A real manifest: a stream carrying it fails only for what the test made wrong."""


def _valid_tgz() -> bytes:
    return tgz_of_entries([Entry("apps/x/cm.yaml", VALID_CM)])


def _meta(data: bytes, rel: str = "apps/x", checksum: str | None = None
          ) -> plugin_pb2.AppStreamRequest:
    return metadata_request(rel.rsplit("/", 1)[-1], rel, checksum or sha256_hex(data),
                            len(data), argo_env(app_name="x", source_path=rel))


def _stream(data: bytes, rel: str = "apps/x", chunk: int = 1024
            ) -> list[plugin_pb2.AppStreamRequest]:
    return [_meta(data, rel), *file_requests(data, chunk)]


class _Zeros(io.RawIOBase):
    """A readable stream of ``size`` zero bytes (never held in memory at once)."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = bytes(n)
        self.left -= n
        return n


@functools.cache
def _bomb() -> bytes:
    """A gzip'd tar expanding about 1000:1: 64 MiB of zeros in a ~64 KiB stream."""
    size = 64 * 1024 * 1024
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w") as tar:
        info = tarfile.TarInfo("apps/x/zeros.yaml")
        info.size = size
        tar.addfile(info, io.BufferedReader(_Zeros(size), 1 << 20))
    data = out.getvalue()
    assert len(data) * 500 < size
    return data


@functools.cache
def _many_files() -> bytes:
    return tgz_of_entries([Entry(f"apps/x/f{i}.txt", b"") for i in range(MAX_FILES + 100)])


@functools.cache
def _oversize() -> bytes:
    return tgz_of_entries([Entry("apps/x/big.bin", os.urandom(MAX_STREAM + (1 << 20)))])


MALFORMED: dict[str, Any] = {
    "no-metadata": lambda: list(file_requests(_valid_tgz())),
    "metadata-twice": lambda: [_meta(_valid_tgz()), *_stream(_valid_tgz())],
    "metadata-after-chunks": lambda: [*_stream(_valid_tgz()), _meta(_valid_tgz())],
    "wrong-checksum": lambda: [_meta(_valid_tgz(), checksum=sha256_hex(b"other")),
                               *file_requests(_valid_tgz())],
    "truncated-gzip": lambda: _stream(_valid_tgz()[: len(_valid_tgz()) // 2]),
    "not-gzip": lambda: _stream(b"this is not a gzip stream at all"),
    "tar-slip": lambda: _stream(tgz_of_entries([
        Entry("apps/x/cm.yaml", VALID_CM), Entry("apps/x/../../../evil.yaml", VALID_CM)])),
    "absolute-name": lambda: _stream(tgz_of_entries([
        Entry("apps/x/cm.yaml", VALID_CM), Entry("/tmp/kiln-evil.yaml", VALID_CM)])),
    "escaping-symlink": lambda: _stream(tgz_of_entries([
        Entry("apps/x/cm.yaml", VALID_CM),
        Entry("apps/x/link", type=b"2", linkname="../../../../etc")])),
    "absolute-symlink": lambda: _stream(tgz_of_entries([
        Entry("apps/x/cm.yaml", VALID_CM),
        Entry("apps/x/passwd.yaml", type=b"2", linkname="/etc/passwd")])),
    "fifo": lambda: _stream(tgz_of_entries([
        Entry("apps/x/cm.yaml", VALID_CM), Entry("apps/x/pipe", type=b"6")])),
    "device": lambda: _stream(tgz_of_entries([
        Entry("apps/x/cm.yaml", VALID_CM), Entry("apps/x/null", type=b"3")])),
    "app-path-outside": lambda: _stream(_valid_tgz(), rel="../outside"),
    "oversize": lambda: _stream(_oversize(), chunk=65536),
    "decompression-bomb": lambda: _stream(_bomb(), chunk=65536),
    "too-many-files": lambda: _stream(_many_files(), chunk=65536),
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_malformed_stream_is_one_line_error_and_the_server_serves_on(fx: Fixture,
                                                                      kind: str) -> None:
    client = fx.server.client()
    messages = MALFORMED[kind]()
    exc = rpc_error(lambda: client.call_raw("GenerateManifest", messages, timeout=120))
    assert exc.code() in ERROR_CODES, (exc.code(), exc.details())
    one_line(exc.details())
    assert not Path("/tmp/kiln-evil.yaml").exists()
    # The same stream is refused by the other streaming RPCs too.
    exc = rpc_error(lambda: client.call_raw("MatchRepository", MALFORMED[kind](), timeout=120))
    assert exc.code() in ERROR_CODES, (exc.code(), exc.details())
    one_line(exc.details())
    ok = client.generate_manifest(fx.repo, "apps/dir-web",
                                  argo_env(app_name="dir-web", source_path="apps/dir-web"))
    assert f"dir-{MARK}" in json.dumps(response_objects(ok.manifests))
    assert fx.server.proc.poll() is None


def test_relative_symlink_inside_the_tree_is_followed(fx: Fixture, tmp_path: Path) -> None:
    """A symlink that stays in the tree is allowed (Argo CD makes it relative)."""
    repo = git_repo(tmp_path / "links", {"shared/cm.yaml": DIRECTORY["cm.yaml"],
                                         "apps/x/deploy.yaml": DIRECTORY["deploy.yaml"]})
    (repo / "apps/x/cm.yaml").symlink_to("../../shared/cm.yaml")
    commit(repo, {}, "link")
    env = argo_env(app_name="x", source_path="apps/x")
    got = response_objects(fx.server.client().generate_manifest(repo, "apps/x", env).manifests)
    assert got == cli_objects(repo / "apps/x", fx.cli_env(env))
    assert f"dir-{MARK}" in json.dumps(got)


# -- concurrency and cancellation ----------------------------------------------------------------

def test_fifty_concurrent_requests_over_mixed_apps(fx: Fixture) -> None:
    """Each response carries its own request's marker: nothing mixed, nothing lost."""
    dir_env = argo_env(app_name="dir-web", source_path="apps/dir-web")
    dir_objects = cli_objects(fx.repo / "apps/dir-web", fx.cli_env(dir_env))
    requests: list[tuple[str, dict[str, str], Any]] = []
    for i in range(50):
        kind = i % 3
        if kind == 0:
            name = f"h{i}-{MARK}"
            env = argo_env(app_name=name, source_path="apps/helm-web", params=HELM_PARAMS)

            def check(objs: list[dict[str, Any]], name: str = name) -> None:
                names = {(o["kind"], o["metadata"]["name"]) for o in objs}
                assert names == {("Deployment", name), ("ConfigMap", f"{name}-marker")}
            requests.append(("apps/helm-web", env, check))
        elif kind == 1:
            tag = f"t{i}"
            env = argo_env(app_name="jsonnet-web", source_path="apps/jsonnet-web",
                           params=JSONNET_PARAMS, plugin_env={"TAG": tag})

            def check(objs: list[dict[str, Any]], tag: str = tag) -> None:
                assert [o["metadata"]["name"] for o in objs] == [f"jsonnet-{tag}"]
                assert objs[0]["data"]["tag"] == tag
            requests.append(("apps/jsonnet-web", env, check))
        else:
            def check(objs: list[dict[str, Any]]) -> None:
                assert objs == dir_objects
            requests.append(("apps/dir-web", dir_env, check))
    streams = [prepare(fx.repo, path, env) for path, env, _ in requests]
    client = fx.server.client(timeout=240)

    def call(i: int) -> list[dict[str, Any]]:
        return response_objects(client.send("GenerateManifest", streams[i]).manifests)

    with ThreadPoolExecutor(max_workers=25) as pool:
        results = list(pool.map(call, range(len(requests)), timeout=600))
    assert len(results) == 50
    for (_, _, check), objs in zip(requests, results, strict=True):
        check(objs)


def test_client_cancelling_mid_stream(fx: Fixture) -> None:
    stream = prepare(fx.repo, "apps/helm-web",
                     argo_env(app_name="helm-web", source_path="apps/helm-web"))
    chunks = list(file_requests(stream.tgz, 512))
    assert len(chunks) > 6, "the repository is too small for this test"
    pulled = threading.Event()
    release = threading.Event()

    def requests() -> Iterator[plugin_pb2.AppStreamRequest]:
        yield stream.metadata
        for i, chunk in enumerate(chunks):
            if i == 4:
                pulled.set()
                release.wait(30)
            yield chunk

    client = fx.server.client()
    future = client.future_raw("GenerateManifest", requests(), timeout=60)
    assert pulled.wait(30)
    assert future.cancel()
    release.set()
    with pytest.raises(grpc.FutureCancelledError):
        future.result(timeout=30)
    ok = client.generate_manifest(fx.repo, "apps/dir-web",
                                  argo_env(app_name="dir-web", source_path="apps/dir-web"))
    assert f"dir-{MARK}" in json.dumps(response_objects(ok.manifests))
    assert client.health() == SERVING


def test_half_sent_stream_then_client_gone(fx: Fixture) -> None:
    """A client whose channel closes mid-stream leaves the server serving."""
    stream = prepare(fx.repo, "apps/dir-web",
                     argo_env(app_name="dir-web", source_path="apps/dir-web"))
    client = fx.server.client()
    pulled = threading.Event()
    release = threading.Event()

    def requests() -> Iterator[plugin_pb2.AppStreamRequest]:
        yield stream.metadata
        yield next(file_requests(stream.tgz, 256))
        pulled.set()
        release.wait(30)

    future = client.future_raw("GenerateManifest", requests(), timeout=60)
    assert pulled.wait(30)
    client.close()
    release.set()
    with pytest.raises((grpc.RpcError, grpc.FutureCancelledError)):
        future.result(timeout=30)
    ok = fx.server.client().generate_manifest(
        fx.repo, "apps/dir-web", argo_env(app_name="dir-web", source_path="apps/dir-web"))
    assert response_objects(ok.manifests)
