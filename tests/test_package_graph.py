"""The packages of ``src/propylon`` form a graph without cycles.

A package is a directory with an ``__init__.py``; modules inside one package may
import each other. Every ``import`` in every module counts: at module level, inside functions (a lazy
import only postpones a cycle) and under ``TYPE_CHECKING`` (a type-only import
still says the two packages know each other). Sibling packages are compared at
every level: ``propylon.server`` against ``propylon.services``, and
``propylon.protocols.http.v1`` against ``propylon.protocols.http.v2``.

Run as a script (``python tests/test_package_graph.py``) to print the graph.
"""

from __future__ import annotations

import ast
import pathlib
import sys
from collections import defaultdict

SRC = pathlib.Path(__file__).resolve().parent.parent / "src"


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(path: pathlib.Path, module: str) -> set[str]:
    """The absolute names of the modules ``path`` imports from within propylon."""
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            # ``from . import x`` / ``from .pkg import mod``: the names may be modules.
            found.update(f"{target}.{a.name}" for a in node.names)
    return {name for name in found if name == "propylon" or name.startswith("propylon.")}


def _units(module: str, packages: set[str]) -> list[str]:
    """The packages that hold ``module``, outermost first (``propylon`` itself left
    out); a module directly under ``propylon`` (``errors``, ``cli``) is a unit of its own.
    Modules inside one package may import each other freely."""
    parts = module.split(".")
    prefixes = [".".join(parts[:i]) for i in range(2, len(parts) + 1)]
    return [p for p in prefixes if p in packages or p.count(".") == 1]


def package_edges() -> dict[tuple[str, str], set[str]]:
    """(importer unit, imported unit) between siblings -> the modules that import."""
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    packages = {_module_name(p) for p in SRC.rglob("__init__.py")}
    known = set(modules)
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for module, path in modules.items():
        for target in _imported(path, module):
            while target not in known and "." in target:
                target = target.rpartition(".")[0]  # ``from pkg.mod import Name``
            a, b = _units(module, packages), _units(target, packages)
            for x, y in zip(a, b):
                if x != y:
                    # The first level where the two differ: two siblings.
                    edges[(x, y)].add(module)
                    break
    return edges


def cycles(edges: dict[tuple[str, str], set[str]]) -> list[list[str]]:
    """Every strongly connected set of sibling units larger than one."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm; the graph is small
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in list(graph):
        if v not in index:
            visit(v)
    return found


def test_no_two_packages_import_each_other():
    edges = package_edges()
    problems = []
    for group in cycles(edges):
        members = set(group)
        links = [f"  {a} -> {b} (in {', '.join(sorted(edges[(a, b)]))})"
                 for (a, b) in sorted(edges) if a in members and b in members]
        problems.append(" <-> ".join(group) + "\n" + "\n".join(links))
    assert not problems, "package cycles:\n" + "\n".join(problems)


if __name__ == "__main__":
    graph = package_edges()
    for (a, b), importers in sorted(graph.items()):
        print(f"{a} -> {b}    ({len(importers)} module(s))")
    bad = cycles(graph)
    for group in bad:
        print("CYCLE:", " <-> ".join(group))
    sys.exit(1 if bad else 0)
