"""Cloud secret managers and External Secrets Operator resources.

Four resolvers:

* ``aws`` (:mod:`.aws`): AWS Secrets Manager, ``ref+awssecrets://`` and
  ``AVP_TYPE=awssecretsmanager`` placeholders;
* ``gcp`` (:mod:`.gcp`): Google Secret Manager, ``ref+gcpsecrets://`` and
  ``AVP_TYPE=gcpsecretmanager`` placeholders;
* ``externalSecrets`` (order 10, before any placeholder is resolved): validates every
  ExternalSecret against ESO's schema (mode ``keep``, the default) or, in mode ``convert``,
  replaces Secrets holding references by ExternalSecrets (:mod:`.convert`);
* ``externalSecretsMaterialize`` (order 90, after the placeholder resolvers): in mode
  ``materialize``, replaces each ExternalSecret by the Secret ESO would create
  (:mod:`.materialize`). It reads the same ``secrets.externalSecrets`` section.

All of them run after the cache, in memory, like every secret resolver: ExternalSecret
handling is an object transformation that needs backend reads, which must never be cached.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from kiln.core.faces import Faces, Flag
from kiln.core.hookspecs import hookimpl
from kiln.core.registry import ResolverRegistry, SecretResolverBase
from kiln.plugins.external_secrets.aws import AwsResolver
from kiln.plugins.external_secrets.config import (
    ExternalSecretsOptions,
    external_secrets_mode,
    parse_store_ref,
)
from kiln.plugins.external_secrets.gcp import GcpResolver
from kiln.plugins.external_secrets.schema import is_external_secret

if TYPE_CHECKING:
    from kiln.core.context import SecretContext

SECTION = "externalSecrets"


def options(ctx: SecretContext) -> ExternalSecretsOptions:
    """The ``secrets.externalSecrets`` section (defaults without an app or section)."""
    if ctx.app is None or SECTION not in ctx.app.secrets:
        return ExternalSecretsOptions()
    return ctx.app.secrets_for(SECTION, ExternalSecretsOptions)



FACES = Faces(
    flags=(
        Flag(("--external-secrets",), "secrets.externalSecrets.mode",
             choices=("keep", "materialize", "convert"),
             help="ExternalSecrets: keep (validate), materialize into Secrets, or convert "
                  "Secrets with references into them."),
        Flag(("--secret-store",), "secrets.externalSecrets.secretStore", metavar="NAME[:KIND]",
             help="ExternalSecrets: the store conversion points at."),
    ),
)
"""The ExternalSecrets resolver's flags."""


class ExternalSecretsResolver(SecretResolverBase):
    """Mode keep: validate ExternalSecrets. Mode convert: Secrets -> ExternalSecrets."""

    name = SECTION
    faces = FACES
    order = 10
    markers = ("ExternalSecret", "kind: Secret")
    """Text whose absence proves there is nothing to validate or convert."""
    options_type = ExternalSecretsOptions

    def wants(self, objects: Sequence[dict[str, Any]], ctx: SecretContext) -> bool:
        """True when there is an ExternalSecret to validate, or a reference to convert."""
        mode = external_secrets_mode(options(ctx), ctx.env)
        if mode == "materialize":
            return False
        if any(is_external_secret(o) for o in objects):
            return True
        if mode == "convert":
            from kiln.plugins.external_secrets.convert import wants

            return wants(list(objects))
        return False

    def resolve(self, objects: list[dict[str, Any]], ctx: SecretContext) -> list[dict[str, Any]]:
        """Validate every ExternalSecret; in convert mode, convert Secrets with references."""
        from kiln.plugins.external_secrets import schema

        opts = options(ctx)
        schema.validate(objects)
        if external_secrets_mode(opts, ctx.env) != "convert":
            return objects
        from kiln.plugins.external_secrets.convert import convert

        store = parse_store_ref(opts.secret_store or ctx.env.get("KILN_SECRET_STORE", ""))
        return convert(objects, store, ctx.env, opts.stores)


class MaterializeResolver(SecretResolverBase):
    """Mode materialize: each ExternalSecret becomes the Secret ESO would create."""

    name = "externalSecretsMaterialize"
    order = 90
    markers = ("ExternalSecret",)
    """Text whose absence proves there is nothing to materialise."""

    def wants(self, objects: Sequence[dict[str, Any]], ctx: SecretContext) -> bool:
        """True in materialize mode when the stream holds an ExternalSecret."""
        return (external_secrets_mode(options(ctx), ctx.env) == "materialize"
                and any(is_external_secret(o) for o in objects))

    def resolve(self, objects: list[dict[str, Any]], ctx: SecretContext) -> list[dict[str, Any]]:
        """Read every referenced value (batched per store) and emit the Secrets."""
        from kiln.plugins.external_secrets.materialize import materialize

        return materialize(objects, ctx, options(ctx))


@hookimpl
def kiln_register_secret_resolvers(registry: ResolverRegistry) -> None:
    """Register the AWS, GCP and External Secrets resolvers."""
    registry.add(AwsResolver())
    registry.add(GcpResolver())
    registry.add(ExternalSecretsResolver())
    registry.add(MaterializeResolver())
