"""Suite-wide fixtures: the loopback lab (``lab``) comes from propylon.lab's pytest plugin.

The suite refuses to run against a stale compiled hot path: a module compiled by
``setup.py`` that is older than its ``.py`` or ``.pxd`` would hide the edit.
"""

import pathlib

import pytest

pytest_plugins = ["propylon.lab.pytest_plugin"]


def pytest_sessionstart(session: pytest.Session) -> None:
    src = pathlib.Path(__file__).resolve().parent.parent / "src"
    stale = []
    for built in src.rglob("*.so"):
        py = built.with_name(built.name.split(".", 1)[0] + ".py")
        sources = [p for p in (py, py.with_suffix(".pxd")) if p.exists()]
        if sources and max(p.stat().st_mtime for p in sources) > built.stat().st_mtime:
            stale.append(str(py.relative_to(src)))
    if stale:
        raise pytest.UsageError(
            "compiled modules are older than their source: " + ", ".join(sorted(stale))
            + "\nrebuild them with `pip install -e .` (or delete the .so files to test pure Python)")
