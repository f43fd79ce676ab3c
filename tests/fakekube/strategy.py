"""Per-kind server behaviour of the fake: defaults, validation, immutable fields, strictness.

What is emulated is a deliberately small, documented subset of kube-apiserver's registry
strategies, enough for apply and diff normalisation to have something real to face:

- **Defaults**: Namespace (``kubernetes.io/metadata.name`` label, ``spec.finalizers``,
  ``status.phase``), Secret (``type: Opaque``; ``stringData`` folded into base64 ``data``),
  Service (``type``, an allocated ``clusterIP``/``clusterIPs``, ``ipFamilies``,
  ``ipFamilyPolicy``, ``sessionAffinity``, ``internalTrafficPolicy``, port ``protocol`` and
  ``targetPort``), Deployment/StatefulSet/DaemonSet (``replicas``, ``revisionHistoryLimit``,
  ``progressDeadlineSeconds``, strategies) and their pod templates (``restartPolicy``,
  ``dnsPolicy``, ``schedulerName``, ``terminationGracePeriodSeconds``, ``securityContext``,
  container ``imagePullPolicy``/``terminationMessage*``/port ``protocol``), Job (``parallelism``,
  ``completions``, ``backoffLimit``, ``completionMode``, ``suspend``, a generated selector and
  template labels), StorageClass (``reclaimPolicy``, ``volumeBindingMode``), PVC
  (``volumeMode``), CRD (``names.singular``/``listKind``, ``conversion``).
- **Validation**: object names (RFC 1123), label values, Secret/ConfigMap keys and base64
  ``data``, Deployment/StatefulSet/DaemonSet selectors matching template labels, Job
  ``restartPolicy``, CRD name = ``<plural>.<group>`` and one storage version.
- **Immutable**: Service ``spec.clusterIP``, Deployment/DaemonSet/StatefulSet ``spec.selector``,
  StatefulSet spec fields other than the updatable ones, Job ``spec.template``/``selector``/
  ``completions``, Secret ``type``, Secret/ConfigMap ``data`` once ``immutable: true``,
  (Cluster)RoleBinding ``roleRef``, StorageClass ``provisioner``/``parameters``, CRD
  ``spec.group``/``spec.scope``.

``Invalid value:`` prints values as JSON where Go prints ``%#v``; everything else in the
messages follows the API's wording.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Mapping
from typing import Any

from tests.fakekube.kinds import META_KEYS, ResourceType, unknown_schema_fields
from tests.fakekube.status import ApiError, bad_request, go_value, invalid

Cause = tuple[str, str, str]

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                 "characters, '-' or '.', and must start and end with an alphanumeric character "
                 "(e.g. 'example.com', regex used for validation is "
                 r"'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or "
             "'-', and must start and end with an alphanumeric character (e.g. 'my-name',  or "
             "'123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, "
                   "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
                   "'MyValue',  or 'my_value',  or '12345', regex used for validation is "
                   "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")
CONFIG_KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                  "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
                  "is '[-._a-zA-Z0-9]+')")
IMMUTABLE = "field is immutable"

_LABEL_NAMED = frozenset({"Namespace", "Service"})


def _d(obj: dict[str, Any], key: str) -> dict[str, Any]:
    """``obj[key]`` as a dict, created when absent (a non-dict value is left alone)."""
    value = obj.get(key)
    if not isinstance(value, dict):
        value = {}
        obj[key] = value
    return value


def _pod_template(template: dict[str, Any], restart: str | None = "Always") -> None:
    meta = _d(template, "metadata")
    meta.setdefault("creationTimestamp", None)
    spec = _d(template, "spec")
    if restart is not None:
        spec.setdefault("restartPolicy", restart)
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("containers", "initContainers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            image = str(c.get("image", ""))
            tag = image.rsplit("/", 1)[-1]
            latest = "@" not in image and (":" not in tag or tag.endswith(":latest"))
            c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})
            for port in c.get("ports") or []:
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")


def apply_defaults(obj: dict[str, Any], rtype: ResourceType, old: Mapping[str, Any] | None,
                   allocate_ip: Callable[[], str]) -> None:
    """Fill the server defaults of ``rtype`` into ``obj`` (in place), as the API does on write."""
    kind = "" if rtype.crd else rtype.kind
    meta = _d(obj, "metadata")
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else None
    if kind == "Namespace":
        _d(meta, "labels")["kubernetes.io/metadata.name"] = meta.get("name", "")
        _d(obj, "spec").setdefault("finalizers", ["kubernetes"])
        _d(obj, "status").setdefault("phase", "Active")
    elif kind == "Secret":
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = _d(obj, "data")
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
    elif kind == "Service":
        spec = _d(obj, "spec")
        spec.setdefault("type", "ClusterIP")
        if spec["type"] != "ExternalName":
            old_spec = (old or {}).get("spec") or {}
            if not spec.get("clusterIP"):
                spec["clusterIP"] = old_spec.get("clusterIP") or allocate_ip()
            spec.setdefault("clusterIPs", [spec["clusterIP"]])
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
            spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "port" in port:
                    port.setdefault("targetPort", port["port"])
        _d(obj, "status").setdefault("loadBalancer", {})
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet") and spec is not None:
        if kind != "DaemonSet":
            spec.setdefault("replicas", 1)
        if kind != "ReplicaSet":
            spec.setdefault("revisionHistoryLimit", 10)
        if kind == "Deployment":
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault("strategy", {"type": "RollingUpdate", "rollingUpdate": {
                "maxUnavailable": "25%", "maxSurge": "25%"}})
        elif kind == "StatefulSet":
            spec.setdefault("podManagementPolicy", "OrderedReady")
            spec.setdefault("updateStrategy", {"type": "RollingUpdate",
                                               "rollingUpdate": {"partition": 0}})
            spec.setdefault("persistentVolumeClaimRetentionPolicy",
                            {"whenDeleted": "Retain", "whenScaled": "Retain"})
        elif kind == "DaemonSet":
            spec.setdefault("updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {
                "maxUnavailable": 1, "maxSurge": 0}})
        if isinstance(spec.get("template"), dict):
            _pod_template(spec["template"])
    elif kind == "Job" and spec is not None:
        spec.setdefault("parallelism", 1)
        spec.setdefault("completions", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        uid = str(meta.get("uid", ""))
        if not spec.get("manualSelector"):
            spec.setdefault("selector", {"matchLabels": {
                "batch.kubernetes.io/controller-uid": uid}})
        if isinstance(spec.get("template"), dict):
            labels = _d(_d(spec["template"], "metadata"), "labels")
            labels.setdefault("batch.kubernetes.io/controller-uid", uid)
            labels.setdefault("batch.kubernetes.io/job-name", str(meta.get("name", "")))
            labels.setdefault("controller-uid", uid)
            labels.setdefault("job-name", str(meta.get("name", "")))
            _pod_template(spec["template"], restart=None)
    elif kind == "StorageClass":
        obj.setdefault("reclaimPolicy", "Delete")
        obj.setdefault("volumeBindingMode", "Immediate")
    elif kind == "PersistentVolumeClaim" and spec is not None:
        spec.setdefault("volumeMode", "Filesystem")
    elif kind == "CustomResourceDefinition" and spec is not None:
        names = _d(spec, "names")
        if names.get("kind"):
            names.setdefault("singular", str(names["kind"]).lower())
            names.setdefault("listKind", f"{names['kind']}List")
        spec.setdefault("conversion", {"strategy": "None"})


def _selector_matches(selector: Any, labels: Any) -> bool:
    if not isinstance(selector, dict):
        return False
    labels = labels if isinstance(labels, dict) else {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key"), expr.get("operator")
        values = expr.get("values") or []
        if ((op == "In" and labels.get(key) not in values)
                or (op == "NotIn" and key in labels and labels[key] in values)
                or (op == "Exists" and key not in labels)
                or (op == "DoesNotExist" and key in labels)):
            return False
    return True


def _name_causes(obj: Mapping[str, Any], rtype: ResourceType) -> list[Cause]:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    causes: list[Cause] = []
    if not name:
        return [("FieldValueRequired", "metadata.name",
                 "Required value: name or generateName is required")]
    as_label = not rtype.crd and rtype.kind in _LABEL_NAMED
    pattern, msg = (_LABEL, LABEL_MSG) if as_label else (_SUBDOMAIN, SUBDOMAIN_MSG)
    limit = 63 if as_label else 253
    if not pattern.match(str(name)) or len(str(name)) > limit:
        causes.append(("FieldValueInvalid", "metadata.name",
                       f"Invalid value: {go_value(name)}: {msg}"))
    for key, value in (meta.get("labels") or {}).items():
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(("FieldValueInvalid", "metadata.labels",
                           f"Invalid value: {go_value(value)}: {LABEL_VALUE_MSG}"))
        del key
    return causes


def _workload_causes(obj: Mapping[str, Any], kind: str) -> list[Cause]:
    spec = obj.get("spec") or {}
    causes: list[Cause] = []
    template = spec.get("template") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        selector = spec.get("selector")
        if not selector:
            causes.append(("FieldValueRequired", "spec.selector", "Required value"))
        labels = (template.get("metadata") or {}).get("labels")
        if selector and not _selector_matches(selector, labels):
            causes.append(("FieldValueInvalid", "spec.template.metadata.labels",
                           f"Invalid value: {go_value(labels or {})}: `selector` does not "
                           "match template `labels`"))
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        containers = (template.get("spec") or {}).get("containers")
        if not containers:
            causes.append(("FieldValueRequired", "spec.template.spec.containers",
                           "Required value"))
    if kind == "Job":
        restart = (template.get("spec") or {}).get("restartPolicy")
        if restart not in ("OnFailure", "Never"):
            field = "spec.template.spec.restartPolicy"
            if restart is None:
                causes.append(("FieldValueRequired", field,
                               'Required value: valid values: "OnFailure", "Never"'))
            else:
                causes.append(("FieldValueNotSupported", field,
                               f'Unsupported value: {go_value(restart)}: supported values: '
                               '"OnFailure", "Never"'))
    return causes


def _crd_causes(obj: Mapping[str, Any]) -> list[Cause]:
    spec = obj.get("spec") or {}
    names = spec.get("names") or {}
    causes: list[Cause] = []
    name = (obj.get("metadata") or {}).get("name", "")
    if name != f"{names.get('plural', '')}.{spec.get('group', '')}":
        causes.append(("FieldValueInvalid", "metadata.name",
                       f'Invalid value: {go_value(name)}: must be spec.names.plural+"."+'
                       'spec.group'))
    for key in ("plural", "kind"):
        if not names.get(key):
            causes.append(("FieldValueRequired", f"spec.names.{key}", "Required value"))
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(("FieldValueNotSupported", "spec.scope",
                       f'Unsupported value: {go_value(spec.get("scope", ""))}: supported '
                       'values: "Cluster", "Namespaced"'))
    versions = spec.get("versions") or []
    if sum(1 for v in versions if isinstance(v, dict) and v.get("storage")) != 1:
        causes.append(("FieldValueInvalid", "spec.versions",
                       f"Invalid value: {go_value(versions)}: must have exactly one version "
                       "marked as storage version"))
    return causes


def go_format(value: Any) -> str:
    """A JSON value as Go's ``%v`` prints the unstructured value (``map[a:1]``, ``[x y]``)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_format(v)}" for k, v in sorted(value.items())) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_format(v) for v in value) + "]"
    return str(value)


_JSON_TYPES = {bool: "bool", int: "number", float: "number", dict: "object", list: "array"}
_B64 = re.compile(r"[A-Za-z0-9+/=]")


def check_value_types(obj: Mapping[str, Any], rtype: ResourceType, *, apply: bool) -> None:
    """Refuse non-string Secret/ConfigMap values and non-base64 ``data``/``binaryData`` (400).

    An apply gets the typed-patch 500 that echoes the offending value, as the API's does
    (``.stringData.password: expected string, got &value.valueUnstructured{Value:12345}``);
    other writes get a 400 naming only its JSON type, as the API's JSON decoder does.
    """
    if rtype.crd or rtype.kind not in ("Secret", "ConfigMap"):
        return
    kind = rtype.kind
    for section in ("data", "stringData", "binaryData"):
        values = obj.get(section)
        if not isinstance(values, Mapping):
            continue
        for key, value in values.items():
            if value is None or isinstance(value, str):
                continue
            if apply:
                raise typed_patch_error(obj, rtype, [
                    f".{section}.{key}: expected string, got "
                    f"&value.valueUnstructured{{Value:{go_format(value)}}}"])
            jtype = _JSON_TYPES.get(type(value), "value")
            gotype = "string" if section == "stringData" or kind == "ConfigMap" else "[]uint8"
            raise bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: json: '
                              f"cannot unmarshal {jtype} into Go struct field {kind}.{section} "
                              f"of type {gotype}")
    sections = ("data", "binaryData") if kind == "Secret" else ("binaryData",)
    for section in sections:
        for value in (obj.get(section) or {}).values():
            if not isinstance(value, str):
                continue
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                bad = next((i for i, ch in enumerate(value) if not _B64.match(ch)), len(value))
                raise bad_request(f'{kind} in version "v1" cannot be handled as a {kind}: '
                                  f"illegal base64 data at input byte {bad}") from None


def validate(obj: Mapping[str, Any], rtype: ResourceType, old: Mapping[str, Any] | None
             ) -> None:
    """Raise the API's 422 Invalid for an object the fake's rules refuse (create or update)."""
    kind = "" if rtype.crd else rtype.kind
    causes = _name_causes(obj, rtype)
    if kind in ("Secret", "ConfigMap"):
        for section in ("data", "binaryData", "stringData"):
            for key in obj.get(section) or {}:
                if not _CONFIG_KEY.match(str(key)):
                    causes.append(("FieldValueInvalid", f"{section}[{key}]",
                                   f"Invalid value: {go_value(key)}: {CONFIG_KEY_MSG}"))
    causes += _workload_causes(obj, kind)
    if kind == "CustomResourceDefinition":
        causes += _crd_causes(obj)
    if old is not None:
        causes += _immutable_causes(obj, old, kind)
    if causes:
        name = str((obj.get("metadata") or {}).get("name", ""))
        raise invalid(rtype.qualified_kind, name, rtype.group, causes)


def _changed(new: Mapping[str, Any], old: Mapping[str, Any], *keys: str) -> bool:
    def dig(obj: Mapping[str, Any]) -> Any:
        cur: Any = obj
        for key in keys:
            cur = cur.get(key) if isinstance(cur, Mapping) else None
        return cur
    return bool(dig(new) != dig(old))


def _immutable_causes(new: Mapping[str, Any], old: Mapping[str, Any], kind: str) -> list[Cause]:
    causes: list[Cause] = []
    spec = new.get("spec") or {}

    def imm(*keys: str, message: str = IMMUTABLE) -> None:
        if _changed(new, old, *keys):
            cur: Any = new
            for key in keys:
                cur = cur.get(key) if isinstance(cur, Mapping) else None
            causes.append(("FieldValueInvalid", ".".join(keys),
                           f"Invalid value: {go_value(cur)}: {message}"))

    if kind == "Service" and (old.get("spec") or {}).get("clusterIP") and _changed(
            new, old, "spec", "clusterIP"):
        causes.append(("FieldValueInvalid", "spec.clusterIPs[0]",
                       f"Invalid value: {go_value([spec.get('clusterIP')])}: may not change "
                       "once set"))
    if kind in ("Deployment", "DaemonSet", "StatefulSet", "ReplicaSet"):
        imm("spec", "selector")
    if kind == "StatefulSet":
        allowed = {"replicas", "ordinals", "template", "updateStrategy",
                   "persistentVolumeClaimRetentionPolicy", "minReadySeconds",
                   "revisionHistoryLimit"}
        rest_new = {k: v for k, v in spec.items() if k not in allowed | {"selector"}}
        rest_old = {k: v for k, v in (old.get("spec") or {}).items()
                    if k not in allowed | {"selector"}}
        if rest_new != rest_old:
            causes.append(("FieldValueForbidden", "spec",
                           "Forbidden: updates to statefulset spec for fields other than "
                           "'replicas', 'ordinals', 'template', 'updateStrategy', "
                           "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
                           "forbidden"))
    if kind == "Job":
        imm("spec", "template")
        imm("spec", "selector")
        imm("spec", "completions")
    if kind == "Secret":
        imm("type")
    if kind in ("Secret", "ConfigMap") and old.get("immutable") is True:
        for section in ("data", "binaryData"):
            if _changed(new, old, section):
                causes.append(("FieldValueForbidden", section,
                               "Forbidden: field is immutable when `immutable` is set"))
        if new.get("immutable") is not True:
            causes.append(("FieldValueForbidden", "immutable",
                           "Forbidden: field is immutable when `immutable` is set"))
    if kind in ("RoleBinding", "ClusterRoleBinding") and _changed(new, old, "roleRef"):
        causes.append(("FieldValueInvalid", "roleRef",
                       f"Invalid value: {go_value(new.get('roleRef'))}: cannot change roleRef"))
    if kind == "StorageClass":
        for key in ("parameters", "provisioner"):
            if _changed(new, old, key):
                causes.append(("FieldValueForbidden", key,
                               f"Forbidden: updates to {key} are forbidden."))
    if kind == "CustomResourceDefinition":
        imm("spec", "group")
        imm("spec", "scope")
    return causes


def unknown_fields(obj: Mapping[str, Any], rtype: ResourceType) -> list[str]:
    """Paths (``.spec.foo``) of fields ``rtype``'s schema does not declare.

    Built-in kinds: top-level keys, ``metadata`` keys and (for Deployment, StatefulSet,
    DaemonSet, Job, Service) ``spec`` keys. Custom resources: their openAPIV3Schema, recursively.
    """
    found: list[str] = []
    meta = obj.get("metadata")
    if isinstance(meta, Mapping):
        found += [f".metadata.{k}" for k in meta if k not in META_KEYS]
    if rtype.schema is not None:
        body = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
        found += unknown_schema_fields(body, rtype.schema, "")
        return found
    if rtype.fields is not None:
        found += [f".{k}" for k in obj
                  if k not in rtype.fields | {"apiVersion", "kind", "metadata"}]
    spec = obj.get("spec")
    if rtype.spec_fields is not None and isinstance(spec, Mapping):
        found += [f".spec.{k}" for k in spec if k not in rtype.spec_fields]
    return found


def typed_patch_error(obj: Mapping[str, Any], rtype: ResourceType, details: list[str]
                      ) -> ApiError:
    """What an apply whose config does not fit the schema gets: kube-apiserver's SSA type
    conversion fails with a plain error, which the API serves as a 500 Status with no reason
    (kubectl prints ``Error from server: failed to create typed patch object (...)``),
    whatever ``fieldValidation`` says."""
    meta = obj.get("metadata") or {}
    where = f"{meta.get('namespace', '')}/{meta.get('name', '')}"
    gv = rtype.api_version if rtype.group else f"/{rtype.version}"
    detail = details[0] if len(details) == 1 else "errors:\n" + "\n".join(
        f"  {d}" for d in details)
    return ApiError(500, "", f"failed to create typed patch object ({where}; {gv}, "
                    f"Kind={rtype.kind}): {detail}")


def strict_error(unknown: list[str], rtype: ResourceType, obj: Mapping[str, Any],
                 apply: bool) -> ApiError:
    """The error for unknown fields: an apply's typed-patch 500 (:func:`typed_patch_error`),
    or the 400 a create/update/patch gets under ``fieldValidation=Strict``."""
    if apply:
        return typed_patch_error(obj, rtype, [f"{u}: field not declared in schema"
                                              for u in unknown])
    fields = ", ".join(f'unknown field "{u.lstrip(".")}"' for u in unknown)
    return bad_request(f'{rtype.kind} in version "{rtype.version}" cannot be handled as a '
                       f"{rtype.kind}: strict decoding error: {fields}")


def drop_unknown(obj: dict[str, Any], unknown: list[str]) -> None:
    """Remove unknown top-level, ``metadata`` and ``spec`` fields (fieldValidation Ignore/Warn)."""
    for path in unknown:
        parts = path.lstrip(".").split(".")
        cur: Any = obj
        for part in parts[:-1]:
            cur = cur.get(part) if isinstance(cur, dict) else None
        if isinstance(cur, dict):
            cur.pop(parts[-1], None)
