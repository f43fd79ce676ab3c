"""``kiln serve`` end to end: a real uvicorn server on 127.0.0.1, a real HTTP client (httpx),
real helm, kustomize (kubectl), git and OpenBao. The oracles are the real tools' own output
(parsed by PyYAML) and values the tests chose."""

from __future__ import annotations

import concurrent.futures
import json
import os
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import tool
from tests.integration.cmp_serve import git, helm_wrapper, wait_for, write_files
from tests.integration.openbao import OpenBao, openbao  # noqa: F401  (fixture)
from tests.integration.serve_server import (
    ServeServer,
    one_line_error,
    operator_env,
    serve_argv,
    start_serve,
)
from tests.secrets_scan import assert_no_plaintext

pytestmark = pytest.mark.integration

MARK = uuid.uuid4().hex[:10]
"""Chosen by the test and written into the apps: must come out of the server."""
VAULT_PATH = f"serve-{MARK}"
MAX_BODY = 64 * 1024

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    "values.yaml": f"replicas: 1\nmarker: helm-{MARK}\n",
    "templates/deploy.yaml": """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: {{ .Release.Name }}
        spec:
          replicas: {{ .Values.replicas }}
          template:
            spec:
              containers:
                - name: web
                  image: nginx:1.27
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
BASE = {
    "kustomization.yaml": "resources: [deploy.yaml]\n",
    "deploy.yaml": """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          replicas: 1
          template:
            spec:
              containers:
                - name: web
                  image: nginx:1.27
        """,
}
OVERLAY = {
    "kustomization.yaml": f"resources: [../../base, cm.yaml]\nnamePrefix: k{MARK}-\n",
    "cm.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\ndata:\n"
               f"  mark: {MARK}\n",
}


def cm(name: str, value: str) -> str:
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n"
            f"  value: {value!r}\n")


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
}
MIXED = [f"mix-{i}" for i in range(5)]


@dataclass
class Fixture:
    """The module's repository (a git work tree under the allowed root), server, secrets."""

    root: Path
    repo: Path
    outside: Path
    server: ServeServer
    vault_value: str
    work: Path


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory, openbao: OpenBao) -> Iterator[Fixture]:  # noqa: F811
    work = tmp_path_factory.mktemp("serve")
    vault_value = "pw-" + uuid.uuid4().hex
    openbao.kv2_put("secret", VAULT_PATH, {"password": vault_value})
    root = work / "allowed"
    repo = root / "repo"
    files: dict[str, str] = {"README.md": "# gitops\n"}
    for prefix, app in (("apps/helm-web/", CHART), ("base/", BASE),
                        ("apps/overlay/", OVERLAY), ("apps/vault-web/", VAULT_APP)):
        files.update({prefix + k: v for k, v in app.items()})
    files["apps/dir-web/b.yaml"] = cm("b", f"dir-{MARK}")
    files["apps/dir-web/a.yaml"] = cm("a", "first") + "---\n" + cm("a2", "second")
    files["apps/broken/bad.yaml"] = "apiVersion: v1\nkind: [unclosed\n"
    for name in MIXED:
        files[f"apps/{name}/cm.yaml"] = cm(name, f"{name}-{MARK}")
    write_files(repo, files)
    git(repo, "init", "-q")
    outside = work / "outside"
    write_files(outside, {"app/cm.yaml": cm("outside", "must-not-render")})
    (repo / "apps/escape").symlink_to(outside / "app")
    server = start_serve(work / "server", ["--allow-root", str(root), "--parallelism", "4"],
                         extra_env={"VAULT_ADDR": openbao.addr, "VAULT_TOKEN": openbao.token,
                                    "AVP_TYPE": "vault", "AVP_AUTH_TYPE": "token",
                                    "KILN_SERVE_MAX_BODY_BYTES": str(MAX_BODY)})
    try:
        yield Fixture(root, repo, outside, server, vault_value, work)
    finally:
        server.close()


def objects_of(resp: httpx.Response) -> list[dict[str, Any]]:
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert set(body) == {"objects", "key", "cacheHit", "revision"}, body
    return list(body["objects"])


def yaml_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d is not None]


def real_tool(*argv: str, cwd: Path | None = None) -> list[dict[str, Any]]:
    proc = subprocess.run(list(argv), cwd=cwd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return yaml_docs(proc.stdout)


# -- path sources --------------------------------------------------------------------------------

def test_path_apps_equal_the_real_tools_and_repeat_as_hits(fx: Fixture) -> None:
    srv = fx.server
    renders0 = srv.metric("kiln_renders_total", result="render")
    hits0 = srv.metric("kiln_renders_total", result="hit")
    overlay = fx.repo / "apps/overlay"
    want = real_tool(tool("kubectl"), "kustomize", str(overlay))
    assert any(o["metadata"]["name"] == f"k{MARK}-web" for o in want)  # ../../base was read
    first = srv.render({"path": str(overlay)})
    assert objects_of(first) == want
    body = first.json()
    assert body["cacheHit"] is False and body["revision"] is None
    assert len(body["key"]) == 64 and int(body["key"], 16) >= 0
    # relative to the first allowed root, and again: a hit with the same key
    again = srv.render({"path": "repo/apps/overlay"})
    assert objects_of(again) == want
    assert again.json()["cacheHit"] is True and again.json()["key"] == body["key"]
    assert srv.metric("kiln_renders_total", result="render") == renders0 + 1
    assert srv.metric("kiln_renders_total", result="hit") == hits0 + 1
    assert srv.metric("kiln_requests_total", method="render", outcome="ok") >= 2
    # a plain directory: its files' documents, files in name order
    dir_web = fx.repo / "apps/dir-web"
    docs = yaml_docs((dir_web / "a.yaml").read_text()) + yaml_docs((dir_web / "b.yaml").read_text())
    assert objects_of(srv.render({"path": str(dir_web)})) == docs
    request_id = first.headers.get("x-request-id")
    assert request_id and f"[{request_id}] kiln.server: render ok" in srv.log_text()
    named = srv.render({"path": str(dir_web)}, headers={"X-Request-Id": f"ci-{MARK}"})
    assert named.headers["x-request-id"] == f"ci-{MARK}"
    assert f"[ci-{MARK}] kiln.server: render ok" in srv.log_text()


def test_request_settings_are_application_level_and_part_of_the_key(fx: Fixture) -> None:
    chart = fx.repo / "apps/helm-web"
    values = fx.work / "values-3.yaml"
    values.write_text("replicas: 3\n")
    want3 = real_tool(tool("helm"), "template", "r3", str(chart), "-f", str(values))
    want1 = real_tool(tool("helm"), "template", "r1", str(chart))
    three = {"helm": {"releaseName": "r3", "valuesObject": {"replicas": 3}}}
    got3 = fx.server.render({"path": str(chart), "settings": three})
    assert objects_of(got3) == want3
    got1 = fx.server.render({"path": str(chart), "settings": {"helm": {"releaseName": "r1"}}})
    assert objects_of(got1) == want1
    assert got1.json()["key"] != got3.json()["key"]
    assert fx.server.render({"path": str(chart), "settings": three}).json()["cacheHit"] is True


def test_vault_placeholder_resolves_and_reaches_neither_log_nor_cache(fx: Fixture) -> None:
    for _ in range(2):  # a fresh render, then a hit: both resolve in memory
        objs = objects_of(fx.server.render({"path": str(fx.repo / "apps/vault-web")}))
        assert objs[0]["stringData"]["password"] == fx.vault_value
    assert fx.vault_value not in fx.server.log_text()
    assert assert_no_plaintext([Path(fx.server.env["KILN_CACHE_DIR"])], [fx.vault_value]) > 0


def test_fifty_concurrent_clients_over_mixed_apps(fx: Fixture) -> None:
    """50 clients at once, 10 per app over 5 apps: each gets its own app's objects."""
    want = {name: yaml_docs((fx.repo / f"apps/{name}/cm.yaml").read_text()) for name in MIXED}
    jobs = [MIXED[i % len(MIXED)] for i in range(50)]
    start = threading.Barrier(len(jobs), timeout=60)

    def one(name: str) -> tuple[str, int, Any]:
        with httpx.Client(base_url=fx.server.base, timeout=120) as client:
            start.wait()
            resp = client.post("/v1/render", json={"path": f"repo/apps/{name}"})
            return name, resp.status_code, resp.json()

    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        results = list(pool.map(one, jobs, timeout=300))
    assert len(results) == 50
    for name, status, body in results:
        assert status == 200, body
        assert body["objects"] == want[name]
    assert fx.server.metric("kiln_renders_total", result="render") >= len(MIXED)


# -- bad input -----------------------------------------------------------------------------------

BAD = [
    ("outside-roots", {"path": "/etc"}, 403, "outside the directories the operator allows"),
    ("symlink-escape", {"path": "repo/apps/escape"}, 403, "outside the directories"),
    ("dotdot-escape", {"path": "repo/../../outside/app"}, 403, "outside the directories"),
    ("missing-path", {"path": "repo/apps/nope"}, 404, "no such directory"),
    ("a-file", {"path": "repo/README.md"}, 404, "not a directory"),
    ("both-sources", {"path": "repo", "git": {"repoURL": "file:///x"}}, 400,
     "exactly one of 'path' and 'git'"),
    ("no-source", {}, 400, "exactly one of 'path' and 'git'"),
    ("unknown-field", {"path": "repo", "colour": "red"}, 400, "colour"),
    ("wrong-type", {"path": 5}, 400, "path"),
    ("settings-redirect-credentials",
     {"path": "repo/apps/vault-web", "settings": {"secrets": {"vault": {
         "address": "http://127.0.0.1:1"}}}}, 403, "secrets.vault.address"),
    ("settings-bad-shape", {"path": "repo/apps/dir-web", "settings": {"namespace": ["x"]}},
     422, "namespace"),
    ("broken-app", {"path": "repo/apps/broken"}, 422, "bad.yaml"),
]


@pytest.mark.parametrize(("body", "status", "needle"), [b[1:] for b in BAD],
                         ids=[b[0] for b in BAD])
def test_bad_requests_are_one_line_errors(fx: Fixture, body: dict[str, Any], status: int,
                                          needle: str) -> None:
    line = one_line_error(fx.server.render(body), status)
    assert needle in line
    assert str(fx.outside) not in line or "outside the directories" in line
    assert "must-not-render" not in line


def test_malformed_json_and_oversize_bodies(fx: Fixture) -> None:
    client = fx.server.client()
    line = one_line_error(client.post("/v1/render", content=b'{"path": '), 400)
    assert "not valid JSON" in line
    one_line_error(client.post("/v1/render", content=b"[1, 2]"), 400)
    big = json.dumps({"path": "repo", "settings": {"x": "y" * MAX_BODY}}).encode()
    line = one_line_error(client.post("/v1/render", content=big), 413)
    assert str(MAX_BODY) in line
    bad_timeout = fx.server.render({"path": "repo/apps/dir-web"},
                                   headers={"X-Kiln-Timeout": "soon"})
    assert "X-Kiln-Timeout" in one_line_error(bad_timeout, 400)
    one_line_error(client.get("/v2/nothing"), 404)


def _read_answer(sock: socket.socket) -> bytes:
    """What the server sends until it closes the connection (bounded)."""
    data = b""
    for _ in range(64):
        part = sock.recv(65536)
        if not part:
            break
        data += part
    return data


def test_an_oversize_body_is_refused_while_it_arrives(fx: Fixture) -> None:
    """The limit is checked as the bytes come: a declared length over it is answered before
    any body byte is sent, a chunked body as soon as it passes the limit (the rest is never
    sent: the answer arrives while the client still holds it)."""
    with socket.create_connection(("127.0.0.1", fx.server.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/render HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 999999999\r\n\r\n")
        head = sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    with socket.create_connection(("127.0.0.1", fx.server.port), timeout=30) as sock:
        sock.sendall(b"POST /v1/render HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 16384
        for _ in range(MAX_BODY // len(chunk) + 1):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        head = _read_answer(sock)  # no final chunk sent: the server answered mid-body
    assert head.startswith(b"HTTP/1.1 413"), head[:200]
    body = head.split(b"\r\n\r\n", 1)[1]
    assert b"KILN_SERVE_MAX_BODY_BYTES" in body


def test_openapi_lists_render_with_its_request_schema(fx: Fixture) -> None:
    doc = fx.server.client().get("/openapi.json").json()
    post = doc["paths"]["/v1/render"]["post"]
    ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref == "#/components/schemas/RenderRequest"
    schemas = doc["components"]["schemas"]
    assert set(schemas["RenderRequest"]["properties"]) == {"path", "git", "settings"}
    assert {"repoURL", "revision", "path"} <= set(schemas["GitSource"]["properties"])
    assert set(schemas["RenderResponse"]["properties"]) == {"objects", "key", "cacheHit",
                                                            "revision"}
    for code in ("400", "403", "404", "413", "422", "502", "503", "504"):
        assert code in post["responses"], code
    for probe in ("/healthz", "/readyz", "/metrics"):
        assert probe in doc["paths"], probe


def test_readyz_reports(fx: Fixture) -> None:
    resp = fx.server.client().get("/readyz")
    assert resp.status_code == 200, resp.text
    assert resp.json()["ok"] is True and resp.json()["draining"] is False


# -- authentication ------------------------------------------------------------------------------

def test_bearer_token(tmp_path: Path) -> None:
    token = "t-" + uuid.uuid4().hex
    app = tmp_path / "root/app"
    write_files(app, {"cm.yaml": cm("tok", "v")})
    (tmp_path / "token").write_text(token + "\n")
    (tmp_path / "other-root").mkdir()
    server = start_serve(tmp_path / "srv", extra_env={  # both from the environment this time
        "KILN_SERVE_TOKEN_FILE": str(tmp_path / "token"),
        "KILN_SERVE_ROOTS": f"{tmp_path / 'other-root'}:{tmp_path / 'root'}"})
    try:
        anonymous = server.client()
        assert "bearer token" in one_line_error(anonymous.post("/v1/render",
                                                               json={"path": "app"}), 401)
        # refused before the body is read: even a malformed one is a 401
        one_line_error(anonymous.post("/v1/render", content=b"{"), 401)
        one_line_error(anonymous.get("/metrics"), 401)
        wrong = server.client(token=token[:-1] + "x")
        one_line_error(wrong.post("/v1/render", json={"path": "app"}), 401)
        right = server.client(token=token)
        assert objects_of(right.post("/v1/render", json={"path": str(app)})) == \
            yaml_docs(cm("tok", "v"))
        assert right.get("/metrics").status_code == 200
        assert anonymous.get("/healthz").status_code == 200  # probes need no token
        assert token not in server.log_text()
    finally:
        server.close()


def test_listening_beyond_loopback_needs_auth(tmp_path: Path) -> None:
    env = operator_env(tmp_path, tmp_path / "cache")
    for listen in ("0.0.0.0:1", "[::]:1", "10.1.2.3:1"):
        proc = subprocess.run(serve_argv(["--listen", listen]), env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode != 0 and proc.stdout == ""
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("kiln: error: --listen: "), proc.stderr
        assert "loopback" in lines[0]
    (tmp_path / "short").write_text("short\n")
    proc = subprocess.run(serve_argv(["--token-file", str(tmp_path / "short")]), env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "at least 16 characters" in proc.stderr
    assert "short" not in proc.stderr.replace(str(tmp_path / "short"), "")


def _certificates(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate it signed, and a
    client certificate of another CA, made here with `cryptography`."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    out: dict[str, Path] = {}

    def save(name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
        (directory / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{name}.key").write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        out[name] = directory / f"{name}.crt"
        out[name + "-key"] = directory / f"{name}.key"

    def make(cn: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
             *, ca: bool = False, server: bool = False
             ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (x509.CertificateBuilder().subject_name(subject)
                   .issuer_name(issuer[0].subject if issuer else subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        if not ca:
            usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
            builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        signer = issuer[1] if issuer else key
        return builder.sign(signer, hashes.SHA256()), key

    ca = make("kiln test CA", None, ca=True)
    save("ca", *ca)
    save("server", *make("server", ca, server=True))
    save("client", *make("client", ca))
    other = make("other CA", None, ca=True)
    save("intruder", *make("intruder", other))
    return out


def test_mtls_requires_a_client_certificate_of_the_ca(tmp_path: Path) -> None:
    import ssl

    certs = _certificates(tmp_path)
    write_files(tmp_path / "root/app", {"cm.yaml": cm("tls", "v")})

    def context(client: str | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(certs["ca"]))
        if client is not None:
            ctx.load_cert_chain(str(certs[client]), str(certs[client + "-key"]))
        return ctx

    server = start_serve(tmp_path / "srv", [
        "--allow-root", str(tmp_path / "root"), "--tls-cert", str(certs["server"]),
        "--tls-key", str(certs["server-key"]), "--tls-client-ca", str(certs["ca"])],
        scheme="https", verify=context("client"))
    try:
        good = server.client()
        assert objects_of(good.post("/v1/render", json={"path": "app"})) == \
            yaml_docs(cm("tls", "v"))
        for who in (None, "intruder"):
            with pytest.raises(httpx.TransportError):
                server.client(verify=context(who)).post("/v1/render", json={"path": "app"})
        with pytest.raises(httpx.TransportError):  # and no plain HTTP either
            httpx.get(f"http://127.0.0.1:{server.port}/healthz", timeout=5)
    finally:
        server.close()


# -- lifecycle -----------------------------------------------------------------------------------

def test_sigterm_drains(tmp_path: Path) -> None:
    """SIGTERM while a render runs: new requests get 503 and /readyz says not ready, the one
    in flight completes with its objects, then the process exits 0."""
    marks = tmp_path / "marks"
    marks.mkdir()
    release = tmp_path / "release"
    code = (f'touch "{marks}/$$"; i=0; while [ ! -e "{release}" ] && [ $i -lt 600 ]; do '
            f'sleep 0.05; i=$((i+1)); done')
    wrapper = helm_wrapper(tmp_path / "helm", before_template=code)
    write_files(tmp_path / "root/chart", CHART)
    write_files(tmp_path / "root/plain", {"cm.yaml": cm("plain", "v")})
    server = start_serve(tmp_path / "srv", ["--allow-root", str(tmp_path / "root"),
                                            "--drain-seconds", "60"],
                         extra_env={"KILN_HELM": str(wrapper)})
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            future = pool.submit(server.render, {"path": "chart"})
            wait_for(lambda: any(marks.iterdir()), "helm template to start", timeout=60)
            os.kill(server.proc.pid, signal.SIGTERM)
            client = server.client()
            wait_for(lambda: client.get("/readyz").status_code == 503, "readyz to turn 503",
                     timeout=15)
            line = one_line_error(client.post("/v1/render", json={"path": "plain"}), 503)
            assert "shutting down" in line
            assert server.proc.poll() is None
            release.touch()
            names = [o["metadata"]["name"] for o in objects_of(future.result(timeout=60))]
            assert sorted(names) == ["chart", "chart-marker"]
        assert server.wait(60) == 0, server.log_text()[-2000:]
    finally:
        release.touch()
        server.close()


def test_a_client_that_goes_away_cancels_its_render(tmp_path: Path) -> None:
    """The client gives up while helm runs: the server cancels the request's deadline, which
    kills the tool's process group, and counts the request as cancelled."""
    from tests.integration.cmp_serve import pid_gone

    marks = tmp_path / "marks"
    marks.mkdir()
    wrapper = helm_wrapper(tmp_path / "helm", before_template=(
        f'touch "{marks}/$$"; i=0; while [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done'))
    write_files(tmp_path / "root/chart", CHART)
    server = start_serve(tmp_path / "srv", ["--allow-root", str(tmp_path / "root")],
                         extra_env={"KILN_HELM": str(wrapper)})
    try:
        with pytest.raises(httpx.ReadTimeout):
            server.client(timeout=3).post("/v1/render", json={"path": "chart"})
        pids = [int(p.name) for p in marks.iterdir()]
        assert pids, "helm template never started"
        wait_for(lambda: all(pid_gone(pid) for pid in pids), "the tool to be killed",
                 timeout=20)
        wait_for(lambda: server.metric("kiln_requests_total", method="render",
                                       outcome="cancelled") == 1, "the cancelled count",
                 timeout=20)
        assert "the client went away" in server.log_text()
        # the operator's deadline, shortened by the client: 504, the tool killed again
        before = {p.name for p in marks.iterdir()}
        late = server.render({"path": "chart"}, headers={"X-Kiln-Timeout": "2"})
        assert "2s deadline (X-Kiln-Timeout)" in one_line_error(late, 504)
        pids = [int(p.name) for p in marks.iterdir() if p.name not in before]
        assert pids
        wait_for(lambda: all(pid_gone(pid) for pid in pids), "the tool to be killed",
                 timeout=20)
    finally:
        server.close()


def test_one_redis_cache_serves_two_servers(tmp_path: Path) -> None:
    """--cache-url: a render stored by one server is a hit on another."""
    from tests.servers import redis_server

    write_files(tmp_path / "root/app", {"cm.yaml": cm("shared", MARK)})
    with redis_server(tmp_path) as url:
        servers = [start_serve(tmp_path / f"srv{i}", ["--allow-root", str(tmp_path / "root"),
                                                      "--cache-url", url]) for i in range(2)]
        try:
            first, second = (s.render({"path": "app"}) for s in servers)
            assert objects_of(first) == objects_of(second) == yaml_docs(cm("shared", MARK))
            assert first.json()["cacheHit"] is False and second.json()["cacheHit"] is True
            assert servers[1].metric("kiln_renders_total", result="render") == 0
            assert servers[1].metric("kiln_renders_total", result="hit") == 1
        finally:
            for s in servers:
                s.close()


def test_address_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = operator_env(tmp_path, tmp_path / "cache")
        proc = subprocess.run(serve_argv(["--listen", f"127.0.0.1:{port}"]), env=env,
                              capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and proc.stdout == ""
    assert proc.stderr.strip() == (f"kiln: error: --listen: cannot listen on 127.0.0.1:{port}: "
                                   "address already in use"), proc.stderr


BAD_SETTINGS = [
    ("timeout", [], {"KILN_SERVE_TIMEOUT": "abc"}, "KILN_SERVE_TIMEOUT: must be a positive"),
    ("body-limit", [], {"KILN_SERVE_MAX_BODY_BYTES": "lots"}, "KILN_SERVE_MAX_BODY_BYTES: not a"),
    ("parallelism", ["--parallelism", "0"], {}, "--parallelism: must be at least 1"),
    ("tls-pair", ["--tls-cert", "/etc/hostname"], {}, "--tls-key: give both"),
    ("tls-files", ["--tls-cert", "/etc/hostname", "--tls-key", "/etc/hostname"], {},
     "cannot load the TLS files"),
    ("root", ["--allow-root", "/nonexistent-kiln-root"], {}, "--allow-root"),
]


@pytest.mark.parametrize(("args", "extra", "needle"), [b[1:] for b in BAD_SETTINGS],
                         ids=[b[0] for b in BAD_SETTINGS])
def test_bad_operator_settings_are_one_line(tmp_path: Path, args: list[str],
                                            extra: dict[str, str], needle: str) -> None:
    env = operator_env(tmp_path, tmp_path / "cache", extra)
    proc = subprocess.run(serve_argv(["--listen", "127.0.0.1:0", *args]), env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kiln: error: ") and needle in lines[0], \
        proc.stderr


def test_an_unreachable_secret_backend_is_a_502(tmp_path: Path) -> None:
    from tests.servers import free_port

    write_files(tmp_path / "root/app", VAULT_APP)
    server = start_serve(tmp_path / "srv", ["--allow-root", str(tmp_path / "root")],
                         extra_env={"VAULT_ADDR": f"http://127.0.0.1:{free_port()}",
                                    "VAULT_TOKEN": "s.not-a-real-token", "AVP_TYPE": "vault",
                                    "AVP_AUTH_TYPE": "token"})
    try:
        line = one_line_error(server.render({"path": "app"}, headers={"X-Kiln-Timeout": "30"}),
                              502)
        assert VAULT_PATH in line or "vault" in line.lower(), line
        assert "s.not-a-real-token" not in line + server.log_text()
    finally:
        server.close()
