"""The one exception hierarchy every kiln failure is raised as.

Each error carries an optional ``source`` (the file or object it concerns) so the CLI can print
``kiln: error: <source>: <what>`` on one line. Messages never contain secret values or template
text: callers pass names, paths and references only.
"""

from __future__ import annotations


class KilnError(Exception):
    """Base of every error kiln raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, source: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.source = source

    def one_line(self) -> str:
        """Return the error as a single line, prefixed with its source when known."""
        text = " ".join(self.message.split())
        source = " ".join(self.source.split()) if self.source else ""  # a name may hold a newline
        return f"{source}: {text}" if source else text

    def details(self) -> list[str]:
        """Extra lines shown under the one-line summary (e.g. every collected reference error)."""
        return []


class ConfigError(KilnError):
    """The app spec, kiln.yaml, a flag or the environment is invalid."""


class UsageError(ConfigError):
    """The command line itself is wrong (exit code 2)."""

    exit_code = 2


class PluginError(KilnError):
    """A plugin failed to load or registered something invalid."""


class InputError(KilnError):
    """An input file is missing, unreadable, malformed, oversize or outside the source root."""


class RenderError(KilnError):
    """A renderer could not produce manifests."""


class ToolError(RenderError):
    """An external tool (helm, kustomize, sops, ...) failed or timed out."""


class SecretError(KilnError):
    """A secret reference could not be resolved."""


class SecretNotFound(SecretError):
    """The backend answered, but the secret, key or version does not exist."""


class SecretBackendUnavailable(SecretError):
    """The backend could not be reached, timed out, or refused the credentials."""


class SecretErrors(SecretError):
    """Several reference errors collected over one stream, reported together."""

    def __init__(self, errors: list[SecretError]) -> None:
        first = errors[0].one_line() if errors else "no errors"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{len(errors)} secret reference(s) could not be resolved: {first}{more}")
        self.errors = errors

    def details(self) -> list[str]:
        return [e.one_line() for e in self.errors]


class CacheError(KilnError):
    """The cache store is unusable (not a corrupted entry: that is only a miss)."""


class ApplyError(KilnError):
    """Applying manifests to a cluster failed."""
