"""What the engine hands a plugin while it works: tools, state directories, limits, redaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from kiln.core.errors import ToolError
from kiln.core.redact import Redactor
from kiln.core.tools import DEFAULT_TIMEOUT, ToolVersions, run_tool

if TYPE_CHECKING:
    from kiln.core.app import App
    from kiln.core.clientpool import ClientPool
    from kiln.core.deadline import Deadline
    from kiln.core.secrets import StoreBackend

DecryptFile = Callable[["App", bytes, str, "str | None"], "bytes | None"]
"""``(app, data, name, fmt) -> plaintext``, or None when no enabled resolver decrypts such data."""
BackendFor = Callable[[str, "Mapping[str, Any]", "SecretContext"], "StoreBackend | None"]
"""``(provider, spec, ctx) -> StoreBackend``, or None when no enabled resolver provides one."""
VerifyFile = Callable[["App", bytes, str, "str | None"], "Sequence[str] | None"]
"""``(app, data, name, fmt) -> tokens`` of the documents verified, None when none applies."""


@dataclass(frozen=True)
class ChartRequest:
    """A chart to render as a part of another app's render (jsonnet's ``helmTemplate``).

    ``parent`` is the app asking (its source root and environment bound the nested render);
    the other fields are already defaulted from it. A renderer that renders charts offers
    ``chart_app(request) -> App`` (the nested app, with its own option keys); a renderer asks
    for one with :attr:`RenderContext.render_chart`.
    """

    parent: App
    chart: Path
    release: str
    namespace: str | None = None
    kube_version: str | None = None
    api_versions: tuple[str, ...] = ()
    values: Mapping[str, Any] | None = None
    include_crds: bool = True
    skip_tests: bool = False


@dataclass
class RenderContext:
    """Services for renderers.

    ``state_dir`` is kiln's private state area (tool homes, chart stores), ``env`` the process
    environment the render sees, ``timeout`` the per-tool-run limit in seconds. ``render_nested``
    renders another app through the engine; ``render_chart`` renders a :class:`ChartRequest`
    with the renderer that offers ``chart_app`` (how jsonnet's ``helmTemplate`` reaches Helm
    without importing the Helm plugin or knowing its option keys).

    ``redactor`` is the engine's redactor: register every secret value a renderer sees.
    ``decrypt_file`` and ``verify_file`` reach the secret resolvers that handle whole encrypted
    files (a resolver exposing ``decrypt_file`` / ``verify_file``, e.g. ``sops``) without
    importing their plugin: ``decrypt_file`` returns the plaintext (held in memory; values
    registered with the redactor), ``verify_file`` checks an encrypted document's integrity and
    returns opaque tokens for it, to be handed back through ``Inputs.verified``. Both raise the
    resolver's SecretError naming the file, return None when no enabled resolver handles the
    data, and are None themselves when the render resolves no secrets (``--no-secrets``).
    """

    state_dir: Path
    env: Mapping[str, str]
    tool_versions: ToolVersions
    timeout: float = DEFAULT_TIMEOUT
    render_nested: Callable[[App], list[dict[str, Any]]] | None = None
    render_chart: Callable[[ChartRequest], list[dict[str, Any]]] | None = None
    redactor: Redactor | None = None
    decrypt_file: DecryptFile | None = None
    verify_file: VerifyFile | None = None
    deadline: Deadline | None = None
    """The whole command's deadline (None: none); tool runs are capped by it."""

    def tool_dir(self, name: str) -> Path:
        """Return (creating it) a private state directory for tool ``name``."""
        path = self.state_dir / "tools" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def run(self, argv: Sequence[str], *, what: str, cwd: Path | str | None = None,
            env: Mapping[str, str] | None = None, stdin: bytes | None = None,
            timeout: float | None = None) -> bytes:
        """Run a tool with the context's timeout, capped by the deadline (when it cuts the run
        short: DeadlineExceeded naming ``what``) and killed when the deadline is cancelled
        (Cancelled naming ``what``); see :func:`kiln.core.tools.run_tool`.

        The tool sees only the allowlisted part of ``env`` (default: the context's), never
        kiln's credentials or the app's ``ARGOCD_ENV_*``: see :mod:`kiln.core.toolenv`.
        """
        from kiln.core.toolenv import tool_environment

        child = tool_environment(env if env is not None else self.env, operator=self.env)
        limit = timeout or self.timeout
        if self.deadline is None:
            return run_tool(argv, what=what, cwd=cwd, env=child, stdin=stdin, timeout=limit)
        try:
            return run_tool(argv, what=what, cwd=cwd, env=child, stdin=stdin, timeout=limit,
                            deadline=self.deadline)
        except ToolError:
            if self.deadline.expired():
                raise self.deadline.error(f"running {what}") from None
            raise

T = TypeVar("T")


@dataclass
class SecretContext:
    """Services for secret resolvers.

    ``app`` is None when resolving a stream read from stdin. Every resolved value must be passed
    to ``redactor.register`` before it is used. ``concurrency`` bounds parallel backend reads,
    ``timeout`` bounds each read in seconds. ``verified`` holds the tokens of source documents
    whose integrity the renderer already checked (``Inputs.verified``), e.g. SOPS files a
    renderer that reorders fields verified before its build. ``deadline`` is the whole
    command's (None: none): pass it to :class:`kiln.core.secrets.FetchPolicy`.
    ``backends`` is set by the engine; call :meth:`backend_for`. ``pool`` keeps backend
    clients for reuse (a server's connections); call :meth:`reuse`.
    """

    app: App | None
    env: Mapping[str, str]
    redactor: Redactor
    timeout: float = 30.0
    concurrency: int = 8
    settings: Mapping[str, Any] = field(default_factory=dict)
    verified: frozenset[str] = frozenset()
    deadline: Deadline | None = None
    backends: BackendFor | None = None
    pool: ClientPool | None = None

    def reuse(self, identity: object, build: Callable[[], T]) -> T:
        """A backend client built by ``build``, shared with every resolution of this engine
        whose ``identity`` (everything the client is built from, credentials included) is
        equal; see :class:`kiln.core.clientpool.ClientPool`. Without a pool: ``build()``."""
        return self.pool.reuse(identity, build) if self.pool is not None else build()

    def backend_for(self, provider: str, spec: Mapping[str, Any]) -> StoreBackend:
        """The backend (and read policy) an enabled resolver provides for a store of
        ``provider`` (e.g. ``"vault"``) described by ``spec`` (e.g. a SecretStore's
        ``spec.provider.vault``): the first resolver whose ``backend_for_store`` answers wins.
        Raises :class:`ConfigError` when none does (its plugin disabled or not installed)."""
        found = self.backends(provider, spec, self) if self.backends is not None else None
        if found is None:
            from kiln.core.errors import ConfigError

            raise ConfigError(f"no enabled resolver provides a {provider!r} backend "
                              "(is its plugin disabled by KILN_DISABLE_PLUGINS?)")
        return found
