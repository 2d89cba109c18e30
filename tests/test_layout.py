"""The package's import structure, read from its source with ``ast``: no import cycle, and
nothing below the hooks imports the reporting or the hooks.

Every import counts, at module level or inside a function (a deferred import is a dependency
all the same), except one under ``if TYPE_CHECKING:``, which never runs.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest_asynccheck

PACKAGE = "pytest_asynccheck"
ROOT = Path(pytest_asynccheck.__file__).parent

#: Imports that close a cycle, known and allowed one by one until the code they belong to is
#: split. An entry that no longer closes a cycle fails the test, so that it is taken out.
ALLOWED_CYCLE_EDGES: frozenset[tuple[str, str]] = frozenset()

#: The hooks: ``plugin`` and the per-test phase hooks it registers, which render the findings
#: with the reporting.
HOOK_MODULES = ("plugin", "_runtest")


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name (a package by its own)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """The nodes of ``tree``, leaving out the bodies of ``if TYPE_CHECKING:``."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from (n for child in node.orelse for n in (child, *_runtime_nodes(child)))
            continue
        yield node
        yield from _runtime_nodes(node)


def _is_type_checking(test: ast.expr) -> bool:
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's own modules that module ``name`` (in file ``path``) imports at run time."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                found.add(submodule if submodule in modules else source)
    return {imported for imported in found if imported in modules and imported != name}


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    modules = module_names(root, package)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def without(graph: dict[str, set[str]], edges: frozenset[tuple[str, str]]) -> dict[str, set[str]]:
    return {name: {t for t in targets if (name, t) not in edges} for name, targets in graph.items()}


def is_above_the_hooks(name: str, package: str) -> bool:
    """The hooks, the reporting beside them, and the faces that import everything."""
    hooks = {f"{package}.{module}" for module in HOOK_MODULES}
    return name in {package, f"{package}.__main__", *hooks} or name.startswith(
        f"{package}.reporting"
    )


def upward_imports(graph: dict[str, set[str]], package: str) -> list[str]:
    """``importer -> imported`` for each module below the hooks that imports the reporting or
    the hooks."""
    forbidden = (f"{package}.reporting", *(f"{package}.{module}" for module in HOOK_MODULES))
    return sorted(
        f"{name} -> {target}"
        for name, targets in graph.items()
        if not is_above_the_hooks(name, package)
        for target in targets
        if any(target == f or target.startswith(f + ".") for f in forbidden)
    )


def test_the_package_has_no_import_cycle_beyond_the_allowed_ones() -> None:
    graph = import_graph(ROOT, PACKAGE)
    assert cycles(without(graph, ALLOWED_CYCLE_EDGES)) == []


def test_each_allowed_import_still_closes_a_cycle() -> None:
    for edge in sorted(ALLOWED_CYCLE_EDGES):
        graph = without(import_graph(ROOT, PACKAGE), ALLOWED_CYCLE_EDGES - {edge})
        importer, imported = edge
        assert imported in graph[importer], f"{edge}: the import is gone: take it out"
        assert any(importer in c and imported in c for c in cycles(graph)), (
            f"{edge}: the import closes no cycle any more: take it out of the allowances"
        )


def test_nothing_below_the_hooks_imports_the_reporting_or_the_hooks() -> None:
    graph = import_graph(ROOT, PACKAGE)
    assert f"{PACKAGE}.reporting.summary" in graph  # the package was found and read
    assert upward_imports(graph, PACKAGE) == []


def test_the_checks_find_a_cycle_and_an_upward_import_and_skip_type_only_imports(
    tmp_path: Path,
) -> None:
    package = tmp_path / "pkg"
    (package / "reporting").mkdir(parents=True)
    (package / "detectors").mkdir()
    (package / "__init__.py").write_text("")
    (package / "reporting" / "__init__.py").write_text("")
    (package / "reporting" / "summary.py").write_text("from .. import _findings\n")
    (package / "detectors" / "__init__.py").write_text("")
    (package / "detectors" / "tasks.py").write_text(
        "def later():\n    from ..reporting import summary\n"
    )
    (package / "_findings.py").write_text("from ._session import x\n")
    (package / "_session.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "import pkg._findings\n"
        "if TYPE_CHECKING:\n    from .plugin import Checks\n"
    )
    (package / "plugin.py").write_text("from ._session import x\n")
    graph = import_graph(package, "pkg")
    assert cycles(graph) == [["pkg._findings", "pkg._session"]]
    assert upward_imports(graph, "pkg") == ["pkg.detectors.tasks -> pkg.reporting.summary"]
