"""Fuzz the CMP stream receiver: random bytes, mutated archives and generated member lists
never raise anything but StreamError, and every tree it accepts extracts inside its
destination and is, on disk, the tree it said (shape, real paths, contents)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from hypothesis import event, given
from hypothesis import strategies as st

from kiln.cmp.fastpath import tree_digest
from kiln.cmp.stream import Received, StreamError, StreamLimits, receive
from kiln.core.errors import KilnError
from tests.fuzz.bounds import FUZZ, result_or_kiln_error
from tests.unit.test_cmp_stream import messages, tgz

LIMITS = StreamLimits(max_compressed_bytes=1 << 20, max_bytes=4 << 20, max_files=200)


def outcome(data: bytes, *, chunk: int = 1024) -> Received | KilnError:
    """receive() of ``data`` sent as a well-formed stream: a result, or its StreamError (any
    other exception fails the test, inside result_or_kiln_error)."""
    result = result_or_kiln_error(lambda: receive(iter(messages(data, chunk=chunk)), LIMITS))
    if isinstance(result, KilnError):
        assert isinstance(result, StreamError), type(result)
        event(f"refused: {result.message.split('(')[0][:40]}")
    else:
        event("accepted " + ("with symlinks" if result.tree.symlinks else "without symlinks"))
    return result


def base_archive() -> bytes:
    """An uncompressed tar with a bit of everything the receiver accepts."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, kind, data, link in [
            (".", tarfile.DIRTYPE, b"", ""), ("apps", tarfile.DIRTYPE, b"", ""),
            ("apps/a/kiln.yaml", tarfile.REGTYPE, b"renderer: directory\n", ""),
            ("apps/a/cm.yaml", tarfile.REGTYPE, b"kind: ConfigMap\n" * 30, ""),
            ("apps/b", tarfile.SYMTYPE, b"", "a"), ("top", tarfile.SYMTYPE, b"", "apps/b/cm.yaml"),
            (".git/HEAD", tarfile.REGTYPE, b"ref: refs/heads/main\n", ""),
            ("\u00e9t\u00e9/long-" + "n" * 120, tarfile.REGTYPE, b"pax name\n", ""),
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.size = kind, link, len(data)
            archive.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    return out.getvalue()


BASE = base_archive()


@FUZZ
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    outcome(data)


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_behind_a_gzip_header(data: bytes) -> None:
    outcome(gzip.compress(data))


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(BASE) - 1), st.integers(0, 255)),
                min_size=1, max_size=12),
       st.sampled_from([1, 97, 1024]))
def test_mutated_tar_inside_valid_gzip(edits: list[tuple[int, int]], chunk: int) -> None:
    raw = bytearray(BASE)
    for position, value in edits:
        raw[position] = value
    accepted = outcome(gzip.compress(bytes(raw)), chunk=chunk)
    if not isinstance(accepted, KilnError):
        check_extraction(accepted)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1,
                max_size=6),
       st.integers(0, 64))
def test_mutated_and_cut_gzip(edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(gzip.compress(BASE))
    for position, value in edits:
        data[position % len(data)] = value
    accepted = outcome(bytes(data[:len(data) - cut]))
    if not isinstance(accepted, KilnError):
        check_extraction(accepted)


SAFE = ["a", "b", "a", "b", ".git", "c d", "\u00e9", "x\\y"]
HOSTILE = ["..", ".", "", "/"]
NAMES = st.lists(st.sampled_from(SAFE * 6 + HOSTILE), min_size=1, max_size=4).map("/".join)
TARGETS = st.lists(st.sampled_from(SAFE + HOSTILE * 2), min_size=1, max_size=5).map("/".join)
KINDS = st.sampled_from([tarfile.REGTYPE] * 6 + [tarfile.DIRTYPE] * 3 + [tarfile.SYMTYPE] * 5
                        + [tarfile.LNKTYPE, tarfile.FIFOTYPE])


@st.composite
def archives(draw: st.DrawFn) -> bytes:
    """A gzip'd tar of generated members: names and targets built from hostile parts."""
    members = []
    for _ in range(draw(st.integers(1, 12))):
        info = tarfile.TarInfo(draw(NAMES))
        info.type = draw(KINDS)
        info.mode = draw(st.sampled_from([0o644, 0o755, 0o4777]))
        data = draw(st.binary(max_size=64)) if info.type == tarfile.REGTYPE else b""
        info.size = len(data)
        if info.type in (tarfile.SYMTYPE, tarfile.LNKTYPE):
            info.linkname = draw(TARGETS)
        members.append((info, data))
    return tgz(*members)


@FUZZ
@given(archives())
def test_generated_member_lists(data: bytes) -> None:
    accepted = outcome(data)
    if not isinstance(accepted, KilnError):
        check_extraction(accepted)


@st.composite
def plausible_archives(draw: st.DrawFn) -> bytes:
    """A checkout-like tar (distinct names, a directory wherever a name has children) whose
    symlink targets climb and wander: most are accepted, and the extraction is checked."""
    parts = st.sampled_from(["a", "b", ".git", "c d", "\u00e9"])
    names = draw(st.sets(st.lists(parts, min_size=1, max_size=3).map("/".join),
                         min_size=1, max_size=12))
    parents = {n.rsplit("/", 1)[0] for n in names if "/" in n}
    members = []
    for name in sorted(names | {p for n in parents for p in _prefixes(n)}):
        info = tarfile.TarInfo(name)
        data = b""
        if any(other.startswith(name + "/") for other in names | parents):
            info.type = tarfile.DIRTYPE
        elif draw(st.booleans()):
            info.type = tarfile.SYMTYPE
            info.linkname = draw(st.lists(st.sampled_from(["a", "b", ".git", "..", "..", "."]),
                                          min_size=1, max_size=5).map("/".join))
        else:
            data = draw(st.binary(max_size=32))
            info.mode = draw(st.sampled_from([0o644, 0o755]))
        info.size = len(data)
        members.append((info, data))
    members.append((tarfile.TarInfo("zz-file"), b""))  # always one regular file
    return tgz(*members)


def _prefixes(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


@FUZZ
@given(plausible_archives())
def test_plausible_checkouts(data: bytes) -> None:
    accepted = outcome(data)
    if not isinstance(accepted, KilnError):
        check_extraction(accepted)


def check_extraction(received: Received) -> None:
    """Extract the tree into a fresh directory beside a sentinel: nothing lands outside, every
    symlink leads inside (or nowhere inside), and the disk holds exactly the tree."""
    tree = received.tree
    sandbox = Path(tempfile.mkdtemp(prefix="kiln-fuzz-"))
    try:
        dest = sandbox / "dest"
        dest.mkdir()
        (sandbox / "sentinel").write_bytes(b"untouched")
        written = tree.extract(dest)
        assert sorted(os.listdir(sandbox)) == ["dest", "sentinel"]
        assert (sandbox / "sentinel").read_bytes() == b"untouched"
        assert written == tree.nbytes
        real_dest = os.path.realpath(dest)
        for dirpath, dirnames, filenames in os.walk(dest):
            for name in dirnames + filenames:
                full = os.path.join(dirpath, name)
                rel = os.path.relpath(full, dest)
                real = os.path.realpath(full)
                assert real == real_dest or real.startswith(real_dest + os.sep), (rel, real)
                if os.path.islink(full):
                    assert tree.symlinks[rel] == os.readlink(full)
                elif os.path.isfile(full):
                    data = Path(full).read_bytes()
                    assert hashlib.sha256(data).hexdigest() == tree.file_digest(rel)
                expected = None
                if os.path.exists(full):
                    expected = "" if real == real_dest else os.path.relpath(real, real_dest)
                assert tree.realpath(rel) == expected, rel
        assert tree.shape_digest() == tree_digest(dest)
    finally:
        shutil.rmtree(sandbox)
