"""DiskTree (kiln.core.disktree): the TreeView over a directory on disk, checked against
paths, digests and shapes the tests choose, and against a small in-memory TreeView built from
the same files (MemTree below, which the key memo tests use as the server's tree)."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from kiln.core.disktree import DiskTree, tree_digest
from kiln.core.treeview import SKIPPED_DIRS, TreeTooLarge, TreeView, shape_entry, shape_of


class MemTree:
    """A test-only in-memory TreeView: the files, directories and symlinks of a directory read
    once into dictionaries (what the CMP server holds after reading a request's tarball)."""

    def __init__(self, root: Path) -> None:
        self.files: dict[str, bytes] = {}
        self.dirs: set[str] = {""}
        self.links: dict[str, str] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            rel_dir = os.path.relpath(dirpath, root)
            rel_dir = "" if rel_dir == "." else rel_dir
            for name in list(dirnames) + filenames:
                rel = f"{rel_dir}/{name}" if rel_dir else name
                path = os.path.join(dirpath, name)
                if os.path.islink(path):
                    self.links[rel] = os.readlink(path)
                elif os.path.isdir(path):
                    self.dirs.add(rel)
                else:
                    self.files[rel] = Path(path).read_bytes()
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]

    def realpath(self, rel: str) -> str | None:
        todo = rel.split("/") if rel else []
        resolved: list[str] = []
        hops = 0
        while todo:
            part = todo.pop(0)
            if part in ("", "."):
                continue
            if part == "..":
                if not resolved:
                    return None
                resolved.pop()
                continue
            candidate = "/".join([*resolved, part])
            if candidate in self.links:
                hops += 1
                target = self.links[candidate]
                if hops > 40 or target.startswith("/"):
                    return None
                todo = target.split("/") + todo
                continue
            if candidate in self.files and todo:
                return None
            if candidate not in self.files and candidate not in self.dirs:
                return None
            resolved.append(part)
        return "/".join(resolved)

    def file_digest(self, real_rel: str) -> str | None:
        data = self.files.get(real_rel)
        return None if data is None else hashlib.sha256(data).hexdigest()

    def shape_digest(self, rel: str = "", limit: int = 20_000) -> str:
        if rel and rel not in self.dirs:
            raise KeyError(rel)
        prefix = f"{rel}/" if rel else ""
        entries: list[str] = []
        for kind, paths in (("f", self.files), ("d", self.dirs), ("l", self.links)):
            for path in paths:
                if not path.startswith(prefix) or path == rel:
                    continue
                sub = path[len(prefix):]
                parts = sub.split("/")
                if any(p in SKIPPED_DIRS and prefix + "/".join(parts[:i + 1]) in self.dirs
                       for i, p in enumerate(parts)):
                    continue
                entries.append(shape_entry(kind, sub, self.links.get(path, "")))
        if len(entries) > limit:
            raise TreeTooLarge(f"more than {limit} paths")
        return shape_of(entries)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "a" / "one.yaml").write_text("one\n")
    (root / "a" / "b" / "two.yaml").write_text("two\n")
    (root / "link.yaml").symlink_to("a/one.yaml")
    (root / "a" / "up.yaml").symlink_to("../link.yaml")          # a chain of two links
    (root / "dirlink").symlink_to("a/b")                          # a directory link
    (root / "escape.yaml").symlink_to("../outside.yaml")          # leaves the root
    (root / "loop1").symlink_to("loop2")
    (root / "loop2").symlink_to("loop1")
    (root / "dangling.yaml").symlink_to("a/missing.yaml")
    (tmp_path / "outside.yaml").write_text("outside\n")
    return root


def views(root: Path) -> list[TreeView]:
    return [DiskTree(root), MemTree(root)]


@pytest.mark.parametrize("rel, real", [
    ("a/one.yaml", "a/one.yaml"),
    ("link.yaml", "a/one.yaml"),
    ("a/up.yaml", "a/one.yaml"),
    ("dirlink/two.yaml", "a/b/two.yaml"),
    ("dirlink", "a/b"),
    ("a", "a"),
    ("", ""),
    ("escape.yaml", None),
    ("loop1", None),
    ("dangling.yaml", None),
    ("a/missing.yaml", None),
    ("nowhere/one.yaml", None),
    ("a/one.yaml/x", None),
])
def test_realpath(tree: Path, rel: str, real: str | None) -> None:
    for view in views(tree):
        assert view.realpath(rel) == real, type(view).__name__


def test_escapes_tells_leaving_from_missing(tree: Path) -> None:
    disk = DiskTree(tree)
    assert disk.escapes("escape.yaml")
    assert not disk.escapes("a/missing.yaml")
    assert not disk.escapes("a/one.yaml")
    assert disk.escapes("../outside.yaml")


def test_disk_paths_with_dotdot_are_normalised_lexically(tree: Path) -> None:
    disk = DiskTree(tree)
    assert disk.realpath("a/b/../one.yaml") == "a/one.yaml"
    assert disk.realpath("../root/a/one.yaml") == "a/one.yaml"
    assert disk.realpath("../outside.yaml") is None


def test_file_digest(tree: Path, tmp_path: Path) -> None:
    for view in views(tree):
        assert view.file_digest("a/one.yaml") == hashlib.sha256(b"one\n").hexdigest()
        assert view.file_digest("a") is None
        assert view.file_digest("a/missing.yaml") is None
    os.mkfifo(tree / "fifo")
    assert DiskTree(tree).file_digest("fifo") is None  # and it did not block


def test_shape_lists_every_path_and_link_target_but_git(tree: Path) -> None:
    expected = shape_of([
        "d a", "d a/b", "f a/one.yaml", "f a/b/two.yaml", "l a/up.yaml ../link.yaml",
        "l link.yaml a/one.yaml", "l dirlink a/b", "l escape.yaml ../outside.yaml",
        "l loop1 loop2", "l loop2 loop1", "l dangling.yaml a/missing.yaml",
    ])
    for view in views(tree):
        assert view.shape_digest() == expected
    sub = shape_of(["d b", "f one.yaml", "f b/two.yaml", "l up.yaml ../link.yaml"])
    for view in views(tree):
        assert view.shape_digest("a") == sub
    assert tree_digest(tree) == expected


def test_shape_changes_with_the_tree_not_with_contents(tree: Path, tmp_path: Path) -> None:
    before = DiskTree(tree).shape_digest()
    (tree / "a" / "one.yaml").write_text("changed\n")
    (tree / ".git" / "new").write_text("x\n")
    assert DiskTree(tree).shape_digest() == before
    (tree / "link.yaml").unlink()
    (tree / "link.yaml").symlink_to("a/b/two.yaml")
    retargeted = DiskTree(tree).shape_digest()
    assert retargeted != before
    (tree / "a" / "b" / "three.yaml").write_text("3\n")
    assert DiskTree(tree).shape_digest() not in (before, retargeted)
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy, symlinks=True)
    assert DiskTree(copy).shape_digest() == DiskTree(tree).shape_digest() == \
        MemTree(tree).shape_digest()


def test_shape_refuses_large_trees(tree: Path) -> None:
    with pytest.raises(TreeTooLarge):
        DiskTree(tree).shape_digest("", limit=3)
    assert len(DiskTree(tree).shape_digest("", limit=100)) == 64
