"""SourceTree: the in-memory tree is the same tree as on disk (shape, real paths, digests),
refuses what could not be written back safely, extracts without following symlinks, and is
cached within a byte bound."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from pathlib import Path

import pytest

from kiln.cmp.fastpath import tree_digest
from kiln.core.errors import InputError
from kiln.core.sourcetree import (
    SourceTree,
    SourceTreeBuilder,
    SourceTreeCache,
    SourceTreeError,
    normalize_path,
)
from kiln.core.treeview import TreeTooLarge, TreeView

# A tree with everything the shape must get right: nested and empty directories, a directory
# only implied by its file, symlinks to directories (relative, through another link, upwards),
# to files, dangling and looping ones, a nested .git, a symlink named .git, executables.
FILES = {
    "README.md": b"# repo\n",
    "apps/a/kiln.yaml": b"renderer: directory\n",
    "apps/a/cm.yaml": b"kind: ConfigMap\n",
    "apps/b/deep/er/x.yaml": b"x: 1\n",
    "bin/run.sh": b"#!/bin/sh\necho run\n",
    ".git/HEAD": b"ref: refs/heads/main\n",
    ".git/objects/ab/cdef": b"\x78\x9c\x00binary",
    "vendor/.git/config": b"[core]\n",
    "vendor/lib.libsonnet": b"{}\n",
}
EXECUTABLE = {"bin/run.sh"}
DIRS = {"empty", "apps/b/deep/empty"}
LINKS = {
    "shared": "apps/a",               # a directory
    "apps/b/up": "../a",              # a directory, upwards
    "apps/b/via": "../../shared",     # a directory, through another symlink
    "apps/b/deep/er/cm.yaml": "../../../a/cm.yaml",  # a file
    "top": "apps/b/deep/er",          # a nested directory
    "dangling": "apps/missing",
    "loop1": "loop2",
    "loop2": "loop1",
    "apps/.git": "../README.md",      # a symlink named .git is an entry, never skipped
}


def build_tree() -> SourceTree:
    builder = SourceTreeBuilder()
    for rel, data in FILES.items():
        builder.add_file(rel, data, executable=rel in EXECUTABLE)
    for rel in DIRS:
        builder.add_dir(rel)
    for rel, target in LINKS.items():
        builder.add_symlink(rel, target)
    return builder.build()


def write_disk(root: Path) -> Path:
    """The same tree written with plain os calls (the oracle side)."""
    for rel, data in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    for rel in DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)
    for rel, target in LINKS.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(target, root / rel)
    return root


def disk_realpath(root: Path, rel: str) -> str | None:
    """Where ``rel`` really leads on disk, relative to ``root`` (None when it does not exist
    or leaves the root): the oracle for SourceTree.realpath."""
    full = os.path.join(root, rel)
    if not os.path.exists(full):
        return None
    real = os.path.realpath(full)
    real_root = os.path.realpath(root)
    if real == real_root:
        return ""
    if not real.startswith(real_root + os.sep):
        return None
    return os.path.relpath(real, real_root)


def test_the_tree_is_a_treeview() -> None:
    tree: TreeView = build_tree()  # mypy checks the protocol; the call checks it runs
    assert tree.realpath("shared/cm.yaml") == "apps/a/cm.yaml"


def test_shape_equals_tree_digest_of_the_same_tree_written_by_hand(tmp_path: Path) -> None:
    disk = write_disk(tmp_path / "disk")
    tree = build_tree()
    assert tree.shape_digest() == tree_digest(disk)
    for rel in ("apps", "apps/a", "apps/b", "apps/b/deep", "vendor", "shared", "top",
                "apps/b/up", "apps/b/via", "empty"):
        assert tree.shape_digest(rel) == tree_digest(disk / rel), rel


def test_shape_equals_tree_digest_of_its_own_extraction(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    tree = build_tree()
    tree.extract(dest)
    assert tree.shape_digest() == tree_digest(dest)
    assert tree.shape_digest("apps/b/via") == tree_digest(dest / "apps/b/via")


def test_shape_changes_with_paths_and_targets_not_contents() -> None:
    base = build_tree().shape_digest()

    def variant(**change: object) -> str:
        builder = SourceTreeBuilder()
        for rel, data in FILES.items():
            builder.add_file(rel, b"other" if change.get("content") else data)
        for rel in DIRS:
            builder.add_dir(rel)
        for rel, target in LINKS.items():
            builder.add_symlink(rel, "apps" if change.get("retarget") and rel == "shared"
                                else target)
        if change.get("extra"):
            builder.add_dir("extra")
        return builder.build().shape_digest()

    assert variant(content=True) == base
    assert variant(retarget=True) != base
    assert variant(extra=True) != base


def test_git_directories_are_left_out_of_the_shape(tmp_path: Path) -> None:
    with_git = build_tree()
    builder = SourceTreeBuilder()
    for rel, data in FILES.items():
        builder.add_file(rel, data)
        builder.add_file(".git/more/" + rel.replace("/", "_"), data)
    for rel in DIRS:
        builder.add_dir(rel)
    for rel, target in LINKS.items():
        builder.add_symlink(rel, target)
    assert builder.build().shape_digest() == with_git.shape_digest()


def test_shape_limit_matches_tree_digest(tmp_path: Path) -> None:
    disk = write_disk(tmp_path / "disk")
    tree = build_tree()
    count = len([p for p, _ in tree.walk() if (not p.startswith(".git") and "/.git/" not in p
                 and not p.endswith("/.git")) or p == "apps/.git"])
    assert tree.shape_digest(limit=count) == tree_digest(disk, limit=count)
    with pytest.raises(TreeTooLarge):
        tree_digest(disk, limit=count - 1)
    with pytest.raises(TreeTooLarge):
        tree.shape_digest(limit=count - 1)


def test_shape_of_what_is_not_a_directory() -> None:
    tree = build_tree()
    with pytest.raises(FileNotFoundError):
        tree.shape_digest("nowhere")
    with pytest.raises(NotADirectoryError):
        tree.shape_digest("README.md")


def test_realpath_agrees_with_the_kernel(tmp_path: Path) -> None:
    disk = write_disk(tmp_path / "disk")
    tree = build_tree()
    probes = ["", "README.md", "apps", "apps/a/cm.yaml", "shared", "shared/cm.yaml",
              "apps/b/up/cm.yaml", "apps/b/via/kiln.yaml", "apps/b/deep/er/cm.yaml",
              "top/x.yaml", "top/cm.yaml", "dangling", "loop1", "loop1/x", "apps/.git",
              "missing", "README.md/x", "apps/b/up/../b/deep", "shared/../a"]
    for rel in probes:
        assert tree.realpath(rel) == disk_realpath(disk, rel), rel


def test_realpath_never_leaves_the_root() -> None:
    tree = build_tree()
    assert tree.realpath("..") is None
    assert tree.realpath("apps/../..") is None
    assert tree.realpath("/etc/passwd".lstrip("/")) is None


def test_file_digest_and_read_agree_with_hashlib(tmp_path: Path) -> None:
    disk = write_disk(tmp_path / "disk")
    tree = build_tree()
    for rel in FILES:
        expected = hashlib.sha256((disk / rel).read_bytes()).hexdigest()
        assert tree.file_digest(rel) == expected
        assert tree.read(rel) == (disk / rel).read_bytes()
    assert tree.file_digest("shared/cm.yaml") == hashlib.sha256(FILES["apps/a/cm.yaml"]
                                                                 ).hexdigest()
    assert tree.file_digest("apps") is None
    assert tree.file_digest("dangling") is None
    with pytest.raises(FileNotFoundError):
        tree.read("dangling")
    with pytest.raises(IsADirectoryError):
        tree.read("shared")


def test_counts_and_listings() -> None:
    tree = build_tree()
    assert tree.nfiles == len(FILES)
    assert tree.nbytes == sum(len(d) for d in FILES.values())
    assert tree.listdir("apps") == (".git", "a", "b")
    assert tree.listdir("shared") == ("cm.yaml", "kiln.yaml")
    with pytest.raises(NotADirectoryError):
        tree.listdir("README.md")
    assert tree.kind("top") == "l" and tree.kind("apps/b/deep") == "d"
    assert "apps/b/deep" in tree.dirs and "apps/b" in tree.dirs  # implied by their files
    assert tree.is_executable("bin/run.sh") and not tree.is_executable("README.md")
    assert tree.subtree_paths("apps/a") == ("apps/a", "apps/a/cm.yaml", "apps/a/kiln.yaml")
    assert tree.subtree_paths("apps/a/") == tree.subtree_paths("./apps/a")
    assert tree.subtree_paths("") == tuple(sorted(p for p, _ in tree.walk()))
    assert [p for p, _ in tree.walk("apps/b/deep")] == [
        "apps/b/deep", "apps/b/deep/empty", "apps/b/deep/er", "apps/b/deep/er/cm.yaml",
        "apps/b/deep/er/x.yaml"]


@pytest.mark.parametrize(("name", "problem"), [
    ("/etc/passwd", "absolute"),
    ("../x", "'..'"),
    ("a/../../x", "'..'"),
    ("a/..", "'..'"),
    ("a\x00b", "NUL"),
])
def test_bad_names_are_refused(name: str, problem: str) -> None:
    with pytest.raises(SourceTreeError) as caught:
        SourceTreeBuilder().add_file(name, b"")
    assert problem in caught.value.one_line()
    assert repr(name) in caught.value.one_line()
    assert isinstance(caught.value, InputError)


def test_names_are_normalised() -> None:
    assert normalize_path("./a//b/./c/") == "a/b/c"
    assert normalize_path(".") == normalize_path("./") == ""
    builder = SourceTreeBuilder()
    assert builder.add_file("./a//b", b"1") == "a/b"
    builder.add_dir(".")  # the root, named as tar archives do
    assert builder.build().files["a/b"].data == b"1"


def test_paths_under_a_file_or_a_symlink_are_refused() -> None:
    builder = SourceTreeBuilder()
    builder.add_file("f", b"")
    with pytest.raises(SourceTreeError, match="under 'f', a file"):
        builder.add_file("f/x", b"")
    builder.add_symlink("l", "f")
    with pytest.raises(SourceTreeError, match="under 'l', a symlink"):
        builder.add_dir("l/d")


def test_duplicates() -> None:
    builder = SourceTreeBuilder()
    builder.add_dir("d")
    builder.add_file("d/x", b"1")
    builder.add_dir("d")  # a directory again is harmless
    with pytest.raises(SourceTreeError, match="named twice"):
        builder.add_file("d/x", b"2")
    with pytest.raises(SourceTreeError, match="already a directory"):
        builder.add_symlink("d", "elsewhere")
    builder.add_symlink("s", "d")
    with pytest.raises(SourceTreeError, match="symlink is named twice"):
        builder.add_symlink("s", "d/x")
    assert builder.build().read("d/x") == b"1"


@pytest.mark.parametrize(("links", "culprit"), [
    ({"l": "/etc"}, "l"),
    ({"a/l": "../../etc"}, "a/l"),
    ({"l": ".."}, "l"),
    ({"self": ".", "t": "self/.."}, "t"),               # lexically inside, really the parent
    ({"a/s": "..", "a/t": "s/../x"}, "a/t"),            # via a symlinked directory
    ({"d": "a", "a/t": "../d/../../x"}, "a/t"),
    ({"a/l": "missing/../../../x"}, "a/l"),             # dangling, then climbing out
])
def test_symlinks_leading_out_of_the_root_are_refused(links: dict[str, str],
                                                      culprit: str) -> None:
    builder = SourceTreeBuilder()
    builder.add_dir("a")
    with pytest.raises(SourceTreeError) as caught:
        for rel, target in links.items():
            builder.add_symlink(rel, target)
        builder.build()
    assert caught.value.path == culprit
    line = caught.value.one_line()
    assert "absolute" in line or "leads out of the root" in line


def test_inside_symlinks_are_kept(tmp_path: Path) -> None:
    links = {"a/b/up": "..",                 # a directory inside
             "a/b/twice": "up/b/../b",        # through it, still inside
             "a/b/parent": "up/../b",        # .. is taken from where the link leads: b
             "a/b/none": "ghost"}            # dangling is allowed
    builder = SourceTreeBuilder()
    builder.add_file("a/b/f", b"x")
    builder.add_file("b", b"y")
    for rel, target in links.items():
        builder.add_symlink(rel, target)
    tree = builder.build()
    disk = tmp_path / "disk"
    tree.extract(disk.mkdir() or disk)
    for rel in ("a/b/twice/f", "a/b/parent", "a/b/none", "a/b/up/b/f"):
        assert tree.realpath(rel) == disk_realpath(disk, rel), rel
    assert tree.realpath("a/b/twice/f") == "a/b/f"


def test_empty_and_nul_targets_are_refused() -> None:
    with pytest.raises(SourceTreeError, match="empty target"):
        SourceTreeBuilder().add_symlink("l", "")
    with pytest.raises(SourceTreeError, match="NUL"):
        SourceTreeBuilder().add_symlink("l", "a\x00")
    with pytest.raises(SourceTreeError, match="cannot be the root"):
        SourceTreeBuilder().add_file(".", b"")


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_extract_writes_files_modes_and_symlinks(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    tree = build_tree()
    old = os.umask(0o077)  # the modes must not depend on the umask
    try:
        written = tree.extract(dest)
    finally:
        os.umask(old)
    assert written == sum(len(d) for d in FILES.values())
    for rel, data in FILES.items():
        assert (dest / rel).read_bytes() == data
        assert mode(dest / rel) == (0o755 if rel in EXECUTABLE else 0o644), rel
    for rel in (*DIRS, "apps", "apps/b/deep/er", ".git/objects/ab"):
        assert (dest / rel).is_dir() and not (dest / rel).is_symlink()
        assert mode(dest / rel) == 0o755, rel
    for rel, target in LINKS.items():
        assert os.readlink(dest / rel) == target


def test_extract_only_the_selected_entries(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    dest.mkdir()
    tree = build_tree()
    wanted = set(tree.subtree_paths("apps/b/deep")) | {"shared"}
    written = tree.extract(dest, only=wanted.__contains__)
    assert written == len(FILES["apps/b/deep/er/x.yaml"])
    found = {os.path.relpath(os.path.join(d, n), dest)
             for d, dirs, files in os.walk(dest) for n in dirs + files}
    assert found == wanted | {"apps", "apps/b"}  # the directories above come along
    assert os.readlink(dest / "shared") == "apps/a"


def test_extract_refuses_to_write_through_a_symlink_in_dest(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "out"
    dest.mkdir()
    os.symlink(outside, dest / "apps")
    with pytest.raises(SourceTreeError) as caught:
        build_tree().extract(dest)
    assert "refusing to write through" in caught.value.one_line()
    assert list(outside.iterdir()) == []


def test_extract_never_overwrites_or_follows_a_file_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    dest = tmp_path / "out"
    dest.mkdir()
    os.symlink(victim, dest / "README.md")
    with pytest.raises(SourceTreeError, match="already there"):
        build_tree().extract(dest)
    assert victim.read_bytes() == b"keep"


def test_extract_into_a_missing_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        build_tree().extract(tmp_path / "nowhere")


def small_tree(name: str, size: int) -> SourceTree:
    builder = SourceTreeBuilder()
    builder.add_file(name, b"x" * size)
    return builder.build()


def test_cache_is_lru_and_bounded_by_footprint() -> None:
    trees = {k: small_tree(k, 1000) for k in "abcd"}
    one = trees["a"].footprint
    cache = SourceTreeCache(max_bytes=3 * one)
    for key in "abc":
        assert cache.put(key, trees[key])
    assert cache.get("a") is trees["a"]  # now the most recently used
    cache.put("d", trees["d"])
    assert cache.get("b") is None
    assert {k for k in "acd" if cache.get(k) is trees[k]} == set("acd")
    assert len(cache) == 3 and cache.nbytes == 3 * one
    assert not cache.put("big", small_tree("big", 4 * one))
    assert cache.get("big") is None and len(cache) == 3
    cache.put("a", trees["a"])  # replacing a key does not count it twice
    assert cache.nbytes == 3 * one


def test_cache_is_thread_safe() -> None:
    trees = [small_tree(f"f{i}", 100 + i) for i in range(50)]
    cache = SourceTreeCache(max_bytes=10 * trees[-1].footprint)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for step in range(400):
                i = (offset + step) % len(trees)
                cache.put(str(i), trees[i])
                got = cache.get(str((i + 7) % len(trees)))
                assert got is None or got is trees[(i + 7) % len(trees)]
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n * 13,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    held = [t for i, t in enumerate(trees) if cache.get(str(i)) is t]
    assert cache.nbytes == sum(t.footprint for t in held) <= cache.max_bytes


def test_get_or_build_builds_once_for_concurrent_callers() -> None:
    cache = SourceTreeCache(max_bytes=1 << 20)
    tree = small_tree("f", 10)
    started = threading.Event()
    release = threading.Event()
    builds: list[int] = []

    def build() -> SourceTree:
        builds.append(1)
        started.set()
        assert release.wait(10)
        return tree

    results: list[tuple[SourceTree, bool]] = []
    first = threading.Thread(target=lambda: results.append(cache.get_or_build("k", build)))
    first.start()
    assert started.wait(10)
    others = [threading.Thread(target=lambda: results.append(cache.get_or_build("k", build)))
              for _ in range(4)]
    for thread in others:
        thread.start()
    release.set()
    for thread in [first, *others]:
        thread.join(10)
    assert len(builds) == 1
    assert sorted(reused for _, reused in results) == [False, True, True, True, True]
    assert all(got is tree for got, _ in results)


def test_get_or_build_after_a_failed_build_builds_again() -> None:
    cache = SourceTreeCache(max_bytes=1 << 20)

    def broken() -> SourceTree:
        raise SourceTreeError("x", "broken")

    with pytest.raises(SourceTreeError):
        cache.get_or_build("k", broken)
    tree = small_tree("f", 1)
    assert cache.get_or_build("k", lambda: tree) == (tree, False)
    assert cache.get_or_build("k", broken) == (tree, True)


def test_names_and_targets_no_system_could_create_are_refused() -> None:
    with pytest.raises(SourceTreeError, match="longer than 4096 bytes"):
        SourceTreeBuilder().add_file("a/" * 2049, b"")
    with pytest.raises(SourceTreeError, match="component is longer than 255"):
        SourceTreeBuilder().add_file("d/" + "n" * 256, b"")
    with pytest.raises(SourceTreeError, match="component is longer than 255"):
        SourceTreeBuilder().add_file("\u00e9" * 128, b"")  # 256 bytes in UTF-8
    with pytest.raises(SourceTreeError, match="target is longer than 4095"):
        SourceTreeBuilder().add_symlink("l", "a/" * 2048)
    builder = SourceTreeBuilder()
    builder.add_file("n" * 255, b"")
    builder.add_symlink("l", "a/" * 2047)
    assert len(builder.build()) == 2
