"""Repository URLs and revision strings: normal forms, refusals, masking, allow patterns,
ls-remote parsing, git's environment, and fuzzing (a result or a KilnError, nothing else)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kiln.core.errors import KilnError
from kiln.core.sourcetree import SourceTreeBuilder
from kiln.gitsource import GitURLRefused, normalize_url, redact_url
from kiln.gitsource.git import git_environment, last_line
from kiln.gitsource.refs import (
    is_abbreviated_id,
    is_commit_id,
    parse_ls_remote,
    revision_problem,
)
from kiln.gitsource.trees import BlobMemo
from kiln.gitsource.urls import check_allowed


@pytest.mark.parametrize(("url", "expected"), [
    ("https://GitHub.com/Org/Repo.git", "https://github.com/Org/Repo.git"),
    ("HTTPS://github.com/org/repo/", "https://github.com/org/repo"),
    ("https://github.com//org/./repo", "https://github.com/org/repo"),
    ("http://127.0.0.1:8080/x.git", "http://127.0.0.1:8080/x.git"),
    ("ssh://git@Example.com:2222/org/r.git", "ssh://git@example.com:2222/org/r.git"),
    ("git+ssh://git@example.com/r.git", "ssh://git@example.com/r.git"),
    ("git://example.com/r.git", "git://example.com/r.git"),
    ("git@GitHub.com:org/repo.git", "git@github.com:org/repo.git"),
    ("github.com:org/repo.git", "github.com:org/repo.git"),
    ("  https://example.com/r.git  ", "https://example.com/r.git"),
    ("https://[::1]:8443/r.git", "https://[::1]:8443/r.git"),
])
def test_normal_forms(url: str, expected: str) -> None:
    assert normalize_url(url) == expected


def test_local_paths_are_file_urls_of_the_real_path(tmp_path: Path) -> None:
    real = tmp_path / "real.git"
    real.mkdir()
    (tmp_path / "link.git").symlink_to(real)
    for form in (str(real), f"file://{real}", f"file://localhost{real}", f"{tmp_path}/link.git",
                 f"file://{tmp_path}/./sub/../link.git/"):
        assert normalize_url(form) == f"file://{real}", form


@pytest.mark.parametrize("url", [
    "", "   ", "-u", "--upload-pack=touch /tmp/x", "ext::sh -c touch% /tmp/x",
    "ext::sh%20-c%20id", "fd::3", "transport::address", "ftp://example.com/r.git",
    "relative/path", "./repo", "~/repo", "https://", "https:///nohost", "ssh://-oProxyCommand=x/r",
    "https://example.com/a/../b", "https://example.com/a/%2e%2e/b", "https://example.com/a%2Fb",
    "https://user:pw@example.com/r", "https://token@example.com/r", "ssh://git:pw@host/r",
    "user:pw@host:r.git", "host:", "-host:path", "https://example.com/r?x=1",
    "https://example.com/r#frag", "https://exa mple.com/r", "https://example.com/r\n",
    "file://host/path", "file:relative", "https://example.com:99999/r", "x" * 3000,
    "file:///tmp/%2e%2e/etc",
])
def test_refused_urls(url: str) -> None:
    with pytest.raises(GitURLRefused) as caught:
        normalize_url(url)
    assert caught.value.status == 403
    assert "\n" not in caught.value.one_line()


@pytest.mark.parametrize("url", ["https://alice:hunter2xyz@example.com/r.git",
                                 "ssh://git:hunter2xyz@example.com/r.git",
                                 "alice:hunter2xyz@example.com:r.git",
                                 "https://hunter2xyz@example.com/r.git"])
def test_credentials_never_appear_in_the_error(url: str) -> None:
    with pytest.raises(GitURLRefused) as caught:
        normalize_url(url)
    assert "hunter2xyz" not in caught.value.one_line()
    assert "hunter2xyz" not in redact_url(url)


def test_allow_patterns_match_the_normal_form() -> None:
    check_allowed("https://github.com/org/r.git", [])
    check_allowed("https://github.com/org/r.git", ["https://github.com/org/*"])
    with pytest.raises(GitURLRefused, match="not allowed"):
        check_allowed("https://github.com/other/r.git", ["https://github.com/org/*"])
    with pytest.raises(GitURLRefused):
        check_allowed("https://GITHUB.com/org/r.git", ["https://github.com/org/*"])
    # The pattern sees the normal form, so the host's case cannot dodge it.
    check_allowed(normalize_url("https://GITHUB.com/org/r.git"), ["https://github.com/org/*"])


def test_revision_shapes() -> None:
    assert is_commit_id("a" * 40) and is_commit_id("0" * 64)
    assert not is_commit_id("A" * 40) and not is_commit_id("a" * 41)
    assert is_abbreviated_id("abcdef1") and not is_abbreviated_id("abcde")
    assert not is_abbreviated_id("a" * 40)
    for good in ("main", "", "HEAD", "refs/heads/x", "v1.2.3", "feature/a-b"):
        assert revision_problem(good) is None
    for bad in ("-x", "--upload-pack=x", "a b", "a\nb", "a\x00", "x" * 2000):
        assert revision_problem(bad) is not None


def test_ls_remote_parsing() -> None:
    a, b, c, t = "a" * 40, "b" * 40, "c" * 40, "d" * 40
    text = (f"ref: refs/heads/main\tHEAD\n{a}\tHEAD\n{a}\trefs/heads/main\n{b}\trefs/heads/dev\n"
            f"{t}\trefs/tags/v1\n{c}\trefs/tags/v1^{{}}\n{b}\trefs/tags/v2\n"
            f"{c}\trefs/pull/1/head\ngarbage line\n")
    refs = parse_ls_remote(text)
    assert refs.head == a and refs.head_ref == "refs/heads/main"
    assert refs.lookup("HEAD") == ("refs/heads/main", a)
    assert refs.lookup("") == ("refs/heads/main", a)
    assert refs.lookup("v1") == ("refs/tags/v1", c)  # peeled
    assert refs.lookup("dev") == ("refs/heads/dev", b)
    assert refs.lookup("pull/1/head") == ("refs/pull/1/head", c)
    assert refs.lookup("refs/tags/v2") == ("refs/tags/v2", b)
    assert refs.lookup("nope") is None
    detached = parse_ls_remote(f"{a}\tHEAD\n{b}\trefs/heads/x\n")
    assert detached.lookup("HEAD") == ("HEAD", a)
    assert parse_ls_remote("").lookup("HEAD") is None


def test_git_environment_is_the_operators_without_repository_pointers() -> None:
    env = git_environment({"PATH": "/bin", "GIT_DIR": "/elsewhere", "GIT_SSH_COMMAND": "ssh -i k",
                           "GIT_TERMINAL_PROMPT": "1", "GIT_ALLOW_PROTOCOL": "ext",
                           "GIT_ASKPASS": "/op/askpass"})
    assert "GIT_DIR" not in env
    assert env["GIT_SSH_COMMAND"] == "ssh -i k" and env["GIT_ASKPASS"] == "/op/askpass"
    assert env["GIT_TERMINAL_PROMPT"] == "0" and env["GIT_PROTOCOL_FROM_USER"] == "0"
    assert "ext" not in env["GIT_ALLOW_PROTOCOL"].split(":")


def test_last_line_is_one_masked_line() -> None:
    err = (b"Cloning...\nfatal: unable to access 'https://u:topsecret9@h/r/': 403\n"
           b"fatal: Could not read from remote repository.\n")
    line = last_line(err)
    assert "topsecret9" not in line and "unable to access" in line and "\n" not in line
    assert last_line(b"") == "failed with no message"


def test_blob_memo_hashes_each_blob_once_and_is_bounded() -> None:
    import hashlib

    memo = BlobMemo(max_entries=2)
    assert memo.digest("a" * 40, b"x") == hashlib.sha256(b"x").hexdigest()
    assert memo.digest("a" * 40, b"ignored: known") == hashlib.sha256(b"x").hexdigest()
    assert (memo.hashed, memo.reused) == (1, 1)
    memo.digest("b" * 40, b"y")
    memo.digest("c" * 40, b"z")
    assert len(memo) == 2
    memo.digest("a" * 40, b"x")  # evicted: hashed again
    assert memo.hashed == 4


def test_add_file_takes_a_known_digest_and_keeps_the_bytes_object() -> None:
    import hashlib

    data = b"content"
    builder = SourceTreeBuilder()
    builder.add_file("a", data, sha256="f" * 64)
    builder.add_file("b", data)
    tree = builder.build()
    assert tree.files["a"].sha256 == "f" * 64
    assert tree.files["b"].sha256 == hashlib.sha256(data).hexdigest()
    assert tree.files["a"].data is data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_any_url_normalises_or_is_refused(url: str) -> None:
    try:
        normal = normalize_url(url)
    except GitURLRefused as exc:
        assert "\n" not in exc.one_line()
        return
    assert normal == normalize_url(normal) or normal.startswith("file://")
    assert not normal.startswith("-") and "::" not in normal.split("/")[0]
    assert not any(ch.isspace() for ch in normal)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.from_regex(r"(https?|ssh|git|file)://[a-zA-Z0-9:@%./_~-]{0,40}", fullmatch=True))
def test_url_shaped_text_normalises_or_is_refused(url: str) -> None:
    try:
        normal = normalize_url(url)
    except KilnError:
        return
    assert "@" not in normal.split("://", 1)[1].split("/", 1)[0] or normal.startswith("ssh://")


def test_fuzz_does_not_write(tmp_path: Path) -> None:
    """normalize_url reads nothing but the path's symlinks: no file is created."""
    before = set(os.listdir(tmp_path))
    for url in (f"{tmp_path}/new.git", f"file://{tmp_path}/x/y"):
        normalize_url(url)
    assert set(os.listdir(tmp_path)) == before


def test_from_env_reads_the_operator_variables(tmp_path: Path) -> None:
    from kiln.core.errors import ConfigError
    from kiln.gitsource import GitSources

    gs = GitSources.from_env(tmp_path, {
        "KILN_GIT_ALLOWED_URLS": "https://a.example/*, https://b.example/* file:///srv/*",
        "KILN_GIT_SHALLOW": "1", "KILN_GIT_REF_TTL": "0", "KILN_GIT_TIMEOUT": "7",
        "KILN_CMP_MAX_FILES": "10", "KILN_GIT_TREE_CACHE_BYTES": "1MiB"})
    assert gs.allowed == ("https://a.example/*", "https://b.example/*", "file:///srv/*")
    assert gs.shallow and gs.ref_ttl == 0 and gs.limits.max_files == 10
    defaults = GitSources.from_env(tmp_path, {})
    assert defaults.allowed == () and not defaults.shallow and defaults.ref_ttl == 3.0
    for name, bad in (("KILN_GIT_TIMEOUT", "soon"), ("KILN_GIT_REF_TTL", "-1"),
                      ("KILN_GIT_SHALLOW", "maybe"), ("KILN_GIT_TREE_CACHE_BYTES", "lots")):
        with pytest.raises(ConfigError) as caught:
            GitSources.from_env(tmp_path, {name: bad})
        assert name in caught.value.one_line()
