"""The hydrated tree on disk: files and contents, unchanged files untouched, stale apps
removed, files kiln did not write kept, nothing outside the output directory touched."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from kiln.core.errors import ConfigError, InputError
from kiln.hydrate.layout import DryCommit
from kiln.hydrate.writer import RECORD, HydratedApp, check_path, write_tree

SHA1 = "1" * 40
SHA2 = "2" * 40


def app(path: str, text: str = "kind: A\n") -> HydratedApp:
    return HydratedApp(name=f"Application {path}", path=path, manifest=text.encode(),
                       commands=("kiln hydrate --applications apps --output-dir OUT",),
                       repo_url="https://git.example.com/r.git")


def hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_contents(tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = write_tree(out, [app("apps/web", "kind: W\n"), app("db")],
                        DryCommit(SHA1, repo_url="https://git.example.com/r.git"))
    assert sorted(hashes(out)) == sorted([
        ".gitattributes", "hydrator.metadata", RECORD,
        "apps/web/manifest.yaml", "apps/web/hydrator.metadata", "apps/web/README.md",
        "db/manifest.yaml", "db/hydrator.metadata", "db/README.md"])
    assert (out / "apps/web/manifest.yaml").read_bytes() == b"kind: W\n"
    meta = json.loads((out / "apps/web/hydrator.metadata").read_text())
    assert meta == {"repoURL": "https://git.example.com/r.git", "drySha": SHA1,
                    "commands": ["kiln hydrate --applications apps --output-dir OUT"]}
    assert f"git checkout {SHA1}\n" in (out / "db/README.md").read_text()
    assert json.loads((out / "hydrator.metadata").read_text())["drySha"] == SHA1
    assert sorted(report.changed) == ["apps/web", "db"]


def test_unchanged_app_keeps_its_files_and_one_change_rewrites_one_app(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, [app("a"), app("b")], DryCommit(SHA1))
    before = hashes(out)
    mtimes = {p: (out / p).stat().st_mtime_ns for p in before}
    again = write_tree(out, [app("a"), app("b")], DryCommit(SHA1))
    assert again.files == [] and not again.manifests_changed
    assert {p: (out / p).stat().st_mtime_ns for p in before} == mtimes
    report = write_tree(out, [app("a", "kind: A2\n"), app("b")], DryCommit(SHA2))
    after = hashes(out)
    changed = {p for p in after if after[p] != before.get(p)}
    assert changed == {"a/manifest.yaml", "a/hydrator.metadata", "a/README.md",
                       "hydrator.metadata"}
    assert report.changed == ["a"]
    assert json.loads((out / "b/hydrator.metadata").read_text())["drySha"] == SHA1
    assert json.loads((out / "a/hydrator.metadata").read_text())["drySha"] == SHA2


def test_stale_apps_removed_foreign_files_kept(tmp_path: Path) -> None:
    out = tmp_path / "out"
    write_tree(out, [app("keep"), app("gone/deep/x"), app("mixed")], DryCommit(SHA1))
    (out / "mixed/notes.txt").write_text("mine")
    (out / "unrelated.txt").write_text("mine too")
    report = write_tree(out, [app("keep")], DryCommit(SHA2))
    assert sorted(report.removed) == ["gone/deep/x", "mixed"]
    assert not (out / "gone").exists()  # emptied directories removed up to the root
    assert sorted(p.name for p in (out / "mixed").iterdir()) == ["notes.txt"]
    assert (out / "unrelated.txt").read_text() == "mine too"
    assert json.loads((out / RECORD).read_text()) == {"paths": ["keep"]}


def test_symlinks_are_never_followed(tmp_path: Path) -> None:
    out, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    (outside / "manifest.yaml").write_text("precious")
    write_tree(out, [app("link/x")], DryCommit(SHA1))
    # the recorded app directory's parent is swapped for a link leaving the tree
    (out / "link/x/manifest.yaml").unlink()
    for name in os.listdir(out / "link/x"):
        (out / "link/x" / name).unlink()
    (out / "link/x").rmdir()
    (out / "link").rmdir()
    (out / "link").symlink_to(outside, target_is_directory=True)
    (outside / "x").mkdir()
    (outside / "x/manifest.yaml").write_text("precious too")
    write_tree(out, [app("other")], DryCommit(SHA1))  # link/x is stale: not followed
    assert (outside / "x/manifest.yaml").read_text() == "precious too"
    with pytest.raises(InputError, match="symbolic link"):
        write_tree(out, [app("link/y")], DryCommit(SHA1))
    assert sorted(p.name for p in outside.iterdir()) == ["manifest.yaml", "x"]
    assert (outside / "manifest.yaml").read_text() == "precious"


def test_a_tampered_record_deletes_nothing_outside(tmp_path: Path) -> None:
    out = tmp_path / "out"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "manifest.yaml").write_text("keep")
    write_tree(out, [app("a")], DryCommit(SHA1))
    (out / RECORD).write_text(json.dumps({"paths": ["../victim", "/etc", "a/../../victim"]}))
    write_tree(out, [app("a")], DryCommit(SHA1))
    assert (victim / "manifest.yaml").read_text() == "keep"


@pytest.mark.parametrize("path", [".", "./", "", "..", "../x", "a/../b", "/abs", ".git/x",
                                  "a/.git", "a\\b"])
def test_bad_destinations(path: str) -> None:
    with pytest.raises(ConfigError):
        check_path(path, "apps/x.yaml: Application x")


def test_two_apps_one_destination(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Application a and Application b both hydrate"):
        write_tree(tmp_path / "o", [HydratedApp("Application a", "x", b""),
                                    HydratedApp("Application b", "x", b"")], DryCommit(SHA1))
    assert not (tmp_path / "o").exists()
