"""Property tests of what ``kiln hydrate`` parses: a dry commit's message (its commit-tracing
trailers), destinations, and the record of paths it wrote (which an attacker may edit)."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from kiln.core.errors import ConfigError
from kiln.hydrate.layout import TRAILER_PREFIX, DryCommit, split_references
from kiln.hydrate.writer import RECORD, HydratedApp, check_path, write_tree
from tests.fuzz.bounds import FUZZ, result_or_kiln_error

KEYS = st.sampled_from(["sha", "repourl", "author", "date", "subject", "body", "bogus", ""])
TRAILER = st.builds(lambda k, v: f"{TRAILER_PREFIX}{k}: {v}", KEYS, st.text(max_size=40))
LINES = st.lists(st.one_of(TRAILER, st.text(max_size=40).map(lambda t: t.replace("\n", " "))),
                 max_size=12)


@FUZZ
@given(lines=LINES)
def test_trailers_taken_out_are_exactly_the_valid_ones(lines: list[str]) -> None:
    body = "\n".join(lines)
    refs, rest = split_references(body)
    kept = rest.split("\n")[:-1] if rest else []
    # every kept line is an original line, in order; every line taken out is a trailer
    original = [line.removesuffix("\r") for line in body.split("\n")]
    if original[-1] == "":
        original.pop()
    it = iter(original)
    assert all(any(line == other for other in it) for line in kept)
    assert len(refs) == (1 if len(kept) < len(original) else 0)
    assert all(line.startswith(TRAILER_PREFIX) for line in original if line not in kept)
    message = DryCommit.from_message("a" * 40, f"subject\n\n{body}").commit_message()
    assert message.startswith("aaaaaaa: subject")


@FUZZ
@given(path=st.text(max_size=40))
def test_destinations_never_leave_the_root(path: str) -> None:
    out = result_or_kiln_error(lambda: check_path(path, "fuzz"))
    if isinstance(out, str):
        parts = out.split("/")
        assert out and ".." not in parts and "." not in parts and "" not in parts
        assert not out.startswith("/") and ".git" not in (p.lower() for p in parts)
    else:
        assert isinstance(out, ConfigError)


@FUZZ
@given(paths=st.lists(st.one_of(st.text(max_size=20), st.integers(), st.none()), max_size=6),
       extra=st.text(max_size=20))
def test_any_record_removes_nothing_outside(paths: list[object], extra: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        victim = root / "victim"
        victim.mkdir()
        (victim / "manifest.yaml").write_text("keep")
        out = root / "out"
        write_tree(out, [HydratedApp("a", "a", b"x")], DryCommit("1" * 40))
        (out / RECORD).write_text(json.dumps({"paths": [*paths, "../victim", extra]}))
        result_or_kiln_error(lambda: write_tree(out, [HydratedApp("a", "a", b"x")],
                                                DryCommit("1" * 40)))
        assert (victim / "manifest.yaml").read_text() == "keep"
        assert (out / "a/manifest.yaml").read_bytes() == b"x"
