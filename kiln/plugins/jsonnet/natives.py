"""The native functions Jsonnet code can call with ``std.native(NAME)``, as Tanka offers them.

``parseYaml(text)`` (a list, one item per document), ``parseJson(text)``,
``manifestYamlFromJson(text)`` (YAML text, keys sorted), ``sha256(text)`` (hex digest) and
``helmTemplate(name, chart, conf)``: the chart directory (relative to ``conf.calledFrom``'s
directory, else to the app directory, and inside the source root) rendered by kiln's Helm
renderer, returned as an object keyed ``<kind>_<name>`` in snake case, like Tanka's default
``nameFormat``. These run in the worker process; ``helmTemplate`` asks kiln (the parent) to
render the chart, through ``ask``.

go-jsonnet's Python binding passes only strings, numbers, booleans and null to native
functions, so a call ``std.native('helmTemplate')`` in code is rewritten (same line, before
evaluation) into a Jsonnet function that passes ``conf`` as JSON text
(:func:`rewrite_native_calls`); Tanka code calling it with an object works unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kiln.core.errors import KilnError, RenderError
from kiln.core.paths import confine

HELM_CONF_KEYS = frozenset({"values", "namespace", "includeCrds", "skipTests", "kubeVersion",
                            "apiVersions", "calledFrom", "nameFormat", "noHooks"})
TANKA_NAME_FORMAT = '{{ print .kind "_" .metadata.name | snakecase }}'

_CALLS = re.compile(
    r"""
      (?P<skip>//[^\n]*|\#[^\n]*|/\*.*?\*/|@"(?:[^"]|"")*"|@'(?:[^']|'')*'
              |"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<block>\|\|\|)
    | (?P<call>\bstd\s*\.\s*native\s*\(\s*(?:'helmTemplate'|"helmTemplate")\s*\))
    """,
    re.S | re.X,
)
_HELM_SHIM = ("(function(name, chart, conf={}) std.native('helmTemplate')(name, chart, "
              "std.manifestJsonMinified(conf)))")

Ask = Callable[[dict[str, Any]], Any]


class NativeState:
    """Per-evaluation record of the last native-function failure (go-jsonnet drops the text)."""

    def __init__(self) -> None:
        self.error: str | None = None

    def wrap(self, name: str, func: Callable[..., Any]) -> Callable[..., Any]:
        """Return ``func`` recording any exception as ``name: message`` before re-raising."""

        def call(*args: Any) -> Any:
            try:
                return func(*args)
            except KilnError as exc:
                self.error = f"{name}: {exc.one_line()}"
                raise
            except Exception as exc:
                self.error = f"{name}: {' '.join(str(exc).split()) or type(exc).__name__}"
                raise

        return call


def rewrite_native_calls(text: str) -> str:
    """Replace each ``std.native('helmTemplate')`` in code (not in strings or comments) by a
    function passing ``conf`` to the native as JSON text; other text is left as it is."""
    if "helmTemplate" not in text:
        return text
    from kiln.plugins.jsonnet.scan import skip_text_block

    pieces: list[str] = []
    pos = done = 0
    while True:
        match = _CALLS.search(text, pos)
        if match is None:
            break
        pos = match.end()
        if match.lastgroup == "block":
            pos = skip_text_block(text, pos)
        elif match.lastgroup == "call":
            pieces.append(text[done:match.start()])
            pieces.append(_HELM_SHIM)
            done = pos
    pieces.append(text[done:])
    return "".join(pieces)


def parse_yaml(text: str) -> list[Any]:
    """Every document of a YAML stream (safe loader, alias-bomb bounded)."""
    from kiln.core.manifests import load_yaml_documents

    return list(load_yaml_documents(_text(text), "parseYaml argument"))


def parse_json(text: str) -> Any:
    """One JSON document (duplicate keys refused)."""
    from kiln.core.manifests import load_json

    return load_json(_text(text), "parseJson argument")


def manifest_yaml_from_json(text: str) -> str:
    """The JSON document ``text`` re-emitted as YAML, keys sorted."""
    import yaml

    return yaml.safe_dump(parse_json(text), sort_keys=True, default_flow_style=False,
                          allow_unicode=True, width=1 << 30)


def sha256(text: str) -> str:
    """The sha256 hex digest of ``text`` encoded as UTF-8."""
    return hashlib.sha256(_text(text).encode("utf-8")).hexdigest()


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise RenderError(f"expected a string argument, got {type(value).__name__}")
    return value


def snake_key(kind: str, name: str) -> str:
    """Tanka's default object key: ``<kind>_<name>`` in snake case."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", f"{kind}_{name}")
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()


def helm_template(ask: Ask, app_dir: str, root: str) -> Callable[..., Any]:
    """Build the ``helmTemplate(name, chart, conf)`` native function for one evaluation."""

    def template(name: Any, chart: Any, conf: Any) -> dict[str, Any]:
        if not isinstance(name, str) or not name:
            raise RenderError("the release name must be a non-empty string")
        if not isinstance(chart, str) or not chart:
            raise RenderError("the chart must be a path string")
        conf = conf if conf is not None else {}
        if isinstance(conf, str):
            conf = json.loads(conf)
        if not isinstance(conf, dict):
            raise RenderError("conf must be an object")
        unknown = sorted(set(conf) - HELM_CONF_KEYS)
        if unknown:
            raise RenderError(f"unknown conf key {unknown[0]!r} (known: "
                              f"{', '.join(sorted(HELM_CONF_KEYS))})")
        if conf.get("nameFormat") not in (None, "", TANKA_NAME_FORMAT):
            raise RenderError("only Tanka's default nameFormat is supported")
        if conf.get("noHooks"):
            raise RenderError("noHooks is not supported (kiln's Helm renderer keeps hooks)")
        called_from = conf.get("calledFrom")
        base = os.path.dirname(called_from) if isinstance(called_from, str) else app_dir
        chart_dir = confine(os.path.join(base, chart), Path(root), what="helm chart")
        if not chart_dir.is_dir():
            raise RenderError(f"chart {chart!r} is not a directory ({chart_dir})")
        reply = ask({
            "op": "helm",
            "name": name,
            "chart": str(chart_dir),
            "namespace": conf.get("namespace"),
            "values": conf.get("values"),
            "includeCrds": conf.get("includeCrds", True),
            "skipTests": conf.get("skipTests", False),
            "kubeVersion": conf.get("kubeVersion"),
            "apiVersions": conf.get("apiVersions"),
        })
        if "error" in reply:
            raise RenderError(str(reply["error"]))
        keyed: dict[str, Any] = {}
        for obj in reply["objects"]:
            meta = obj.get("metadata") or {}
            key = snake_key(str(obj.get("kind", "")), str(meta.get("name", "")))
            if key in keyed:
                raise RenderError(f"chart {chart!r} renders two objects keyed {key!r}")
            keyed[key] = obj
        return keyed

    return template


def native_callbacks(state: NativeState, ask: Ask, app_dir: str, root: str
                     ) -> dict[str, tuple[tuple[str, ...], Callable[..., Any]]]:
    """The native functions in go-jsonnet's ``native_callbacks`` shape."""
    table: dict[str, tuple[tuple[str, ...], Callable[..., Any]]] = {
        "parseYaml": (("yaml",), parse_yaml),
        "parseJson": (("json",), parse_json),
        "manifestYamlFromJson": (("json",), manifest_yaml_from_json),
        "sha256": (("str",), sha256),
        "helmTemplate": (("name", "chart", "conf"), helm_template(ask, app_dir, root)),
    }
    return {name: (params, state.wrap(name, func)) for name, (params, func) in table.items()}
