"""``--external-secrets=materialize``: turn each ExternalSecret into the Secret ESO would create.

Stores come from the render (SecretStore/ClusterSecretStore objects) or from
``secrets.externalSecrets.stores``. Reads are planned for the whole stream first, then each
store's reads run once per distinct key through :func:`kiln.core.secrets.fetch_all` (bounded
concurrency, timeouts, retries); every value is registered with the redactor. Then each
ExternalSecret's data is assembled as ESO does (``dataFrom`` first, ``data`` over it,
``decodingStrategy``, ``rewrite.regexp``), templated (``target.template``, engine v2,
``mergePolicy``), and written per ``target.creationPolicy``: Owner/Orphan emit a Secret in
place of the ExternalSecret, Merge merges into a Secret of the same render, None emits nothing.
SecretStores and ClusterSecretStores are dropped as well (the target cluster has no operator,
so their CRDs would not apply).
Every failure is collected and raised once as :class:`SecretErrors`.
"""

from __future__ import annotations

import base64
import copy
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kiln.core import secrets
from kiln.core.errors import ConfigError, KilnError, SecretError, SecretErrors
from kiln.core.manifests import object_ref
from kiln.core.secrets import ReadKey
from kiln.core.trust import Level, Origin, TrustError, origin_of
from kiln.plugins.external_secrets import gotemplate, schema, stores
from kiln.plugins.external_secrets.config import ExternalSecretsOptions

if TYPE_CHECKING:
    from kiln.core.context import SecretContext

log = logging.getLogger("kiln.secrets.eso")

StoreId = tuple[str, str, str]  # (kind, name, namespace)


@dataclass
class _Item:
    """One planned read: a ``data[]`` entry (``secret_key`` set) or a ``dataFrom[]`` extract."""

    where: str
    store: StoreId
    remote: Mapping[str, Any]
    key: ReadKey
    secret_key: str | None = None
    rewrite: Sequence[Any] = ()


@dataclass
class _Plan:
    obj: dict[str, Any]
    ref: str
    items: list[_Item] = field(default_factory=list)
    errors: list[SecretError] = field(default_factory=list)


def _ns(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("namespace") or "") if isinstance(meta, Mapping) else ""


def _name(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    return str(meta.get("name") or "") if isinstance(meta, Mapping) else ""


class _Stores:
    """Store manifests by id, turned into :class:`stores.Store` backends on first use."""

    def __init__(self, manifests: Sequence[Mapping[str, Any]], ctx: SecretContext,
                 origins: Mapping[int, Origin] | None = None) -> None:
        self.manifests: dict[StoreId, Mapping[str, Any]] = {}
        for m in manifests:
            self.manifests.setdefault((str(m.get("kind")), _name(m), _ns(m)), m)
        self.origins = origins or {}
        """Where a manifest came from, by ``id()``; a store of the render is the repository's."""
        self.ctx = ctx
        self.built: dict[StoreId, stores.Store | SecretError] = {}

    def find(self, ref: Mapping[str, Any], es_ns: str) -> StoreId:
        """The id of the store ``ref`` names (SecretStores are looked up in ``es_ns``)."""
        kind = str(ref.get("kind") or "SecretStore")
        name = str(ref.get("name") or "")
        if kind == "ClusterSecretStore":
            for sid in self.manifests:
                if sid[0] == kind and sid[1] == name:
                    return sid
        else:
            for sid in self.manifests:
                if sid[0] == kind and sid[1] == name and (not sid[2] or not es_ns
                                                          or sid[2] == es_ns):
                    return sid
        raise stores.StoreError(f"{kind} {name!r} is neither in the render nor in "
                                "secrets.externalSecrets.stores")

    def get(self, sid: StoreId) -> stores.Store:
        """The built store (raises the StoreError met while building it)."""
        if sid not in self.built:
            try:
                self.built[sid] = self._build(sid)
            except SecretError as exc:
                self.built[sid] = exc
            except TrustError:
                raise  # refused before anything is contacted: the whole run stops here
            except KilnError as exc:  # a ConfigError from a backend's settings
                self.built[sid] = stores.StoreError(exc.message, source=exc.source)
        got = self.built[sid]
        if isinstance(got, SecretError):
            raise got
        return got

    def _build(self, sid: StoreId) -> stores.Store:
        manifest = self.manifests[sid]
        ref = object_ref(dict(manifest))
        provider, spec = stores.provider_of(manifest)
        ctx = self.ctx
        backend: secrets.Backend
        if provider == "vault":
            origin = self.origins.get(id(manifest)) or Origin(Level.REPOSITORY, ref)
            stores.check_vault_store(spec, origin, ctx.env)
            backend, policy = ctx.backend_for("vault", spec)  # the Vault resolver's backend
        elif provider == "aws":
            from kiln.plugins.external_secrets.aws import AwsBackend
            from kiln.plugins.external_secrets.aws import load_settings as aws_settings
            from kiln.plugins.external_secrets.config import AwsOptions

            opts = (ctx.app.secrets_for("aws", AwsOptions)
                    if ctx.app is not None and "aws" in ctx.app.secrets else None)
            aws = aws_settings(ctx.env, opts, timeout=ctx.timeout, concurrency=ctx.concurrency)
            ctx.redactor.register_many(aws.credentials())
            backend = ctx.reuse(("aws", aws), lambda: AwsBackend(aws))
            policy = secrets.FetchPolicy(concurrency=aws.limits.concurrency,
                                         timeout=aws.limits.timeout,
                                         retries=aws.limits.retries, deadline=ctx.deadline)
        else:
            from kiln.plugins.external_secrets.config import GcpOptions
            from kiln.plugins.external_secrets.gcp import GcpBackend
            from kiln.plugins.external_secrets.gcp import load_settings as gcp_settings

            gopts = (ctx.app.secrets_for("gcp", GcpOptions)
                     if ctx.app is not None and "gcp" in ctx.app.secrets else None)
            gcp = gcp_settings(ctx.env, gopts, timeout=ctx.timeout, concurrency=ctx.concurrency)
            backend = ctx.reuse(("gcp", gcp), lambda: GcpBackend(gcp))
            policy = secrets.FetchPolicy(concurrency=gcp.limits.concurrency,
                                         timeout=gcp.limits.timeout,
                                         retries=gcp.limits.retries, deadline=ctx.deadline)
        return stores.Store(ref, provider, spec, backend, policy)


def _plan(obj: dict[str, Any], registry: _Stores) -> _Plan:
    plan = _Plan(obj, object_ref(obj))
    spec = obj["spec"]
    ns = _ns(obj)
    default_ref = spec.get("secretStoreRef") or {}

    def store_for(entry: Mapping[str, Any], where: str) -> StoreId | None:
        source = entry.get("sourceRef") or {}
        if source.get("generatorRef"):
            plan.errors.append(SecretError(f"{where}.sourceRef.generatorRef: generators are "
                                           "not supported", source=plan.ref))
            return None
        ref = source.get("storeRef") or default_ref
        try:
            sid = registry.find(ref, ns)
            registry.get(sid)
            return sid
        except SecretError as exc:
            plan.errors.append(SecretError(f"{where}: {exc.one_line()}", source=plan.ref))
            return None

    def check_remote(remote: Mapping[str, Any], where: str) -> bool:
        if remote.get("metadataPolicy") == "Fetch":
            plan.errors.append(SecretError(f"{where}.metadataPolicy: Fetch is not supported",
                                           source=plan.ref))
            return False
        if remote.get("conversionStrategy") == "Unicode":
            plan.errors.append(SecretError(f"{where}.conversionStrategy: Unicode is not "
                                           "supported", source=plan.ref))
            return False
        return True

    for i, entry in enumerate(spec.get("dataFrom") or []):
        where = f"spec.dataFrom[{i}]"
        if entry.get("find"):
            plan.errors.append(SecretError(f"{where}.find: listing secrets is not supported "
                                           "(use extract or data)", source=plan.ref))
            continue
        remote = entry.get("extract")
        for j, rw in enumerate(entry.get("rewrite") or []):
            if not rw.get("regexp"):
                plan.errors.append(SecretError(f"{where}.rewrite[{j}]: only regexp rewrites "
                                               "are supported", source=plan.ref))
        sid = store_for(entry, where)
        if sid is None or not remote or not check_remote(remote, f"{where}.extract"):
            continue
        store = registry.get(sid)
        plan.items.append(_Item(where, sid, remote, store.read_key(remote),
                                rewrite=entry.get("rewrite") or ()))
    for i, entry in enumerate(spec.get("data") or []):
        where = f"spec.data[{i}]"
        remote = entry["remoteRef"]
        sid = store_for(entry, where)
        if sid is None or not check_remote(remote, f"{where}.remoteRef"):
            continue
        store = registry.get(sid)
        plan.items.append(_Item(where, sid, remote, store.read_key(remote),
                                secret_key=str(entry["secretKey"])))
    template = (spec.get("target") or {}).get("template") or {}
    if template.get("engineVersion") == "v1":
        plan.errors.append(SecretError("spec.target.template.engineVersion: the deprecated v1 "
                                       "engine is not supported (use v2)", source=plan.ref))
    if template.get("templateFrom"):
        plan.errors.append(SecretError("spec.target.template.templateFrom: not supported "
                                       "(use template.data)", source=plan.ref))
    return plan


def _go_replacement(target: str) -> str:
    """Go's ``$1``/``${name}`` replacement syntax -> Python's ``\\g<...>``."""
    return re.sub(r"\$(\{(\w+)\}|(\w+))",
                  lambda m: "\\g<" + (m.group(2) or m.group(3)) + ">",
                  target.replace("\\", "\\\\"))


def _assemble(plan: _Plan, registry: _Stores,
              results: Mapping[StoreId, Mapping[ReadKey, Mapping[str, Any] | SecretError]]
              ) -> dict[str, bytes]:
    data: dict[str, bytes] = {}
    for item in plan.items:
        got = results[item.store][item.key]
        store = registry.get(item.store)
        if isinstance(got, SecretError):
            plan.errors.append(type(got)(f"{item.where}: {got.message}", source=plan.ref))
            continue
        strategy = str(item.remote.get("decodingStrategy") or "None")
        try:
            if item.secret_key is not None:
                data[item.secret_key] = stores.decode(store.value(got, item.remote), strategy)
                continue
            pairs = {k: stores.decode(v, strategy) for k, v in
                     store.extract(got, item.remote).items()}
            for rw in item.rewrite:
                rx = rw.get("regexp") or {}
                pattern = re.compile(str(rx.get("source", "")))
                repl = _go_replacement(str(rx.get("target", "")))
                pairs = {pattern.sub(repl, k): v for k, v in pairs.items()}
            data.update(pairs)
        except SecretError as exc:
            plan.errors.append(type(exc)(f"{item.where}: {exc.message}", source=plan.ref))
        except re.error as exc:
            plan.errors.append(SecretError(f"{item.where}.rewrite: bad regexp: {exc}",
                                           source=plan.ref))
    return data


def _render_secret(plan: _Plan, data: dict[str, bytes], ctx: SecretContext
                   ) -> dict[str, Any] | None:
    obj = plan.obj
    spec = obj["spec"]
    target = spec.get("target") or {}
    template = target.get("template")
    meta: dict[str, Any] = {"name": target.get("name") or _name(obj)}
    if _ns(obj):
        meta["namespace"] = _ns(obj)
    secret_type = "Opaque"
    out = dict(data)
    if isinstance(template, Mapping):
        tmeta = template.get("metadata") or {}
        if tmeta.get("labels"):
            meta["labels"] = dict(tmeta["labels"])
        if tmeta.get("annotations"):
            meta["annotations"] = dict(tmeta["annotations"])
        secret_type = str(template.get("type") or "Opaque")
        tdata = template.get("data") or {}
        if tdata:
            context = {k: v.decode("utf-8", "replace") for k, v in data.items()}
            rendered: dict[str, bytes] = {}
            for key, text in tdata.items():
                try:
                    rkey = gotemplate.render(str(key), context)
                    rendered[rkey] = gotemplate.render(str(text), context).encode()
                except gotemplate.TemplateError as exc:
                    plan.errors.append(SecretError(f"spec.target.template.data.{key}: {exc}",
                                                   source=plan.ref))
            ctx.redactor.register_many(rendered.values())
            out = {**data, **rendered} if template.get("mergePolicy") == "Merge" else rendered
    ctx.redactor.register_many(out.values())
    secret: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "metadata": meta}
    if target.get("immutable"):
        secret["immutable"] = True
    secret["type"] = secret_type
    secret["data"] = {k: base64.b64encode(v).decode() for k, v in sorted(out.items())}
    return secret


def _merge_into(existing: dict[str, Any], secret: Mapping[str, Any]) -> None:
    data = dict(existing.get("data") or {})
    data.update(secret["data"])
    existing["data"] = data
    string_data = existing.get("stringData")
    if isinstance(string_data, dict):
        for key in secret["data"]:
            string_data.pop(key, None)
    meta = existing.setdefault("metadata", {})
    for part in ("labels", "annotations"):
        if secret["metadata"].get(part):
            meta[part] = {**(meta.get(part) or {}), **secret["metadata"][part]}


def materialize(objects: list[dict[str, Any]], ctx: SecretContext,
                opts: ExternalSecretsOptions) -> list[dict[str, Any]]:
    """Return ``objects`` with every ExternalSecret replaced by the Secret ESO would create.

    Raises :class:`SecretErrors` listing every reference or store problem.
    """
    schema.validate(objects)
    for i, manifest in enumerate(opts.stores):
        if not schema.is_store(manifest):
            raise ConfigError(f"secrets.externalSecrets.stores[{i}] is not an "
                              "external-secrets.io SecretStore or ClusterSecretStore")
    manifests = [o for o in objects if schema.is_store(o)] + list(opts.stores)
    origin = origin_of("secrets.externalSecrets.stores", ctx.app.origins if ctx.app else {})
    registry = _Stores(manifests, ctx, {id(m): origin for m in opts.stores})
    plans = [_plan(o, registry) for o in objects if schema.is_external_secret(o)]
    wanted: dict[StoreId, list[ReadKey]] = {}
    for plan in plans:
        for item in plan.items:
            wanted.setdefault(item.store, []).append(item.key)
    results: dict[StoreId, dict[ReadKey, Mapping[str, Any] | SecretError]] = {}
    failures: list[SecretError] = []
    for sid, keys in wanted.items():
        store = registry.get(sid)
        try:
            results[sid] = secrets.fetch_all(store.backend, keys, store.policy, ctx.redactor)
        except SecretError as exc:  # the backend could not open: every read of it fails
            results[sid] = {k: exc for k in keys}
    secrets_by_es: dict[int, dict[str, Any] | None] = {}
    for plan in plans:
        data = _assemble(plan, registry, results)
        secret = _render_secret(plan, data, ctx) if not plan.errors else None
        secrets_by_es[id(plan.obj)] = secret
        failures += plan.errors
    out: list[dict[str, Any]] = []
    merges: list[tuple[_Plan, dict[str, Any]]] = []
    for obj in objects:
        if schema.is_store(obj):
            continue  # no operator in the target cluster: its CRDs would not apply
        if not schema.is_external_secret(obj):
            out.append(obj)
            continue
        secret = secrets_by_es.get(id(obj))
        if secret is None:
            continue
        policy = ((obj["spec"].get("target") or {}).get("creationPolicy")) or "Owner"
        if policy == "None":
            log.debug("%s: creationPolicy None, no Secret emitted", object_ref(obj))
        elif policy == "Merge":
            merges.append((next(p for p in plans if p.obj is obj), secret))
        else:
            out.append(secret)
    for plan, secret in merges:
        name, ns = secret["metadata"]["name"], secret["metadata"].get("namespace", "")
        index = next((i for i, o in enumerate(out) if o.get("kind") == "Secret"
                      and _name(o) == name and _ns(o) == ns), None)
        if index is None:
            failures.append(SecretError(f"creationPolicy Merge: no Secret {name!r} in the "
                                        "render to merge into", source=plan.ref))
            continue
        out[index] = copy.deepcopy(out[index])
        _merge_into(out[index], secret)
    if failures:
        raise SecretErrors(failures)
    return out
