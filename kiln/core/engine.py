"""The pipeline: app spec -> renderer -> input digest -> cache -> render -> secrets -> result.

The engine knows no renderer or backend by name; it only calls what plugins registered. Rendered
objects are cached *before* secrets are resolved, so the cache only ever holds placeholders and
ciphertext. One Engine owns one PluginManager, one cache store and one redactor.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

import msgspec

from kiln.core import manifests
from kiln.core.app import App, build_app, read_app_file
from kiln.core.cache.auth import mac_key_from_env
from kiln.core.cache.base import Store
from kiln.core.cache.fs import DEFAULT_MAX_BYTES, FsStore
from kiln.core.clientpool import ClientPool
from kiln.core.context import ChartRequest, RenderContext, SecretContext
from kiln.core.deadline import Deadline
from kiln.core.digest import InputFile, KeyRecipe, ToolStamp, file_digest
from kiln.core.errors import InputError, RenderError, SecretError, SecretErrors
from kiln.core.paths import Confiner, default_cache_dir, relative_to
from kiln.core.plugins import Plugins
from kiln.core.redact import Redactor
from kiln.core.registry import Inputs, Renderer
from kiln.core.tools import DEFAULT_TIMEOUT, ToolVersions

if TYPE_CHECKING:
    from kiln.core.secrets import StoreBackend

log = logging.getLogger("kiln.engine")

CACHE_FORMAT = 2


class _Entry(msgspec.Struct):
    """A cache entry: objects left as raw JSON until someone needs them, and the YAML text."""

    objects: msgspec.Raw
    yaml: str
    meta: dict[str, Any] = {}


class RenderResult:
    """The outcome of one render.

    ``objects`` are the Kubernetes objects (secrets resolved unless asked otherwise; decoded
    lazily on a cache hit), ``cache_hit`` tells whether the render came from the cache, ``key``
    is the cache key (None when uncacheable), ``renderer`` the renderer used and ``inputs`` the
    input files relative to the app directory, ``recipe`` the parts its key was made of.
    """

    def __init__(self, objects: list[dict[str, Any]] | None, cache_hit: bool, key: str | None,
                 renderer: str, inputs: tuple[str, ...] = (), *, raw: bytes | None = None,
                 yaml_text: str | None = None) -> None:
        self._objects = objects
        self._raw = raw
        self._yaml = yaml_text
        self.cache_hit = cache_hit
        self.key = key
        self.renderer = renderer
        self.inputs = inputs
        self.secrets_resolved = False
        self.recipe: KeyRecipe | None = None
        self.leftover: list[SecretError] | None = None
        self.verified: frozenset[str] = frozenset()

    def unresolved(self) -> list[SecretError]:
        """Every reference no resolver filled in (text inside resolved values never counts)."""
        if self.leftover is not None:
            return self.leftover
        from kiln.core import placeholders

        return placeholders.unresolved(self.objects)

    def is_empty(self) -> bool:
        """True when the render produced no object (decided without decoding a cache hit)."""
        if self._objects is not None:
            return not self._objects
        return (self._raw or b"[]").strip() == b"[]"

    @property
    def objects(self) -> list[dict[str, Any]]:
        """The rendered objects (a fresh list the caller may modify)."""
        if self._objects is None:
            self._objects = msgspec.json.decode(self._raw or b"[]")
        return self._objects

    @objects.setter
    def objects(self, value: list[dict[str, Any]]) -> None:
        self._objects = value
        self._yaml = None

    def changed(self) -> None:
        """Note that ``objects`` were modified in place, so the stored YAML text is stale."""
        self._yaml = None

    def to_yaml(self) -> str:
        """Return the objects as a YAML stream, ``---`` between documents."""
        if self._yaml is None:
            self._yaml = manifests.dump_yaml_stream(self.objects)
        return self._yaml

    def json_documents(self) -> list[str]:
        """One compact JSON text per object (as argocd-cmp-server re-encodes a plugin's
        output); a cache hit's stored JSON is split, not decoded and encoded again."""
        if self._objects is None and self._raw is not None:
            return [bytes(raw).decode() for raw in msgspec.json.decode(
                self._raw, type=list[msgspec.Raw])]
        encode = msgspec.json.Encoder().encode
        return [encode(obj).decode() for obj in self.objects]

    def to_json(self) -> str:
        """Return the objects as one JSON array."""
        return manifests.dump_json(self.objects)

    def __repr__(self) -> str:
        return (f"RenderResult(renderer={self.renderer!r}, cache_hit={self.cache_hit}, "
                f"key={self.key!r}, inputs={len(self.inputs)})")


class Engine:
    """Render apps through plugins, with a content-addressed cache and in-memory secrets.

    ``cache_dir`` holds the manifest cache and kiln's tool state (default: see
    :func:`default_cache_dir`); ``cache_url`` (or ``$KILN_CACHE_URL``), a ``redis://`` URL,
    keeps manifests in Redis instead, shared by several replicas; ``use_cache=False`` renders
    every time. With ``KILN_CACHE_HMAC_KEY`` (or ``KILN_CACHE_HMAC_KEY_FILE``) in ``env`` the
    built-in stores authenticate every entry with that key. ``plugins`` are extra
    plugin objects registered after the built-ins (handy for library callers and tests);
    ``entry_points=False`` skips third-party discovery.
    """

    def __init__(
        self,
        cache_dir: Path | str | None = None,
        *,
        use_cache: bool = True,
        store: Store | None = None,
        env: Mapping[str, str] | None = None,
        plugins: Sequence[object] = (),
        entry_points: bool = True,
        timeout: float = DEFAULT_TIMEOUT,
        max_cache_bytes: int = DEFAULT_MAX_BYTES,
        cache_url: str | None = None,
    ) -> None:
        self.env: Mapping[str, str] = dict(os.environ if env is None else env)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir(self.env)
        self.use_cache = use_cache
        cache_url = cache_url or self.env.get("KILN_CACHE_URL")
        self.redactor = Redactor()
        mac_key = mac_key_from_env(self.env) if store is None else None
        if mac_key is not None:
            self.redactor.register(mac_key)
        if store is None and cache_url:
            from kiln.core.cache.redis import RedisStore

            store = RedisStore(cache_url, mac_key=mac_key)
        self.store: Store = store or FsStore(self.cache_dir, max_cache_bytes, mac_key=mac_key)
        self.timeout = timeout
        self.plugins = Plugins(self.env, entry_points=entry_points, extra=tuple(plugins),
                               state_dir=self.cache_dir)
        self.tool_versions = _StampingToolVersions(self.cache_dir)
        self.clients = ClientPool()

    def for_request(self, env: Mapping[str, str]) -> Engine:
        """A view of this engine for one request of a long-lived server: the same plugins,
        cache store, tool versions and chart state, with ``env`` as its environment and a
        redactor of its own (seeded with this engine's values).

        ``env`` is the whole environment the request renders under (the server's own,
        overlaid with what the request carries); this engine's is never modified, so nothing
        of one request reaches another. Operator policy read when the engine was made (which
        plugins are loaded) stays the server's.
        """
        view = copy.copy(self)
        view.env = MappingProxyType(dict(env))
        view.redactor = self.redactor.child()
        return view

    # -- app loading -------------------------------------------------------------------------

    def load_app(
        self,
        path: Path | str,
        settings: Mapping[str, Any] | None = None,
        *,
        source_root: Path | str | None = None,
        build_env: Mapping[str, str] | None = None,
        app_settings: Mapping[str, Any] | None = None,
        app_source: str = "ARGOCD_APP_PARAMETERS",
    ) -> App:
        """Load the app at ``path``: its kiln.yaml (repository level), overlaid with
        ``app_settings`` (application level: what Argo CD's environment says, named
        ``app_source``), overlaid with ``settings`` (operator level: flags; they win).

        Both have kiln.yaml's shape (``{"namespace": ..., "directory": {...}}``). A guarded
        setting below operator level raises TrustError (see :mod:`kiln.core.trust`).
        """
        from kiln.core.trust import Allowlist, Level, Origin, merge_layers

        app_dir = Path(os.path.abspath(path))
        if not app_dir.exists():
            raise InputError("no such directory", source=str(path))
        if not app_dir.is_dir():
            raise InputError("not a directory (an app is a directory)", source=str(path))
        app_file = str(app_dir / "kiln.yaml")
        merged, origins = merge_layers([
            (Origin(Level.REPOSITORY, app_file), read_app_file(app_dir)),
            (Origin(Level.APPLICATION, app_source), app_settings),
            (Origin(Level.OPERATOR, "command line"), settings),
        ])
        renderers = self.plugins.renderers
        resolvers = self.plugins.resolvers
        return build_app(
            app_dir,
            merged,
            renderer_types=renderers.options_types(),
            resolver_types=resolvers.options_types(),
            source_root=Path(source_root) if source_root else None,
            env=build_env,
            source=app_file,
            origins=origins,
            allow=Allowlist.from_env(self.env),
        )

    # -- rendering ---------------------------------------------------------------------------

    def renderer_for(self, app: App) -> Renderer:
        """The renderer named by ``app.type``, else the first that detects the app."""
        registry = self.plugins.renderers
        if app.type:
            return registry.get(app.type)
        renderer = registry.detect_for(app)
        if renderer is not None:
            return renderer
        raise RenderError("no renderer recognises this directory", source=str(app.path))

    def render_context(self, *, secrets: bool = True, deadline: Deadline | None = None
                       ) -> RenderContext:
        """The services handed to renderers (no file decryption when ``secrets`` is False)."""
        return RenderContext(
            state_dir=self.cache_dir,
            env=self.env,
            tool_versions=self.tool_versions,
            timeout=self.timeout,
            deadline=deadline,
            # A nested render (jsonnet's helmTemplate) may legitimately render nothing.
            render_nested=lambda nested: self.render(
                dataclasses.replace(nested, allow_empty=True), secrets=False,
                deadline=deadline).objects,
            render_chart=lambda request: self._render_chart(request, deadline),
            redactor=self.redactor,
            decrypt_file=self._decrypt_file if secrets else None,
            verify_file=self._verify_file if secrets else None,
        )

    def _render_chart(self, request: ChartRequest, deadline: Deadline | None
                      ) -> list[dict[str, Any]]:
        """Render a chart with the first renderer (by priority) whose ``chart_app`` answers."""
        nested = self.plugins.renderers.first("chart_app", request)
        if nested is None:
            raise RenderError("no enabled renderer renders charts "
                              "(is its plugin disabled by KILN_DISABLE_PLUGINS?)")
        return self.render(dataclasses.replace(cast("App", nested), allow_empty=True),
                           secrets=False, deadline=deadline).objects  # may be empty

    def _decrypt_file(self, app: App, data: bytes, name: str, fmt: str | None) -> bytes | None:
        out = self._file_service("decrypt_file", app, data, name, fmt)
        return out if isinstance(out, bytes) else None

    def _verify_file(self, app: App, data: bytes, name: str, fmt: str | None
                     ) -> Sequence[str] | None:
        out = self._file_service("verify_file", app, data, name, fmt)
        return [str(t) for t in out] if out is not None else None

    def _file_service(self, method: str, app: App, data: bytes, name: str,
                      fmt: str | None) -> Any:
        """Ask the resolvers' ``method`` in order; the first non-None answer wins."""
        return self.plugins.resolvers.first(method, data, name, self.secret_context(app),
                                            fmt=fmt)

    def key_recipe(self, app: App, *, secrets: bool = True) -> KeyRecipe:
        """Every part of the cache key ``render(app)`` would use, digests included.

        Raises like :meth:`render` for a bad app (unknown type, input outside the source root).
        ``recipe.key`` is None when the renderer declared the render uncacheable.
        """
        renderer = self.renderer_for(app)
        recipe, _ = self._recipe(app, renderer, self.render_context(secrets=secrets),
                                 digests=True)
        return recipe

    def _recipe(self, app: App, renderer: Renderer, ctx: RenderContext, *, digests: bool
                ) -> tuple[KeyRecipe, Inputs]:
        """Ask the renderer for its inputs and tool version and put the key together.

        Every binary asked through ``ctx.tool_versions`` meanwhile is stamped into the key.
        File digests are computed only when ``digests`` and the render is cacheable.
        """
        tools = self.tool_versions
        tools.asked.clear()
        inputs = renderer.inputs(app, ctx)
        tool = self.plugins.renderers.member(renderer, "tool_version")(ctx)
        asked = list(tools.asked)
        tools.asked.clear()
        stamps = sorted({stamp for stamp in map(ToolStamp.of, asked) if stamp is not None},
                        key=lambda t: t.path)
        confiner = Confiner(app.root)
        real_app = os.path.realpath(app.path)
        hashed = digests and inputs.cacheable
        files: dict[str, InputFile] = {}
        for declared in inputs.files:
            real = confiner.resolve(declared)
            rel = relative_to(real, real_app)
            if rel not in files:
                files[rel] = InputFile(str(declared), real, rel,
                                       file_digest(real) if hashed else "")
        recipe = KeyRecipe(
            kiln=_kiln_version(),
            renderer=renderer.name,
            renderer_version=str(renderer.version),
            plugin=self._plugin_of(renderer),
            tool=tool,
            app={**self._identity(app), "type": renderer.name},
            inputs=tuple(files[rel] for rel in sorted(files)),
            tools=tuple(stamps),
            extra=inputs.extra,
            location=str(app.path) if inputs.located else None,
            cacheable=inputs.cacheable,
            reason=inputs.reason,
            portable=inputs.portable or inputs.extra is None,
            format=CACHE_FORMAT,
        )
        if hashed:
            recipe = dataclasses.replace(recipe, key=recipe.compute_key())
        return recipe, inputs

    def _plugin_of(self, renderer: Renderer) -> dict[str, str]:
        """Name, distribution and distribution version of the plugin that registered it."""
        registry = self.plugins.renderers
        owner = registry.owner(renderer.name) if renderer.name in registry else "?"
        info = self.plugins.info(owner)
        if info is None:
            return {"name": owner, "distribution": "", "version": ""}
        return {"name": info.name, "distribution": info.distribution, "version": info.version}

    def _identity(self, app: App) -> dict[str, Any]:
        """``app.identity()`` with every option section normalised through its registered
        type: an absent section, an empty mapping and a default Struct are the same (left
        out), and a mapping and the equal Struct give the same data."""
        identity = app.identity()
        types = self.plugins.renderers.options_types()
        options: dict[str, Any] = {}
        for section, value in sorted(app.options.items()):
            cls = types.get(section)
            if cls is None:
                options[section] = msgspec.to_builtins(value)
                continue
            typed = app.options_for(section, cls)
            if typed != cls():
                options[section] = msgspec.to_builtins(typed)
        identity["options"] = options
        return identity

    def render(self, app: App, *, secrets: bool = True, deadline: Deadline | None = None
               ) -> RenderResult:
        """Render ``app``: from the cache when its inputs are unchanged, then resolve secrets.

        With ``secrets=False`` references stay as they are. ``deadline`` bounds the whole
        render (default: ``KILN_TIMEOUT`` when set). Raises a KilnError subclass on any
        failure; nothing partial is returned. A render of no object is a RenderError unless
        ``app.allow_empty`` (an empty stream makes Argo CD prune every resource of the app).
        """
        started = time.perf_counter()
        if not app.path.is_dir():
            raise InputError("no such directory", source=str(app.path))
        deadline = deadline or Deadline.from_env(self.env)
        deadline.check(f"rendering {app.display_name}")
        renderer = self.renderer_for(app)
        ctx = self.render_context(secrets=secrets, deadline=deadline)
        recipe, inputs = self._recipe(app, renderer, ctx, digests=self.use_cache)
        rel_inputs = tuple(f.rel for f in recipe.inputs)
        key = recipe.key
        if not inputs.cacheable:
            log.info("%s: not cached: %s", app.display_name, inputs.reason or "uncacheable")
        result = self._from_cache(key, renderer.name, rel_inputs) if key else None
        if result is None:
            result = self._render_fresh(app, renderer, ctx, key, rel_inputs)
        result.recipe = recipe
        result.verified = inputs.verified
        log.debug("%s: %s via %s in %.1f ms (key %s)", app.display_name,
                  "cache hit" if result.cache_hit else "rendered", renderer.name,
                  (time.perf_counter() - started) * 1000, (key or "-")[:12])
        return self._complete(result, app, secrets=secrets, deadline=deadline)

    def render_cached(self, app: App, key: str, *, renderer: str,
                      inputs: tuple[str, ...] = (), verified: frozenset[str] = frozenset(),
                      secrets: bool = True, deadline: Deadline | None = None
                      ) -> RenderResult | None:
        """What :meth:`render` returns for ``app`` when its cache key is already known to be
        ``key`` (a server that re-checked every part of the key without the files): the
        stored objects, then post-render hooks, the empty check and secrets, exactly as
        :meth:`render` completes a cache hit. None when the store has no such entry.

        The caller promises ``key`` is the key :meth:`render` would compute for ``app``;
        ``renderer``, ``inputs`` and ``verified`` are what that render's result carried.
        """
        if not self.use_cache:
            return None
        deadline = deadline or Deadline.from_env(self.env)
        deadline.check(f"reading the cache for {app.display_name}")
        result = self._from_cache(key, renderer, inputs)
        if result is None:
            return None
        result.verified = verified
        return self._complete(result, app, secrets=secrets, deadline=deadline)

    def _complete(self, result: RenderResult, app: App, *, secrets: bool,
                  deadline: Deadline) -> RenderResult:
        """Post-render hooks, the empty-stream check, then secrets (in memory, never stored)."""
        if self.plugins.has_post_render():
            self.plugins.post_render(app, result.objects)
            result.changed()
        if not app.allow_empty and result.is_empty():
            raise RenderError(
                f"app {app.display_name!r} rendered no objects, and an empty stream makes "
                "Argo CD prune all its resources; if that is intended set allowEmpty: true in "
                "kiln.yaml, pass --allow-empty or the plugin parameter allow-empty=true",
                source=str(app.path))
        if secrets:
            self._resolve_result(result, app, result.verified, deadline)
        return result

    def _from_cache(self, key: str, renderer: str, rel_inputs: tuple[str, ...]
                    ) -> RenderResult | None:
        payload = self.store.get(key)
        if payload is None:
            return None
        try:
            entry = msgspec.json.decode(payload, type=_Entry)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("cache entry %s has an unknown shape: ignored", key[:12])
            return None
        return RenderResult(None, True, key, renderer, rel_inputs, raw=bytes(entry.objects),
                            yaml_text=entry.yaml)

    def _render_fresh(self, app: App, renderer: Renderer, ctx: RenderContext,
                      key: str | None, rel_inputs: tuple[str, ...]) -> RenderResult:
        started = time.perf_counter()
        output = renderer.render(app, ctx)
        where = f"{renderer.name} output for {app.path}"
        if isinstance(output, str):
            objects = manifests.parse_stream(output, where)
        else:
            objects = manifests.normalise(output, where)
        text = manifests.dump_yaml_stream(objects)
        raw = msgspec.json.encode(objects)
        if key is not None:
            meta = {"renderer": renderer.name, "inputs": list(rel_inputs),
                    "seconds": round(time.perf_counter() - started, 4)}
            entry = _Entry(objects=msgspec.Raw(raw), yaml=text, meta=meta)
            self.store.put(key, msgspec.json.encode(entry))
        # Hand out objects decoded from what was stored, never the renderer's own list, so a
        # caller mutating them cannot make the objects and the YAML text drift apart.
        return RenderResult(None, False, key, renderer.name, rel_inputs, raw=raw,
                            yaml_text=text)

    # -- secrets -----------------------------------------------------------------------------

    def secret_context(self, app: App | None, verified: frozenset[str] = frozenset(),
                       deadline: Deadline | None = None) -> SecretContext:
        """The services handed to secret resolvers."""
        return SecretContext(app=app, env=self.env, redactor=self.redactor, verified=verified,
                             deadline=deadline, backends=self._backend_for, pool=self.clients)

    def _backend_for(self, provider: str, spec: Mapping[str, Any], ctx: SecretContext
                     ) -> StoreBackend | None:
        """The first resolver (in run order) whose ``backend_for_store`` answers."""
        out = self.plugins.resolvers.first("backend_for_store", provider, spec, ctx)
        return cast("StoreBackend | None", out)

    def _resolve_result(self, result: RenderResult, app: App | None,
                        verified: frozenset[str] = frozenset(),
                        deadline: Deadline | None = None) -> None:
        registry = self.plugins.resolvers
        resolvers = registry.ordered()
        if not resolvers:
            return
        ctx: SecretContext | None = None
        errors: list[SecretError] = []
        seen: dict[str, bool] = {}  # resolvers share markers: search the text once for each
        for resolver in resolvers:
            # A resolver may name text ``markers`` whose absence proves it has nothing to do:
            # checked against the YAML text, they spare decoding the objects on a cache hit.
            markers = registry.markers_of(resolver)
            text = result._yaml
            if markers is not None and text is not None and not any(
                seen[m] if m in seen else seen.setdefault(m, m in text) for m in markers
            ):
                continue
            ctx = ctx or self.secret_context(app, verified, deadline)
            if deadline is not None:
                deadline.check(f"resolving secrets ({resolver.name})")
            if resolver.wants(result.objects, ctx):
                # Every resolver runs even after one failed, so one error lists every bad
                # reference in the stream, whichever backend it belongs to.
                try:
                    result.objects = resolver.resolve(result.objects, ctx)
                except SecretErrors as exc:
                    errors.extend(exc.errors)
                except SecretError as exc:
                    errors.append(exc)
                result.secrets_resolved = True
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise SecretErrors(errors)
        if result.secrets_resolved:
            # Resolver output is final (kiln.core.secrets.Resolved): leftovers are found while
            # the marks are there, then the objects become plain data again.
            from kiln.core import placeholders, secrets

            result.leftover = placeholders.unresolved(result.objects)
            result.objects = secrets.plain(result.objects)

    def apply(self, app: App, objects: list[dict[str, Any]] | None = None, **options: Any
              ) -> Any:
        """Render ``app`` (or take ``objects``), run ``kiln_before_apply`` and apply them to a
        cluster; returns an ``ApplyReport``. Options and behaviour: ``kiln.apply.apply_app``."""
        from kiln.apply.applier import apply_app

        return apply_app(self, app, objects, **options)

    def resolve(self, objects: list[dict[str, Any]], app: App | None = None
                ) -> list[dict[str, Any]]:
        """Resolve every secret reference in ``objects`` (e.g. a stream read from stdin)."""
        return self.resolve_result(objects, app).objects

    def resolve_result(self, objects: list[dict[str, Any]], app: App | None = None, *,
                       deadline: Deadline | None = None) -> RenderResult:
        """Like :meth:`resolve`, returning the result (``unresolved()`` names leftovers);
        ``deadline`` bounds it (default: ``KILN_TIMEOUT`` when set)."""
        result = RenderResult(objects, False, None, "stdin")
        self._resolve_result(result, app, deadline=deadline or Deadline.from_env(self.env))
        return result


def _kiln_version() -> str:
    from kiln import _version

    return _version.__version__


class _StampingToolVersions(ToolVersions):
    """Tool versions that also note every binary asked, so the key can stamp it."""

    def __init__(self, directory: Path | None) -> None:
        super().__init__(directory)
        self._local = threading.local()

    @property
    def asked(self) -> list[str]:
        """The binaries asked in this thread since it last cleared the list (each render's
        key is put together in one thread; concurrent renders keep separate lists)."""
        found: list[str] | None = getattr(self._local, "asked", None)
        if found is None:
            found = self._local.asked = []
        return found

    def get(self, binary: str, args: Sequence[str], *, env: Mapping[str, str] | None = None,
            timeout: float = 30.0) -> str:
        """See :meth:`ToolVersions.get`; ``binary`` is noted for the key recipe."""
        self.asked.append(binary)
        return super().get(binary, args, env=env, timeout=timeout)
