"""Install this checkout (``pip install -e .``) unless it is installed and current.

"Current" means ``import propylon`` finds this checkout's sources and no compiled
hot-path module is older than its ``.py``/``.pxd``/``.pyx`` (see setup.py). Used by the
test suite (which refuses stale modules) and by ``make run``, so that starting the
gateway does not rebuild it every time.
"""

import importlib.util
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SRC = ROOT / "src"


def stale_modules(src: pathlib.Path = SRC) -> list[str]:
    """The compiled modules under ``src`` older than their ``.py``, ``.pxd`` or
    ``.pyx`` (the native modules exist only as ``.pyx``)."""
    stale = []
    for built in src.rglob("*.so"):
        py = built.with_name(built.name.split(".", 1)[0] + ".py")
        sources = [p for p in (py, py.with_suffix(".pxd"), py.with_suffix(".pyx")) if p.exists()]
        if sources and max(p.stat().st_mtime for p in sources) > built.stat().st_mtime:
            stale.append(str(sources[0].relative_to(src)))
    return sorted(stale)


def current() -> bool:
    spec = importlib.util.find_spec("propylon")
    if spec is None or spec.origin is None or pathlib.Path(spec.origin).resolve().parent != SRC / "propylon":
        return False
    return not stale_modules()


if __name__ == "__main__":
    if not current():
        print("installing propylon from this checkout (compiles the hot path when a C compiler is present)",
              file=sys.stderr)
        sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "-q",
                                  "--disable-pip-version-check", "-e", str(ROOT)]))
