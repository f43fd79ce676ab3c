"""The YAML rules Argo CD reads manifests with: go-yaml v2 through sigs.k8s.io/yaml.

Argo CD (and kubectl, and helm's ``fromYaml``) parse YAML with sigs.k8s.io/yaml, which decodes
with go-yaml v2 and converts the result to JSON. That reading is neither YAML 1.1 (PyYAML's
default) nor YAML 1.2. This module states it as small pure functions, for the loader and the
dumper of :mod:`kiln.core.manifests` to share:

* :func:`resolve_plain`: the value of an untagged plain scalar. Booleans are ``y Y yes Yes YES
  true True TRUE on On ON`` and their negatives; null is ``~ null Null NULL`` and the empty
  scalar; integers are Go literals (``0x1F``, ``0o17``, ``017``, ``0b101``, ``1_000``); floats
  are decimal with an optional exponent (``1e3``, ``-.5``) and ``.inf``/``.nan``. Everything
  else is a string, timestamps and sexagesimal forms (``12:30``) and ``=`` included.
* :func:`resolve_tagged`: a scalar with an explicit ``!!int``-style tag.
* :func:`json_key` and :func:`json_value`: the conversion sigs.k8s.io/yaml and then Kubernetes'
  JSON decoding apply: keys become strings (``true`` -> ``"true"``, ``1.5`` -> ``"1.5"``, a
  null or a huge unsigned key is an error), a float with an integral value becomes an integer,
  an integer beyond int64 becomes a float, ``.nan`` and ``.inf`` are errors.
* :func:`tag_of_plain`: how a string written as a plain scalar would be read back, so the
  dumper quotes every string that would not come back as itself.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import math
import re
import struct
from typing import Any

TAG_PREFIX = "tag:yaml.org,2002:"
STR = TAG_PREFIX + "str"
INT = TAG_PREFIX + "int"
FLOAT = TAG_PREFIX + "float"
BOOL = TAG_PREFIX + "bool"
NULL = TAG_PREFIX + "null"
TIMESTAMP = TAG_PREFIX + "timestamp"
BINARY = TAG_PREFIX + "binary"
MERGE = TAG_PREFIX + "merge"
RESOLVABLE = frozenset({STR, INT, FLOAT, BOOL, NULL, TIMESTAMP})

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1


class GoYamlError(ValueError):
    """A value go-yaml v2 or sigs.k8s.io/yaml refuses (the message says which and why)."""


class Unsigned(int):
    """An integer go-yaml v2 decodes as ``uint64`` (above int64's range): not a valid key."""

    __slots__ = ()


# go-yaml's first-character hint: S sign, D digit, M "in the map", "." maybe a float.
_HINT: dict[str, str] = {"+": "S", "-": "S", ".": "."}
_HINT.update(dict.fromkeys("0123456789", "D"))
_HINT.update(dict.fromkeys("yYnNtTfFoO~", "M"))

_KNOWN: dict[str, Any] = {}
for _words, _value in (
    ("y Y yes Yes YES true True TRUE on On ON", True),
    ("n N no No NO false False FALSE off Off OFF", False),
    ("~ null Null NULL", None),
    (".nan .NaN .NAN", math.nan),
    (".inf .Inf .INF +.inf +.Inf +.INF", math.inf),
    ("-.inf -.Inf -.INF", -math.inf),
):
    for _word in _words.split():
        _KNOWN[_word] = _value
del _words, _value, _word

_GO_INT = re.compile(r"([+-]?)(?:0[xX]([0-9a-fA-F]+)|0[oO]([0-7]+)|0[bB]([01]+)|0([0-7]*)"
                     r"|([1-9][0-9]*))")
_GO_UINT = re.compile(r"(?:0[xX]([0-9a-fA-F]+)|0[oO]([0-7]+)|0[bB]([01]+)|0([0-7]*)"
                      r"|([1-9][0-9]*))")
_YAML_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
# What Go's strconv.ParseFloat takes of a string that starts with "." (underscores only
# between digits).
_DIGITS = r"[0-9]+(?:_[0-9]+)*"
_DOT_FLOAT = re.compile(rf"\.{_DIGITS}(?:[eE][-+]?{_DIGITS})?")
_TIMESTAMP = re.compile(
    r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})"
    r"(?:[Tt]([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})"
    r"| ([0-9]{1,2}):([0-9]{1,2}):([0-9]{1,2})(?:\.[0-9]+)?)?"
)
_BASES = (16, 8, 2, 8, 10)


def _parse_int(text: str) -> int | None:
    """Go's ``strconv.ParseInt(text, 0, 64)``, then ``ParseUint``: None when neither takes it."""
    m = _GO_INT.fullmatch(text)
    if m is None:
        return None
    for digits, base in zip(m.groups()[1:], _BASES, strict=True):
        if digits is not None:
            value = int(digits, base) if digits else 0
            break
    else:  # pragma: no cover - the pattern always captures one group
        return None
    if m.group(1) == "-":
        value = -value
    if INT64_MIN <= value <= INT64_MAX:
        return value
    if value <= UINT64_MAX and not m.group(1):  # ParseUint takes no sign
        return Unsigned(value)
    return None


def _parse_float(text: str) -> float | None:
    """A finite float Go's ``strconv.ParseFloat`` gives for ``text`` (None on overflow)."""
    value = float(text)
    return None if math.isinf(value) else value


def resolve_plain(text: str) -> Any:
    """The value go-yaml v2 gives an untagged plain scalar decoded into ``interface{}``.

    Returns a str, bool, None, int (an :class:`Unsigned` above int64) or float.
    """
    if not text:
        return None
    hint = _HINT.get(text[0])
    if hint is None:
        return text
    known = _KNOWN.get(text, text)
    if known is not text:
        return known
    if hint == "M":
        return text
    if hint == ".":
        if _DOT_FLOAT.fullmatch(text):
            value = _parse_float(text.replace("_", ""))
            if value is not None:
                return value
        return text
    # Timestamps are tried first in go-yaml, but decode to their text in interface{}.
    plain = text.replace("_", "")
    number = _parse_int(plain)
    if number is not None:
        return number
    if _YAML_FLOAT.fullmatch(plain):
        value = _parse_float(plain)
        if value is not None:
            return value
    return text


def _is_timestamp(text: str) -> bool:
    """Whether one of go-yaml v2's timestamp layouts parses ``text`` (dates validated)."""
    m = _TIMESTAMP.fullmatch(text)
    if m is None:
        return False
    year, month, day = (int(g) for g in m.groups()[:3])
    clock = [int(g) for g in m.groups()[3:] if g is not None]
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return not clock or (clock[0] < 24 and clock[1] < 60 and clock[2] < 60)


def _tag_of(value: Any) -> str:
    if value is None:
        return NULL
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    return STR


def _short(tag: str) -> str:
    return "!!" + tag[len(TAG_PREFIX):] if tag.startswith(TAG_PREFIX) else tag


def resolve_tagged(tag: str, text: str) -> Any:
    """The value of a scalar written with an explicit tag (``!!int 12``, ``!foo x``).

    Tags go-yaml does not resolve (custom tags, ``!!set``...) leave the text a string;
    ``!!binary`` is decoded; GoYamlError when the text does not fit the tag.
    """
    if tag == STR:
        return text
    if tag == BINARY:
        try:
            data = base64.b64decode(re.sub(r"[\r\n]", "", text), validate=True)
        except (binascii.Error, ValueError):
            raise GoYamlError("!!binary value contains invalid base64 data") from None
        return data.decode("utf-8", errors="replace")
    if tag not in RESOLVABLE:
        return text
    if tag == TIMESTAMP and _is_timestamp(text):
        return text  # go-yaml decodes a timestamp into interface{} as its text
    value = resolve_plain(text)
    found = _tag_of(value)
    if found == tag:
        return value
    if tag == FLOAT and found == INT:
        return float(value)
    raise GoYamlError(f"cannot decode {_short(found)} `{text}` as a {_short(tag)}")


def _format_float32(value: float) -> str:
    """Go's ``strconv.FormatFloat(value, 'g', -1, 32)`` (how sigs.k8s.io/yaml spells a float key).
    """
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    try:
        single = struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return ".inf" if value > 0 else "-.inf"
    if math.isinf(single):
        return ".inf" if value > 0 else "-.inf"
    if single == 0:
        return "-0" if math.copysign(1, single) < 0 else "0"
    for precision in range(1, 10):  # the shortest digits that read back as the same float32
        text = f"{single:.{precision - 1}e}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == single:
            break
    mantissa, exp_text = text.split("e")
    exponent = int(exp_text)
    negative = mantissa.startswith("-")
    digits = mantissa.lstrip("-").replace(".", "").rstrip("0") or "0"
    sign = "-" if negative else ""
    if exponent < -4 or exponent >= 6:  # Go's rule for the shortest 'g' format
        head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{head}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"
    if exponent < 0:
        return f"{sign}0.{'0' * (-exponent - 1)}{digits}"
    if len(digits) <= exponent + 1:
        return sign + digits + "0" * (exponent + 1 - len(digits))
    return f"{sign}{digits[:exponent + 1]}.{digits[exponent + 1:]}"


def json_key(value: Any) -> str:
    """The string sigs.k8s.io/yaml turns a decoded mapping key into; GoYamlError if none."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Unsigned):
        raise GoYamlError(f"mapping key {int(value)} is an unsigned 64-bit integer, "
                          "which Argo CD cannot use as a key")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _format_float32(value)
    if value is None:
        raise GoYamlError("a null mapping key (~, null or empty) is not allowed "
                          "(Argo CD cannot convert it to JSON)")
    raise GoYamlError(f"invalid mapping key: a {type(value).__name__}")  # pragma: no cover


def json_value(value: Any) -> Any:
    """A decoded scalar as Kubernetes holds it after the JSON round trip.

    Integral floats within int64 become ints, ints beyond int64 become floats; GoYamlError for
    NaN and infinities, which JSON cannot carry.
    """
    if isinstance(value, float):
        if not math.isfinite(value):
            raise GoYamlError(f"{_format_float32(value)} is not a JSON number "
                              "(Argo CD cannot convert it)")
        if value.is_integer() and INT64_MIN <= value < 2.0 ** 63:
            return int(value)
        return value
    if isinstance(value, int) and not isinstance(value, bool) and (
            isinstance(value, Unsigned) or not INT64_MIN <= value <= INT64_MAX):
        return float(value)
    return value


def tag_of_plain(text: str) -> str:
    """The tag go-yaml v2 reads ``text`` with when it is written as a plain scalar: STR only
    when it reads back as that very string (``<<`` is a merge key, so never STR)."""
    value = resolve_plain(text)
    if type(value) is str:
        return STR if text != "<<" else MERGE
    return _tag_of(value)
