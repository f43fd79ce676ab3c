"""Shape checks for values that reach an external tool's command line.

Repository and application input (kiln.yaml, CMP parameters, ``ARGOCD_APP_*``) may choose
*values* — a release name, a namespace, a chart version — never *flags*. Every checker here
either returns the value unchanged, proven not flag-shaped (it never starts with ``-``) and free
of NUL, CR and LF, or raises a one-line ConfigError naming the option (``what``, e.g.
``helm.releaseName``) and the rule it breaks. The value itself is quoted only after it passed
the control-character check, so an error is always one line.

Callers still pass values in ``--opt=VALUE`` form or after ``--``: these checks are the second
wall, and they keep errors readable instead of leaving them to the tool.
"""

from __future__ import annotations

import re

from kiln.core.errors import ConfigError

# Patterns are kept as text and compiled by the re module's own cache on first use: compiling
# them all at import would cost a cache-hit render several milliseconds.
MAX_SHOWN = 80
"""Longest value quoted in an error (longer ones are cut, so a line stays readable)."""

CONTROL = re.compile(r"[\x00-\x1f\x7f]")
"""Control characters: NUL, CR, LF, tab, escape... (never allowed in a command-line value)."""
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
_QUALIFIED_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_LABEL_VALUE = r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_KUBE_VERSION = (
    r"v?\d{1,4}(\.\d{1,6}){0,2}\+?(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?")
_API_VERSION = (
    r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"  # group/
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"                                           # version
    r"(/[A-Za-z][A-Za-z0-9]*)?")                                              # /Kind
_CHART_VERSION = r"[0-9A-Za-z*^~<>=.][0-9A-Za-z*^~<>=|,. +_-]*"
_CHART_NAME = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
_HOST_PATH = (
    r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?")
_IMAGE = r"[A-Za-z0-9*_][A-Za-z0-9._/:@=+*-]*"
_SET_KEY = r"([A-Za-z0-9_/:@-]|\\[.,=\[\]\\]|\.|\[[0-9]{1,9}\])+"
_JSONNET_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_EXT_VAR = r"[A-Za-z_][A-Za-z0-9_.-]*"
_AFFIX = r"[a-z0-9.-]*"

RELEASE_NAME_MAX = 53
"""Helm's limit on a release name."""
REPO_SCHEMES = ("http", "https", "oci")
"""Chart repository schemes accepted from repository or application input (as Argo CD)."""


def shown(value: str) -> str:
    """``value`` quoted for an error message: control characters escaped, long values cut."""
    text = value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "..."
    return repr(text)


def _fail(what: str, value: str, rule: str, source: str | None) -> ConfigError:
    return ConfigError(f"{what}: {shown(value)} is not {rule}", source=source)


def plain(value: str, what: str, *, source: str | None = None, allow_empty: bool = False) -> str:
    """Return ``value`` if it cannot be read as a flag: not starting with ``-``, no control
    characters (NUL, CR, LF, tab...), non-empty unless ``allow_empty``; else ConfigError."""
    if not isinstance(value, str):
        raise ConfigError(f"{what}: must be a string", source=source)
    if not value and not allow_empty:
        raise ConfigError(f"{what}: must not be empty", source=source)
    if CONTROL.search(value):
        raise _fail(what, value, "allowed: it holds a control character (newline, NUL...)",
                    source)
    if value.startswith("-"):
        raise _fail(what, value, "allowed: a value must not start with '-'", source)
    return value


def no_control(value: str, what: str, *, source: str | None = None) -> str:
    """Return ``value`` if it holds no control character (NUL, CR, LF...); else ConfigError.

    For values that are never flag-shaped where they go (a relative path kiln resolves to an
    absolute one, a secret passed as ``--password=VALUE``), so a leading '-' is allowed.
    """
    if not isinstance(value, str):
        raise ConfigError(f"{what}: must be a string", source=source)
    if CONTROL.search(value):
        raise ConfigError(f"{what}: holds a control character (newline, NUL...)", source=source)
    return value


def _match(pattern: str, value: str, what: str, rule: str, source: str | None,
           max_len: int | None = None) -> str:
    plain(value, what, source=source)
    if max_len is not None and len(value) > max_len:
        raise _fail(what, value, f"{rule} (at most {max_len} characters)", source)
    if not re.fullmatch(pattern, value):
        raise _fail(what, value, rule, source)
    return value


def dns_label(value: str, what: str, *, source: str | None = None) -> str:
    """A DNS-1123 label (a namespace): lowercase alphanumerics and '-', at most 63."""
    return _match(_DNS_LABEL, value, what, "a valid DNS-1123 label (lowercase letters, digits "
                  "and '-', starting and ending with a letter or digit)", source, 63)


def dns_subdomain(value: str, what: str, *, source: str | None = None) -> str:
    """A DNS-1123 subdomain (most object names): DNS labels joined by '.', at most 253."""
    return _match(_DNS_SUBDOMAIN, value, what, "a valid DNS-1123 subdomain (lowercase letters, "
                  "digits, '-' and '.')", source, 253)


def release_name(value: str, what: str, *, source: str | None = None) -> str:
    """A Helm release name: Helm's own rule (a DNS-1123 subdomain of at most 53 characters)."""
    return _match(_DNS_SUBDOMAIN, value, what, "a valid Helm release name (lowercase letters, "
                  "digits, '-' and '.')", source, RELEASE_NAME_MAX)


def kube_version(value: str, what: str, *, source: str | None = None) -> str:
    """A Kubernetes version such as ``1.31``, ``v1.31.0`` or ``1.29.4+k3s1``."""
    return _match(_KUBE_VERSION, value, what, "a Kubernetes version (e.g. 1.31.0)", source, 64)


def api_version(value: str, what: str, *, source: str | None = None) -> str:
    """An API version as Argo CD passes it: ``v1``, ``group/version`` or ``group/version/Kind``."""
    return _match(_API_VERSION, value, what, "an API version (v1, GROUP/VERSION or "
                  "GROUP/VERSION/KIND)", source, 317)


def chart_version(value: str, what: str, *, source: str | None = None) -> str:
    """A chart version or a semver range (``1.2.3``, ``^1.2``, ``>=1.0 <2``, ``1.x``)."""
    return _match(_CHART_VERSION, value, what, "a chart version or version range", source, 128)


def chart_name(value: str, what: str, *, source: str | None = None) -> str:
    """A chart name in a repository: letters, digits, '.', '_' and '-', not starting with '-'."""
    return _match(_CHART_NAME, value, what, "a chart name (letters, digits, '.', '_' and '-')",
                  source, 253)


def repo_url(value: str, what: str, *, source: str | None = None) -> str:
    """A chart repository: an ``http``, ``https`` or ``oci`` URL with a host, or a bare
    ``host[:port]/path`` (an OCI registry). ``file://`` and other schemes are refused."""
    plain(value, what, source=source)
    if "://" not in value:
        return _match(_HOST_PATH, value, what, "a repository URL (https://, http:// or "
                      "oci://) or an OCI registry HOST/PATH", source, 2048)
    if any(ch.isspace() for ch in value) or len(value) > 2048:
        raise _fail(what, value, "a valid repository URL", source)
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise _fail(what, value, "a valid repository URL", source) from None
    if parts.scheme.lower() not in REPO_SCHEMES:
        raise _fail(what, value, "an allowed repository URL: the scheme must be one of "
                    + ", ".join(REPO_SCHEMES), source)
    if not parts.hostname:
        raise _fail(what, value, "a valid repository URL: it has no host", source)
    return value


def image(value: str, what: str, *, source: str | None = None) -> str:
    """A kustomize image override: ``[NAME=]NEWNAME[:TAG][@DIGEST]`` in image-reference
    characters (``*`` keeps a field, as ``kustomize edit set image``)."""
    return _match(_IMAGE, value, what, "an image reference ([NAME=]NEWNAME[:TAG][@DIGEST])",
                  source, 1024)


def name_affix(value: str, what: str, *, source: str | None = None) -> str:
    """A name prefix or suffix: DNS characters only (lowercase, digits, '-', '.'); a suffix may
    start with '-' because it is written into the kustomization, never onto a command line."""
    if not isinstance(value, str):
        raise ConfigError(f"{what}: must be a string", source=source)
    if CONTROL.search(value) or len(value) > 253 or not re.fullmatch(_AFFIX, value):
        raise _fail(what, value, "a valid name prefix/suffix (lowercase letters, digits, '-' "
                    "and '.')", source)
    return value


def qualified_name(value: str, what: str, *, source: str | None = None) -> str:
    """A label or annotation key: ``[PREFIX/]NAME``, PREFIX a DNS subdomain, NAME at most 63
    alphanumerics, '-', '_' and '.' starting and ending alphanumeric (Kubernetes' rule)."""
    plain(value, what, source=source)
    prefix, slash, name = value.rpartition("/")
    ok = bool(name) and len(name) <= 63 and bool(re.fullmatch(_QUALIFIED_NAME, name))
    if slash:
        ok = ok and 0 < len(prefix) <= 253 and bool(re.fullmatch(_DNS_SUBDOMAIN, prefix))
    if not ok:
        raise _fail(what, value, "a valid label/annotation key ([PREFIX/]NAME)", source)
    return value


def label_value(value: str, what: str, *, source: str | None = None) -> str:
    """A label value: empty, or at most 63 alphanumerics, '-', '_' and '.' starting and ending
    alphanumeric (Kubernetes' rule)."""
    if not isinstance(value, str):
        raise ConfigError(f"{what}: must be a string", source=source)
    if len(value) > 63 or not re.fullmatch(_LABEL_VALUE, value):
        raise _fail(what, value, "a valid label value (at most 63 letters, digits, '-', '_' "
                    "and '.')", source)
    return value


def set_key(value: str, what: str, *, source: str | None = None) -> str:
    """A Helm ``--set`` key in Helm's path syntax: names joined by '.', list indexes ``[N]``,
    escaped ``\\.``/``\\,``/``\\=``; no unescaped ',' or '=' (they would start another
    assignment)."""
    return _match(_SET_KEY, value, what, "a Helm value path (NAME[.NAME|[INDEX]]..., with "
                  "'\\.' for a literal dot)", source, 1024)


def set_value(value: str, what: str, *, source: str | None = None) -> str:
    """A Helm ``--set`` value: any text but NUL (it is passed as ``--set=KEY=VALUE``, so it
    can never be a flag; newlines are data)."""
    if "\x00" in value:
        raise ConfigError(f"{what}: the value holds a NUL character", source=source)
    return value


def jsonnet_tla(value: str, what: str, *, source: str | None = None) -> str:
    """A Jsonnet top-level argument name: an identifier (it must match a parameter)."""
    return _match(_JSONNET_IDENT, value, what, "a Jsonnet identifier", source, 256)


def jsonnet_ext_var(value: str, what: str, *, source: str | None = None) -> str:
    """A Jsonnet external variable name: a letter or '_' then letters, digits, '_', '.', '-'."""
    return _match(_EXT_VAR, value, what, "a valid external variable name (letters, digits, "
                  "'_', '.', '-')", source, 256)


def path_value(value: str, what: str, *, source: str | None = None) -> str:
    """A file path that goes onto a command line: an absolute path (so never flag-shaped), no
    control characters."""
    plain(value, what, source=source)
    if not value.startswith("/"):
        raise _fail(what, value, "an absolute path", source)
    return value
