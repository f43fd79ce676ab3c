"""Fuzzing GitSources with real git: any revision or URL string gives a commit id or a
KilnError (one line), never another exception; nothing is ever executed or written outside
the cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln.core.deadline import Deadline
from kiln.core.errors import KilnError
from kiln.gitsource import GitSources
from kiln.gitsource.refs import is_commit_id
from tests.gitsource_helpers import Remote, git

pytestmark = pytest.mark.integration

REVISIONS = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["main", "HEAD", "v1", "refs/heads/main", "--upload-pack=touch x", "-",
                     "main~1", "@{-1}", "HEAD^{tree}", "v1^{}", ":/one", "main..v1"]),
    st.from_regex(r"[0-9a-fA-F]{4,64}", fullmatch=True),
    st.from_regex(r"(refs/)?(heads|tags)/[a-z./~^:-]{0,12}", fullmatch=True),
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Remote, GitSources, Path]:
    root = tmp_path_factory.mktemp("gitfuzz")
    remote = Remote(root)
    remote.commit({"a.yaml": "a: 1\n"}, "one")
    git(remote.work, "tag", "v1")
    remote.push()
    # file:// only (an ssh- or http-shaped string never reaches the network), ssh fails fast.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(root), "GIT_SSH_COMMAND": "false"}
    gs = GitSources(root / "mirrors", allowed=["file://*"], env=env, timeout=20, ref_ttl=60)
    return remote, gs, root


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                         HealthCheck.too_slow])
@given(revision=REVISIONS)
def test_any_revision_is_a_commit_or_a_kiln_error(
        world: tuple[Remote, GitSources, Path], revision: str) -> None:
    remote, gs, root = world
    try:
        commit = gs.resolve(remote.url, revision, Deadline(30))
    except KilnError as exc:
        assert "\n" not in exc.one_line()
    else:
        assert is_commit_id(commit)
        assert commit == remote.rev(commit)
    assert not (root / "x").exists()


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                         HealthCheck.too_slow])
@given(url=st.one_of(st.text(max_size=60),
                     st.from_regex(r"(file://)?/[a-zA-Z0-9./%~:@-]{0,30}", fullmatch=True),
                     st.from_regex(r"[a-z+]{2,8}:{1,2}/{0,2}[a-z0-9.:@%/ -]{0,20}",
                                   fullmatch=True)))
def test_any_url_is_a_commit_or_a_kiln_error(
        world: tuple[Remote, GitSources, Path], url: str) -> None:
    _, gs, root = world
    try:
        commit = gs.resolve(url, "main", Deadline(30))
    except KilnError as exc:
        assert "\n" not in exc.one_line()
    else:
        assert is_commit_id(commit)
    assert {p.name for p in root.iterdir()} <= {"remote.git", "remote-work", "mirrors"}
