"""The CMP stream receiver: real archives (GNU tar of a real git checkout, Python's tarfile)
arrive in 1 KiB chunks and become the same tree as on disk; every malformed or hostile stream
is one StreamError line naming the problem; limits stop a bomb before it is inflated."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from kiln.cmp import stream
from kiln.cmp.fastpath import tree_digest
from kiln.cmp.proto.plugin_pb2 import AppStreamRequest, EnvEntry, File, ManifestRequestMetadata
from kiln.cmp.stream import (
    CHECKSUM_ERROR,
    Received,
    StreamError,
    StreamLimits,
    parse_archive,
    receive,
)
from kiln.core.errors import ConfigError, InputError
from kiln.core.sourcetree import SourceTreeCache
from tests.helpers import tool

CHUNK = 1024  # ARGOCD_CMP_CHUNK_SIZE's default


def messages(data: bytes, *, checksum: str | None = None, size: int | None = None,
             rel: str = ".", env: Sequence[tuple[str, str]] = (), chunk: int = CHUNK,
             name: str = "app") -> list[AppStreamRequest]:
    """The stream the repo-server sends for ``data``: metadata, then ``chunk``-byte files."""
    meta = ManifestRequestMetadata(
        appName=name, appRelPath=rel,
        checksum=hashlib.sha256(data).hexdigest() if checksum is None else checksum,
        size=len(data) if size is None else size,
        env=[EnvEntry(name=k, value=v) for k, v in env])
    return [AppStreamRequest(metadata=meta)] + [
        AppStreamRequest(file=File(chunk=data[i:i + chunk])) for i in range(0, len(data), chunk)]


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", linkname: str = "",
           mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.linkname = linkname
    info.size = len(data) if kind in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    if "\x00" in name:
        info.pax_headers = {"path": name}  # a PAX record keeps the NUL (a ustar name cannot)
    return info, data


def tgz(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    """A gzip'd PAX tar of exactly these members (Python's tarfile writes what it is told)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        for info, data in members:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return out.getvalue()


def gnu_tgz(directory: Path) -> bytes:
    """``tar -czf - -C directory .``: the real tool, ``./``-prefixed names."""
    return subprocess.run([tool("tar"), "-czf", "-", "-C", str(directory), "."],
                          check=True, capture_output=True).stdout


def argo_like_tgz(directory: Path) -> bytes:
    """What Argo CD's client writes: a lexical walk, names relative without ``./``, the root
    as ``.``, PAX headers, regular files, directories and symlinks."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", format=tarfile.PAX_FORMAT) as archive:
        archive.add(directory, arcname=".", recursive=False)
        for dirpath, dirnames, filenames in os.walk(directory):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                full = os.path.join(dirpath, name)
                archive.add(full, arcname=os.path.relpath(full, directory), recursive=False)
    return out.getvalue()


def git_repo(root: Path) -> Path:
    """A real checkout: apps, nested and empty directories, symlinks to a directory, to a
    file and through another symlink, an executable, and a .git from ``git init`` + commit."""
    files = {
        "apps/a/kiln.yaml": "renderer: directory\n",
        "apps/a/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
        "apps/b/deep/nested/values.yaml": "replicas: 2\n" * 40,
        "lib/common.libsonnet": "{ a: 1 }\n",
        "README.md": "# repo\n",
        "tools/gen.sh": "#!/bin/sh\necho gen\n",
    }
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "tools/gen.sh").chmod(0o755)
    (root / "apps/b/deep/empty").mkdir()
    os.symlink("../../lib", root / "apps/b/lib")               # to a directory
    os.symlink("apps/a", root / "current")                     # to a directory
    os.symlink("../a/cm.yaml", root / "apps/b/cm.yaml")        # to a file
    os.symlink("missing.yaml", root / "apps/b/gone.yaml")      # dangling
    os.symlink("../current/cm.yaml", root / "apps/cm.yaml")    # through another symlink
    os.symlink("nested", root / "apps/b/deep/alias")           # a nested directory
    git = tool("git")
    subprocess.run([git, "-c", "init.defaultBranch=main", "init", "-q", str(root)], check=True)
    subprocess.run([git, "-C", str(root), "add", "-A"], check=True)
    subprocess.run([git, "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com",
                    "commit", "-qm", "init"], check=True)
    return root


def disk_entries(root: Path) -> tuple[dict[str, bytes], dict[str, str], set[str], set[str]]:
    """Regular files (bytes), symlinks (targets), directories and executables on disk."""
    files: dict[str, bytes] = {}
    links: dict[str, str] = {}
    dirs: set[str] = set()
    executables: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                links[rel] = os.readlink(full)
            elif os.path.isdir(full):
                dirs.add(rel)
            else:
                files[rel] = Path(full).read_bytes()
                if os.stat(full).st_mode & 0o111:
                    executables.add(rel)
    return files, links, dirs, executables


def assert_same_tree(received: Received, root: Path) -> None:
    """The tree holds what the disk holds (hashlib and os as the oracle)."""
    tree = received.tree
    files, links, dirs, executables = disk_entries(root)
    assert set(tree.files) == set(files)
    for rel, data in files.items():
        assert tree.file_digest(rel) == hashlib.sha256(data).hexdigest(), rel
        assert tree.read(rel) == data
        assert tree.is_executable(rel) == (rel in executables), rel
    assert dict(tree.symlinks) == links
    assert tree.dirs == dirs
    assert tree.nbytes == sum(len(d) for d in files.values())
    assert tree.shape_digest() == tree_digest(root)
    for rel in ("apps", "apps/a", "apps/b", "apps/b/lib", "current", "apps/b/deep/alias"):
        assert tree.shape_digest(rel) == tree_digest(root / rel), rel


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return git_repo(tmp_path_factory.mktemp("repo"))


@pytest.mark.parametrize("make", [gnu_tgz, argo_like_tgz], ids=["gnu-tar", "argo-like"])
def test_a_real_checkout_arrives_whole(repo: Path, make: Callable[[Path], bytes]) -> None:
    data = make(repo)
    assert len(data) > 4 * CHUNK  # several chunks
    received = receive(iter(messages(data, rel="apps/a", name="a",
                                     env=[("ARGOCD_APP_NAME", "a"), ("B", "2"), ("A", "1")])))
    assert received.reused is False
    assert received.compressed_bytes == len(data)
    assert received.metadata.app_name == "a"
    assert received.metadata.app_rel_path == "apps/a"
    assert received.metadata.checksum == hashlib.sha256(data).hexdigest()
    assert received.metadata.env == (("ARGOCD_APP_NAME", "a"), ("B", "2"), ("A", "1"))
    assert any(p.startswith(".git/objects/") for p in received.tree.files)
    assert_same_tree(received, repo)


def test_extracting_the_received_tree_gives_the_checkout_back(repo: Path,
                                                              tmp_path: Path) -> None:
    received = receive(iter(messages(gnu_tgz(repo))))
    dest = tmp_path / "out"
    dest.mkdir()
    written = received.tree.extract(dest)
    files, links, dirs, executables = disk_entries(repo)
    assert written == sum(len(d) for d in files.values())
    assert disk_entries(dest) == (files, links, dirs, executables)
    assert tree_digest(dest) == tree_digest(repo)


def test_chunk_size_does_not_matter(repo: Path) -> None:
    data = gnu_tgz(repo)
    one = receive(iter(messages(data, chunk=1))).tree
    big = receive(iter(messages(data, chunk=1 << 20))).tree
    assert one.shape_digest() == big.shape_digest() == tree_digest(repo)


def test_a_checksum_seen_before_is_served_from_the_cache_without_parsing(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = gnu_tgz(repo)
    trees = SourceTreeCache(64 << 20)
    first = receive(iter(messages(data)), trees=trees)
    assert trees.get(first.metadata.checksum) is first.tree

    def no_parse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the archive was parsed again")

    monkeypatch.setattr(stream, "parse_archive", no_parse)
    second = receive(iter(messages(data, name="other")), trees=trees)
    assert second.reused is True
    assert second.tree is first.tree
    assert second.metadata.app_name == "other"
    assert second.compressed_bytes == len(data)


def test_the_cache_never_vouches_for_bytes_that_do_not_hash_to_the_checksum(
        repo: Path) -> None:
    data = gnu_tgz(repo)
    trees = SourceTreeCache(64 << 20)
    receive(iter(messages(data)), trees=trees)
    forged = messages(data[:-1] + bytes([data[-1] ^ 1]), checksum=hashlib.sha256(data).hexdigest())
    line = error_line(lambda: receive(iter(forged), trees=trees))
    assert CHECKSUM_ERROR in line


def error_line(call: Callable[[], object]) -> str:
    """The one line of the StreamError ``call`` raises."""
    with pytest.raises(StreamError) as caught:
        call()
    assert isinstance(caught.value, InputError)
    line = caught.value.one_line()
    assert line and "\n" not in line and "\r" not in line and "Traceback" not in line
    return line


def fails(data: bytes, limits: StreamLimits | None = None) -> str:
    return error_line(lambda: receive(iter(messages(data)), limits))


SMALL = tgz(member("apps/a/cm.yaml", data=b"kind: ConfigMap\n"))


def counted(requests: list[AppStreamRequest], seen: list[int]) -> Iterator[AppStreamRequest]:
    for request in requests:
        seen.append(1)
        yield request


# -- the order and the checksum ----------------------------------------------------------

def test_no_metadata_at_all() -> None:
    assert "holds no metadata" in error_line(lambda: receive(iter([])))


def test_a_file_chunk_before_the_metadata() -> None:
    requests = messages(SMALL)
    requests = [requests[1], requests[0], *requests[2:]]
    assert "before the metadata" in error_line(lambda: receive(iter(requests)))


def test_metadata_twice_stops_at_the_second() -> None:
    requests = messages(SMALL)
    requests.insert(1, requests[0])
    seen: list[int] = []
    assert "metadata was sent twice" in error_line(lambda: receive(counted(requests, seen)))
    assert len(seen) == 2


def test_a_message_with_neither_field() -> None:
    requests = [*messages(SMALL), AppStreamRequest()]
    assert "neither metadata nor a file chunk" in error_line(lambda: receive(iter(requests)))


def test_a_wrong_checksum_is_argos_validation_error() -> None:
    wrong = hashlib.sha256(b"something else").hexdigest()
    line = error_line(lambda: receive(iter(messages(SMALL, checksum=wrong))))
    assert CHECKSUM_ERROR in line and wrong in line


@pytest.mark.parametrize("checksum", ["", "ABC", "A" * 64, "g" * 64, "0" * 63])
def test_a_checksum_that_is_no_sha256_is_refused_at_once(checksum: str) -> None:
    seen: list[int] = []
    line = error_line(lambda: receive(counted(messages(SMALL, checksum=checksum), seen)))
    assert CHECKSUM_ERROR in line and "64 lowercase hex" in line
    assert len(seen) == 1


def test_the_size_must_be_the_archives() -> None:
    assert "the metadata says" in error_line(
        lambda: receive(iter(messages(SMALL, size=len(SMALL) + 1))))
    assert "longer than the" in error_line(
        lambda: receive(iter(messages(SMALL, size=len(SMALL) - 1))))
    assert "negative size" in error_line(lambda: receive(iter(messages(SMALL, size=-1))))


@pytest.mark.parametrize(("rel", "problem"), [
    ("/etc", "absolute"), ("../up", "'..'"), ("apps/../../x", "'..'"), ("a\x00b", "NUL")])
def test_a_bad_app_rel_path(rel: str, problem: str) -> None:
    line = error_line(lambda: receive(iter(messages(SMALL, rel=rel))))
    assert "appRelPath" in line and problem in line


@pytest.mark.parametrize(("rel", "expected"), [
    (".", "."), ("", "."), ("./apps//a/", "apps/a"), ("apps/a", "apps/a")])
def test_the_app_rel_path_is_normalised(rel: str, expected: str) -> None:
    assert receive(iter(messages(SMALL, rel=rel))).metadata.app_rel_path == expected


# -- the archive -------------------------------------------------------------------------

def test_a_truncated_gzip(repo: Path) -> None:
    data = gnu_tgz(repo)
    assert "truncated" in fails(data[:len(data) // 2])
    assert "truncated" in fails(data[:-4])  # only the gzip trailer cut


def test_corrupt_gzip_data(repo: Path) -> None:
    data = bytearray(gnu_tgz(repo))
    data[len(data) // 2] ^= 0xFF
    assert "the archive is" in fails(bytes(data))


def test_not_gzip_at_all() -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        archive.addfile(member("f", data=b"x")[0], io.BytesIO(b"x"))
    assert "not valid gzip data" in fails(raw.getvalue())


def test_bytes_after_the_gzip_stream() -> None:
    assert "after the end of the gzip stream" in fails(SMALL + b"junk")


def test_concatenated_gzip_members_are_one_stream() -> None:
    raw = gzip.decompress(tgz(member("a", data=b"1" * 3000), member("b", data=b"2")))
    data = gzip.compress(raw[:1000]) + gzip.compress(raw[1000:])
    tree = receive(iter(messages(data))).tree
    assert tree.read("a") == b"1" * 3000 and tree.read("b") == b"2"


def test_an_empty_archive() -> None:
    assert "no files to send" in fails(tgz())
    assert "no files to send" in fails(tgz(member("only-a-dir", tarfile.DIRTYPE)))
    assert "empty" in fails(b"")


@pytest.mark.parametrize("name", ["../x", "/abs", "a/../../x", "a/../b", "x\x00y"])
def test_tar_slip_names(name: str) -> None:
    line = fails(tgz(member("ok", data=b"1"), member(name, data=b"2")))
    assert repr(name) in line
    assert ("'..'" in line) or ("absolute" in line) or ("NUL" in line)


@pytest.mark.parametrize(("members", "culprit"), [
    ([member("l", tarfile.SYMTYPE, linkname="/etc")], "l"),
    ([member("a/l", tarfile.SYMTYPE, linkname="../../etc/passwd")], "a/l"),
    ([member("a/s", tarfile.SYMTYPE, linkname=".."),                 # the root: fine
      member("a/t", tarfile.SYMTYPE, linkname="s/../x")], "a/t"),    # its parent: out
    ([member("d", tarfile.SYMTYPE, linkname="."),
      member("e", tarfile.SYMTYPE, linkname="d/../etc")], "e"),
])
def test_symlinks_out_of_the_root(members: list[tuple[tarfile.TarInfo, bytes]],
                                  culprit: str) -> None:
    line = fails(tgz(member("a/f", data=b"x"), *members))
    assert f"tar member {culprit!r}" in line
    assert "absolute" in line or "leads out of the root" in line


def test_gnu_tar_of_escaping_symlinks(tmp_path: Path) -> None:
    for target in ("/etc/passwd", "../outside", "sub/../../outside"):
        root = tmp_path / f"t{abs(hash(target))}"
        (root / "sub").mkdir(parents=True)
        (root / "f").write_text("x")
        os.symlink(target, root / "link")
        line = fails(gnu_tgz(root))
        assert "'./link'" in line or "'link'" in line, line


def test_files_under_a_symlink_are_refused() -> None:
    line = fails(tgz(member("d", tarfile.SYMTYPE, linkname="real"),
                     member("real/f", data=b"1"), member("d/f", data=b"2")))
    assert "'d/f'" in line and "under 'd', a symlink" in line


@pytest.mark.parametrize(("kind", "problem"), [
    (tarfile.CHRTYPE, "device"), (tarfile.BLKTYPE, "device"), (tarfile.FIFOTYPE, "FIFO"),
    (tarfile.LNKTYPE, "hard link"), (b"Z", "member type"),
])
def test_other_member_types_are_refused(kind: bytes, problem: str) -> None:
    weird = member("odd", kind, linkname="f" if kind == tarfile.LNKTYPE else "")
    line = fails(tgz(member("f", data=b"TOPSECRET"), weird))
    assert "'odd'" in line and problem in line
    assert "TOPSECRET" not in line  # never a file's content


def test_gnu_tar_of_a_fifo_and_a_hard_link(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    fifo.mkdir()
    (fifo / "f").write_text("x")
    os.mkfifo(fifo / "pipe")
    assert "FIFO" in fails(gnu_tgz(fifo))
    hard = tmp_path / "hard"
    hard.mkdir()
    (hard / "a").write_text("x")
    os.link(hard / "a", hard / "b")
    assert "hard link" in fails(gnu_tgz(hard))


def test_duplicates_are_refused_not_later_wins() -> None:
    line = fails(tgz(member("f", data=b"1"), member("f", data=b"2")))
    assert "'f'" in line and "named twice" in line
    line = fails(tgz(member("d", tarfile.DIRTYPE), member("d", tarfile.SYMTYPE, linkname=".")))
    assert "already a directory" in line
    tree = receive(iter(messages(tgz(member("d", tarfile.DIRTYPE), member("d/f", data=b"1"),
                                     member("d", tarfile.DIRTYPE))))).tree
    assert tree.read("d/f") == b"1"


# -- limits ------------------------------------------------------------------------------

def test_the_compressed_cap_stops_the_stream_as_it_arrives(repo: Path) -> None:
    data = gnu_tgz(repo)
    limit = len(data) // 3
    requests = messages(data, size=limit)  # a client announcing less than it sends
    seen: list[int] = []
    line = error_line(lambda: receive(counted(requests, seen),
                                      StreamLimits(max_compressed_bytes=len(data))))
    assert "longer than the" in line
    assert len(seen) < len(requests)
    seen.clear()
    line = error_line(lambda: receive(counted(messages(data, size=0), seen),
                                      StreamLimits(max_compressed_bytes=len(data))))
    assert len(seen) == 2
    line = error_line(lambda: receive(iter(messages(data)),
                                      StreamLimits(max_compressed_bytes=limit)))
    assert "announces" in line and "KILN_CMP_MAX_STREAM_BYTES" in line


def test_the_compressed_cap_without_a_size() -> None:
    requests = messages(SMALL)
    requests.insert(2, requests[1])  # the size no longer matches; the cap comes first
    line = error_line(lambda: receive(iter(requests), StreamLimits(
        max_compressed_bytes=len(SMALL))))
    assert f"exceeds {len(SMALL)} bytes" in line or "longer than the" in line


def test_the_uncompressed_cap() -> None:
    data = tgz(member("a", data=os.urandom(300_000)))
    line = fails(data, StreamLimits(max_bytes=200_000, max_ratio=1e9))
    assert "'a'" in line and "inflates past 200000 bytes" in line
    assert receive(iter(messages(data)), StreamLimits(max_bytes=400_000)).tree.nbytes == 300_000


def test_too_many_entries() -> None:
    data = tgz(*(member(f"f{i:02}", data=b"x") for i in range(11)))
    line = fails(data, StreamLimits(max_files=10))
    assert "'f10'" in line and "more than 10 entries" in line
    assert receive(iter(messages(data)), StreamLimits(max_files=11)).tree.nfiles == 11


class Spy(stream._Inflater):
    """Records how many bytes each archive inflated."""

    totals: list[int] = []

    def read(self, size: int = -1) -> bytes:
        try:
            return super().read(size)
        finally:
            Spy.totals.append(self.total)


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    Spy.totals = []
    monkeypatch.setattr(stream, "_Inflater", Spy)
    return Spy.totals


ZEROS = 50 * 1000 * 1000


def test_a_decompression_bomb_member_is_refused_before_inflating(spy: list[int]) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=9) as archive:
        info = tarfile.TarInfo("bomb")
        info.size = ZEROS
        archive.addfile(info, io.BytesIO(bytes(ZEROS)))
    data = out.getvalue()
    assert len(data) < 100_000  # 50 MB of zeros
    line = fails(data)
    assert "'bomb'" in line and "decompression ratio above 200" in line
    assert max(spy) < 64 * 1024  # only the header was inflated


def test_a_bomb_hidden_after_the_tar_end_is_stopped_at_the_cap(spy: list[int]) -> None:
    raw = gzip.decompress(SMALL)
    data = gzip.compress(raw + bytes(ZEROS), compresslevel=9)
    cap = int(200 * len(data))
    line = fails(data)
    assert "decompression ratio above 200" in line
    assert cap < max(spy) <= cap + 1 < ZEROS // 2


def test_a_bomb_of_many_members_is_refused_at_the_first_past_the_cap(spy: list[int]) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=9) as archive:
        for i in range(50):
            info = tarfile.TarInfo(f"z{i:02}")
            info.size = 1_000_000
            archive.addfile(info, io.BytesIO(bytes(info.size)))
    data = out.getvalue()
    line = fails(data)
    assert "decompression ratio above 200" in line and "tar member 'z" in line
    assert max(spy) <= 200 * len(data) + 1


def test_small_archives_are_not_held_to_the_ratio() -> None:
    # 10 KiB of tar record padding gzips to ~100 bytes: a ratio of 100 with one tiny file.
    data = tgz(member("f", data=b"x"))
    assert receive(iter(messages(data)), StreamLimits(max_ratio=2)).tree.read("f") == b"x"


def test_parse_archive_directly() -> None:
    assert parse_archive(SMALL).read("apps/a/cm.yaml") == b"kind: ConfigMap\n"


# -- settings ----------------------------------------------------------------------------

def test_limits_from_the_environment() -> None:
    assert StreamLimits.from_env({}) == StreamLimits()
    limits = StreamLimits.from_env({"KILN_CMP_MAX_STREAM_BYTES": "500MiB",
                                    "KILN_CMP_MAX_TREE_BYTES": "2g",
                                    "KILN_CMP_MAX_FILES": "7", "KILN_CMP_MAX_RATIO": "12.5"})
    assert limits == StreamLimits(500 << 20, 2 << 30, 7, 12.5)


@pytest.mark.parametrize(("name", "value"), [
    ("KILN_CMP_MAX_STREAM_BYTES", "lots"), ("KILN_CMP_MAX_STREAM_BYTES", "0"),
    ("KILN_CMP_MAX_TREE_BYTES", "-1"), ("KILN_CMP_MAX_FILES", "1.5"),
    ("KILN_CMP_MAX_FILES", "0"), ("KILN_CMP_MAX_RATIO", "nan"), ("KILN_CMP_MAX_RATIO", "-3"),
    ("KILN_CMP_MAX_RATIO", "inf"),
])
def test_a_bad_limit_names_its_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        StreamLimits.from_env({name: value})
    assert caught.value.one_line().startswith(f"{name}: ")


def test_concurrent_streams_of_one_checksum_parse_once(repo: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    data = gnu_tgz(repo)
    calls: list[int] = []
    real = stream.parse_archive
    gate = threading.Barrier(4)

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(1)
        time.sleep(0.5)  # the others are past their cache lookup meanwhile
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(stream, "parse_archive", counting)
    trees = SourceTreeCache(64 << 20)
    results: list[Received] = []

    def one() -> None:
        requests = messages(data)
        gate.wait(10)
        results.append(receive(iter(requests), trees=trees))

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 4 and len(calls) == 1
    assert sorted(r.reused for r in results) == [False, True, True, True]
    assert len({id(r.tree) for r in results}) == 1


def test_directories_implied_by_deep_names_count_as_entries() -> None:
    deep = "/".join(f"d{i}" for i in range(30)) + "/f"
    line = fails(tgz(member(deep, data=b"x")), StreamLimits(max_files=10))
    assert "more than 10 entries" in line and "implies" in line
    assert receive(iter(messages(tgz(member(deep, data=b"x")))),
                   StreamLimits(max_files=31)).tree.nfiles == 1
