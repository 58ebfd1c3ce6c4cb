"""Build hook: compiles the HTTP/1 hot path (with the cache's hit path, and the observer's
per-request record) with Cython when it can.

The modules listed in ``COMPILED`` are plain Python and run as such; the ``.pxd``
file next to each declares its classes as extension types, so a compiled build
keeps their fields in C structs. When Cython or a C compiler is missing, the
build says so and installs the pure-Python package, which behaves the same, only
slower.

``ACCELERATED`` modules exist only as Cython (``.pyx``) and do faster what a
pure-Python module also does, with the same result: the access log's line
encoder, the upstream codec's one-pass reading of a plain response head. A build
without them uses the pure-Python way.

``NATIVE`` modules exist only as Cython (``.pyx``) and bind a C library: the HTTP/2
codec on libnghttp2. Each is built when its library's headers are found, and is
skipped otherwise; the pure-Python ``h2`` codec takes its place (see
``propylon.protocols.http.v2.codec``).
"""

import os
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

COMPILED = [
    "propylon/protocols/flow.py",
    "propylon/protocols/http/header.py",
    "propylon/protocols/http/v1/common.py",
    "propylon/protocols/http/v1/server.py",
    "propylon/protocols/http/v1/server_session.py",
    "propylon/protocols/http/v1/client.py",
    "propylon/protocols/http/v2/common.py",
    "propylon/protocols/http/v2/guard.py",
    "propylon/protocols/http/v2/server.py",
    "propylon/connectors/pool.py",
    "propylon/connectors/http.py",
    "propylon/upstreams/peer.py",
    "propylon/proxy/observation.py",
    "propylon/proxy/session.py",
    "propylon/proxy/engine.py",
    "propylon/proxy/cache_stage.py",
    "propylon/cache/key.py",
    "propylon/cache/meta.py",
    "propylon/cache/storage.py",
    "propylon/cache/memory.py",
    "propylon/cache/eviction.py",
    "propylon/cache/http_cache.py",
    "propylon/cache/conditional.py",
    "propylon/metrics/access_log.py",
    "propylon/metrics/record.py",
]

ACCELERATED = [
    "propylon/metrics/json_batch.pyx",
    "propylon/protocols/http/v1/plain_head.pyx",
]

# (module, its .pyx, the header it needs, the libraries it links)
NATIVE = [
    ("propylon.protocols.http.v2._nghttp2", "propylon/protocols/http/v2/_nghttp2.pyx",
     "nghttp2/nghttp2.h", ["nghttp2"]),
]


def _has_header(header: str) -> bool:
    dirs = [sysconfig.get_config_var("INCLUDEDIR") or "/usr/include", "/usr/include", "/usr/local/include"]
    for var in ("CPATH", "C_INCLUDE_PATH"):
        dirs += [d for d in os.environ.get(var, "").split(os.pathsep) if d]
    return any(os.path.exists(os.path.join(d, header)) for d in dirs)


def native_extensions() -> list:
    """The NATIVE modules whose C library headers are present."""
    found = []
    for name, pyx, header, libs in NATIVE:
        if _has_header(header):
            found.append(Extension(name, [os.path.join("src", pyx)], libraries=libs))
        else:
            print(f"propylon: not building {name} ({header} not found); "
                  "the pure-Python fallback is used", file=sys.stderr)
    return found


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
            [os.path.join("src", m) for m in COMPILED + ACCELERATED] + native_extensions(),
            compiler_directives={"language_level": "3", "binding": True},
            nthreads=os.cpu_count() or 1,
            quiet=True,
        )
    except Exception as exc:  # a Cython version that cannot translate them
        print(f"propylon: not compiling the hot path ({exc}); using pure Python", file=sys.stderr)
        return []


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
