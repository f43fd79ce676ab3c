"""The environment external rendering tools (helm, kustomize, jsonnet's worker) run in.

kiln's own process holds credentials its secret resolvers need (``VAULT_TOKEN``, ``AVP_*``,
``AWS_*``, ``SOPS_AGE_KEY*``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``KILN_HELM_PASSWORD``) and, in
Argo CD's sidecar, the app's ``ARGOCD_ENV_*`` variables. A rendering tool needs none of them: it
gets an allowlisted environment — where to find programs and its home, locale, proxies, TLS
trust, its own ``HELM_*`` settings and the Go runtime's knobs. The operator widens the list
with ``KILN_TOOL_ENV_ALLOW`` in kiln's own environment (comma-separated names; a trailing
``*`` makes a prefix), e.g. ``KILN_TOOL_ENV_ALLOW=SSH_AUTH_SOCK,GIT_*``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

ALLOW_ENV = "KILN_TOOL_ENV_ALLOW"
"""The operator's switch: more variable names (or ``PREFIX*``) a tool may inherit."""

ALLOWED_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "LANG", "LANGUAGE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
    "http_proxy", "https_proxy", "no_proxy", "all_proxy",
    "SSL_CERT_FILE", "SSL_CERT_DIR",
    "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME",
    "GOMAXPROCS", "GOMEMLIMIT", "GOGC",
})
"""Variables every tool may inherit."""
ALLOWED_PREFIXES = ("LC_", "HELM_")
"""Prefixes every tool may inherit (locale, Helm's own homes and registry/repository config)."""


def _operator_allowed(text: str) -> tuple[frozenset[str], tuple[str, ...]]:
    names: set[str] = set()
    prefixes: list[str] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        if item.endswith("*"):
            if item[:-1]:
                prefixes.append(item[:-1])
        else:
            names.add(item)
    return frozenset(names), tuple(prefixes)


def tool_environment(env: Mapping[str, str], *, allow: Iterable[str] = (),
                     operator: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the part of ``env`` a rendering tool may see.

    Kept: :data:`ALLOWED_NAMES`, names starting with :data:`ALLOWED_PREFIXES`, the names in
    ``allow`` (what the caller itself put there for the tool), and whatever the operator lists
    in ``KILN_TOOL_ENV_ALLOW``, read from ``operator`` (kiln's own process environment; default
    ``env`` itself). Everything else — credentials, ``ARGOCD_ENV_*``, ``KILN_*`` — is dropped.
    """
    source = env if operator is None else operator
    extra_names, extra_prefixes = _operator_allowed(source.get(ALLOW_ENV, ""))
    names = ALLOWED_NAMES | extra_names | frozenset(allow)
    prefixes = ALLOWED_PREFIXES + extra_prefixes
    return {k: v for k, v in env.items() if k in names or k.startswith(prefixes)}
