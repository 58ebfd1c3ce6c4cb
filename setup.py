"""Build hook: compiles the HTTP/1 hot path with Cython when it can.

The modules listed in ``COMPILED`` are plain Python and run as such; the ``.pxd``
file next to each declares its classes as extension types, so a compiled build
keeps their fields in C structs. When Cython or a C compiler is missing, the
build says so and installs the pure-Python package, which behaves the same, only
slower.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED = [
    "propylon/protocols/flow.py",
    "propylon/protocols/http/header.py",
    "propylon/protocols/http/v1/common.py",
    "propylon/protocols/http/v1/server.py",
    "propylon/protocols/http/v1/server_session.py",
    "propylon/protocols/http/v1/client.py",
    "propylon/connectors/pool.py",
    "propylon/connectors/http.py",
    "propylon/upstreams/peer.py",
    "propylon/proxy/session.py",
    "propylon/proxy/engine.py",
]


class OptionalBuildExt(build_ext):
    """A failed compilation leaves the pure-Python modules in place."""

    def run(self):
        self.parallel = self.parallel or os.cpu_count() or 1
        try:
            super().run()
        except Exception as exc:  # no compiler, no headers
            print(f"propylon: not compiling the hot path ({exc}); using pure Python", file=sys.stderr)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"propylon: not compiling {ext.name} ({exc}); using pure Python", file=sys.stderr)


def extensions():
    if os.environ.get("PROPYLON_PURE_PYTHON"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("propylon: Cython is not available; using pure Python", file=sys.stderr)
        return []
    try:
        return cythonize(
            [os.path.join("src", m) for m in COMPILED],
            compiler_directives={"language_level": "3", "binding": True},
            nthreads=os.cpu_count() or 1,
            quiet=True,
        )
    except Exception as exc:  # a Cython version that cannot translate them
        print(f"propylon: not compiling the hot path ({exc}); using pure Python", file=sys.stderr)
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
