"""The import closure of a Jsonnet program, found statically before evaluation.

Jsonnet forbids computed imports: ``import``, ``importstr`` and ``importbin`` take a string
literal, so lexing each file (skipping comments, strings, verbatim strings and ``|||`` text
blocks) finds every file evaluation could load. Each path is resolved through the same
:class:`~kiln.plugins.jsonnet.jpath.Resolver` the evaluation uses, so the closure is exact.
Imports are lazy in Jsonnet, so an import that resolves nowhere is recorded as missing rather
than refused here: evaluation reports it if it is reached, and the cache key still changes when
the file appears.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kiln.core.paths import read_bytes_capped
from kiln.plugins.jsonnet.jpath import Resolver

MAX_FILE_BYTES = 32 << 20
"""Largest single Jsonnet source or imported data file."""

# One match = a run of uninteresting code (kept in C: no Python loop per character) followed
# by one token: a comment, a string, a text-block opener, an import keyword or a stray character.
_TOKEN = re.compile(
    r"""
    [^/\#@"'|i]*(?:(?:i(?!mport)|/(?![/*])|\|(?!\|\|)|@(?!["']))[^/\#@"'|i]*)*
    (?:
      (?P<comment>//[^\n]*|\#[^\n]*|/\*.*?\*/)
    | (?P<verbatim>@"[^"]*(?:""[^"]*)*"|@'[^']*(?:''[^']*)*')
    | (?P<string>"[^"\\]*(?:\\.[^"\\]*)*"|'[^'\\]*(?:\\.[^'\\]*)*')
    | (?P<block>\|\|\|)
    | (?P<keyword>import(?:str|bin)?)
    | (?P<other>.)
    )
    """,
    re.S | re.X,
)
_IDENT_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_GAP = re.compile(r"(?:\s+|//[^\n]*|\#[^\n]*|/\*.*?\*/)*", re.S)
_LITERAL = re.compile(r"""@"(?:[^"]|"")*"|@'(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'""",
                      re.S)
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|.)", re.S)
_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


@dataclass(frozen=True)
class ImportRef:
    """One import in a source file: its kind, the literal path and its 1-based line."""

    kind: str
    path: str
    line: int


def find_imports(text: str) -> Iterator[ImportRef]:
    """Yield every ``import``/``importstr``/``importbin`` with a string-literal path in ``text``.

    Comments, strings and text blocks are skipped, so an ``import`` word inside them is not an
    import. A malformed file stops the scan quietly: evaluation reports the syntax error.
    """
    if "import" not in text:
        return
    pos = line_pos = 0
    line = 1
    end = len(text)
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None:  # only a trailing run of plain code is left
            return
        kind = match.lastgroup
        pos = match.end()
        if kind == "block":
            pos = skip_text_block(text, pos)
        elif kind == "keyword":
            start = match.start(kind)
            if (start and text[start - 1] in _IDENT_CHARS) or text[pos:pos + 1] in _IDENT_CHARS:
                continue  # part of a longer identifier (``myimport``, ``imports``)
            gap = _GAP.match(text, pos)
            literal = _LITERAL.match(text, gap.end() if gap else pos)
            if literal is None:
                continue  # a computed import: a syntax error evaluation will report
            pos = literal.end()
            line += text.count("\n", line_pos, start)
            line_pos = start
            yield ImportRef(match.group(kind), _decode(literal.group()), line)


def _decode(literal: str) -> str:
    """Return the value of a Jsonnet string literal (quoted or verbatim)."""
    if literal.startswith("@"):
        quote = literal[1]
        return literal[2:-1].replace(quote * 2, quote)

    def unescape(m: re.Match[str]) -> str:
        code = m.group(1)
        if code.startswith("u") and len(code) == 5:
            return chr(int(code[1:], 16))
        return _SIMPLE_ESCAPES.get(code, code)

    return _ESCAPE.sub(unescape, literal[1:-1])


def skip_text_block(text: str, pos: int) -> int:
    """Return the position just after the ``|||`` text block whose opening ends at ``pos``."""
    if text.startswith("-", pos):
        pos += 1
    newline = text.find("\n", pos)
    if newline == -1 or text[pos:newline].strip(" \t\r"):
        return len(text) if newline == -1 else newline
    pos = newline + 1
    indent: str | None = None
    while pos < len(text):
        end = text.find("\n", pos)
        end = len(text) if end == -1 else end
        line = text[pos:end]
        if line in ("", "\r"):
            pos = end + 1
            continue
        if indent is None:
            width = len(line) - len(line.lstrip(" \t"))
            if width == 0:
                return pos
            indent = line[:width]
        if line.startswith(indent):
            pos = end + 1
            continue
        stripped = line.lstrip(" \t")
        if stripped.startswith("|||"):
            return pos + (len(line) - len(stripped)) + 3
        return pos
    return len(text)


@dataclass
class Closure:
    """What a Jsonnet program may read: ``files`` (absolute, entry first), imports that resolve
    nowhere (``missing``, as ``(importing file, path)``), whether any code file mentions the
    ``helmTemplate`` native function, and whether any mentions ``thisFile`` (``std.thisFile``
    is the file's absolute path: the output then depends on where the app lives)."""

    files: list[str] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)
    uses_helm: bool = False
    uses_this_file: bool = False


class ImportMemo:
    """Remember each source file's imports on disk, keyed by the sha256 of its content.

    A cache hit still needs the import closure to compute its key; with the memo, a large
    vendored library is hashed (fast, in C) instead of lexed again. ``directory`` None disables
    it. Entries are written atomically; an unreadable entry is recomputed.
    """

    FORMAT = "imports-v1"

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory / self.FORMAT if directory is not None else None

    def imports(self, data: bytes) -> list[ImportRef]:
        """The imports of the source ``data`` (see :func:`find_imports`)."""
        text = data.decode("utf-8", "replace")
        if self.directory is None:
            return list(find_imports(text))
        digest = hashlib.sha256(data).hexdigest()
        path = self.directory / digest[:2] / digest
        try:
            return [ImportRef(str(k), str(p), int(n)) for k, p, n in json.loads(path.read_bytes())]
        except (OSError, ValueError, TypeError):
            pass
        refs = list(find_imports(text))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{digest}.{os.getpid()}")
            tmp.write_text(json.dumps([[r.kind, r.path, r.line] for r in refs]))
            os.replace(tmp, path)
        except OSError:
            pass
        return refs


SNIPPET_DIR = "/"
"""Where go-jsonnet resolves an import written in ext-code or TLA code: the binding hands the
import callback an empty directory, which the worker reads as ``/`` (so in practice the JPATH,
the app directory among it, is searched)."""


def import_closure(entry: str, resolver: Resolver, memo: ImportMemo | None = None,
                   snippets: Sequence[tuple[str, str]] = ()) -> Closure:
    """Follow every import from ``entry`` and from the code ``snippets`` (``(name, code)``:
    ext-code and TLA code values) through ``resolver``; raise InputError for a file that
    cannot be read, is oversize, or resolves outside the source root."""
    memo = memo or ImportMemo(None)
    closure = Closure(files=[entry])
    seen_code = {entry}
    seen_any = {entry}
    queue: deque[tuple[str, bytes | None]] = deque([(entry, None)])
    for name, code in snippets:
        queue.append((name, code.encode("utf-8", "surrogateescape")))
    while queue:
        current, snippet = queue.popleft()
        data = snippet if snippet is not None else read_bytes_capped(Path(current),
                                                                     MAX_FILE_BYTES)
        if b"helmTemplate" in data:
            closure.uses_helm = True
        if b"thisFile" in data:
            closure.uses_this_file = True
        if b"import" not in data:
            continue
        importer_dir = SNIPPET_DIR if snippet is not None else os.path.dirname(current)
        for ref in memo.imports(data):
            found = resolver.resolve(importer_dir, ref.path, where=f"{current}:{ref.line}")
            if found is None:
                closure.missing.append((current, ref.path))
                continue
            if found not in seen_any:
                seen_any.add(found)
                closure.files.append(found)
            if ref.kind == "import" and found not in seen_code:
                seen_code.add(found)
                queue.append((found, None))
    return closure
