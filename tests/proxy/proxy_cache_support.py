"""A caching proxy and a scripted origin for the engine's cache-stage tests.

``Origin`` answers per path with a function of the request head and counts how often
each path reached it; ``CachingProxy`` turns the cache on for every request with the
given storage and lock, stores what ``resp_cacheable`` allows, treats ``PURGE`` as a
purge, and records the cache phase of every request it logs.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Awaitable, Callable, Optional

import pytest

from propylon import HttpPeer, PeerOptions, ProxyHttp
from propylon.cache import CacheControl, CacheLock, CacheMetaDefaults, MemCache, resp_cacheable

from proxy_support import ScriptedUpstream
from support import LoopThread, parse_head, run_curl

Reply = Callable[[bytes], Awaitable[bytes]]


class Origin:
    """A loopback origin: ``routes[path](request_head) -> raw response``."""

    def __init__(self, lt: LoopThread, routes: dict[str, Reply]) -> None:
        self.routes = routes
        self.hits: Counter = Counter()
        self.heads: list[bytes] = []
        self.up = ScriptedUpstream(lt, self._serve).start()
        self.port = self.up.port

    async def _serve(self, up, reader, writer) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            path = head.split(b" ", 2)[1].decode().split("?")[0]
            self.hits[path] += 1
            self.heads.append(head)
            reply = self.routes[path]
            out = await reply(head)
            if out is None:
                return  # the route wrote or broke the connection itself
            if callable(out):
                await out(writer)
                return
            writer.write(out)
            await writer.drain()

    def stop(self) -> None:
        self.up.stop()


def response(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = "".join(h + "\r\n" for h in headers)
    return (f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{head}\r\n").encode() + body


def fixed(body: bytes, *headers: str, status: str = "200 OK") -> Reply:
    async def reply(head: bytes) -> bytes:
        return response(body, *headers, status=status)
    return reply


class CachingProxy(ProxyHttp):
    def __init__(self, port: int, storage=None, lock: Optional[CacheLock] = None, swr: bool = False,
                 defaults: Optional[CacheMetaDefaults] = None, max_file_size: Optional[int] = None) -> None:
        self.port = port
        self.storage = storage if storage is not None else MemCache(16 * 1024 * 1024)
        self.lock = lock
        self.swr = swr
        self.defaults = defaults or CacheMetaDefaults(lambda status: None)
        self.max_file_size = max_file_size
        self.phases: list[str] = []
        self.lock_waits: list[Optional[float]] = []

    def request_cache_filter(self, session, ctx):
        session.cache.enable(self.storage, lock=self.lock)
        if self.max_file_size is not None:
            session.cache.set_max_file_size_bytes(self.max_file_size)

    def response_cache_filter(self, session, resp, ctx):
        auth = session.get_header("authorization") is not None
        return resp_cacheable(CacheControl.from_headers(resp.headers), resp, auth, self.defaults)

    def is_purge(self, session, ctx):
        return session.req_header.method == "PURGE"

    def should_serve_stale(self, session, ctx, error):
        return self.swr or (error is not None and super().should_serve_stale(session, ctx, error))

    async def upstream_peer(self, session, ctx):
        return HttpPeer(("127.0.0.1", self.port), False, "", PeerOptions(connection_timeout=2, read_timeout=10))

    async def logging(self, session, e, ctx):
        self.phases.append(session.cache.phase().name)
        self.lock_waits.append(session.cache.lock_duration())


class Got:
    """A response as curl saw it."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def header(self, name: str) -> Optional[str]:
        return next((v for k, v in self.headers if k == name.lower()), None)


def get(url: str, *args: str, timeout: float = 20.0) -> Got:
    """``curl -i`` over loopback: status, fields and body of the last response."""
    out = run_curl("-i", *args, url, timeout=timeout)
    assert out.returncode == 0, out.stderr
    raw = out.stdout
    while True:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status, fields = parse_head(head.decode("latin-1"))
        if status >= 200 or not rest.startswith(b"HTTP/"):
            return Got(status, fields, rest)
        raw = rest


def phases(proxy: CachingProxy, count: int, timeout: float = 5.0) -> list[str]:
    """The cache phases logged, once ``count`` requests were logged (``logging`` runs
    after the response went out, so right after a reply it may not have yet)."""
    deadline = time.monotonic() + timeout
    while len(proxy.phases) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return proxy.phases


@pytest.fixture
def origin(loop_thread):
    """Origins made by the test, each stopped at its end: ``origin(routes)``."""
    made = []

    def make(routes):
        o = Origin(loop_thread, routes)
        made.append(o)
        return o

    yield make
    for o in made:
        o.stop()
