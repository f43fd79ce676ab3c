"""A CMP v2 client that behaves like Argo CD's repo-server, for tests and benchmarks.

Built from the reference (``apply-and-serve.md`` §1.3, Argo CD's ``util/cmp/stream.go`` and
``util/io/files/tar.go``), not from kiln's server:

- the archive is a tar of the whole repository root (``.git`` included) in ``filepath.Walk``
  order (the root ``.`` first, then each directory's names sorted byte-wise, depth first),
  holding regular files, directories and symlinks (never followed) with relative names, PAX
  headers, the on-disk mode bits, uid/gid, owner names and mtime/atime/ctime, gzip'd;
- ``--plugin-tar-exclude`` patterns are Go ``filepath.Match`` patterns on the relative path; a
  matched directory is skipped whole;
- the stream is the metadata message first (``appName`` = basename of the app path,
  ``appRelPath`` relative to the root, ``checksum`` = sha256 hex of the tgz, ``size``, env
  entries), then ``File`` chunks of ``chunk_size`` bytes (``ARGOCD_CMP_CHUNK_SIZE``, default
  1024), then half-close;
- the channel is ``unix://<socket>``, insecure, with 100 MiB message caps; every call carries
  a gRPC deadline (``timeout``).

Raw helpers (:meth:`RepoServerClient.call_raw`, :func:`metadata_request`, :func:`file_requests`,
:func:`tgz_of_entries`) send hand-made sequences for malformed-stream tests.
"""

from __future__ import annotations

import grp
import gzip
import hashlib
import io
import os
import pwd
import re
import stat
import tarfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kiln.cmp.proto import plugin_pb2, plugin_pb2_grpc

MAX_MESSAGE = 100 * 1024 * 1024
"""Argo CD's default ``ARGOCD_GRPC_MAX_SIZE_MB`` (100 MiB), both directions."""
DEFAULT_CHUNK = 1024
"""Argo CD's default ``ARGOCD_CMP_CHUNK_SIZE``."""
SERVICE = "plugin.ConfigManagementPluginService"
STREAM_METHODS = ("GenerateManifest", "MatchRepository", "GetParametersAnnouncement")


class BadPattern(ValueError):
    """A ``filepath.Match`` pattern Go would reject (``ErrBadPattern``)."""


# -- filepath.Match ------------------------------------------------------------------------------

def _class_to_regex(pattern: str, i: int) -> tuple[str, int]:
    """Translate the character class starting after ``[`` at ``i``; return (regex, next i)."""
    out = "["
    if i < len(pattern) and pattern[i] == "^":
        out += "^"
        i += 1
    first = True
    while True:
        if i >= len(pattern):
            raise BadPattern(pattern)
        c = pattern[i]
        if c == "]" and not first:
            return out + "]", i + 1
        first = False
        lo, i = _class_char(pattern, i)
        if i < len(pattern) and pattern[i] == "-":
            hi, i = _class_char(pattern, i + 1)
            if hi < lo:
                raise BadPattern(pattern)
            out += re.escape(lo) + "-" + re.escape(hi)
        else:
            out += re.escape(lo)


def _class_char(pattern: str, i: int) -> tuple[str, int]:
    if i >= len(pattern) or pattern[i] in "-]":
        raise BadPattern(pattern)
    if pattern[i] == "\\":
        i += 1
        if i >= len(pattern):
            raise BadPattern(pattern)
    return pattern[i], i + 1


def match_regex(pattern: str) -> re.Pattern[str]:
    """Compile a Go ``filepath.Match`` pattern (Unix separator ``/``) to a full-match regex.

    ``*`` is any run of non-``/`` characters, ``?`` one non-``/`` character, ``[...]`` a class
    (``^`` negates, ranges ``a-z``; like Go, a class may match ``/``), ``\\`` escapes.
    """
    out = ""
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out += "[^/]*"
            i += 1
        elif c == "?":
            out += "[^/]"
            i += 1
        elif c == "[":
            cls, i = _class_to_regex(pattern, i + 1)
            out += cls
        elif c == "\\":
            if i + 1 >= len(pattern):
                raise BadPattern(pattern)
            out += re.escape(pattern[i + 1])
            i += 2
        else:
            out += re.escape(c)
            i += 1
    return re.compile(out, re.DOTALL)


def filepath_match(pattern: str, name: str) -> bool:
    """Go's ``filepath.Match(pattern, name)`` on Unix."""
    return match_regex(pattern).fullmatch(name) is not None


# -- the archive ---------------------------------------------------------------------------------

def _names(uid: int, gid: int) -> tuple[str, str]:
    try:
        uname = pwd.getpwuid(uid).pw_name
    except KeyError:
        uname = ""
    try:
        gname = grp.getgrgid(gid).gr_name
    except KeyError:
        gname = ""
    return uname, gname


def walk(root: Path, exclude: Sequence[str] = ()) -> Iterator[tuple[str, Path]]:
    """Yield (relative name, path) like Argo CD's ``filepath.Walk`` with exclusions.

    The root itself comes first as ``.``; names in a directory are sorted byte-wise;
    symlinks are not followed; excluded directories are not entered.
    """
    compiled = [match_regex(p) for p in exclude]

    def excluded(rel: str) -> bool:
        return any(rx.fullmatch(rel) for rx in compiled)

    def visit(path: Path, rel: str) -> Iterator[tuple[str, Path]]:
        if excluded(rel):
            return
        yield rel, path
        if stat.S_ISDIR(path.lstat().st_mode):
            for name in sorted(os.listdir(path), key=os.fsencode):
                yield from visit(path / name, name if rel == "." else f"{rel}/{name}")

    yield from visit(root, ".")


class _GoTarInfo(tarfile.TarInfo):
    """Go's tar writer keeps a directory's name as given (no trailing ``/``)."""

    def get_info(self) -> dict[str, Any]:  # type: ignore[override]
        info: dict[str, Any] = super().get_info()  # type: ignore[misc]
        if self.type == tarfile.DIRTYPE:
            info["name"] = str(info["name"]).rstrip("/") or "."
        return info


def _tarinfo(rel: str, path: Path) -> tarfile.TarInfo | None:
    st = path.lstat()
    info = _GoTarInfo(rel)
    if stat.S_ISREG(st.st_mode):
        info.type = tarfile.REGTYPE
        info.size = st.st_size
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
    else:
        return None  # devices, FIFOs, sockets: not supported, silently left out (like Argo)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname, info.gname = _names(st.st_uid, st.st_gid)
    info.mtime = st.st_mtime
    info.pax_headers = {"atime": repr(st.st_atime), "ctime": repr(st.st_ctime)}
    return info


def gzip_bytes(data: bytes) -> bytes:
    """gzip like Go's ``gzip.NewWriter`` (default level, no name, zero mtime)."""
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, compresslevel=6, mtime=0) as gz:
        gz.write(data)
    return out.getvalue()


def repo_tgz(root: Path, exclude: Sequence[str] = ()) -> tuple[bytes, int]:
    """The repository tarball Argo CD sends: (tgz bytes, number of regular files)."""
    raw = io.BytesIO()
    files = 0
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT,
                      tarinfo=_GoTarInfo) as tar:
        for rel, path in walk(root, exclude):
            info = _tarinfo(rel, path)
            if info is None:
                continue
            if info.type == tarfile.REGTYPE:
                files += 1
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    return gzip_bytes(raw.getvalue()), files


@dataclass(frozen=True)
class Entry:
    """One hand-made archive member for :func:`tgz_of_entries` (malformed-stream tests)."""

    name: str
    data: bytes = b""
    type: bytes = tarfile.REGTYPE
    linkname: str = ""
    mode: int = 0o644
    size: int | None = None  # header size, when it should lie


def tar_of_entries(entries: Iterable[Entry]) -> bytes:
    """An uncompressed tar of exactly ``entries`` (names taken as given)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry.name)
            info.type = entry.type
            info.mode = entry.mode
            info.linkname = entry.linkname
            info.mtime = 1_700_000_000
            if entry.type == tarfile.REGTYPE:
                info.size = len(entry.data) if entry.size is None else entry.size
                tar.addfile(info, io.BytesIO(entry.data))
            else:
                tar.addfile(info)
    return raw.getvalue()


def tgz_of_entries(entries: Iterable[Entry]) -> bytes:
    """A gzip'd tar of exactly ``entries``."""
    return gzip_bytes(tar_of_entries(entries))


# -- messages ------------------------------------------------------------------------------------

def metadata_request(app_name: str, app_rel_path: str, checksum: str, size: int,
                     env: Mapping[str, str] | Sequence[tuple[str, str]] = ()
                     ) -> plugin_pb2.AppStreamRequest:
    """The first message of a stream."""
    pairs = list(env.items()) if isinstance(env, Mapping) else list(env)
    return plugin_pb2.AppStreamRequest(metadata=plugin_pb2.ManifestRequestMetadata(
        appName=app_name, appRelPath=app_rel_path, checksum=checksum, size=size,
        env=[plugin_pb2.EnvEntry(name=k, value=v) for k, v in pairs]))


def file_requests(data: bytes, chunk_size: int = DEFAULT_CHUNK
                  ) -> Iterator[plugin_pb2.AppStreamRequest]:
    """``File`` messages carrying ``data`` in chunks of ``chunk_size`` bytes."""
    for start in range(0, len(data), chunk_size):
        yield plugin_pb2.AppStreamRequest(
            file=plugin_pb2.File(chunk=data[start:start + chunk_size]))


def sha256_hex(data: bytes) -> str:
    """Lowercase hex SHA-256, Argo CD's stream checksum."""
    return hashlib.sha256(data).hexdigest()


@dataclass
class PreparedStream:
    """A repository stream ready to send (build once, send many times)."""

    metadata: plugin_pb2.AppStreamRequest
    tgz: bytes
    chunk_size: int = DEFAULT_CHUNK

    def requests(self, on_last: Callable[[], None] | None = None
                 ) -> Iterator[plugin_pb2.AppStreamRequest]:
        """Metadata then the chunks; ``on_last`` runs when gRPC asks past the last chunk
        (the whole stream has been handed to the transport)."""
        yield self.metadata
        yield from file_requests(self.tgz, self.chunk_size)
        if on_last is not None:
            on_last()


def prepare(repo_root: Path, app_path: Path | str, env: Mapping[str, str] | None = None, *,
            exclude: Sequence[str] = (), chunk_size: int = DEFAULT_CHUNK) -> PreparedStream:
    """Build the stream Argo CD sends for the app at ``app_path`` (absolute, or relative to
    ``repo_root``) in the checkout ``repo_root``."""
    root = Path(repo_root).resolve()
    app = Path(app_path)
    app = (app if app.is_absolute() else root / app).resolve()
    rel = os.path.relpath(app, root)
    tgz, files = repo_tgz(root, exclude)
    if files == 0:
        raise ValueError(f"no files to send({root})")
    meta = metadata_request(app.name, rel, sha256_hex(tgz), len(tgz), env or {})
    return PreparedStream(meta, tgz, chunk_size)


# -- the client ----------------------------------------------------------------------------------

class RepoServerClient:
    """Calls a CMP server over its unix socket the way Argo CD's repo-server does."""

    def __init__(self, socket_path: Path | str, *, timeout: float = 60.0) -> None:
        self.socket_path = str(socket_path)
        self.timeout = timeout
        self.channel = grpc.insecure_channel(
            f"unix://{self.socket_path}",
            options=[("grpc.max_receive_message_length", MAX_MESSAGE),
                     ("grpc.max_send_message_length", MAX_MESSAGE)])
        self.stub = plugin_pb2_grpc.ConfigManagementPluginServiceStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def __enter__(self) -> RepoServerClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _t(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else timeout

    # raw calls ----------------------------------------------------------------------------------

    def call_raw(self, method: str, requests: Iterable[plugin_pb2.AppStreamRequest], *,
                 timeout: float | None = None) -> Any:
        """Send exactly ``requests`` to the client-streaming ``method``; return its response
        (raises ``grpc.RpcError`` on a status error)."""
        assert method in STREAM_METHODS, method
        return getattr(self.stub, method)(iter(requests), timeout=self._t(timeout))

    def future_raw(self, method: str, requests: Iterable[plugin_pb2.AppStreamRequest], *,
                   timeout: float | None = None) -> grpc.Future:
        """Start a client-streaming call; the caller may ``cancel()`` it."""
        assert method in STREAM_METHODS, method
        return getattr(self.stub, method).future(iter(requests), timeout=self._t(timeout))

    def send(self, method: str, stream: PreparedStream, *, timeout: float | None = None) -> Any:
        """Send a prepared stream to ``method``."""
        return self.call_raw(method, stream.requests(), timeout=timeout)

    def send_timed(self, method: str, stream: PreparedStream, *,
                   timeout: float | None = None) -> tuple[Any, float]:
        """Send a prepared stream; return (response, seconds from the last chunk handed to
        gRPC to the response)."""
        marks: list[float] = []
        lock = threading.Lock()

        def last() -> None:
            with lock:
                marks.append(time.perf_counter())

        response = self.call_raw(method, stream.requests(last), timeout=timeout)
        done = time.perf_counter()
        return response, done - (marks[0] if marks else done)

    # the RPCs -----------------------------------------------------------------------------------

    def generate_manifest(self, repo_root: Path, app_path: Path | str,
                          env: Mapping[str, str] | None = None, *, exclude: Sequence[str] = (),
                          chunk_size: int = DEFAULT_CHUNK, timeout: float | None = None
                          ) -> plugin_pb2.ManifestResponse:
        """GenerateManifest for the app at ``app_path`` in the checkout ``repo_root``."""
        stream = prepare(repo_root, app_path, env, exclude=exclude, chunk_size=chunk_size)
        return self.send("GenerateManifest", stream, timeout=timeout)  # type: ignore[no-any-return]

    def match_repository(self, repo_root: Path, app_path: Path | str,
                         env: Mapping[str, str] | None = None, *, exclude: Sequence[str] = (),
                         chunk_size: int = DEFAULT_CHUNK, timeout: float | None = None
                         ) -> plugin_pb2.RepositoryResponse:
        """MatchRepository (the whole repository is sent, like Argo CD)."""
        stream = prepare(repo_root, app_path, env, exclude=exclude, chunk_size=chunk_size)
        return self.send("MatchRepository", stream, timeout=timeout)  # type: ignore[no-any-return]

    def get_parameters_announcement(
            self, repo_root: Path, app_path: Path | str, env: Mapping[str, str] | None = None,
            *, exclude: Sequence[str] = (), chunk_size: int = DEFAULT_CHUNK,
            timeout: float | None = None) -> plugin_pb2.ParametersAnnouncementResponse:
        """GetParametersAnnouncement (the whole repository is sent, like Argo CD)."""
        stream = prepare(repo_root, app_path, env, exclude=exclude, chunk_size=chunk_size)
        return self.send("GetParametersAnnouncement", stream,  # type: ignore[no-any-return]
                         timeout=timeout)

    def check_plugin_configuration(self, *, timeout: float | None = None
                                   ) -> plugin_pb2.CheckPluginConfigurationResponse:
        """CheckPluginConfiguration (unary; Argo CD retries it 3 times, this client does not)."""
        return self.stub.CheckPluginConfiguration(  # type: ignore[no-any-return]
            empty_pb2.Empty(), timeout=self._t(timeout))

    def health(self, service: str = "", *, timeout: float | None = None) -> int:
        """``grpc.health.v1.Health/Check``; return the status enum value."""
        reply = self.health_stub.Check(health_pb2.HealthCheckRequest(service=service),
                                       timeout=self._t(timeout))
        return int(reply.status)

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the channel is connected (bounded)."""
        grpc.channel_ready_future(self.channel).result(timeout=timeout)
