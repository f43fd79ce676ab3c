"""What the cloud resolvers (AWS, GCP) share: the resolver skeleton and a payload's JSON keys.

A cloud resolver differs from another only in its section name, ``AVP_TYPE``, grammar and
backend; :class:`CloudResolver` holds the rest (its ``kiln.yaml`` section, ``wants``, and the
read-once-and-substitute pipeline of :mod:`kiln.core.secrets`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from kiln.core import placeholders, secrets
from kiln.core.registry import SecretResolverBase
from kiln.plugins.external_secrets.config import (
    AwsOptions,
    GcpOptions,
    ReadLimits,
    avp_type,
    path_validation,
)

if TYPE_CHECKING:
    from kiln.core.context import SecretContext

OptionsT = TypeVar("OptionsT", AwsOptions, GcpOptions)


def json_object_keys(text: str | None) -> dict[str, Any]:
    """The top-level keys of ``text`` when it is a JSON object; empty for anything else."""
    if text is None or not text.lstrip().startswith("{"):
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return dict(parsed) if isinstance(parsed, dict) else {}


class CloudResolver(SecretResolverBase, Generic[OptionsT]):
    """A resolver for one cloud secret manager: ``ref+SCHEME://`` URIs always, AVP
    placeholders when ``AVP_TYPE`` names this backend.

    Subclasses set ``name`` (the ``secrets.NAME`` section), ``avp_name``, ``markers`` and
    ``options_type`` and implement :meth:`grammar` and :meth:`backend`.
    """

    name: str
    order = 50
    avp_name: str
    """The ``AVP_TYPE`` value that hands argocd-vault-plugin placeholders to this resolver."""
    markers: tuple[str, ...]
    """Text whose absence proves there is no reference (see the Vault resolver's)."""
    options_type: type[OptionsT]

    def grammar(self, avp: bool, validation: re.Pattern[str] | None = None) -> placeholders.Grammar:
        """The references this resolver owns (AVP placeholders too when ``avp``)."""
        raise NotImplementedError

    def backend(self, ctx: SecretContext,
                opts: OptionsT | None) -> tuple[secrets.Backend, ReadLimits]:
        """The backend for this render (settings from ``opts`` and ``ctx.env``) and its
        limits; credentials found in the environment are registered with the redactor."""
        raise NotImplementedError

    def _options(self, ctx: SecretContext) -> OptionsT | None:
        if ctx.app is None or self.name not in ctx.app.secrets:
            return None
        return ctx.app.secrets_for(self.name, self.options_type)

    def wants(self, objects: Sequence[dict[str, Any]], ctx: SecretContext) -> bool:
        """True when some object holds a reference to this backend."""
        return placeholders.wants(objects, self.grammar(avp_type(ctx.env) == self.avp_name))

    def resolve(self, objects: list[dict[str, Any]], ctx: SecretContext) -> list[dict[str, Any]]:
        """Read every referenced secret once, concurrently, and substitute."""
        backend, lim = self.backend(ctx, self._options(ctx))
        policy = secrets.FetchPolicy(concurrency=lim.concurrency, timeout=lim.timeout,
                                     retries=lim.retries, deadline=ctx.deadline)
        grammar = self.grammar(avp_type(ctx.env) == self.avp_name, path_validation(ctx.env))
        return placeholders.resolve_stream(objects, grammar, backend, policy, ctx.redactor)
