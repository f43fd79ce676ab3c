"""Which kustomize runs: ``kubectl kustomize``, or the ``kustomize`` binary in KILN_KUSTOMIZE."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kiln.core.errors import ToolError
from kiln.core.tools import find_tool

if TYPE_CHECKING:
    from kiln.core.context import RenderContext

OVERRIDE_ENV = "KILN_KUSTOMIZE"
KUBECTL_ENV = "KILN_KUBECTL"


@dataclass(frozen=True)
class Kustomize:
    """A kustomize command: ``binary`` and whether it is a standalone ``kustomize``."""

    binary: str
    standalone: bool

    def build_argv(self, directory: Path) -> list[str]:
        """The command that builds ``directory`` (flags are appended by the caller)."""
        if self.standalone:
            return [self.binary, "build", str(directory)]
        return [self.binary, "kustomize", str(directory)]

    def version(self, ctx: RenderContext) -> str:
        """The tool's version text, memoised on disk (a cache hit never runs the tool)."""
        if self.standalone:
            return "kustomize " + ctx.tool_versions.get(self.binary, ["version"], env=ctx.env)
        text = ctx.tool_versions.get(self.binary, ["version", "--client"], env=ctx.env)
        return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def locate(env: Mapping[str, str]) -> Kustomize:
    """``$KILN_KUSTOMIZE`` (a kustomize binary) when set, else kubectl (``$KILN_KUBECTL``/PATH)."""
    named = env.get(OVERRIDE_ENV)
    if named:
        if os.sep not in named:  # a bare command name: look it up on the build's PATH
            found = shutil.which(named, path=env.get("PATH"))
            if found is None:
                raise ToolError(f"{named} not found on PATH ({OVERRIDE_ENV})")
            named = found
        return Kustomize(named, True)
    return Kustomize(find_tool("kubectl", KUBECTL_ENV, env), False)
