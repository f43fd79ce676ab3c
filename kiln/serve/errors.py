"""The errors ``kiln serve`` raises of its own, and the HTTP status of every kiln error.

A :class:`~kiln.core.errors.KilnError` that carries an integer ``status`` (these classes,
and the git sources' errors) answers with it. Otherwise the class decides:

======================================================  ======  ==============================
error                                                   status  meaning
======================================================  ======  ==============================
:class:`~kiln.server.ServerDraining`                    503     shutting down
a cancelled deadline (the drain cut it off)             503     shutting down
:class:`~kiln.core.deadline.DeadlineExceeded`           504     the request's deadline passed
:class:`~kiln.core.trust.TrustError`                    403     a setting only the operator
                                                                may make
:class:`~kiln.core.errors.SecretBackendUnavailable`     502     a secret backend unreachable
:class:`~kiln.core.errors.SecretErrors` (any of them    502     (else 422: a reference the
unreachable)                                                    backend does not hold)
:class:`~kiln.core.errors.CacheError`                   502     the cache store unusable
:class:`~kiln.core.errors.InputError`,                  422     the app cannot be rendered as
:class:`~kiln.core.errors.ConfigError`,                         it is (the caller's input)
:class:`~kiln.core.errors.RenderError`,
:class:`~kiln.core.errors.SecretError`
any other KilnError                                     500
======================================================  ======  ==============================
"""

from __future__ import annotations

from kiln.core.errors import KilnError, UsageError


class ServeError(KilnError):
    """A request ``kiln serve`` refuses; ``status`` is the HTTP status it answers with."""

    status = 400


class BadRequest(ServeError, UsageError):
    """The request is malformed (a schema error, a path that is no path): 400."""

    status = 400


class Unauthorized(ServeError):
    """No bearer token, or not the operator's: 401."""

    status = 401


class Forbidden(ServeError):
    """The request names what the operator does not allow (a path outside the allowed
    roots, path requests turned off): 403."""

    status = 403


class NotFound(ServeError):
    """The app directory does not exist: 404."""

    status = 404


class BodyTooLarge(ServeError):
    """The request body is over the operator's limit: 413."""

    status = 413


def status_for(exc: KilnError) -> int:
    """The HTTP status a request that failed with ``exc`` answers with (see the module
    docstring)."""
    from kiln.core.deadline import Cancelled, DeadlineExceeded
    from kiln.core.errors import (
        CacheError,
        ConfigError,
        InputError,
        RenderError,
        SecretBackendUnavailable,
        SecretError,
        SecretErrors,
    )
    from kiln.core.trust import TrustError
    from kiln.server import ServerDraining
    from kiln.server.lifecycle import SHUTDOWN

    status = getattr(exc, "status", None)
    if isinstance(status, int) and 400 <= status <= 599:
        return status
    if isinstance(exc, ServerDraining):
        return 503
    if isinstance(exc, Cancelled):
        return 503 if SHUTDOWN in exc.message else 499
    if isinstance(exc, DeadlineExceeded):
        return 504
    if isinstance(exc, TrustError):
        return 403
    if isinstance(exc, SecretBackendUnavailable):
        return 502
    if isinstance(exc, SecretErrors):
        unreachable = any(isinstance(e, SecretBackendUnavailable) for e in exc.errors)
        return 502 if unreachable else 422
    if isinstance(exc, CacheError):
        return 502
    if isinstance(exc, (InputError, ConfigError, RenderError, SecretError)):
        return 422
    return 500


__all__ = ["BadRequest", "BodyTooLarge", "Forbidden", "NotFound", "ServeError",
           "Unauthorized", "status_for"]
