"""The request and response bodies of ``kiln serve``, as pydantic models.

FastAPI validates every request against :class:`RenderRequest` and generates the OpenAPI
document (``/openapi.json``) from these classes: the schema a client sees is the one the
server checks. Unknown fields are refused (a typo is an error, never ignored).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_TEXT = 4096
"""Longest repository URL, revision or path accepted (PATH_MAX)."""


class GitSource(BaseModel):
    """An app in a git repository: ``repoURL`` at ``revision`` (a branch, a tag, a commit id
    or ``HEAD``), the app directory ``path`` inside it (``.`` for the root)."""

    model_config = ConfigDict(extra="forbid")

    repoURL: str = Field(min_length=1, max_length=MAX_TEXT,
                         description="The repository URL (one of the operator's allowed "
                         "patterns).", examples=["https://git.example.com/platform/gitops.git"])
    revision: str = Field(default="HEAD", min_length=1, max_length=MAX_TEXT,
                          description="A branch, tag, commit id or HEAD.")
    path: str = Field(default=".", min_length=1, max_length=MAX_TEXT,
                      description="The app directory, relative to the repository root.")


class RenderRequest(BaseModel):
    """What to render: exactly one of ``path`` (a local directory under a root the operator
    allows) and ``git``; ``settings`` are kiln.yaml-shaped and count as *application* level
    (they choose what to render, never where credentials go)."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(default=None, min_length=1, max_length=MAX_TEXT,
                             description="A local app directory: absolute, or relative to "
                             "the first allowed root.")
    git: GitSource | None = None
    settings: dict[str, Any] | None = Field(
        default=None, description="kiln.yaml-shaped settings (application level).",
        examples=[{"namespace": "web-prod", "helm": {"values": {"replicas": 3}}}])

    @model_validator(mode="after")
    def _one_source(self) -> RenderRequest:
        if (self.path is None) == (self.git is None):
            raise ValueError("give exactly one of 'path' and 'git'")
        return self


class RenderResponse(BaseModel):
    """The rendered objects (secrets resolved), the cache key they are stored under (None:
    uncacheable), whether they came from the cache, and the commit rendered (git sources)."""

    objects: list[dict[str, Any]]
    key: str | None
    cacheHit: bool
    revision: str | None


class ErrorResponse(BaseModel):
    """Every error: one line naming the parameter or file and the problem."""

    error: str


__all__ = ["ErrorResponse", "GitSource", "RenderRequest", "RenderResponse"]
