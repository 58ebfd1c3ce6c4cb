"""The layering DESIGN.md asks for, checked on the source (parsed, never imported):

* the engine (``propylon.proxy``) imports no HTTP version: it speaks only
  ``protocols/http/interfaces.py``;
* no module reads another module's ``_private`` names.

That no two packages import each other is ``test_package_graph.py``'s check.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = SRC / "propylon"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, tuple[Path, ast.Module]]:
    return {module_name(p): (p, ast.parse(p.read_text(), str(p))) for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = modules()


def imported(module: str, path: Path, tree: ast.Module) -> list[tuple[int, str]]:
    """Every module a file imports, absolute, with the line: ``from .x import y``
    counts as both ``pkg.x`` and ``pkg.x.y`` (y may be a submodule). Imports inside
    functions and under ``TYPE_CHECKING`` count too: they are dependencies all the same."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
    return found


def test_the_engine_imports_no_http_version():
    offending = [
        f"{path.relative_to(SRC)}:{line}: imports {target}"
        for module, (path, tree) in MODULES.items() if module.startswith("propylon.proxy")
        for line, target in imported(module, path, tree)
        if target.startswith(("propylon.protocols.http.v1", "propylon.protocols.http.v2"))
    ]
    assert not offending, "\n".join(offending)


# --- private names ---------------------------------------------------------------------------

def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def defined_here(tree: ast.Module) -> set[str]:
    """Names a module defines itself: functions, classes, variables, attributes it
    assigns anywhere and ``__slots__`` entries. Reading one of these on another
    object (``other._buf`` where this module's class has ``_buf``) stays inside
    the module, which owns both sides."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets):
            names |= {c.value for c in ast.walk(node.value)
                      if isinstance(c, ast.Constant) and isinstance(c.value, str)}
    return names


#: Private names of the standard library that are its documented API.
STDLIB_API = {("os", "_exit")}


def crossings(tree: ast.Module) -> list[tuple[int, str, str]]:
    """(line, name, what) for every read of a private name the module does not
    define: ``obj._name`` (except on ``self``/``cls``) and ``from m import _name``."""
    own = defined_here(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and is_private(node.attr) and node.attr not in own:
            value = node.value
            if isinstance(value, ast.Name) and (value.id in ("self", "cls") or (value.id, node.attr) in STDLIB_API):
                continue
            found.append((node.lineno, node.attr, f"{ast.unparse(value)}.{node.attr}"))
        elif isinstance(node, ast.ImportFrom):
            found += [(node.lineno, a.name, f"from {'.' * node.level}{node.module or ''} import {a.name}")
                      for a in node.names if is_private(a.name)]
    return found


def test_no_module_reads_another_modules_private_names():
    reads = [(str(path.relative_to(SRC)), line, name, what)
             for path, tree in MODULES.values() for line, name, what in crossings(tree)]
    offending = [f"{f}:{line}: {what}" for f, line, name, what in reads]
    assert not offending, "\n".join(offending)


def test_the_private_name_rule_allows_own_names_and_catches_a_crossing():
    tree = ast.parse("import os\nfrom .m import _hidden\nclass A:\n    def f(self, other):\n"
                     "        self._mine = other._theirs\n        os._exit(0)\n        return other._mine\n")
    assert [name for _, name, _ in crossings(tree)] == ["_hidden", "_theirs"]
