"""A hit sent whole at once (the cache stage's path without a coroutine of its own):
the order of write, finish and waits for a client that reads slowly, and a client
that left, seen on a recording downstream session."""

from __future__ import annotations

import asyncio
import time
import pytest

from propylon import ProxyHttp, RequestHeader, ResponseHeader
from propylon.cache import CacheMeta
from propylon.cache.storage import BytesHit, CacheHit
from propylon.errors import Error
from propylon.protocols.http.header import HeaderMap
from propylon.proxy import cache_stage
from propylon.proxy.engine import HttpProxyEngine
from propylon.proxy.session import Session


class RecordingDownstream:
    """Writes, finishes and waits, in order; ``blocked_after`` names the call after
    which the client reads slowly (until the next drain)."""

    def __init__(self, blocked_after=None, closed=False) -> None:
        self.calls: list[str] = []
        self.blocked_after = blocked_after
        self.write_blocked = False
        self.closed = closed
        self.finished = False
        self.is_head = False
        self.written_head = None
        self.req = RequestHeader.build("GET", "/w", None)

    def write_head_and_body(self, resp, body, h1_head=None) -> None:
        self.written_head = resp
        self.calls.append("write")
        self.write_blocked = self.blocked_after == "write"

    def finish(self, trailers=None) -> None:
        self.finished = True
        self.calls.append("finish")
        self.write_blocked = self.blocked_after == "finish"

    async def drain(self) -> None:
        self.calls.append("drain")
        self.write_blocked = False


def serve(ds: RecordingDownstream) -> None:
    now = time.time()
    head = ResponseHeader(200, (1, 1), HeaderMap([(b"content-length", b"Content-Length", b"4")]))
    hit = CacheHit(CacheMeta.new(now + 60, now, 0, 0, head), BytesHit(b"body"))
    # A proxy that overrides no hook: the engine holds no hook for a hit to call.
    engine = HttpProxyEngine(ProxyHttp())
    asyncio.run(cache_stage.serve(engine, Session(ds), None, hit))


@pytest.mark.parametrize("blocked_after, calls", [
    (None, ["write", "finish"]),
    ("write", ["write", "drain", "finish"]),
    ("finish", ["write", "finish", "drain"]),
])
def test_a_whole_hit_waits_for_a_slow_client_where_the_general_steps_do(blocked_after, calls):
    ds = RecordingDownstream(blocked_after)
    serve(ds)
    assert ds.calls == calls and ds.finished
    assert ds.written_head.headers.get_bytes(b"accept-ranges") == b"bytes"
    assert ds.written_head.headers.get_bytes(b"age") == b"0"


def test_a_whole_hit_to_a_client_that_left_is_a_write_error_before_the_finish():
    ds = RecordingDownstream(closed=True)
    with pytest.raises(Error, match="client went away"):
        serve(ds)
    assert ds.calls == ["write"] and not ds.finished
