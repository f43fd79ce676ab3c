"""docs/security.md names the test behind each guard: every test it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"
_CITED = re.compile(r"`([\w/]+\.py)(?:::(\w+)(\*)?)?`|`::(\w+)(\*)?`")


def _defined(path: Path) -> set[str]:
    return set(re.findall(r"^\s*def (\w+)", path.read_text(), re.M))


def _test_file(cited: str) -> Path:
    """``tests/unit/test_x.py`` as written, or a bare ``test_x.py`` found once under tests/."""
    if "/" in cited:
        path = ROOT / cited
        assert path.exists(), cited
        return path
    found = sorted((ROOT / "tests").rglob(cited))
    assert len(found) == 1, (cited, found)
    return found[0]


def test_every_test_the_security_page_names_exists() -> None:
    text = DOC.read_text()
    checked = 0
    for line in text.splitlines():
        current: Path | None = None
        for match in _CITED.finditer(line):
            if match.group(1):
                current = _test_file(match.group(1))
                name, star = match.group(2), match.group(3)
            else:
                assert current is not None, f"{match.group(0)} without a file before it: {line}"
                name, star = match.group(4), match.group(5)
            if name is None:
                continue
            names = _defined(current)
            found = any(n.startswith(name) for n in names) if star else name in names
            assert found, f"{current.relative_to(ROOT)}::{name} is named in docs/security.md"
            checked += 1
    assert checked >= 40, checked
