"""The cache stage under concurrency and failure: the cache lock, fills streamed to
their readers, clients and upstreams that go away mid-fill, stale-while-revalidate."""

from __future__ import annotations

import asyncio
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from propylon.cache import CacheLock

from proxy_cache_support import CachingProxy, get, origin, phases, response  # noqa: F401



def slow_fill(head_after: float, body_after: float, body: bytes = b"0123456789" * 100):
    """Head after ``head_after`` s, half the body, the rest ``body_after`` s later."""
    async def reply(head: bytes):
        async def write(writer):
            await asyncio.sleep(head_after)
            writer.write(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body[:len(body) // 2])
            await writer.drain()
            await asyncio.sleep(body_after)
            writer.write(body[len(body) // 2:])
            await writer.drain()
            await asyncio.sleep(0.5)
        return write
    return reply


def timed_head_and_body(url: str, t0: float | None = None) -> tuple[float, float, bytes]:
    """Seconds to the response head, seconds to the end, and the body; counted from
    ``t0`` (a ``time.monotonic()`` shared by concurrent readers) or from the connect."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    path = "/" + url.split("//")[1].split("/", 1)[1]
    if t0 is None:
        t0 = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=15) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        buf = b""
        t_head = None
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            if t_head is None and b"\r\n\r\n" in buf:
                t_head = time.monotonic() - t0
    return t_head, time.monotonic() - t0, buf.split(b"\r\n\r\n", 1)[1]


def test_five_readers_of_a_slow_fill_get_the_head_when_the_writer_does(origin, start_proxy):
    body = b"0123456789" * 100
    o = origin({"/slow": slow_fill(1.0, 2.0, body)})
    proxy = CachingProxy(o.port, lock=CacheLock(10))
    p = start_proxy(proxy)
    with ThreadPoolExecutor(5) as pool:
        # Times from one start: a reader whose thread starts late (a loaded machine)
        # still sees the head at the writer's 1 s, not its own.
        start = time.monotonic()
        results = list(pool.map(timed_head_and_body, [p.url + "/slow"] * 5, [start] * 5))
    assert o.hits["/slow"] == 1
    for t_head, t_end, got in results:
        assert got == body
        assert 0.8 < t_head < 2.5, results   # with the writer's head, not at the end of the fill
        assert t_end >= 2.8
    assert phases(proxy, 5).count("MISS") == 1
    assert proxy.lock.stats.lock_waits == 4


def test_a_hung_writer_sends_readers_upstream_after_the_lock_timeout(origin, start_proxy):
    calls = []

    async def reply(head: bytes):
        calls.append(1)
        if len(calls) == 1:
            await asyncio.sleep(6)  # the writer's origin hangs
        return response(b"late" if len(calls) == 1 else b"fresh", "Cache-Control: max-age=60")

    o = origin({"/hung": reply})
    proxy = CachingProxy(o.port, lock=CacheLock(age_timeout=1.0))
    p = start_proxy(proxy)
    with ThreadPoolExecutor(2) as pool:
        writer = pool.submit(get, p.url + "/hung")
        time.sleep(0.3)
        t0 = time.monotonic()
        reader = get(p.url + "/hung")
        waited = time.monotonic() - t0
        assert reader.body == b"fresh"
        assert 0.5 < waited < 4
        writer.result()
    assert o.hits["/hung"] == 2
    assert proxy.lock.stats.lock_timeouts >= 1


def test_a_client_leaving_mid_fill_does_not_stop_the_fill(origin, start_proxy):
    body = b"abcdefghij" * 100
    o = origin({"/leave": slow_fill(0.1, 1.0, body)})
    proxy = CachingProxy(o.port)
    p = start_proxy(proxy)
    with socket.create_connection(("127.0.0.1", p.port)) as s:
        s.sendall(b"GET /leave HTTP/1.1\r\nHost: t\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
    # gone before the second half of the body
    time.sleep(1.8)
    got = get(p.url + "/leave", "-H", "Host: t")
    assert got.body == body
    assert o.hits["/leave"] == 1
    assert phases(proxy, 2)[-1] == "HIT"


def test_an_upstream_dying_mid_fill_stores_and_serves_nothing_truncated(origin, start_proxy):
    body = b"Z" * 1000
    calls = []

    async def reply(head: bytes):
        calls.append(1)
        if len(calls) > 1:
            return response(body, "Cache-Control: max-age=60")

        async def die(writer):
            writer.write(b"HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 1000\r\n\r\n" + body[:300])
            await writer.drain()
            await asyncio.sleep(1.0)
            writer.transport.abort()
        return die

    o = origin({"/die": reply})
    proxy = CachingProxy(o.port, lock=CacheLock(10))
    p = start_proxy(proxy)


    def raw(_):
        return timed_head_and_body(p.url + "/die")

    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(raw, 0)
        time.sleep(0.4)
        reader = pool.submit(raw, 1)
        results = [first.result(), reader.result()]
    for _, _, got in results:
        assert len(got) < 1000  # both saw the failure: no one got a "complete" truncated body
    after = get(p.url + "/die", "-H", "Host: t")
    assert after.body == body
    assert phases(proxy, 3)[-1] == "MISS"


def test_stale_while_revalidate_one_background_refresh_others_served_stale_at_once(origin, start_proxy):
    versions = []

    async def reply(head: bytes):
        versions.append(1)
        await asyncio.sleep(1.0)
        return response(b"v%d" % len(versions), "Cache-Control: max-age=1, stale-while-revalidate=30")

    o = origin({"/swr": reply})
    proxy = CachingProxy(o.port, lock=CacheLock(10), swr=True)
    p = start_proxy(proxy)
    assert get(p.url + "/swr").body == b"v1"
    time.sleep(1.5)
    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        stale = list(pool.map(lambda _: get(p.url + "/swr"), range(4)))
    assert time.monotonic() - t0 < 0.9
    assert all(r.body == b"v1" for r in stale)
    time.sleep(1.5)
    assert get(p.url + "/swr").body == b"v2"
    assert len(versions) == 2  # exactly one background refresh
    assert proxy.storage.stats.stale_served == 4


def test_stale_while_revalidate_without_a_cache_lock_serves_stale_at_once(origin, start_proxy):
    # A slow origin (1 s per answer) and no CacheLock: the stale copy still goes out at
    # once, and the concurrent stale hits start one refresh between them.
    versions = []

    async def reply(head: bytes):
        versions.append(1)
        await asyncio.sleep(1.0)
        return response(b"v%d" % len(versions), "Cache-Control: max-age=1, stale-while-revalidate=30")

    o = origin({"/slow": reply})
    proxy = CachingProxy(o.port, swr=True)
    p = start_proxy(proxy)
    t0 = time.monotonic()
    assert get(p.url + "/slow").body == b"v1"
    assert time.monotonic() - t0 >= 0.9  # the miss waited for the origin
    time.sleep(1.5)
    t0 = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        stale = list(pool.map(lambda _: get(p.url + "/slow"), range(4)))
    assert time.monotonic() - t0 < 0.7
    assert all(r.body == b"v1" for r in stale)
    time.sleep(1.5)
    t0 = time.monotonic()
    assert get(p.url + "/slow").body == b"v2"
    assert time.monotonic() - t0 < 0.7  # the refreshed copy, from the cache
    assert len(versions) == 2  # exactly one background refresh
    assert proxy.storage.stats.stale_served == 4


def test_a_range_on_a_miss_spanning_the_pieces_of_a_streamed_fill(origin, start_proxy):
    body = bytes(range(256)) * 4  # arrives in two halves, 0.3 s apart
    o = origin({"/split": slow_fill(0.1, 0.3, body)})
    proxy = CachingProxy(o.port)
    p = start_proxy(proxy)
    part = get(p.url + "/split", "-r", "500-523")
    assert (part.status, part.body, part.header("content-range")) == (206, body[500:524], "bytes 500-523/1024")
    whole = get(p.url + "/split")
    assert (whole.status, whole.body) == (200, body)
    assert phases(proxy, 2) == ["MISS", "HIT"]
