"""Suite-wide fixtures: the loopback lab (``lab``) comes from propylon.lab's pytest plugin.

The suite refuses to run against a stale compiled hot path: a module compiled by
``setup.py`` that is older than its ``.py`` or ``.pxd`` would hide the edit. With
``PROPYLON_EXPECT_BUILD=compiled`` or ``pure`` (CI sets it) it also refuses to run on
the other build, so a run that claims to test one build cannot quietly test the other.
"""

import importlib.util
import os
import pathlib
import shutil
import sys

import pytest
from hypothesis import settings

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "scripts"))
from ensure_installed import stale_modules  # noqa: E402

pytest_plugins = ["propylon.lab.pytest_plugin"]

# Property tests explore new inputs on a developer's machine; under CI they replay a fixed
# set, so a run there is judged on the code, not on the draw.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


def pytest_report_header(config: pytest.Config) -> str:
    from propylon.protocols.http.v2.codec import CODEC
    return f"HTTP/2 codec: {CODEC} (PROPYLON_H2_CODEC=native|h2 chooses)"


def pytest_sessionstart(session: pytest.Session) -> None:
    # The sources under test are the ones `import propylon` finds (a pure copy for
    # scripts/test-pure.sh): only their compiled modules can be stale.
    package = pathlib.Path(importlib.util.find_spec("propylon").origin).parent
    stale = stale_modules(package.parent)
    if stale:
        raise pytest.UsageError(
            "compiled modules are older than their source: " + ", ".join(stale)
            + "\nrebuild them with `pip install -e .` (or delete the .so files to test pure Python)")
    expected = os.environ.get("PROPYLON_EXPECT_BUILD")
    if expected:
        origin = importlib.util.find_spec("propylon.proxy.engine").origin or ""
        actual = "pure" if origin.endswith(".py") else "compiled"
        if actual != expected:
            raise pytest.UsageError(f"PROPYLON_EXPECT_BUILD={expected}, but propylon.proxy.engine is {actual}: {origin}")


@pytest.fixture
def redis_server():
    """A redis-server of the test's own on a free loopback port (skips without the binary)."""
    from support import RedisServer

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server binary not installed")
    server = RedisServer()
    server.start()
    yield server
    server.stop()
