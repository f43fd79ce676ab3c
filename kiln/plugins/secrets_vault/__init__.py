"""The Vault secret resolver: argocd-vault-plugin placeholders and ``ref+vault://`` URIs.

Configured by AVP's own variables (``AVP_TYPE=vault``, ``VAULT_ADDR``, ``AVP_AUTH_TYPE``, ...,
with ``ARGOCD_ENV_`` forms winning) or a ``secrets.vault`` section of kiln.yaml. The grammar,
batching and substitution live in :mod:`kiln.core.secrets`; this plugin adds the Vault-specific
parts: configuration, authentication and the KV v1/v2 read (:mod:`.backend`, which imports
hvac only when a read is needed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kiln.core.hookspecs import hookimpl
from kiln.core.registry import ResolverRegistry, SecretResolverBase
from kiln.plugins.secrets_vault.config import (
    VaultOptions,
    VaultSettings,
    is_configured,
    load_settings,
    owns_placeholders,
)

if TYPE_CHECKING:
    from kiln.core import placeholders, secrets
    from kiln.core.context import SecretContext


def vault_grammar(settings: VaultSettings | None, avp: bool) -> placeholders.Grammar:
    """The references the Vault resolver owns, with Vault's read keys.

    AVP placeholders read the path as written (KV v2 paths carry ``/data/``), with the KV
    version from ``avp.kubernetes.io/kv-version`` or ``AVP_KV_VERSION``; when neither is set
    the read key's variant is empty and the backend asks the mount (see
    :meth:`.backend.VaultBackend.kv_version`). ``ref+vault://MOUNT/PATH`` URIs get ``data/``
    inserted after the mount unless the KV version (``?kv=``, else ``AVP_KV_VERSION``) is 1
    (vals' convention) or the path already has it.
    """
    from kiln.core import placeholders, secrets

    default_kv = settings.kv_version if settings else "2"

    def read_key(path: str, version: str | None, annotations: Mapping[str, str]) -> secrets.ReadKey:
        kv = annotations.get(placeholders.AVP_KV_VERSION, "").strip() or default_kv
        return secrets.ReadKey(path, None if kv == "1" else version, kv)

    def uri_read(path: str, query: Mapping[str, str]) -> secrets.ReadKey:
        kv = query.get("kv") or default_kv
        version = query.get("version") or None
        if kv != "1":
            mount, _, rest = path.partition("/")
            if rest and not rest.startswith("data/"):
                path = f"{mount}/data/{rest}"
        # Without ?kv= or AVP_KV_VERSION the variant stays empty, as for placeholders, so a
        # URI and a placeholder of one path share one read.
        return secrets.ReadKey(path, None if kv == "1" else version, kv)

    return placeholders.Grammar(
        avp=avp,
        schemes=frozenset({"vault"}),
        path_validation=settings.path_validation if settings else None,
        read_key=read_key,
        uri_read=uri_read,
    )


class VaultResolver(SecretResolverBase):
    """Resolves AVP placeholders (when AVP_TYPE is vault or unset) and ref+vault:// URIs."""

    name = "vault"
    order = 50
    options_type = VaultOptions
    markers = ("<path:", "ref+vault://", "avp.kubernetes.io/path", "kind: Secret")
    """Text whose absence from a rendered stream proves there is nothing to resolve: inline
    placeholders, URIs, the annotation generic placeholders need, and any Secret (which may
    hide a template in base64 data)."""

    def _options(self, ctx: SecretContext) -> VaultOptions | None:
        if ctx.app is None or "vault" not in ctx.app.secrets:
            return None
        return ctx.app.secrets_for("vault", VaultOptions)

    def wants(self, objects: Sequence[dict[str, Any]], ctx: SecretContext) -> bool:
        """True when Vault is configured and some object holds a reference it owns."""
        if not is_configured(ctx.env, self._options(ctx)):
            return False
        from kiln.core import placeholders

        return placeholders.wants(objects, vault_grammar(None, owns_placeholders(ctx.env)))

    def resolve(self, objects: list[dict[str, Any]], ctx: SecretContext) -> list[dict[str, Any]]:
        """Read every referenced path once, concurrently, and substitute (AVP's rules)."""
        from kiln.core import placeholders, secrets
        from kiln.plugins.secrets_vault.backend import VaultBackend

        settings = load_settings(ctx.env, self._options(ctx), timeout=ctx.timeout,
                                 concurrency=ctx.concurrency)
        for credential in settings.credentials():
            ctx.redactor.register(credential)
        backend = ctx.reuse(("vault", settings), lambda: VaultBackend(settings, ctx.redactor))
        policy = secrets.FetchPolicy(concurrency=settings.concurrency, timeout=settings.timeout,
                                     retries=settings.retries, deadline=ctx.deadline)
        return placeholders.resolve_stream(objects, vault_grammar(settings, settings.avp), backend,
                                      policy, ctx.redactor)

    def backend_for_store(self, provider: str, spec: Mapping[str, Any], ctx: SecretContext
                          ) -> secrets.StoreBackend | None:
        """A Vault backend for a store whose ``spec`` (ESO's ``spec.provider.vault``) names the
        server, namespace and KV ``version``; kiln's own credentials (``AVP_AUTH_TYPE``, ...)
        log in. None for another provider. The caller has checked that the store may name
        that server (:func:`kiln.core.trust.check`)."""
        if provider != "vault":
            return None
        from kiln.core import secrets
        from kiln.plugins.secrets_vault.backend import VaultBackend

        env = {k: v for k, v in ctx.env.items()
               if k not in ("ARGOCD_ENV_VAULT_ADDR", "ARGOCD_ENV_VAULT_NAMESPACE",
                            "ARGOCD_ENV_AVP_KV_VERSION")}
        env["VAULT_ADDR"] = str(spec["server"])
        env["AVP_KV_VERSION"] = "1" if str(spec.get("version", "v2")) == "v1" else "2"
        if spec.get("namespace"):
            env["VAULT_NAMESPACE"] = str(spec["namespace"])
        settings = load_settings(env, None, timeout=ctx.timeout, concurrency=ctx.concurrency)
        ctx.redactor.register_many(settings.credentials())
        policy = secrets.FetchPolicy(concurrency=settings.concurrency, timeout=settings.timeout,
                                     retries=settings.retries, deadline=ctx.deadline)
        backend = ctx.reuse(("vault", settings), lambda: VaultBackend(settings, ctx.redactor))
        return secrets.StoreBackend(backend, policy)


@hookimpl
def kiln_register_secret_resolvers(registry: ResolverRegistry) -> None:
    """Register the Vault resolver."""
    registry.add(VaultResolver())
