"""The house's import rules, checked on kiln's own source (ast, nothing imported):

- no module under ``kiln/plugins/<a>/`` imports ``kiln.plugins.<b>`` (at any level, lazily too);
- the core (``kiln/core``) imports no plugin;
- kiln's modules form no import cycle at import time (module-level imports outside
  ``if TYPE_CHECKING:``), and the pairs issue 13 named import each other at no level at all.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
KILN = REPO / "kiln"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(KILN.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(node: ast.AST, module: str, *, top_level: bool, typing: bool = False,
             strings: bool = False) -> Iterator[tuple[str, int]]:
    """(imported module, line) for each import under ``node``; with ``top_level`` only those
    run when the module is imported (not in functions). ``typing`` counts the imports under
    ``if TYPE_CHECKING:`` too, ``strings`` a string naming a kiln module (``_EXPORTS``,
    ``importlib.import_module("kiln....")``) as an import."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child) and not typing:
            for n in child.orelse:
                yield from _imports(n, module, top_level=top_level, strings=strings)
            continue
        if strings and isinstance(child, ast.Constant) and child.value in MODULES:
            yield str(child.value), child.lineno
        if top_level and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue
        if isinstance(child, ast.Import):
            for alias in child.names:
                yield alias.name, child.lineno
        elif isinstance(child, ast.ImportFrom):
            base = child.module or ""
            if child.level:
                package = module if MODULES[module].name == "__init__.py" else \
                    module.rpartition(".")[0]
                for _ in range(child.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            for alias in child.names:
                sub = f"{base}.{alias.name}"
                yield (sub if sub in MODULES else base), child.lineno
        else:
            yield from _imports(child, module, top_level=top_level, typing=typing,
                                strings=strings)


def kiln_imports(module: str, *, top_level: bool, typing: bool = False,
                 strings: bool = False) -> set[str]:
    """The kiln modules ``module`` imports (a package's own initialisation of its parents is
    Python's business, not a dependency)."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    found: set[str] = set()
    for name, _ in _imports(tree, module, top_level=top_level, typing=typing, strings=strings):
        while name not in MODULES and "." in name:
            name = name.rpartition(".")[0]
        if name in MODULES:
            found.add(name)
    found.discard(module)
    return found


def plugin_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["kiln", "plugins"] else None


def test_the_scan_sees_imports_at_every_level() -> None:
    """The checks below see imports inside functions and resolve relative imports."""
    assert "kiln.plugins.helm.renderer" in kiln_imports("kiln.plugins.helm", top_level=True)
    assert "kiln.cmp.fastpath" in kiln_imports("kiln.entry", top_level=False)
    assert "kiln.cmp.fastpath" not in kiln_imports("kiln.entry", top_level=True)
    assert "kiln.core.engine" in kiln_imports("kiln", top_level=False, strings=True)


@pytest.mark.parametrize("module", [m for m in MODULES if plugin_of(m)])
def test_no_plugin_imports_another_plugin(module: str) -> None:
    own = plugin_of(module)
    others = sorted(m for m in kiln_imports(module, top_level=False)
                    if plugin_of(m) not in (None, own))
    assert others == [], f"{module} imports another plugin: {others}"


@pytest.mark.parametrize("module", [m for m in MODULES if m.startswith("kiln.core")])
def test_the_core_imports_no_plugin(module: str) -> None:
    plugins = sorted(m for m in kiln_imports(module, top_level=False) if plugin_of(m))
    assert plugins == [], f"{module} imports a plugin: {plugins}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_at_import_time() -> None:
    graph = {m: kiln_imports(m, top_level=True) for m in MODULES}
    assert _cycles(graph) == []


@pytest.mark.parametrize(("a", "b"), [
    ("kiln", "kiln.core.engine"),
    ("kiln.cli", "kiln.cmp.commands"),
    ("kiln.core.secrets", "kiln.core.secret_modifiers"),
    ("kiln.core.secrets", "kiln.core.placeholders"),
])
def test_named_pairs_do_not_import_each_other(a: str, b: str) -> None:
    """The cycles issue 13 named are gone even through lazy, typing-only or by-name imports
    (one direction at most)."""
    both = tuple(y in MODULES and y in kiln_imports(x, top_level=False, typing=True, strings=True)
                 for x, y in ((a, b), (b, a)))
    assert both != (True, True), f"{a} and {b} import each other"
