"""Read SOPS documents in every format sops writes, and emit their plaintext.

``load`` turns a document's bytes into a :class:`Document` (data branches plus the raw ``sops``
map); ``emit`` turns decrypted branches back into bytes in the same format. Formats:

- ``yaml``: one branch per YAML document, scalars resolved as YAML 1.2 does (go-yaml v3, which
  sops uses: ``yes`` stays a string, timestamps are times), metadata under ``sops``.
- ``json``: one top-level object, metadata under ``sops``.
- ``binary``: the JSON envelope ``{"data": "ENC[...]", "sops": {...}}``; the plaintext is
  ``data``.
- ``dotenv``: ``KEY=value`` lines, ``#`` comments, metadata flattened into ``sops_*`` keys.
- ``ini``: sections of ``key = value``, metadata flattened into a ``[sops]`` section.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from kiln.core.manifests import reject_duplicate_keys
from kiln.core.sops_format import FORMATS
from kiln.plugins.secrets_sops.cipher import Comment, TimeText

LIST_SEP = "__list_"



class FormatError(Exception):
    """The bytes are not a SOPS document of the expected format (message holds no value)."""


@dataclass
class Document:
    """A parsed SOPS document: data branches, the raw ``sops`` map, and dotenv comments."""

    format: str
    branches: list[dict[str, Any]]
    metadata: dict[str, Any]
    comments: dict[int, str] = field(default_factory=dict)
    """dotenv only: comment lines by their position among the document's lines."""


# -- loading -----------------------------------------------------------------------------------

def load(data: bytes, fmt: str) -> Document:
    """Parse ``data`` as a SOPS document in format ``fmt``; FormatError when it is not one."""
    if fmt not in FORMATS:
        raise FormatError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"not UTF-8 text (a {fmt} SOPS document is text)") from None
    if fmt == "yaml":
        return _load_yaml(text)
    if fmt in ("json", "binary"):
        return _load_json(text, fmt)
    if fmt == "dotenv":
        return _load_dotenv(text)
    return _load_ini(text)


def _take_metadata(branches: list[dict[str, Any]]) -> dict[str, Any]:
    if not branches or "sops" not in branches[0]:
        raise FormatError("no 'sops' metadata: not a SOPS-encrypted document")
    meta = branches[0]["sops"]
    if not isinstance(meta, dict):
        raise FormatError("the 'sops' entry is not a mapping")
    for branch in branches:
        branch.pop("sops", None)
    return meta


def _load_json(text: str, fmt: str) -> Document:
    try:
        value = json.loads(text, object_pairs_hook=reject_duplicate_keys)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"malformed JSON: {_first_line(exc)}") from None
    if not isinstance(value, dict):
        raise FormatError("a JSON SOPS document must be one object")
    meta = _take_metadata([value])
    if fmt == "binary" and not isinstance(value.get("data"), str):
        raise FormatError("a binary SOPS envelope has no string 'data'")
    return Document(fmt, [value], meta)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's text (its type name when it has none)."""
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _load_dotenv(text: str) -> Document:
    branch: dict[str, Any] = {}
    flat: dict[str, Any] = {}
    comments: dict[int, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        if line.startswith("#"):
            comments[len(branch) + len(comments)] = line[1:]
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise FormatError(f"invalid dotenv line {len(branch) + len(comments) + 1}: no '='")
        value = value.replace("\\n", "\n")
        if key.startswith("sops_"):
            flat[key[len("sops_"):]] = value
        else:
            if key in branch:
                raise FormatError(f"duplicate dotenv key {key!r}")
            branch[key] = value
    if not flat:
        raise FormatError("no sops_* metadata: not a SOPS-encrypted dotenv file")
    return Document("dotenv", [branch], unflatten(flat), comments)


_INI_SECTION = re.compile(r"^\[(.*)\]\s*$")


def _load_ini(text: str) -> Document:
    branch: dict[str, Any] = {}
    section: dict[str, Any] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith((";", "#")):
            continue
        match = _INI_SECTION.match(line)
        if match:
            name = match.group(1).strip()
            section = branch.setdefault(name, {})
            continue
        key, sep, value = line.partition("=")
        if not sep:
            key, sep, value = line.partition(":")
        if not sep:
            raise FormatError(f"invalid INI line {number}: no '='")
        if section is None:
            section = branch.setdefault("DEFAULT", {})
        section[key.strip()] = _ini_value(value.strip())
    meta = branch.pop("sops", None)
    if not isinstance(meta, dict):
        raise FormatError("no [sops] section: not a SOPS-encrypted INI file")
    meta = unflatten({k: v.replace("\\n", "\n") for k, v in meta.items()})
    return Document("ini", [branch], meta)


def _ini_value(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'`":
        return value[1:-1]
    return value


def unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    """Rebuild nested metadata from ``a__list_0__map_b`` style keys (dotenv and INI)."""
    root: dict[str, Any] = {}
    for path, value in flat.items():
        tokens = _tokens(path)
        node: Any = root
        for i, token in enumerate(tokens):
            last = i == len(tokens) - 1
            nxt = tokens[i + 1] if not last else None
            empty: Any = [] if isinstance(nxt, int) else {}
            if isinstance(token, int):
                if not isinstance(node, list):
                    raise FormatError("malformed flattened sops metadata")
                while len(node) <= token:
                    node.append(None)
                if last:
                    node[token] = value
                else:
                    if node[token] is None:
                        node[token] = empty
                    node = node[token]
            else:
                if not isinstance(node, dict):
                    raise FormatError("malformed flattened sops metadata")
                if last:
                    node[token] = value
                else:
                    node = node.setdefault(token, empty)
    return root


_TOKEN = re.compile(r"(__map_|__list_)")


def _tokens(path: str) -> list[str | int]:
    parts = _TOKEN.split(path)
    tokens: list[str | int] = [parts[0]]
    for sep, value in zip(parts[1::2], parts[2::2], strict=True):
        if sep == LIST_SEP:
            try:
                tokens.append(int(value))
            except ValueError:
                raise FormatError("malformed flattened sops metadata") from None
        else:
            tokens.append(value)
    return tokens


# -- YAML 1.2 (go-yaml v3) scalar resolution ---------------------------------------------------

try:  # pragma: no cover - which branch runs depends on how PyYAML was built
    from yaml import CSafeDumper as _BaseDumper
    from yaml import CSafeLoader as _BaseLoader
except ImportError:  # pragma: no cover
    from yaml import SafeDumper as _BaseDumper  # type: ignore[assignment]
    from yaml import SafeLoader as _BaseLoader  # type: ignore[assignment]


class _Yaml12Loader(_BaseLoader):
    """Safe loader resolving plain scalars like go-yaml v3, refusing duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            if isinstance(key, (str, int, float, bool)):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_time(self, node: yaml.ScalarNode) -> TimeText:
        """A timestamp as the text go's time.MarshalText produces (RFC 3339, nanoseconds)."""
        value = self.construct_yaml_timestamp(node)
        return TimeText(go_time_text(value))


_Yaml12Loader.yaml_implicit_resolvers = {}
for _tag, _regexp, _first in (
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int",
     r"^(?:[-+]?[0-9][0-9_]*|0o[0-7_]+|[-+]?0x[0-9a-fA-F_]+|[-+]?0b[01_]+)$",
     "-+0123456789"),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", "-+0123456789."),
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:timestamp",
     r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?"
     r"(?:(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?"
     r"(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)?)$", "0123456789"),
    ("tag:yaml.org,2002:merge", r"^(?:<<)$", "<"),
):
    _Yaml12Loader.add_implicit_resolver(_tag, re.compile(_regexp), list(_first))


def _construct_int(loader: _BaseLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node)).replace("_", "")
    sign = -1 if text.startswith("-") else 1
    text = text.lstrip("+-")
    if text.startswith("0o"):
        return sign * int(text[2:], 8)
    if len(text) > 1 and text[0] == "0" and text[1].isdigit():
        return sign * int(text, 8)
    return sign * int(text, 0)


_Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:map", _Yaml12Loader.construct_mapping)
_Yaml12Loader.add_constructor("tag:yaml.org,2002:timestamp", _Yaml12Loader.construct_time)


def go_time_text(value: dt.date | dt.datetime) -> str:
    """Format a date/datetime as Go's ``time.Time.MarshalText`` (RFC 3339 with nanoseconds)."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += ("." + f"{value.microsecond:06d}").rstrip("0")
    offset = value.utcoffset() or dt.timedelta(0)
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{text}{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def load_plain_yaml(data: bytes) -> list[dict[str, Any]]:
    """Parse a plaintext YAML stream as sops reads it (YAML 1.2 scalars); FormatError if bad."""
    try:
        return _yaml_branches(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise FormatError("not UTF-8 text") from None


def _load_yaml(text: str) -> Document:
    branches = _yaml_branches(text)
    return Document("yaml", branches, _take_metadata(branches))


def _yaml_branches(text: str) -> list[dict[str, Any]]:
    from kiln.core.manifests import MAX_EXPANDED_NODES, _expanded_size

    loader = _Yaml12Loader(text)
    branches: list[dict[str, Any]] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                break
            if "*" in text and _expanded_size(node, {}) > MAX_EXPANDED_NODES:
                raise FormatError("YAML aliases expand to too many nodes (alias bomb?)")
            doc = loader.construct_document(node)
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise FormatError("a YAML SOPS document must be a mapping")
            branches.append(doc)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "parse error"
        raise FormatError(f"malformed YAML{where}: {problem}") from None
    except RecursionError:
        raise FormatError("YAML nesting too deep") from None
    finally:
        loader.dispose()
    return branches


# -- emitting ----------------------------------------------------------------------------------

class _PlainDumper(_BaseDumper):
    """Safe dumper that writes decrypted times unquoted, as sops does."""


def _represent_time(dumper: _BaseDumper, value: TimeText) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", str(value))


def _represent_str(dumper: _BaseDumper, value: str) -> yaml.Node:
    return dumper.represent_str(str(value))


_PlainDumper.add_representer(TimeText, _represent_time)
_PlainDumper.add_representer(Comment, _represent_str)


def emit(doc: Document, branches: list[dict[str, Any]]) -> bytes:
    """Serialise decrypted ``branches`` as plaintext in the document's own format."""
    if doc.format == "binary":
        data = branches[0].get("data", "")
        return str(data).encode("utf-8", "surrogateescape")
    if doc.format == "json":
        return (json.dumps(branches[0], indent="\t", ensure_ascii=False) + "\n").encode()
    if doc.format == "yaml":
        return yaml.dump_all(branches, Dumper=_PlainDumper, sort_keys=False,
                             default_flow_style=False, allow_unicode=True,
                             width=1 << 30, indent=4).encode()
    if doc.format == "dotenv":
        return _emit_dotenv(doc, branches[0])
    return _emit_ini(branches[0])


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _emit_dotenv(doc: Document, branch: dict[str, Any]) -> bytes:
    lines: list[str] = []
    items = iter(branch.items())
    total = len(branch) + len(doc.comments)
    for position in range(total):
        if position in doc.comments:
            lines.append(f"#{doc.comments[position]}\n")
            continue
        key, value = next(items)
        lines.append(f"{key}={_scalar_text(value).replace(chr(10), chr(92) + 'n')}\n")
    return "".join(lines).encode()


def _emit_ini(branch: dict[str, Any]) -> bytes:
    # As sops: DEFAULT's keys without a header, one blank line between sections, none after.
    blocks: list[str] = []
    for name, section in branch.items():
        if name == "DEFAULT" and not section:
            continue
        lines = [] if name == "DEFAULT" else [f"[{name}]\n"]
        if isinstance(section, dict):
            lines += [f"{key} = {_scalar_text(value)}\n" for key, value in section.items()]
        blocks.append("".join(lines))
    return "\n".join(blocks).encode()
