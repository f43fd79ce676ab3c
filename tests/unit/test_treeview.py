"""kiln.core.treeview: a tree's shape cannot be forged by names that hold separators."""

from __future__ import annotations

from pathlib import Path

from kiln.core.disktree import tree_digest
from kiln.core.sourcetree import SourceTreeBuilder


def test_a_name_holding_a_newline_cannot_pass_for_two_entries(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "a\nf b").write_text("x")
    (two / "a").write_text("x")
    (two / "b").write_text("x")
    assert tree_digest(one) != tree_digest(two)
    forged = SourceTreeBuilder()
    forged.add_file("a\nf b", b"x")
    plain = SourceTreeBuilder()
    plain.add_file("a", b"x")
    plain.add_file("b", b"x")
    assert forged.build().shape_digest() != plain.build().shape_digest()


def test_memory_and_disk_agree_on_odd_names(tmp_path: Path) -> None:
    names = ["a\nf b", 'q"uote', "sp ace", "ünï"]
    builder = SourceTreeBuilder()
    for name in names:
        (tmp_path / name).write_text("x")
        builder.add_file(name, b"x")
    (tmp_path / "link").symlink_to("sp ace")
    builder.add_symlink("link", "sp ace")
    assert builder.build().shape_digest() == tree_digest(tmp_path)
