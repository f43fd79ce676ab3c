"""ApplySet (KEP-3659) parent objects, member labels, and kiln's exact inventory.

The parent is a Secret (the KEP's default) or a ConfigMap in the target namespace. It carries
exactly what ``kubectl apply --applyset`` writes and checks, so either tool can read the set:

- label ``applyset.kubernetes.io/id``: ``applyset-<id>-v1`` where ``<id>`` is the unpadded
  URL-safe base64 of ``sha256("<name>.<namespace>.<kind>.<group>")`` of the parent
  (:func:`applyset_id`);
- annotation ``applyset.kubernetes.io/tooling``: ``kiln/<version>`` (a set another tool owns is
  refused, as kubectl does);
- annotation ``applyset.kubernetes.io/contains-group-kinds``: the members' ``Kind.group``
  (``Kind`` for the core group), sorted, comma-separated;
- annotation ``applyset.kubernetes.io/additional-namespaces``: members' namespaces other than
  the parent's, sorted, comma-separated.

Members carry the label ``applyset.kubernetes.io/part-of=<id>``. Besides, the parent keeps
kiln's **inventory** under the data key :data:`INVENTORY_KEY`: a JSON document listing every
member's apiVersion, kind, namespace, name and uid, so pruning needs no LIST per kind.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kiln.core.errors import ApplyError

PREFIX = "applyset.kubernetes.io/"
ID_LABEL = PREFIX + "id"
PART_OF_LABEL = PREFIX + "part-of"
TOOLING_ANNOTATION = PREFIX + "tooling"
GROUP_KINDS_ANNOTATION = PREFIX + "contains-group-kinds"
NAMESPACES_ANNOTATION = PREFIX + "additional-namespaces"
INVENTORY_KEY = "kiln-inventory.json"
TOOL = "kiln"
INVENTORY_FORMAT = 1

PARENT_KINDS = ("Secret", "ConfigMap")

_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def applyset_id(name: str, namespace: str, kind: str, group: str) -> str:
    """The ApplySet id of the parent ``kind.group`` ``namespace/name``, as KEP-3659 and
    kubectl compute it: ``applyset-`` + base64url(sha256(name.namespace.kind.group)) + ``-v1``."""
    digest = hashlib.sha256(".".join((name, namespace, kind, group)).encode()).digest()
    return "applyset-" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode() + "-v1"


def group_kind(api_version: str, kind: str) -> str:
    """``Kind.group`` as kubectl's ``GroupKind.String()`` writes it (``Kind`` for core)."""
    group = api_version.rpartition("/")[0] if "/" in api_version else ""
    return f"{kind}.{group}" if group else kind


def default_name(app_name: str) -> str:
    """The parent's name when ``--applyset`` is not given: ``kiln-<app name>``, lower-cased,
    characters a name cannot hold turned into ``-``."""
    cleaned = re.sub(r"[^a-z0-9.-]+", "-", app_name.lower()).strip("-.") or "app"
    return f"kiln-{cleaned}"[:253].rstrip("-.")


@dataclass(frozen=True, order=True)
class Member:
    """One inventory entry: enough to find (and delete) the object without a LIST."""

    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity across versions: group, kind, namespace, name."""
        group = self.api_version.rpartition("/")[0] if "/" in self.api_version else ""
        return (group, self.kind, self.namespace, self.name)

    @property
    def ref(self) -> str:
        """``Kind/namespace/name``."""
        return f"{self.kind}/{self.namespace}/{self.name}"

    @classmethod
    def of(cls, obj: Mapping[str, Any]) -> Member:
        """The entry for a (live or desired) object; uid empty when the object has none."""
        meta = obj.get("metadata") or {}
        return cls(str(obj.get("apiVersion") or ""), str(obj.get("kind") or ""),
                   str(meta.get("namespace") or ""), str(meta.get("name") or ""),
                   str(meta.get("uid") or ""))


def encode_inventory(members: Iterable[Member]) -> str:
    """The inventory document (sorted, one entry per group/kind/namespace/name)."""
    unique = {m.key: m for m in sorted(members)}
    entries = [{"apiVersion": m.api_version, "kind": m.kind, "namespace": m.namespace,
                "name": m.name, "uid": m.uid} for m in sorted(unique.values(),
                                                               key=lambda m: m.key)]
    return json.dumps({"format": INVENTORY_FORMAT, "members": entries}, sort_keys=True,
                      separators=(",", ":"))


def decode_inventory(text: str, source: str) -> list[Member]:
    """Read an inventory document; a malformed one is an ApplyError naming ``source``."""
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict) or doc.get("format") != INVENTORY_FORMAT:
            raise ValueError("unknown inventory format")
        members = []
        for entry in doc["members"]:
            fields = [entry[k] for k in ("apiVersion", "kind", "namespace", "name", "uid")]
            if not all(isinstance(f, str) for f in fields) or not fields[1] or not fields[3]:
                raise ValueError("an entry is not a set of strings")
            members.append(Member(*fields))
        return members
    except (ValueError, KeyError, TypeError) as exc:
        raise ApplyError(f"the ApplySet inventory ({INVENTORY_KEY}) is unreadable: {exc}",
                         source=source) from None


@dataclass(frozen=True)
class ApplySet:
    """The parent of one set: ``kind`` (Secret or ConfigMap) ``namespace/name``, and the
    tooling stamp (``kiln/<version>``)."""

    name: str
    namespace: str
    kind: str = "Secret"
    tooling: str = ""

    def __post_init__(self) -> None:
        if self.kind not in PARENT_KINDS:
            raise ApplyError(f"an ApplySet parent is a Secret or a ConfigMap, not {self.kind}")
        if not _NAME.fullmatch(self.name):
            raise ApplyError("not a valid object name (lower-case letters, digits, '-', '.')",
                             source=f"--applyset {self.name!r}")
        if not self.tooling:
            from kiln import _version

            object.__setattr__(self, "tooling", f"{TOOL}/{_version.__version__}")

    @property
    def id(self) -> str:
        """The set's id (the parent's ``id`` label and the members' ``part-of`` label)."""
        return applyset_id(self.name, self.namespace, self.kind, "")

    @property
    def ref(self) -> str:
        """``Kind/namespace/name`` of the parent."""
        return f"{self.kind}/{self.namespace}/{self.name}"

    def label(self, obj: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``obj`` with the ``part-of`` label set (the input is not modified).

        An object that already names another set is an ApplyError, like kubectl's."""
        meta = dict(obj.get("metadata") or {})
        labels = dict(meta.get("labels") or {})
        current = labels.get(PART_OF_LABEL)
        if current not in (None, self.id):
            from kiln.apply.staging import ref_of

            raise ApplyError(f"the label {PART_OF_LABEL} names another ApplySet ({current})",
                             source=ref_of(obj))
        labels[PART_OF_LABEL] = self.id
        meta["labels"] = labels
        return {**obj, "metadata": meta}

    def check_parent(self, live: Mapping[str, Any] | None) -> None:
        """Refuse a live parent that is not this set's: another tool's, or another id."""
        if live is None:
            return
        meta = live.get("metadata") or {}
        tooling = str((meta.get("annotations") or {}).get(TOOLING_ANNOTATION) or "")
        if tooling.rpartition("/")[0] != TOOL:
            owner = tooling.rpartition("/")[0] or tooling or "no tool"
            raise ApplyError(f"this ApplySet parent is managed by {owner!r}, not kiln",
                             source=self.ref)
        if (meta.get("labels") or {}).get(ID_LABEL) != self.id:
            raise ApplyError(f"the parent's {ID_LABEL} label is not {self.id}", source=self.ref)

    def inventory(self, live: Mapping[str, Any] | None) -> list[Member]:
        """The members the live parent lists (none when there is no parent yet)."""
        if live is None:
            return []
        data = live.get("data") or {}
        raw = data.get(INVENTORY_KEY)
        if raw is None:
            return []
        text = str(raw)
        if self.kind == "Secret":
            try:
                text = base64.b64decode(text, validate=True).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                raise ApplyError(f"the ApplySet inventory ({INVENTORY_KEY}) is not base64",
                                 source=self.ref) from None
        return decode_inventory(text, self.ref)

    def parent(self, members: Iterable[Member]) -> dict[str, Any]:
        """The parent object to server-side apply for ``members`` (labels, annotations,
        inventory)."""
        members = list(members)
        kinds = sorted({group_kind(m.api_version, m.kind) for m in members})
        namespaces = sorted({m.namespace for m in members if m.namespace} - {self.namespace})
        text = encode_inventory(members)
        data = base64.b64encode(text.encode()).decode() if self.kind == "Secret" else text
        obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": self.kind,
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": {ID_LABEL: self.id},
                "annotations": {
                    TOOLING_ANNOTATION: self.tooling,
                    GROUP_KINDS_ANNOTATION: ",".join(kinds),
                    NAMESPACES_ANNOTATION: ",".join(namespaces),
                },
            },
            "data": {INVENTORY_KEY: data},
        }
        if self.kind == "Secret":
            obj["type"] = "Opaque"
        return obj
