"""GitSources.tree against real git: the tree equals a checkout of the commit (walked on
disk by kiln's DiskTree and by os), symlinks, executables, submodules, limits, the blob memo
and the tree cache."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from kiln.core.deadline import Deadline
from kiln.core.disktree import DiskTree
from kiln.gitsource import (
    GitPathError,
    GitRevisionError,
    GitSources,
    GitTreeError,
    GitTreeTooLarge,
    TreeLimits,
    check_directory,
)
from tests.gitsource_helpers import Remote, git

pytestmark = pytest.mark.integration

FILES = {
    "apps/web/kustomization.yaml": "resources: [../../base]\n",
    "apps/web/values.yaml": "replicas: 2\n",
    "base/deploy.yaml": "kind: Deployment\n",
    "charts/c/Chart.yaml": "name: c\nversion: 0.1.0\n",
    "bin/tool.sh": "#!/bin/sh\necho hi\n",
    "weird name/with space.txt": "spaces\n",
    "unicodé/ファイル.yaml": "x: 1\n",
    "binary.bin": bytes(range(256)) * 4,
    "empty": "",
}
LINKS = {"apps/api": "web", "apps/web/base": "../../base", "latest.yaml": "apps/web/values.yaml",
         "dangling": "nowhere/at/all"}


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    repo = Remote(tmp_path)
    repo.commit(FILES, "one", executable=("bin/tool.sh",), symlinks=LINKS)
    repo.push()
    return repo


def sources(tmp_path: Path, **kw: object) -> GitSources:
    return GitSources(tmp_path / "mirrors", **kw)  # type: ignore[arg-type]


def deadline() -> Deadline:
    return Deadline(60)


def checkout(remote: Remote, commit: str, dest: Path) -> Path:
    """A checkout of ``commit`` by git itself (the worktree's ``.git`` file removed: it is
    git's bookkeeping, not the repository's content)."""
    git(remote.work, "worktree", "add", "--detach", "--quiet", str(dest), commit)
    (dest / ".git").unlink()
    return dest


def walk(root: Path) -> dict[str, tuple[str, object]]:
    """What os sees in a checkout: every entry by relative path (``.git`` left out)."""
    seen: dict[str, tuple[str, object]] = {}
    for top, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".git"]
        for name in dirs + files:
            path = Path(top) / name
            rel = path.relative_to(root).as_posix()
            if rel == ".git":
                continue
            if path.is_symlink():
                seen[rel] = ("l", os.readlink(path))
            elif path.is_dir():
                seen[rel] = ("d", None)
            else:
                mode = path.stat().st_mode
                seen[rel] = ("x" if mode & stat.S_IXUSR else "f", path.read_bytes())
    return seen


def tree_entries(tree: object) -> dict[str, tuple[str, object]]:
    from kiln.core.sourcetree import SourceTree

    assert isinstance(tree, SourceTree)
    out: dict[str, tuple[str, object]] = {}
    for path, kind in tree.walk():
        if kind == "l":
            out[path] = ("l", tree.symlinks[path])
        elif kind == "d":
            out[path] = ("d", None)
        else:
            out[path] = ("x" if tree.is_executable(path) else "f", tree.files[path].data)
    return out


def test_tree_equals_the_checked_out_work_tree(remote: Remote, tmp_path: Path) -> None:
    commit = remote.rev("main")
    gs = sources(tmp_path)
    tree = gs.tree(remote.url, gs.resolve(remote.url, "main", deadline()), deadline())
    disk = checkout(remote, commit, tmp_path / "checkout")
    assert tree_entries(tree) == walk(disk)
    view = DiskTree(disk)
    assert tree.shape_digest() == view.shape_digest()
    assert tree.shape_digest("apps") == view.shape_digest("apps")
    for rel in [*FILES, *LINKS]:
        assert tree.realpath(rel) == view.realpath(rel), rel
        real = tree.realpath(rel)
        if real is not None:
            assert tree.file_digest(real) == view.file_digest(real), rel


def test_symlinks_and_executables(remote: Remote, tmp_path: Path) -> None:
    gs = sources(tmp_path)
    tree = gs.tree(remote.url, gs.resolve(remote.url, "main", deadline()), deadline())
    assert tree.realpath("apps/api") == "apps/web"
    assert tree.read("apps/api/values.yaml") == b"replicas: 2\n"
    assert tree.read("apps/web/base/deploy.yaml") == b"kind: Deployment\n"
    assert tree.realpath("dangling") is None
    assert tree.is_executable("bin/tool.sh") and not tree.is_executable("apps/web/values.yaml")
    out = tmp_path / "out"
    out.mkdir()
    tree.extract(out)
    assert os.access(out / "bin/tool.sh", os.X_OK)
    assert os.readlink(out / "apps/api") == "web"


def test_symlink_out_of_the_repository_refuses_the_tree(tmp_path: Path) -> None:
    repo = Remote(tmp_path)
    commit = repo.commit({"a.yaml": "a: 1\n"}, symlinks={"escape": "../../etc/passwd"})
    repo.push()
    with pytest.raises(GitTreeError) as caught:
        sources(tmp_path).tree(repo.url, commit, deadline())
    assert caught.value.status == 422
    assert "'escape'" in caught.value.one_line() and "leads out of the root" in str(caught.value)


def test_submodules_are_left_out(remote: Remote, tmp_path: Path) -> None:
    other = remote.rev("main")
    git(remote.work, "update-index", "--add", "--cacheinfo", f"160000,{other},vendor/sub")
    git(remote.work, "commit", "--quiet", "-m", "a submodule")
    remote.push("main")
    gs = sources(tmp_path)
    tree = gs.tree(remote.url, gs.resolve(remote.url, "main", deadline()), deadline())
    assert tree.kind("vendor/sub") is None and tree.kind("vendor") is None
    assert "git ls-tree" not in str(tree.files)  # and the rest is all there
    assert tree.read("apps/web/values.yaml") == b"replicas: 2\n"


def test_dot_git_path_is_refused(tmp_path: Path) -> None:
    repo = Remote(tmp_path)
    repo.commit({"a": "a\n"})
    blob = git(repo.work, "hash-object", "-w", "--stdin", input=b"[core]\n")
    inner = git(repo.work, "mktree", input=f"100644 blob {blob}\tconfig\n".encode())
    top = git(repo.work, "mktree", input=f"040000 tree {inner}\t.GIT\n".encode())
    commit = git(repo.work, "commit-tree", top, "-m", "evil")
    git(repo.work, "push", "--quiet", "origin", f"{commit}:refs/heads/evil")
    with pytest.raises(GitTreeError, match=r"'\.git' component"):
        sources(tmp_path).tree(repo.url, commit, deadline())


def test_second_commit_hashes_only_the_changed_blob(remote: Remote, tmp_path: Path) -> None:
    gs = sources(tmp_path, ref_ttl=0)
    first = gs.tree(remote.url, gs.resolve(remote.url, "main", deadline()), deadline())
    distinct = len({f.sha256 for f in first.files.values()})
    assert gs.stats()["blobsHashed"] == distinct
    remote.commit({"apps/web/values.yaml": "replicas: 5\n", "new.txt": "replicas: 5\n"})
    remote.push("main")
    second = gs.tree(remote.url, gs.resolve(remote.url, "main", deadline()), deadline())
    assert gs.stats()["blobsHashed"] == distinct + 1  # one new blob, named twice
    assert second.read("new.txt") == b"replicas: 5\n"
    # Unchanged files share their bytes with the first tree (no second copy in memory).
    assert second.files["base/deploy.yaml"].data is first.files["base/deploy.yaml"].data
    assert second.files["apps/web/values.yaml"].sha256 != first.files["apps/web/values.yaml"].sha256


def test_blob_memo_is_shared_across_repositories(remote: Remote, tmp_path: Path) -> None:
    copy = tmp_path / "copy.git"
    git(tmp_path, "clone", "--quiet", "--bare", str(remote.bare), str(copy))
    gs = sources(tmp_path)
    gs.tree(remote.url, remote.rev("main"), deadline())
    hashed = gs.stats()["blobsHashed"]
    gs.tree(f"file://{copy}", remote.rev("main"), deadline())
    assert gs.stats()["blobsHashed"] == hashed


def test_trees_are_cached_per_commit(remote: Remote, tmp_path: Path) -> None:
    gs = sources(tmp_path)
    commit = gs.resolve(remote.url, "main", deadline())
    assert gs.tree(remote.url, commit, deadline()) is gs.tree(remote.url, commit, deadline())
    assert gs.tree(str(remote.bare), commit, deadline()) is gs.tree(remote.url, commit,
                                                                    deadline())
    assert gs.stats()["treesBuilt"] == 1


def test_tree_of_a_commit_not_yet_fetched(remote: Remote, tmp_path: Path) -> None:
    tree = sources(tmp_path).tree(remote.url, remote.rev("main"), deadline())
    assert tree.read("base/deploy.yaml") == b"kind: Deployment\n"


@pytest.mark.parametrize("commit", ["main", "abc", "0" * 40, "--output=x" + "0" * 30])
def test_tree_wants_an_existing_full_commit_id(remote: Remote, tmp_path: Path,
                                               commit: str) -> None:
    with pytest.raises(GitRevisionError) as caught:
        sources(tmp_path).tree(remote.url, commit, deadline())
    assert caught.value.status == 404


def test_limits_make_a_large_tree_a_one_line_error(remote: Remote, tmp_path: Path) -> None:
    commit = remote.rev("main")
    with pytest.raises(GitTreeTooLarge) as caught:
        sources(tmp_path, limits=TreeLimits(max_files=5)).tree(remote.url, commit, deadline())
    assert caught.value.status == 413 and "more than 5" in caught.value.one_line()
    with pytest.raises(GitTreeTooLarge, match="more than 100 bytes"):
        sources(tmp_path, limits=TreeLimits(max_bytes=100)).tree(remote.url, commit,
                                                                 deadline())
    # Directories implied by the names count as entries too.
    with pytest.raises(GitTreeTooLarge, match="directories"):
        sources(tmp_path, limits=TreeLimits(max_files=14)).tree(remote.url, commit,
                                                                deadline())


def test_check_directory(remote: Remote, tmp_path: Path) -> None:
    gs = sources(tmp_path)
    tree = gs.tree(remote.url, remote.rev("main"), deadline())
    assert check_directory(tree, "apps/web/", remote.url) == "apps/web"
    assert check_directory(tree, "apps/api", remote.url) == "apps/api"  # a symlink to one
    assert check_directory(tree, ".", remote.url) == "."
    for bad in ("apps/nope", "apps/web/values.yaml", "../x", "/etc", "dangling"):
        with pytest.raises(GitPathError) as caught:
            check_directory(tree, bad, remote.url)
        assert caught.value.status == 404
