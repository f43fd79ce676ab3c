"""GitSources.resolve against real git remotes: branches, tags, commits, moves, deletions,
unreachable and hanging remotes, concurrency and injection attempts. The oracle is always
``git rev-parse`` in the work repository that pushed (independent of kiln)."""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest

from kiln.core.deadline import Deadline, DeadlineExceeded
from kiln.core.errors import ConfigError, InputError, KilnError, ToolError
from kiln.gitsource import (
    GitRemoteError,
    GitRevisionError,
    GitSources,
    GitTimeout,
    GitURLRefused,
)
from kiln.gitsource.git import GitRunner
from kiln.gitsource.mirror import Mirror
from tests.gitsource_helpers import Remote, git

pytestmark = pytest.mark.integration


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    repo = Remote(tmp_path)
    repo.commit({"apps/web/values.yaml": "replicas: 1\n", "README.md": "hello\n"}, "one")
    git(repo.work, "tag", "v1")
    git(repo.work, "tag", "-a", "v1-annotated", "-m", "an annotated tag")
    git(repo.work, "branch", "feature")
    repo.commit({"apps/web/values.yaml": "replicas: 2\n"}, "two")
    repo.push()
    return repo


def sources(tmp_path: Path, **kw: object) -> GitSources:
    return GitSources(tmp_path / "mirrors", **kw)  # type: ignore[arg-type]


def deadline() -> Deadline:
    return Deadline(60)


def test_branches_tags_head_and_ids_resolve_to_what_git_says(remote: Remote,
                                                              tmp_path: Path) -> None:
    gs = sources(tmp_path)
    for revision in ("main", "HEAD", "", "feature", "v1", "v1-annotated", "refs/heads/main",
                     "refs/tags/v1"):
        oracle = remote.rev(revision or "HEAD")
        assert gs.resolve(remote.url, revision, deadline()) == oracle, revision
    first = remote.rev("v1")
    assert gs.resolve(remote.url, first, deadline()) == first
    assert gs.resolve(remote.url, first.upper(), deadline()) == first
    assert gs.resolve(remote.url, first[:10], deadline()) == first
    # The plain path and the file:// URL are one repository, one mirror.
    assert gs.resolve(str(remote.bare), "main", deadline()) == remote.rev("main")
    assert gs.health()["repositories"] == 1
    assert gs.stats()["fetches"] == 1


def test_annotated_tag_names_the_commit_not_the_tag_object(remote: Remote,
                                                           tmp_path: Path) -> None:
    tag_object = git(remote.work, "rev-parse", "v1-annotated")
    commit = sources(tmp_path).resolve(remote.url, "v1-annotated", deadline())
    assert commit != tag_object
    assert commit == remote.rev("v1")


def test_commit_already_in_the_mirror_needs_no_remote(remote: Remote, tmp_path: Path) -> None:
    gs = sources(tmp_path)
    head = gs.resolve(remote.url, "main", deadline())
    before = gs.stats()
    # The remote is gone: a known commit id still resolves, without any network.
    os.rename(remote.bare, remote.bare.with_name("gone.git"))
    assert gs.resolve(remote.url, head, deadline()) == head
    after = gs.stats()
    assert (after["fetches"], after["lsRemotes"]) == (before["fetches"], before["lsRemotes"])


def test_moved_branch_is_fetched_again_and_gives_the_new_commit(remote: Remote,
                                                                tmp_path: Path) -> None:
    gs = sources(tmp_path, ref_ttl=0)
    old = gs.resolve(remote.url, "main", deadline())
    new = remote.commit({"apps/web/values.yaml": "replicas: 3\n"}, "three")
    remote.push("main")
    assert new != old
    assert gs.resolve(remote.url, "main", deadline()) == new == remote.rev("main")
    assert gs.stats()["fetches"] == 2
    # A force push back to an older commit: known already, no fetch.
    git(remote.work, "reset", "--hard", "--quiet", old)
    remote.push("main")
    assert gs.resolve(remote.url, "main", deadline()) == old
    assert gs.stats()["fetches"] == 2


def test_ref_answers_are_reused_within_the_ttl(remote: Remote, tmp_path: Path) -> None:
    gs = sources(tmp_path, ref_ttl=60)
    old = gs.resolve(remote.url, "main", deadline())
    remote.commit({"x": "y"}, "moved")
    remote.push("main")
    assert gs.resolve(remote.url, "main", deadline()) == old  # within the TTL
    assert gs.stats()["lsRemotes"] == 1


def test_deleted_branch_names_nothing(remote: Remote, tmp_path: Path) -> None:
    gs = sources(tmp_path, ref_ttl=0)
    assert gs.resolve(remote.url, "feature", deadline()) == remote.rev("feature")
    git(remote.work, "push", "--quiet", "origin", "--delete", "feature")
    with pytest.raises(GitRevisionError) as caught:
        gs.resolve(remote.url, "feature", deadline())
    assert caught.value.status == 404
    assert "'feature'" in caught.value.one_line()
    # The prune of the next full fetch removes it from the mirror too.
    remote.commit({"y": "z"}, "more")
    remote.push("main")
    gs.resolve(remote.url, "main", deadline())
    mirror = next(p for p in (tmp_path / "mirrors").iterdir() if not p.name.startswith("."))
    assert "refs/heads/feature" not in git(mirror, "for-each-ref")


@pytest.mark.parametrize("revision", ["nope", "v9", "refs/heads/nope", "deadbeef",
                                      "0" * 40, "main~1", "main^", "HEAD@{1}", ":/two"])
def test_unknown_revision_is_a_404_one_liner(remote: Remote, tmp_path: Path,
                                             revision: str) -> None:
    with pytest.raises(GitRevisionError) as caught:
        sources(tmp_path).resolve(remote.url, revision, deadline())
    assert isinstance(caught.value, InputError)
    assert caught.value.status == 404
    line = caught.value.one_line()
    assert "\n" not in line and remote.url in line


def test_unreachable_remotes_are_502_and_reported_in_health(tmp_path: Path) -> None:
    gs = sources(tmp_path)
    missing = tmp_path / "does-not-exist.git"
    with pytest.raises(GitRemoteError) as caught:
        gs.resolve(f"file://{missing}", "main", deadline())
    assert caught.value.status == 502 and isinstance(caught.value, ToolError)
    assert "does not appear to be a git repository" in caught.value.one_line()
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.git"
    with pytest.raises(GitRemoteError) as caught:
        gs.resolve(url, "main", deadline())
    line = caught.value.one_line()
    assert "\n" not in line and f"127.0.0.1:{port}" in line
    health = gs.health()
    assert health["ok"] is True and health["lastError"] == line
    assert gs.stats()["errors"] == 2


def _hanging_ssh(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An operator environment whose ssh hangs (a remote that never answers); the script
    writes the pid of its sleep so the test can see it killed."""
    pids = tmp_path / "ssh-pids"
    script = tmp_path / "hang-ssh"
    script.write_text(f"#!/bin/sh\nsleep 60 &\necho $! >> {pids}\nwait\n")
    script.chmod(0o755)
    return {**os.environ, "GIT_SSH_COMMAND": str(script)}, pids


def _gone(pid: int) -> bool:
    """Whether ``pid`` ended (a zombie nobody reaped yet counts as ended), waiting up to 20 s."""
    end = time.monotonic() + 20
    while time.monotonic() < end:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.1)
    return False


def test_hanging_remote_times_out_and_its_processes_are_killed(tmp_path: Path) -> None:
    env, pids = _hanging_ssh(tmp_path)
    gs = sources(tmp_path, env=env, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(GitTimeout) as caught:
        gs.resolve("ssh://git@example.invalid/repo.git", "main", deadline())
    assert time.monotonic() - started < 30  # far below the 60 s the remote hangs
    assert caught.value.status == 504
    assert "did not finish within 1s" in caught.value.one_line()
    recorded = [int(p) for p in pids.read_text().split()]
    assert recorded and all(_gone(p) for p in recorded)


def test_hanging_remote_ends_with_the_callers_deadline(tmp_path: Path) -> None:
    env, _ = _hanging_ssh(tmp_path)
    gs = sources(tmp_path, env=env, timeout=60.0)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        gs.resolve("git@example.invalid:repo.git", "main", Deadline(1.0))
    assert time.monotonic() - started < 30  # far below the 60 s the remote hangs
    assert "git ls-remote" in caught.value.one_line()


def test_cancelled_deadline_stops_a_hanging_fetch(tmp_path: Path) -> None:
    env, _ = _hanging_ssh(tmp_path)
    gs = sources(tmp_path, env=env, timeout=60.0)
    request = Deadline(60)
    threading.Timer(0.5, request.cancel, ("the client went away",)).start()
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="the client went away"):
        gs.resolve("ssh://git@example.invalid/repo.git", "main", request)
    assert time.monotonic() - started < 30  # far below the 60 s the remote hangs


def test_twenty_concurrent_resolves_share_one_ls_remote_and_one_fetch(
        remote: Remote, tmp_path: Path) -> None:
    gs = sources(tmp_path)
    barrier = threading.Barrier(20)
    results: list[str] = []
    errors: list[BaseException] = []

    def one() -> None:
        barrier.wait()
        try:
            results.append(gs.resolve(remote.url, "main", deadline()))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert results == [remote.rev("main")] * 20
    stats = gs.stats()
    assert stats["fetches"] == 1
    assert stats["lsRemotes"] == 1


def test_injection_through_the_revision_reaches_no_git_option(remote: Remote,
                                                              tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    gs = sources(tmp_path, ref_ttl=0)
    for revision in (f"--upload-pack=touch {marker}", f"--upload-pack=touch${{IFS}}{marker}",
                     "-c", "--output=/tmp/x", f"main --upload-pack=touch {marker}",
                     f"$(touch {marker})", "main\n--all"):
        with pytest.raises(GitRevisionError):
            gs.resolve(remote.url, revision, deadline())
    assert not marker.exists()


def test_injection_through_the_url_is_refused(remote: Remote, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    gs = sources(tmp_path)
    for url in (f"ext::sh -c touch% {marker}", f"ext::sh%20-c%20touch%20{marker}",
                f"--upload-pack=touch {marker}", f"-u{marker}", "fd::17",
                f"ssh://-oProxyCommand=touch%20{marker}/x", f"-oProxyCommand=touch {marker}:x",
                "ftp://example.com/repo.git", "relative/path"):
        with pytest.raises(GitURLRefused) as caught:
            gs.resolve(url, "main", deadline())
        assert isinstance(caught.value, ConfigError) and caught.value.status == 403
    assert not marker.exists()


def test_git_itself_refuses_the_ext_transport(tmp_path: Path) -> None:
    """Defence in depth: even a URL that got past the check cannot use ext::."""
    marker = tmp_path / "pwned"
    runner = GitRunner(dict(os.environ), timeout=20)
    mirror = Mirror(f"ext::sh -c touch% {marker}", tmp_path / "m.git", runner)
    mirror.ensure(None)
    with pytest.raises(GitRemoteError, match="transport 'ext' not allowed"):
        mirror.ls_remote(None)
    with pytest.raises(GitRemoteError):
        mirror.fetch(["+refs/heads/*:refs/heads/*"], None)
    assert not marker.exists()


def test_operator_allow_patterns(remote: Remote, tmp_path: Path) -> None:
    allowed = sources(tmp_path, allowed=[f"file://{remote.bare.parent}/*"])
    assert allowed.resolve(remote.url, "main", deadline()) == remote.rev("main")
    other = tmp_path / "elsewhere"
    other.mkdir()
    refused = sources(tmp_path, allowed=[f"file://{other}/*"])
    with pytest.raises(GitURLRefused, match="not allowed"):
        refused.resolve(remote.url, "main", deadline())
    # A '..' or a symlink cannot lead a URL out of the allowed directory.
    (other / "link.git").symlink_to(remote.bare)
    with pytest.raises(GitURLRefused, match="not allowed"):
        refused.resolve(f"file://{other}/link.git", "main", deadline())
    with pytest.raises(GitURLRefused):
        refused.resolve(f"file://{other}/../{remote.bare.name}", "main", deadline())
    https_only = sources(tmp_path, allowed=["https://git.example.com/*"])
    with pytest.raises(GitURLRefused, match="not allowed"):
        https_only.resolve(remote.url, "main", deadline())
    assert https_only.stats()["lsRemotes"] == 0


def test_credentials_in_a_url_are_refused_and_never_shown(tmp_path: Path) -> None:
    gs = sources(tmp_path)
    for url in ("https://alice:s3cr3t-pw@git.example.com/r.git",
                "https://ghp_abcdefghijklmnopqrstuvwxyz0123@github.com/o/r.git",
                "ssh://git:s3cr3t-pw@git.example.com/r.git",
                "alice:s3cr3t-pw@git.example.com:r.git"):
        with pytest.raises(GitURLRefused) as caught:
            gs.resolve(url, "main", deadline())
        line = caught.value.one_line()
        assert "s3cr3t" not in line and "ghp_abc" not in line, line
    assert not any((tmp_path / "mirrors").glob("*")) if (tmp_path / "mirrors").exists() else True


def test_operator_credentials_reach_git_from_the_operator_environment(
        remote: Remote, tmp_path: Path) -> None:
    """GIT_SSH_COMMAND comes from ``env`` (the operator's), and it is what runs."""
    seen = tmp_path / "ssh-ran"
    script = tmp_path / "fake-ssh"
    # The fake ssh serves the local repository (what a real ssh would run remotely).
    script.write_text(f"#!/bin/sh\necho \"$@\" >> {seen}\n"
                      "shift $(($# - 1))\nexec sh -c \"$1\"\n")
    script.chmod(0o755)
    env = {**os.environ, "GIT_SSH_COMMAND": str(script), "GIT_SSH_VARIANT": "simple"}
    gs = sources(tmp_path, env=env)
    commit = gs.resolve(f"ssh://git@example.invalid{remote.bare}", "main", deadline())
    assert commit == remote.rev("main")
    assert "git@example.invalid" in seen.read_text()


def test_shallow_mirror_fetches_one_commit_of_the_asked_ref(remote: Remote,
                                                             tmp_path: Path) -> None:
    gs = sources(tmp_path, shallow=True, ref_ttl=0)
    head = gs.resolve(remote.url, "main", deadline())
    assert head == remote.rev("main")
    mirror = next(p for p in (tmp_path / "mirrors").iterdir() if not p.name.startswith("."))
    assert (mirror / "shallow").read_text().split() == [head]
    assert git(mirror, "for-each-ref", "--format=%(refname)") == "refs/heads/main"
    assert gs.resolve(remote.url, "v1", deadline()) == remote.rev("v1")
    assert gs.tree(remote.url, head, deadline()).read("apps/web/values.yaml") == b"replicas: 2\n"


def test_refs_outside_branches_and_tags(remote: Remote, tmp_path: Path) -> None:
    pr = remote.commit({"pr.txt": "pull request\n"}, "pr")
    git(remote.work, "push", "--quiet", "origin", f"{pr}:refs/pull/7/head")
    git(remote.work, "reset", "--hard", "--quiet", "HEAD~1")
    gs = sources(tmp_path)
    assert gs.resolve(remote.url, "pull/7/head", deadline()) == pr
    assert gs.resolve(remote.url, "refs/pull/7/head", deadline()) == pr
    assert gs.tree(remote.url, pr, deadline()).read("pr.txt") == b"pull request\n"


def test_commit_only_reachable_from_an_unadvertised_ref_is_fetched_by_id(
        remote: Remote, tmp_path: Path) -> None:
    hidden = remote.commit({"hidden": "x"}, "hidden")
    git(remote.work, "push", "--quiet", "origin", f"{hidden}:refs/hidden/one")
    git(remote.bare, "config", "uploadpack.hideRefs", "refs/hidden")
    git(remote.bare, "config", "uploadpack.allowAnySHA1InWant", "true")
    gs = sources(tmp_path)
    assert gs.resolve(remote.url, hidden, deadline()) == hidden


def test_a_branch_wins_over_a_tag_of_the_same_name(remote: Remote, tmp_path: Path) -> None:
    git(remote.work, "tag", "feature", remote.rev("main"))
    remote.push()
    assert remote.rev("refs/heads/feature") != remote.rev("refs/tags/feature")
    commit = sources(tmp_path).resolve(remote.url, "feature", deadline())
    assert commit == remote.rev("refs/heads/feature")


def test_every_error_is_a_kiln_error(tmp_path: Path) -> None:
    for exc_type in (GitRevisionError, GitURLRefused, GitRemoteError, GitTimeout):
        assert issubclass(exc_type, KilnError)


def test_the_mirror_cache_itself_is_no_repository(remote: Remote, tmp_path: Path) -> None:
    gs = sources(tmp_path)
    gs.resolve(remote.url, "main", deadline())
    mirror = next(p for p in (tmp_path / "mirrors").iterdir() if not p.name.startswith("."))
    with pytest.raises(GitURLRefused, match="mirror cache"):
        gs.resolve(f"file://{mirror}", "main", deadline())


def _slow_ssh(tmp_path: Path, delay: float) -> dict[str, str]:
    """An operator environment whose ssh serves the local repository after ``delay`` s."""
    script = tmp_path / "slow-ssh"
    script.write_text(f"#!/bin/sh\nsleep {delay}\nshift $(($# - 1))\nexec sh -c \"$1\"\n")
    script.chmod(0o755)
    return {**os.environ, "GIT_SSH_COMMAND": str(script), "GIT_SSH_VARIANT": "simple"}


def test_a_caller_giving_up_does_not_end_the_shared_work(remote: Remote, tmp_path: Path) -> None:
    gs = sources(tmp_path, env=_slow_ssh(tmp_path, 1.0))
    url = f"ssh://git@example.invalid{remote.bare}"
    outcome: dict[str, object] = {}
    impatient = Deadline(60)

    def patient() -> None:
        outcome["patient"] = gs.resolve(url, "main", Deadline(60))

    thread = threading.Thread(target=patient)
    thread.start()
    time.sleep(0.2)
    threading.Timer(0.3, impatient.cancel, ("the client went away",)).start()
    with pytest.raises(DeadlineExceeded, match="went away"):
        gs.resolve(url, "main", impatient)
    with pytest.raises(DeadlineExceeded):
        gs.resolve(url, "main", Deadline(0.3))
    thread.join(30)
    assert outcome["patient"] == remote.rev("main")
    stats = gs.stats()
    assert (stats["lsRemotes"], stats["fetches"]) == (1, 1)  # nothing was begun twice


def test_close_kills_running_git_and_refuses_more(tmp_path: Path) -> None:
    env, pids = _hanging_ssh(tmp_path)
    gs = sources(tmp_path, env=env, timeout=60.0)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            gs.resolve("ssh://git@example.invalid/repo.git", "main", Deadline(60))
        except BaseException as exc:  # noqa: BLE001 - checked below
            errors.append(exc)

    thread = threading.Thread(target=call)
    thread.start()
    end = time.monotonic() + 10
    while not pids.exists() and time.monotonic() < end:
        time.sleep(0.05)
    started = time.monotonic()
    gs.close()
    thread.join(10)
    assert time.monotonic() - started < 30  # far below the 60 s the remote hangs
    assert len(errors) == 1 and isinstance(errors[0], GitRemoteError)
    assert "stopping" in errors[0].one_line()
    assert all(_gone(int(p)) for p in pids.read_text().split())
    with pytest.raises(GitRemoteError, match="stopping"):
        gs.resolve("ssh://git@example.invalid/other.git", "main", Deadline(5))


def test_the_hot_path_starts_no_git_process(remote: Remote, tmp_path: Path) -> None:
    """Within the TTL, a branch whose commit is known and its cached tree cost nothing."""
    gs = sources(tmp_path, ref_ttl=60)
    commit = gs.resolve(remote.url, "main", deadline())
    gs.tree(remote.url, commit, deadline())
    started = gs.stats()["gitCommands"]
    for _ in range(50):
        assert gs.resolve(remote.url, "main", deadline()) == commit
        assert gs.resolve(remote.url, commit, deadline()) == commit
        gs.tree(remote.url, commit, deadline())
    assert gs.stats()["gitCommands"] == started


def test_a_hanging_fetch_times_out(tmp_path: Path) -> None:
    """A full commit id goes straight to a fetch (no ls-remote): that fetch hangs."""
    env, pids = _hanging_ssh(tmp_path)
    gs = sources(tmp_path, env=env, timeout=1.0)
    started = time.monotonic()
    with pytest.raises(GitTimeout, match="git fetch did not finish within 1s"):
        gs.resolve("ssh://git@example.invalid/repo.git", "a" * 40, deadline())
    assert time.monotonic() - started < 30  # far below the 60 s the remote hangs
    assert gs.stats()["lsRemotes"] == 0
    assert all(_gone(int(p)) for p in pids.read_text().split())


def test_an_unusable_cache_directory_is_a_one_line_error(remote: Remote, tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("in the way\n")
    gs = GitSources(blocked / "mirrors")
    with pytest.raises(GitRemoteError, match="cannot create the mirror"):
        gs.resolve(remote.url, "main", deadline())
    assert gs.health()["ok"] is False


def test_the_mirror_is_bare_private_and_named_by_the_url(remote: Remote, tmp_path: Path) -> None:
    import hashlib
    import stat as stat_mod

    gs = sources(tmp_path)
    gs.resolve(remote.url, "main", deadline())
    mirror = tmp_path / "mirrors" / hashlib.sha256(remote.url.encode()).hexdigest()[:40]
    assert stat_mod.S_IMODE(mirror.stat().st_mode) == 0o700
    assert git(mirror, "rev-parse", "--is-bare-repository") == "true"
    assert (mirror / "description").read_text().strip() == remote.url
    assert not (mirror / "index").exists()  # never a checkout
    assert [p.name for p in (tmp_path / "mirrors").iterdir()] == [mirror.name]


def test_two_instances_sharing_a_cache_directory_fetch_one_at_a_time(
        remote: Remote, tmp_path: Path) -> None:
    """Two servers (here two instances) on one cache directory: the flock keeps their fetches
    apart, so neither fails on the other's ref locks."""
    first, second = sources(tmp_path, ref_ttl=0), sources(tmp_path, ref_ttl=0)
    errors: list[BaseException] = []
    results: list[str] = []

    def one(gs: GitSources, rounds: int) -> None:
        try:
            for _ in range(rounds):
                results.append(gs.resolve(remote.url, "main", deadline()))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    for step in range(3):
        remote.commit({"step.txt": f"{step}\n"}, f"step {step}")
        remote.push("main")
        threads = [threading.Thread(target=one, args=(gs, 2)) for gs in (first, second) * 3]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        assert set(results[-12:]) == {remote.rev("main")}
    assert len(list((tmp_path / "mirrors").glob("[0-9a-f]*"))) == 1
