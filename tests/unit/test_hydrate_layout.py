"""The Source Hydrator's metadata files and commit message, against Argo CD's own test cases.

Oracles: Argo CD's ``util/git`` ``Test_GetReferences`` table (which trailers of a dry commit's
body become a reference and what body is left), its ``TestWriteReadme`` expectation (the
README text), the field names of ``HydratorCommitMetadata`` read back with ``json``, and
``git interpret-trailers --parse`` for the commit message's trailers.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from kiln.hydrate.layout import (
    GITATTRIBUTES_TEXT,
    DryCommit,
    Reference,
    go_json,
    path_metadata,
    readme,
    split_references,
)
from tests.helpers import tool

DATE = "2025-06-09T13:50:18-04:00"


@pytest.mark.parametrize(("body", "refs", "rest"), [
    ("This is a commit message without trailers.", (),
     "This is a commit message without trailers.\n"),
    ("Argocd-reference-commit-repourl: % invalid %\nArgocd-reference-commit-date: invalid-date\n"
     "Argocd-reference-commit-sha: xyz123\nArgocd-reference-commit-body: this isn't json\n"
     "Argocd-reference-commit-author: % not email %\nArgocd-reference-commit-bogus:", (),
     "Argocd-reference-commit-repourl: % invalid %\nArgocd-reference-commit-date: invalid-date\n"
     "Argocd-reference-commit-sha: xyz123\nArgocd-reference-commit-body: this isn't json\n"
     "Argocd-reference-commit-author: % not email %\nArgocd-reference-commit-bogus:\n"),
    ("Argocd-reference-commit-unknown: foobar", (), "Argocd-reference-commit-unknown: foobar\n"),
    ("Argocd-reference-commit-sha: abc123\nArgocd-reference-commit-date: invalid-date",
     (Reference(sha="abc123"),), "Argocd-reference-commit-date: invalid-date\n"),
    ("Argocd-reference-commit-repourl: https://github.com/org/repo.git\n"
     "Argocd-reference-commit-author: John Doe <john.doe@example.com>\n"
     f"Argocd-reference-commit-date: {DATE}\n"
     "Argocd-reference-commit-subject: Fix bug\n"
     'Argocd-reference-commit-body: "Fix bug\\n\\nSome: trailer"\n'
     "Argocd-reference-commit-sha: abc123",
     (Reference(author='"John Doe" <john.doe@example.com>', date=DATE, subject="Fix bug",
                body="Fix bug\n\nSome: trailer", sha="abc123",
                repo_url="https://github.com/org/repo.git"),), ""),
    ("Argocd-reference-commit-repourl: https://github.com/org/repo.git\n"
     "Argocd-reference-commit-repourl: https://github.com/another/repo.git",
     (Reference(repo_url="https://github.com/another/repo.git"),), ""),
])
def test_references_as_argo_cd_reads_them(body: str, refs: tuple[Reference, ...],
                                          rest: str) -> None:
    assert split_references(body) == (refs, rest)


def dry() -> DryCommit:
    return DryCommit.from_message(
        "0123456789abcdef0123456789abcdef01234567",
        "test-message\n\nSigned-off-by: Test User <test@example.com>\n"
        "Argocd-reference-commit-sha: abc123",
        repo_url="https://git.example.com/org/repo.git", author="Dry Author <dry@example.com>",
        date="2026-01-02T03:04:05Z")


def test_root_metadata_fields() -> None:
    data = dry().root_metadata()
    assert data.endswith(b"}\n")
    meta = json.loads(data)
    assert list(meta) == ["repoURL", "drySha", "author", "date", "subject", "body", "references"]
    assert meta == {"repoURL": "https://git.example.com/org/repo.git",
                    "drySha": "0123456789abcdef0123456789abcdef01234567",
                    "author": "Dry Author <dry@example.com>", "date": "2026-01-02T03:04:05Z",
                    "subject": "test-message",
                    "body": "Signed-off-by: Test User <test@example.com>\n",
                    "references": [{"commit": {"sha": "abc123"}}]}
    assert data.startswith(b'{\n  "repoURL": ')  # Go's json.Encoder, indent two spaces


def test_path_metadata_and_empty_fields_left_out() -> None:
    meta = json.loads(path_metadata("https://h/r", "abc", ["kiln hydrate --x"]))
    assert meta == {"repoURL": "https://h/r", "drySha": "abc", "commands": ["kiln hydrate --x"]}
    assert json.loads(path_metadata("", "abc", [])) == {"drySha": "abc"}
    assert go_json({"a": "<&>\u2028"}) == b'{\n  "a": "<&>\\u2028"\n}\n'  # no HTML escaping


def test_readme_is_argo_cds_default() -> None:
    # Argo CD's TestWriteReadme expectation, without the references (the per-path metadata
    # the commit server renders the README with carries none)
    assert readme("https://github.com/example/repo", "abc123", []).decode() == (
        "# Manifest Hydration\n\n"
        "To hydrate the manifests in this repository, run the following commands:\n\n"
        "```shell\ngit clone https://github.com/example/repo\n# cd into the cloned directory\n"
        "git checkout abc123\n```\n")
    text = readme("u", "s", ["kiln hydrate a", "kiln hydrate b"]).decode()
    assert "\nkiln hydrate a\nkiln hydrate b\n```\n" in text


def test_gitattributes_text() -> None:
    assert GITATTRIBUTES_TEXT.decode().splitlines() == [
        "**/README.md linguist-generated=true", "**/hydrator.metadata linguist-generated=true"]


def test_commit_message_and_trailers_parse_with_git() -> None:
    message = dry().commit_message()
    subject, _, rest = message.partition("\n\n")
    assert subject == "0123456: test-message"
    assert rest.startswith("Signed-off-by: Test User <test@example.com>\n\n")
    proc = subprocess.run([tool("git"), "interpret-trailers", "--parse"], input=message,
                          capture_output=True, text=True, check=True)
    trailers = [line.split(": ", 1) for line in proc.stdout.splitlines()]
    assert ["Argocd-reference-commit-sha", "0123456789abcdef0123456789abcdef01234567"] in trailers
    assert ["Argocd-reference-commit-repourl", "https://git.example.com/org/repo.git"] in trailers
    assert ["Argocd-reference-commit-author", "Dry Author <dry@example.com>"] in trailers
    assert ["Argocd-reference-commit-date", "2026-01-02T03:04:05Z"] in trailers
    assert ["Argocd-reference-commit-subject", "test-message"] in trailers
    assert ["Co-authored-by", "Dry Author <dry@example.com>"] in trailers
    body = dict(trailers)["Argocd-reference-commit-body"]
    assert json.loads(body) == "Signed-off-by: Test User <test@example.com>"
