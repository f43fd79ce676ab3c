"""``manifest.yaml`` as Argo CD's commit server writes it: go-yaml v3's encoder, indent 2.

The Source Hydrator turns each rendered object into a Go map and encodes the list with one
``yaml.v3`` encoder (``SetIndent(2)``), in the order the render produced them. That fixes:

* documents separated by ``---`` lines (none before the first), each ending in a newline;
* every mapping's keys sorted as go-yaml v3 sorts map keys (:func:`key_order`: letters before
  other characters, runs of digits compared as numbers);
* two-space indentation, block sequences indented under their key (``key:\\n  - a``), no line
  wrapping, non-ASCII text written as is;
* strings with a newline as literal blocks (``|``), strings go-yaml v3 would read back as
  something else (``true``, ``yes``, ``1e3``, ``0x1F``, ``2024-01-01``, ``1:20``, ``~``, ``""``)
  double-quoted, others plain where YAML allows (else single-quoted), integers in decimal,
  floats as Go's ``strconv.FormatFloat(f, 'g', -1, 64)`` (``1e+06``, ``0.5``, ``.inf``).

The emitter is PyYAML's port of libyaml, the C library go-yaml's emitter was translated from,
so the scalar analysis (when plain or single-quoted style is allowed) is the same one.
"""

from __future__ import annotations

import datetime
import functools
import math
import re
import unicodedata
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_OTHER = "kiln:not-a-string"  # a plain scalar go-yaml v3 reads as a timestamp, merge, ...

_RESOLVED = {
    **dict.fromkeys(("true", "True", "TRUE", "false", "False", "FALSE"), _BOOL),
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), _NULL),
    **dict.fromkeys((".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf",
                     "+.INF", "-.inf", "-.Inf", "-.INF"), _FLOAT),
    "<<": _OTHER,
}
# quoted on the way out by go-yaml v3 for YAML 1.1 readers, though v3 reads them as strings
_OLD_BOOLS = frozenset(["y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
                        "on", "On", "ON", "off", "Off", "OFF"])
_BASE60 = re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?")
_YAML_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_GO_FLOAT = re.compile(r"[-+]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
                       r"|inf|infinity|nan)", re.IGNORECASE)
_TIMESTAMP = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:([Tt ])([0-9]{1,2}):"
                        r"([0-9]{1,2}):([0-9]{1,2})(\.[0-9]+)?(Z|[-+][0-9]{2}:[0-9]{2})?)?")
# what go-yaml's emitter calls non-printable (controls, U+0080-U+009F, U+FEFF, anything past
# U+FFFF), which only double quotes can hold, and the Unicode line separators it would write
# raw inside single quotes (read back as spaces): all double-quoted, escaped
_NOT_PRINTABLE = re.compile("[^\n\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe"
                            "\uff00-\ufffd]")
_DIGITS = {"0x": "0123456789abcdefABCDEF", "0o": "01234567", "0b": "01"}


def _go_int(text: str) -> bool:
    """True when Go's ``strconv.ParseInt(text, 0, 64)`` (or ParseUint) reads ``text`` as an
    integer literal (range aside: out-of-range literals are quoted too, harmlessly)."""
    body = text[1:] if text[:1] in "+-" else text
    prefix = body[:2].lower()
    if prefix in _DIGITS:
        digits, allowed = body[2:], _DIGITS[prefix]
    elif len(body) > 1 and body[0] == "0":
        digits, allowed = body[1:], "01234567"
    else:
        digits, allowed = body, "0123456789"
    return bool(digits) and all(c in allowed for c in digits)


def _timestamp(text: str) -> bool:
    """True when go-yaml v3 would read the plain scalar as a timestamp (a valid date first)."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return False
    year, month, day = (int(g) for g in match.group(1, 2, 3))
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return match.group(4) != " " or match.group(9) is None  # a space form has no zone


def plain_tag(text: str) -> str:
    """How go-yaml v3's encoder treats ``text`` as a plain scalar: the tag it would resolve
    to, with YAML 1.1 booleans and base-60 numbers counted as not strings (v3 quotes them)."""
    if text in _RESOLVED:
        return _RESOLVED[text]
    if text in _OLD_BOOLS or _BASE60.fullmatch(text):
        return _OTHER
    hint = text[0]
    if hint == ".":
        return _FLOAT if _GO_FLOAT.fullmatch(text) else _STR
    if hint in "+-0123456789":
        if _timestamp(text):
            return _OTHER
        plain = text.replace("_", "")
        if _go_int(plain) or _go_int(plain.replace("0b", "", 1)):
            return _INT
        if _YAML_FLOAT.fullmatch(plain):
            return _FLOAT
    return _STR


def go_float(value: float) -> str:
    """``strconv.FormatFloat(value, 'g', -1, 64)``, with go-yaml's ``.inf``/``.nan``: the
    shortest digits that read back as ``value``, in exponent form below 1e-4 or from 1e6."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    if value == 0:
        return f"{sign}0"
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in digit_tuple)
    assert isinstance(exponent, int)
    point = len(digits) + exponent  # value = 0.<digits> x 10**point
    exp10 = point - 1
    if exp10 < -4 or exp10 >= 6:
        tail = f".{digits[1:]}" if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{tail}e{'-' if exp10 < 0 else '+'}{abs(exp10):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return f"{sign}{digits}{'0' * (point - len(digits))}"
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _letter(char: str) -> bool:
    return unicodedata.category(char).startswith("L")


def _digit(char: str) -> bool:
    return unicodedata.category(char) == "Nd"


def _less(a: str, b: str) -> bool:
    """go-yaml v3's ``keyList.Less`` for two string keys."""
    digits = False
    for i in range(min(len(a), len(b))):
        if a[i] == b[i]:
            digits = _digit(a[i])
            continue
        al, bl = _letter(a[i]), _letter(b[i])
        if al and bl:
            return a[i] < b[i]
        if al or bl:
            return al if digits else bl
        an = bn = 0
        if a[i] == "0" or b[i] == "0":
            j = i - 1
            while j >= 0 and _digit(a[j]):
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and _digit(a[ai]):
            an = an * 10 + (ord(a[ai]) - 48)
            ai += 1
        bi = i
        while bi < len(b) and _digit(b[bi]):
            bn = bn * 10 + (ord(b[bi]) - 48)
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return a[i] < b[i]
    return len(a) < len(b)


def _compare(a: str, b: str) -> int:
    return -1 if _less(a, b) else (1 if _less(b, a) else 0)


key_order = functools.cmp_to_key(_compare)
"""Sort key putting mapping keys in go-yaml v3's order (``sorted(keys, key=key_order)``)."""


@functools.cache
def _dumper() -> type[Any]:
    import yaml

    class Dumper(yaml.SafeDumper):
        """PyYAML's emitter configured as go-yaml v3's encoder with ``SetIndent(2)``."""

        def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
            del indentless  # never indentless: a sequence sits two columns under its key
            super().increase_indent(flow, False)

        def resolve(self, kind: type[Any], value: str | None, implicit: tuple[bool, bool]
                    ) -> str:
            if kind is yaml.ScalarNode:
                if implicit[0] and value is not None:
                    return plain_tag(value)
                return _STR
            return _SEQ if kind is yaml.SequenceNode else _MAP

        def ignore_aliases(self, data: Any) -> bool:
            return True

    def text(dumper: Dumper, value: str) -> Any:
        if _NOT_PRINTABLE.search(value):
            style: str | None = '"'  # libyaml escapes these; PyYAML would write some raw
        elif "\n" in value:
            style = "|"
        elif plain_tag(value) != _STR:
            style = '"'
        else:
            style = None
        return dumper.represent_scalar(_STR, value, style=style)

    def mapping(dumper: Dumper, value: dict[Any, Any]) -> Any:
        items = sorted(((str(k), v) for k, v in value.items()), key=lambda kv: key_order(kv[0]))
        return dumper.represent_mapping(_MAP, items, flow_style=False)

    def sequence(dumper: Dumper, value: list[Any]) -> Any:
        return dumper.represent_sequence(_SEQ, value, flow_style=False)

    def boolean(dumper: Dumper, value: bool) -> Any:
        return dumper.represent_scalar(_BOOL, "true" if value else "false")

    def integer(dumper: Dumper, value: int) -> Any:
        return dumper.represent_scalar(_INT, str(value))

    def number(dumper: Dumper, value: float) -> Any:
        return dumper.represent_scalar(_FLOAT, go_float(value))

    def null(dumper: Dumper, value: None) -> Any:
        return dumper.represent_scalar(_NULL, "null")

    Dumper.add_representer(str, text)
    Dumper.add_representer(dict, mapping)
    Dumper.add_representer(list, sequence)
    Dumper.add_representer(bool, boolean)
    Dumper.add_representer(int, integer)
    Dumper.add_representer(float, number)
    Dumper.add_representer(type(None), null)
    return Dumper


def dump_manifests(objects: Iterable[dict[str, Any]]) -> bytes:
    """The ``manifest.yaml`` bytes of ``objects`` (in their order), as Argo CD's commit server
    encodes them; the same objects always give the same bytes. Empty input gives ``b""``."""
    import yaml

    text = yaml.dump_all(list(objects), Dumper=_dumper(), allow_unicode=True,
                         default_flow_style=False, sort_keys=False, width=1 << 30, indent=2,
                         explicit_start=False)
    # PyYAML closes an open-ended last scalar (a ``|+`` block) with "..."; go-yaml does not.
    return text.replace("\n...\n", "\n").encode("utf-8")
