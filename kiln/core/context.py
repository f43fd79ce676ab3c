"""What the engine hands a plugin while it works: tools, state directories, limits, redaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kiln.core.redact import Redactor
from kiln.core.tools import DEFAULT_TIMEOUT, ToolVersions, run_tool

if TYPE_CHECKING:
    from kiln.core.app import App


@dataclass
class RenderContext:
    """Services for renderers.

    ``state_dir`` is kiln's private state area (tool homes, chart stores), ``env`` the process
    environment the render sees, ``timeout`` the per-tool-run limit in seconds. ``render_nested``
    renders another app through the engine (how jsonnet's ``helmTemplate`` reaches Helm without
    importing the Helm plugin).
    """

    state_dir: Path
    env: Mapping[str, str]
    tool_versions: ToolVersions
    timeout: float = DEFAULT_TIMEOUT
    render_nested: Callable[[App], list[dict[str, Any]]] | None = None

    def tool_dir(self, name: str) -> Path:
        """Return (creating it) a private state directory for tool ``name``."""
        path = self.state_dir / "tools" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run(self, argv: Sequence[str], *, what: str, cwd: Path | str | None = None,
            env: Mapping[str, str] | None = None, stdin: bytes | None = None,
            timeout: float | None = None) -> bytes:
        """Run a tool with the context's timeout; see :func:`kiln.core.tools.run_tool`."""
        return run_tool(argv, what=what, cwd=cwd, env=env if env is not None else self.env,
                        stdin=stdin, timeout=timeout or self.timeout)


@dataclass
class SecretContext:
    """Services for secret resolvers.

    ``app`` is None when resolving a stream read from stdin. Every resolved value must be passed
    to ``redactor.register`` before it is used. ``concurrency`` bounds parallel backend reads,
    ``timeout`` bounds each read in seconds.
    """

    app: App | None
    env: Mapping[str, str]
    redactor: Redactor
    timeout: float = 30.0
    concurrency: int = 8
    settings: Mapping[str, Any] = field(default_factory=dict)
