"""Receive Argo CD's CMP v2 repository stream into an in-memory :class:`SourceTree`, safely.

The repo-server sends one ``metadata`` message (app name, the app's path in the archive, the
lowercase hex sha256 of the archive, its size, the build environment), then ``file`` chunks
that together are a gzip'd tar of the repository (``reference/apply-and-serve.md`` §1.3).
:func:`receive` checks the order, hashes every chunk as it arrives and caps the stream, then
compares the hash with the metadata's checksum (Argo CD's ``file checksum validation error``)
and the length with its size.

The checksum covers mtimes and owners, so it is no content address, but it is a perfect key
for "the very same archive again": with a :class:`SourceTreeCache`, a tree received before
under the same checksum is looked up when the metadata arrives and returned (``reused``)
without parsing anything once the hash is verified.

Otherwise the archive is read from memory, inflating it through a counter, with these limits
(:class:`StreamLimits`, operator variables in ``docs/configuration.md``):

- ``max_compressed_bytes``: the archive's size, checked as each chunk arrives;
- ``max_bytes``: the inflated tar stream (headers included), checked against every member's
  declared end before its data is read, and by the counter on every byte inflated (trailing
  data after the tar's end included, which is inflated too so the gzip's CRC is checked);
- ``max_ratio``: the inflated stream may not exceed ``max_ratio`` times the archive's size
  (nor :data:`RATIO_FLOOR`, whichever is larger: a tiny archive of a few files legitimately
  inflates 100-fold, mostly tar padding), so a decompression bomb stops before it is inflated;
- ``max_files``: tar members of any kind, and tree entries (directories implied by a deep
  name count too).

Members: regular files, directories and symlinks only. Hard links are refused (Argo CD's
client never writes one; resolving them would let one name stand for another's bytes),
as are devices, FIFOs and any other type. Names and symlink targets go through
:class:`SourceTreeBuilder` (absolute names, ``..``, NUL, paths under a file or symlink,
duplicates, symlinks leading out of the root: all refused). An archive without any regular
file is refused, as Argo CD's client refuses to send one (``no files to send``).

Every failure is a :class:`StreamError`: one line, naming the member (with repr) and the
problem, never a traceback or a file's content.
"""

from __future__ import annotations

import hashlib
import re
import tarfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kiln.core.cache.size import parse_size
from kiln.core.errors import ConfigError, InputError
from kiln.core.sourcetree import (
    SourceTree,
    SourceTreeBuilder,
    SourceTreeCache,
    SourceTreeError,
    normalize_path,
)

if TYPE_CHECKING:
    from kiln.cmp.proto.plugin_pb2 import AppStreamRequest, ManifestRequestMetadata

MiB = 1 << 20
RATIO_FLOOR = 1 * MiB
"""Inflated bytes always allowed whatever the ratio (a 150-byte archive of one small file
inflates to a 10 KiB tar record)."""
MAX_STREAM_BYTES_ENV = "KILN_CMP_MAX_STREAM_BYTES"
MAX_TREE_BYTES_ENV = "KILN_CMP_MAX_TREE_BYTES"
MAX_FILES_ENV = "KILN_CMP_MAX_FILES"
MAX_RATIO_ENV = "KILN_CMP_MAX_RATIO"
CHECKSUM_ERROR = "file checksum validation error"
"""Argo CD's own text for a stream whose hash is not the metadata's checksum."""
_READ = 64 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")


class StreamError(InputError):
    """The CMP stream is malformed, over a limit, or holds what kiln refuses. ``member`` is the
    tar member concerned, if any; :meth:`one_line` names it with repr."""

    def __init__(self, problem: str, *, member: str | None = None) -> None:
        super().__init__(problem, source="CMP stream" if member is None
                         else f"CMP stream: tar member {member!r}")
        self.member = member


@dataclass(frozen=True)
class StreamLimits:
    """Caps on one stream (see the module docstring for what each one counts)."""

    max_compressed_bytes: int = 256 * MiB
    max_bytes: int = 1024 * MiB
    max_files: int = 100_000
    max_ratio: float = 200.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StreamLimits:
        """The limits an operator set (``KILN_CMP_MAX_STREAM_BYTES``, ``KILN_CMP_MAX_TREE_BYTES``
        as sizes like ``500MiB``; ``KILN_CMP_MAX_FILES``, ``KILN_CMP_MAX_RATIO`` as positive
        numbers), the defaults for the others. A bad value is a ConfigError naming it."""
        default = cls()
        return cls(
            max_compressed_bytes=_size(env, MAX_STREAM_BYTES_ENV, default.max_compressed_bytes),
            max_bytes=_size(env, MAX_TREE_BYTES_ENV, default.max_bytes),
            max_files=int(_number(env, MAX_FILES_ENV, default.max_files, integer=True)),
            max_ratio=_number(env, MAX_RATIO_ENV, default.max_ratio, integer=False),
        )

    def inflate_cap(self, compressed: int) -> tuple[int, str]:
        """How many inflated bytes an archive of ``compressed`` bytes may reach, and which
        limit says so (the problem to report when it is passed)."""
        by_ratio = max(int(self.max_ratio * compressed), RATIO_FLOOR)
        if by_ratio < self.max_bytes:
            return by_ratio, (f"decompression ratio above {self.max_ratio:g} "
                              f"({compressed} compressed bytes inflate past {by_ratio})")
        return self.max_bytes, f"the tree inflates past {self.max_bytes} bytes"


def _size(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        return parse_size(text, source=name)
    except ConfigError as exc:
        if "at least 1 byte" in exc.message:  # parse_size words the zero case for the cache
            raise ConfigError("must be at least 1 byte", source=name) from None
        raise


def _number(env: Mapping[str, str], name: str, default: float, *, integer: bool) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"not {kind}: {text!r}", source=name) from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"must be a positive finite number, not {text!r}", source=name)
    return value


@dataclass(frozen=True)
class StreamMetadata:
    """A copy of the stream's ``ManifestRequestMetadata``, checked: ``app_rel_path`` is
    normalised (relative, POSIX, no ``..`` or NUL; ``"."`` for the root), ``checksum`` is 64
    lowercase hex digits, ``env`` keeps the entries' order."""

    app_name: str
    app_rel_path: str
    checksum: str
    size: int
    env: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Received:
    """What one stream delivered: its metadata, the tree, the archive's size, and whether
    the tree came from the :class:`SourceTreeCache` (nothing parsed)."""

    metadata: StreamMetadata
    tree: SourceTree
    compressed_bytes: int
    reused: bool


def receive(requests: Iterable[AppStreamRequest], limits: StreamLimits | None = None,
            trees: SourceTreeCache | None = None) -> Received:
    """Read a whole CMP stream: metadata first and once, then file chunks.

    Every chunk is hashed and counted as it arrives (the archive may not exceed
    ``limits.max_compressed_bytes``, nor the size the metadata announced). At the end the
    sha256 must equal the metadata's checksum (else a StreamError whose message holds Argo
    CD's ``file checksum validation error``) and the length its size. A tree ``trees`` holds
    under that checksum is returned as it is (``reused=True``, the chunks never joined or
    parsed); otherwise the archive is parsed (:func:`parse_archive`) and the tree stored in
    ``trees``, once for concurrent streams of the same checksum (the others wait and get
    ``reused=True``). Raises StreamError for every problem of the stream; exceptions of the request
    iterator itself (a cancelled RPC) pass through.
    """
    limits = limits or StreamLimits()
    metadata: StreamMetadata | None = None
    cached: SourceTree | None = None
    hasher = hashlib.sha256()
    chunks: list[bytes] = []
    total = 0
    cap = limits.max_compressed_bytes
    for request in requests:
        which = request.WhichOneof("request")
        if which == "file":
            if metadata is None:
                raise StreamError("a file chunk came before the metadata (metadata must be "
                                  "the first message)")
            chunk = request.file.chunk
            total += len(chunk)
            if total > cap:
                raise StreamError(f"the archive exceeds {cap} bytes ({MAX_STREAM_BYTES_ENV})"
                                  if cap == limits.max_compressed_bytes else
                                  f"the archive is longer than the {cap} bytes the metadata "
                                  "announced")
            hasher.update(chunk)
            if cached is None:
                chunks.append(chunk)
        elif which == "metadata":
            if metadata is not None:
                raise StreamError("the metadata was sent twice")
            metadata = _metadata(request.metadata, limits)
            cap = min(cap, metadata.size)
            if trees is not None:
                cached = trees.get(metadata.checksum)
        else:
            raise StreamError("a message holds neither metadata nor a file chunk")
    if metadata is None:
        raise StreamError("the stream holds no metadata")
    digest = hasher.hexdigest()
    if digest != metadata.checksum:
        raise StreamError(f"{CHECKSUM_ERROR}: the {total} bytes received hash to {digest}, "
                          f"the metadata says {metadata.checksum}")
    if total != metadata.size:
        raise StreamError(f"the archive is {total} bytes, the metadata says {metadata.size}")
    if cached is not None:
        return Received(metadata, cached, total, True)
    data = b"".join(chunks)
    del chunks
    if trees is None:
        return Received(metadata, parse_archive(data, limits), total, False)
    tree, reused = trees.get_or_build(metadata.checksum, lambda: parse_archive(data, limits))
    return Received(metadata, tree, total, reused)


def _metadata(message: ManifestRequestMetadata, limits: StreamLimits) -> StreamMetadata:
    checksum = message.checksum
    if not _HEX64.fullmatch(checksum):
        raise StreamError(f"{CHECKSUM_ERROR}: the metadata's checksum is not 64 lowercase hex "
                          f"digits ({checksum[:80]!r})")
    size = message.size
    if size < 0:
        raise StreamError(f"the metadata announces a negative size ({size})")
    if size > limits.max_compressed_bytes:
        raise StreamError(f"the metadata announces {size} bytes, more than the "
                          f"{limits.max_compressed_bytes} allowed ({MAX_STREAM_BYTES_ENV})")
    rel = message.appRelPath
    try:
        app_rel_path = _app_rel_path(rel)
    except SourceTreeError as exc:
        raise StreamError(f"appRelPath {rel[:200]!r}: {exc.problem}") from None
    return StreamMetadata(message.appName, app_rel_path, checksum, size,
                          tuple((e.name, e.value) for e in message.env))


def _app_rel_path(rel: str) -> str:
    return normalize_path(rel) or "."


class _Overflow(Exception):
    """The inflated stream passed its cap (internal: turned into a StreamError)."""


class _BadGzip(Exception):
    """The gzip layer is broken: the message completes "the archive is ..." (internal; not a
    zlib.error, which tarfile would re-word as a tar problem)."""


class _Inflater:
    """A file-like ``read(n)`` over the gunzipped archive that counts every byte inflated and
    stops, before inflating more, once the count would pass ``cap``. Concatenated gzip
    members are read in turn; anything else after the last one, or a truncated one, is an
    error (a corrupt stream, not a trailing detail)."""

    def __init__(self, data: bytes, cap: int) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self._pending = b""
        self._d = zlib.decompressobj(31)
        self._cap = cap
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        want = _READ if size is None or size < 0 else size
        parts: list[bytes] = []
        got = 0
        while got < want:
            if self._d.eof:
                rest = self._d.unused_data + bytes(self._data[self._pos:])
                self._pos = len(self._data)
                self._pending = b""
                if not rest:
                    break
                if not rest.startswith(b"\x1f\x8b"):
                    raise _BadGzip("followed by data after the end of the gzip stream")
                self._d = zlib.decompressobj(31)
                self._pending = rest
            if not self._pending:
                if self._pos >= len(self._data):
                    raise _BadGzip("truncated (the gzip stream ends early)")
                self._pending = bytes(self._data[self._pos:self._pos + _READ])
                self._pos += len(self._pending)
            room = self._cap - self.total + 1  # one byte over the cap proves it is passed
            try:
                out = self._d.decompress(self._pending, min(want - got, room))
            except zlib.error as exc:
                raise _BadGzip(f"not valid gzip data ({exc})") from None
            self._pending = self._d.unconsumed_tail
            self.total += len(out)
            if self.total > self._cap:
                raise _Overflow
            if out:
                parts.append(out)
                got += len(out)
        return b"".join(parts)

    def drain(self) -> None:
        """Inflate (and count) whatever follows, to the gzip's end: checks its CRC."""
        while self.read(_READ):
            pass


_CORRUPT = (tarfile.TarError, EOFError, ValueError, OverflowError)


def parse_archive(data: bytes, limits: StreamLimits | None = None) -> SourceTree:
    """The :class:`SourceTree` a gzip'd tar held in memory describes, within ``limits``
    (see the module docstring). Raises StreamError naming the member and the problem."""
    limits = limits or StreamLimits()
    cap, over = limits.inflate_cap(len(data))
    if not data:
        raise StreamError("the archive is empty (Argo CD's client would say: no files to send)")
    inflater = _Inflater(data, cap)
    builder = SourceTreeBuilder()
    member: str | None = None
    count = 0
    try:
        with tarfile.open(fileobj=inflater, mode="r|", encoding="utf-8",  # type: ignore[call-overload]
                          errors="surrogateescape") as archive:
            for info in archive:
                member = info.name
                count += 1
                if count > limits.max_files:
                    raise StreamError(f"more than {limits.max_files} entries "
                                      f"({MAX_FILES_ENV})", member=member)
                _add(archive, info, builder, cap, over)
                if len(builder) > limits.max_files:  # directories implied by names count too
                    raise StreamError(f"more than {limits.max_files} entries, with the "
                                      f"directories its name implies ({MAX_FILES_ENV})",
                                      member=member)
        member = None
        inflater.drain()
        tree = builder.build()
    except _Overflow:
        raise StreamError(over, member=member) from None
    except _BadGzip as exc:
        raise StreamError(f"the archive is {exc}", member=member) from None
    except SourceTreeError as exc:
        raise StreamError(exc.problem, member=member if member is not None else exc.path
                          ) from None
    except _CORRUPT as exc:
        raise StreamError(_corruption(exc), member=member) from None
    if tree.nfiles == 0:
        raise StreamError("the archive holds no regular file (Argo CD's client would say: "
                          "no files to send)")
    return tree


def _add(archive: tarfile.TarFile, info: tarfile.TarInfo, builder: SourceTreeBuilder,
         cap: int, over: str) -> None:
    name = info.name
    if info.isreg():
        if info.offset_data + info.size > cap:
            raise StreamError(f"{over} (it declares {info.size} bytes)", member=name)
        handle = archive.extractfile(info)
        data = handle.read() if handle is not None else b""
        if len(data) != info.size:
            raise EOFError("the member's data ends early")
        builder.add_file(name, data, executable=bool(info.mode & 0o111))
    elif info.isdir():
        builder.add_dir(name)
    elif info.issym():
        builder.add_symlink(name, info.linkname)
    elif info.islnk():
        raise StreamError(f"hard links are refused (to {info.linkname!r})", member=name)
    elif info.ischr() or info.isblk():
        raise StreamError("device members are refused", member=name)
    elif info.isfifo():
        raise StreamError("FIFO members are refused", member=name)
    else:
        raise StreamError(f"member type {info.type!r} is refused (only files, directories "
                          "and symlinks)", member=name)


def _corruption(exc: BaseException) -> str:
    what = "truncated" if isinstance(exc, EOFError) else "not a valid tar archive"
    detail = " ".join(str(exc).split())[:120]
    return f"the archive is {what}" + (f" ({detail})" if detail else "")


__all__ = ["CHECKSUM_ERROR", "Received", "StreamError", "StreamLimits", "StreamMetadata",
           "parse_archive", "receive"]
