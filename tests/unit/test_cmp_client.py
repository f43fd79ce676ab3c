"""The repo-server-like client (tests/cmp_client.py) is itself an oracle for the stream format,
so it is checked here against facts of Argo CD's sender: Go ``filepath.Match`` semantics,
``filepath.Walk`` order, what the archive holds, and the metadata message."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.cmp_client import (
    BadPattern,
    Entry,
    file_requests,
    filepath_match,
    prepare,
    repo_tgz,
    tgz_of_entries,
    walk,
)

# Go's documented filepath.Match behaviour (pattern, name, matched), Unix separator.
GO_MATCH = [
    ("abc", "abc", True), ("*", "abc", True), ("*c", "abc", True), ("a*", "a", True),
    ("a*", "abc", True), ("a*", "ab/c", False), ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False), ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True), ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True), ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True), ("ab[b-d]", "abc", True), ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False), ("ab[^b-d]", "abc", False), ("ab[^e-g]", "abc", True),
    ("a\\*b", "a*b", True), ("a\\*b", "ab", False), ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True), ("a???b", "a☺b", False), ("a?b", "a/b", False),
    ("[\\]a]", "]", True), ("[\\-]", "-", True), ("[x\\-]", "x", True), ("[x\\-]", "-", True),
    ("[x\\-]", "z", False), ("*x", "xxx", True), (".git/*", ".git/HEAD", True),
    (".git/*", ".git/objects/ab", False), (".git/*", ".git", False),
]
GO_BAD = ["[]a]", "[-]", "[x-]", "[a-b-c]", "[", "[^", "[^bc", "a[", "\\", "[a-"]


@pytest.mark.parametrize("pattern,name,matched", GO_MATCH)
def test_filepath_match_like_go(pattern: str, name: str, matched: bool) -> None:
    assert filepath_match(pattern, name) is matched


@pytest.mark.parametrize("pattern", GO_BAD)
def test_bad_patterns_are_refused_like_go(pattern: str) -> None:
    with pytest.raises(BadPattern):
        filepath_match(pattern, "a")


SAFE = st.text(alphabet="abc./-_", min_size=0, max_size=12)


@settings(max_examples=200, deadline=None)
@given(SAFE, SAFE)
def test_a_pattern_without_metacharacters_matches_only_itself(pattern: str, name: str) -> None:
    assert filepath_match(pattern, name) is (pattern == name)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab/", max_size=10), st.text(alphabet="ab/", max_size=10))
def test_star_never_crosses_a_separator(prefix: str, rest: str) -> None:
    name = prefix + rest
    assert filepath_match(re.sub(r"([*?\[\\])", r"\\\1", prefix) + "*", name) is (
        "/" not in rest)


def _tree(root: Path) -> Path:
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".git" / "objects" / "ab").write_bytes(b"\x00blob")
    (root / "apps" / "web").mkdir(parents=True)
    (root / "apps" / "web" / "b.yaml").write_text("b\n")
    (root / "apps" / "web" / "a.yaml").write_text("a\n")
    (root / "apps" / "web" / "run.sh").write_text("#!/bin/sh\n")
    (root / "apps" / "web" / "run.sh").chmod(0o755)
    (root / "apps" / "web" / "link.yaml").symlink_to("a.yaml")
    (root / "Z.md").write_text("z\n")
    os.mkfifo(root / "apps" / "fifo")
    return root


def test_walk_order_is_go_filepath_walk(tmp_path: Path) -> None:
    root = _tree(tmp_path / "repo")
    names = [rel for rel, _ in walk(root)]
    # Root first, then byte-wise sorted names (upper case before dot-less lower case), depth
    # first; the FIFO is walked (and later left out of the archive).
    assert names == [".", ".git", ".git/HEAD", ".git/objects", ".git/objects/ab", "Z.md",
                     "apps", "apps/fifo", "apps/web", "apps/web/a.yaml", "apps/web/b.yaml",
                     "apps/web/link.yaml", "apps/web/run.sh"]
    excluded = [rel for rel, _ in walk(root, [".git/*", "apps/web/*.sh"])]
    assert ".git" in excluded and ".git/HEAD" not in excluded and ".git/objects" not in excluded
    assert "apps/web/run.sh" not in excluded
    assert [rel for rel, _ in walk(root, [".git"])][:2] == [".", "Z.md"]  # skipped whole


def test_archive_holds_files_dirs_and_symlinks_with_disk_metadata(tmp_path: Path) -> None:
    root = _tree(tmp_path / "repo")
    tgz, files = repo_tgz(root)
    assert files == 6  # regular files only (Argo counts these for "no files to send")
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert "apps/fifo" not in members
        assert members["."].isdir() and members[".git"].isdir()
        link = members["apps/web/link.yaml"]
        assert link.issym() and link.linkname == "a.yaml"
        run = members["apps/web/run.sh"]
        assert run.mode == 0o755 and run.uid == os.getuid()
        assert run.mtime == pytest.approx((root / "apps/web/run.sh").stat().st_mtime)
        extracted = tar.extractfile("apps/web/a.yaml")
        assert extracted is not None and extracted.read() == b"a\n"
        assert tar.extractfile(".git/objects/ab").read() == b"\x00blob"  # type: ignore[union-attr]
    # Raw headers: directory names carry no trailing slash (Go's writer keeps them as given).
    raw = gzip.decompress(tgz)
    assert b".git/\x00" not in raw and b"apps/web/\x00" not in raw


def test_metadata_and_chunks(tmp_path: Path) -> None:
    root = _tree(tmp_path / "repo")
    stream = prepare(root, "apps/web", {"ARGOCD_APP_NAME": "guestbook", "X": "a=b"},
                     chunk_size=100)
    meta = stream.metadata.metadata
    assert (meta.appName, meta.appRelPath) == ("web", "apps/web")
    assert meta.checksum == hashlib.sha256(stream.tgz).hexdigest()
    assert meta.size == len(stream.tgz)
    assert [(e.name, e.value) for e in meta.env] == [("ARGOCD_APP_NAME", "guestbook"),
                                                     ("X", "a=b")]
    messages = list(stream.requests())
    assert messages[0].WhichOneof("request") == "metadata"
    chunks = [m.file.chunk for m in messages[1:]]
    assert all(m.WhichOneof("request") == "file" for m in messages[1:])
    assert b"".join(chunks) == stream.tgz
    assert all(len(c) == 100 for c in chunks[:-1]) and 0 < len(chunks[-1]) <= 100


def test_no_files_to_send(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ValueError, match="no files to send"):
        prepare(tmp_path / "empty", "sub")


def test_hand_made_archives_keep_names_as_given() -> None:
    data = tgz_of_entries([Entry("../evil", b"x"), Entry("l", type=tarfile.SYMTYPE,
                                                         linkname="/etc")])
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        assert [(m.name, m.linkname) for m in tar.getmembers()] == [("../evil", ""),
                                                                    ("l", "/etc")]
    assert list(file_requests(b"")) == []
