"""Caching proxies in processes of their own: two sharing RedisCache (a real
redis-server), and a DiskCache that outlives a restart."""

from __future__ import annotations

import pytest

from proxy_cache_support import Origin, fixed, get
from support import Proc, free_port

SCRIPT = "tests/proxy/run_caching_proxy.py"


@pytest.fixture
def origin(loop_thread):
    o = Origin(loop_thread, {"/a": fixed(b"shared", "Cache-Control: max-age=60"),
                             "/b": fixed(b"other", "Cache-Control: max-age=60")})
    yield o
    o.stop()


def caching_proxy(origin: Origin, storage: str) -> tuple[Proc, str]:
    port = free_port()
    proc = Proc([SCRIPT, str(port), f"127.0.0.1:{origin.port}", storage])
    try:
        proc.wait_port(port)
    except BaseException:
        proc.stop()
        raise
    return proc, f"http://127.0.0.1:{port}"


def test_two_processes_share_redis_cache(origin, redis_server):
    one, url1 = caching_proxy(origin, f"redis:{redis_server.url}")
    two, url2 = caching_proxy(origin, f"redis:{redis_server.url}")
    try:
        host = ("-H", "Host: shared.test")
        assert get(url1 + "/a", *host).body == b"shared"
        assert get(url2 + "/a", *host).body == b"shared"   # a hit in the other process
        assert origin.hits["/a"] == 1
        two.wait_log(r"cache: HIT /a")
        assert get(url2 + "/a", "-X", "PURGE", *host).status == 200
        assert get(url1 + "/a", *host).body == b"shared"   # the purge is seen by the first
        assert origin.hits["/a"] == 2
        one.wait_count(r"cache: MISS /a", 2)
        redis_server.stop()
        for _ in range(3):
            got = get(url1 + "/b", *host)
            assert (got.status, got.body) == (200, b"other")  # answered from the upstream
        assert origin.hits["/b"] == 3
        assert one.count(r"Redis unreachable") == 1
    finally:
        one.stop()
        two.stop()


def test_a_disk_cache_hit_survives_a_restart(origin, tmp_path):
    proc, url = caching_proxy(origin, f"disk:{tmp_path}")
    try:
        assert get(url + "/a", "-H", "Host: d").body == b"shared"
    finally:
        proc.stop()
    proc, url = caching_proxy(origin, f"disk:{tmp_path}")
    try:
        assert get(url + "/a", "-H", "Host: d").body == b"shared"
        proc.wait_log(r"cache: HIT /a")
        assert origin.hits["/a"] == 1
    finally:
        proc.stop()
