"""``kiln serve``'s parts without a server: authentication, the listen rule, the request
deadline, the HTTP status of each kiln error, path resolution under the allowed roots, the
schema errors (fuzzed), and that no other command imports the serve stack."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kiln.core.deadline import Cancelled, DeadlineExceeded
from kiln.core.errors import (
    CacheError,
    ConfigError,
    InputError,
    KilnError,
    RenderError,
    SecretBackendUnavailable,
    SecretErrors,
    SecretNotFound,
    ToolError,
)
from kiln.core.trust import TrustError
from kiln.serve.auth import (
    BearerAuth,
    TLSFiles,
    check_exposure,
    is_loopback,
    parse_listen,
    read_token,
)
from kiln.serve.errors import BadRequest, Forbidden, NotFound, status_for
from kiln.serve.service import ServeService
from kiln.server import ServerDraining

TOKEN = b"0123456789abcdef-token"


def test_bearer_token_is_compared_exactly() -> None:
    auth = BearerAuth(TOKEN)
    assert auth.allows("Bearer " + TOKEN.decode())
    assert auth.allows("bearer " + TOKEN.decode())
    for header in (None, "", "Bearer", "Bearer " + TOKEN.decode()[:-1], "Basic " +
                   TOKEN.decode(), TOKEN.decode(), "Bearer " + TOKEN.decode() + "x",
                   "Bearer tökén"):
        assert not auth.allows(header), header


def test_read_token(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_bytes(TOKEN + b"\n")
    assert read_token(good) == TOKEN
    for name, data, problem in (("short", b"abc\n", "at least 16"),
                                ("blank", b"0123456789 abcdefgh", "one word"),
                                ("big", b"x" * 5000, "larger than")):
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ConfigError) as err:
            read_token(path)
        assert problem in err.value.one_line() and str(path) in err.value.one_line()
        assert data.decode() not in err.value.one_line()
    with pytest.raises(ConfigError, match="cannot read"):
        read_token(tmp_path / "missing")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.9.9.9", "::1", "localhost"])
def test_loopback_needs_no_auth(host: str) -> None:
    assert is_loopback(host)
    check_exposure(host, None, None)


def test_beyond_loopback_needs_a_token_or_mtls(tmp_path: Path) -> None:
    for name in ("c", "k", "ca"):
        (tmp_path / name).write_text("x")
    tls = TLSFiles.from_flags(str(tmp_path / "c"), str(tmp_path / "k"), None)
    mtls = TLSFiles.from_flags(str(tmp_path / "c"), str(tmp_path / "k"), str(tmp_path / "ca"))
    assert tls is not None and not tls.mutual and mtls is not None and mtls.mutual
    for host in ("0.0.0.0", "::", "10.0.0.1", "kiln.example.com"):
        assert not is_loopback(host)
        for plain in (None, tls):
            with pytest.raises(ConfigError) as err:
                check_exposure(host, None, plain)
            assert err.value.one_line().startswith("--listen: ")
        check_exposure(host, TOKEN, None)
        check_exposure(host, None, mtls)
    assert mtls.uvicorn_settings()["ssl_cert_reqs"] == 2  # ssl.CERT_REQUIRED


def test_tls_flags_come_in_pairs(tmp_path: Path) -> None:
    (tmp_path / "c").write_text("x")
    assert TLSFiles.from_flags(None, None, None) is None
    for args, needle in (((str(tmp_path / "c"), None, None), "--tls-key"),
                         ((None, None, str(tmp_path / "c")), "--tls-client-ca"),
                         ((str(tmp_path / "c"), str(tmp_path / "nope"), None), "no such file")):
        with pytest.raises(ConfigError) as err:
            TLSFiles.from_flags(*args)
        assert needle in err.value.one_line()


@pytest.mark.parametrize("text", ["8080", "host:", "h:99999", "[::1:80", "a b:1"])
def test_listen_errors_name_the_flag(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_listen(text)
    assert err.value.one_line().startswith("--listen: ")


def test_request_deadline_header() -> None:
    from kiln.serve.app import request_deadline

    assert request_deadline(None, 60).seconds == 60
    assert request_deadline("2.5", 60).seconds == 2.5
    assert request_deadline("600", 60).seconds == 60  # capped by the operator
    for bad in ("soon", "0", "-1", "nan", "inf"):
        with pytest.raises(BadRequest) as err:
            request_deadline(bad, 60)
        assert err.value.one_line().startswith("X-Kiln-Timeout: not a positive number")


@pytest.mark.parametrize(("error", "status"), [
    (BadRequest("x"), 400), (Forbidden("x"), 403), (NotFound("x"), 404),
    (ServerDraining("x"), 503), (Cancelled("cancelled while x: the server is shutting down"), 503),
    (Cancelled("cancelled while x: the client went away"), 499),
    (DeadlineExceeded("x"), 504), (TrustError("x"), 403),
    (SecretBackendUnavailable("x"), 502), (SecretNotFound("x"), 422),
    (SecretErrors([SecretNotFound("a"), SecretBackendUnavailable("b")]), 502),
    (SecretErrors([SecretNotFound("a")]), 422), (CacheError("x"), 502),
    (InputError("x"), 422), (ConfigError("x"), 422), (RenderError("x"), 422),
    (ToolError("x"), 422), (KilnError("x"), 500),
])
def test_status_of_each_error(error: KilnError, status: int) -> None:
    assert status_for(error) == status


def test_git_errors_answer_their_own_status() -> None:
    from kiln.gitsource import GitRemoteError, GitRevisionError, GitTimeout, GitURLRefused

    assert [status_for(e("x")) for e in (GitURLRefused, GitRevisionError, GitRemoteError,
                                         GitTimeout)] == [403, 404, 502, 504]


def _service(roots: list[Path]) -> ServeService:
    return ServeService(SimpleNamespace(core=None), roots=roots)  # type: ignore[arg-type]


def test_paths_resolve_inside_the_roots_only(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "repo/.git").mkdir(parents=True)
    (root / "repo/apps/web").mkdir(parents=True)
    (root / "plain/app").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (root / "repo/apps/out").symlink_to(tmp_path / "outside")
    (root / "repo/apps/in").symlink_to(root / "plain/app")
    (root / "repo/apps/dangling").symlink_to(tmp_path / "gone")
    service = _service([root])
    app, source_root = service.resolve_path(str(root / "repo/apps/web"))
    assert app == root / "repo/apps/web" and source_root == root / "repo"  # the work tree
    assert service.resolve_path("plain/app") == (root / "plain/app", root)  # no .git: the root
    assert service.resolve_path("repo/apps/in") == (root / "plain/app", root)
    for text in ("repo/apps/out", "repo/apps/dangling", "../outside", "/", str(tmp_path)):
        with pytest.raises(Forbidden):
            service.resolve_path(text)
    with pytest.raises(NotFound):
        service.resolve_path("repo/apps/nope")
    with pytest.raises(Forbidden, match="allows no directory"):
        _service([]).resolve_path(str(root))
    with pytest.raises(BadRequest):
        service.resolve_path("a\x00b")


def test_a_work_tree_above_the_root_is_not_the_source_root(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    root = tmp_path / "inner"
    (root / "app").mkdir(parents=True)
    assert _service([root]).resolve_path("app") == (root / "app", root)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(["path", "git", "settings",
                                                              "repoURL", "revision", "x"])
                                             | st.text(max_size=8), inner, max_size=4),
                           max_leaves=20)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_any_body_is_a_request_or_one_schema_line(value: Any) -> None:
    from fastapi.exceptions import RequestValidationError
    from pydantic import ValidationError

    from kiln.serve.app import validation_line
    from kiln.serve.models import RenderRequest

    try:
        request = RenderRequest.model_validate_json(json.dumps(value))
    except ValidationError as exc:
        line = validation_line(RequestValidationError(exc.errors()))
        assert line.startswith("request body") and "\n" not in line
    else:
        assert (request.path is None) != (request.git is None)


def test_other_commands_do_not_import_the_serve_stack(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")
    probe = ("import sys\nfrom kiln.cli import main\n"
             "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
             "{'fastapi', 'uvicorn', 'starlette', 'pydantic', 'anyio', 'httpx'})\n"
             "sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
           "KILN_CACHE_DIR": str(tmp_path / "cache")}
    for args in (["--help"], ["serve", "--help"], ["render", str(app)], ["render", str(app)]):
        proc = subprocess.run([sys.executable, "-c", probe, *args], env=env,
                              capture_output=True, text=True, timeout=60)
        assert "HEAVY=\n" in proc.stderr, (args, proc.stderr)
    help_text = subprocess.run([sys.executable, "-m", "kiln", "--help"], env=env,
                               capture_output=True, text=True, timeout=60).stdout
    assert "serve" in help_text
