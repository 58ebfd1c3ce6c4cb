"""Fixtures for the cache tests: a real redis-server per test (the limits tests' helper),
and a factory that builds each storage kind."""

import pathlib
import shutil
import sys

import pytest

# One helper starts redis-server for the whole suite: the limits tests' RedisServer.
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "limits"))
from test_limits_redis import RedisServer  # noqa: E402

HAVE_REDIS = shutil.which("redis-server") is not None


@pytest.fixture
def redis_server():
    if not HAVE_REDIS:
        pytest.skip("redis-server binary not installed")
    server = RedisServer()
    server.start()
    yield server
    server.stop()
