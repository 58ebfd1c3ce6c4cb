"""Idle keep-alive connections: the loop's idle wheel closes them at their timeout,
a connection idle past a wheel tick (its task parked) still serves what comes, and
an idle connection holds nothing of the requests it served."""

from __future__ import annotations

import asyncio
import gc
import socket
import time

from propylon import HttpPeer, ProxyHttp
from propylon.protocols.http.v1.idle import BUSY_LOOK, TICK
from propylon.protocols.http.v1.server import HttpServerOptions
from support import Echo

REQUEST = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"


class Forward(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.port = port

    async def upstream_peer(self, session, ctx):
        return HttpPeer(("127.0.0.1", self.port), False, "")


def _ask(s: socket.socket) -> bytes:
    s.sendall(REQUEST)
    out = b""
    while not out.endswith(b"ok"):
        data = s.recv(4096)
        assert data, out
        out += data
    return out


def test_idle_keepalive_connection_is_closed_at_its_timeout(start_proxy, upstream):
    up = upstream()
    p = start_proxy(Forward(up.port), options=HttpServerOptions(keepalive_timeout=0.5))
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        assert _ask(s).startswith(b"HTTP/1.1 200 ")
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert 0.4 < time.monotonic() - t0 < 3


def test_busy_connection_outlives_the_timeout_and_a_parked_one_still_answers(start_proxy, upstream):
    up = upstream()
    p = start_proxy(Forward(up.port), options=HttpServerOptions(keepalive_timeout=2.5))
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        # Requests 0.3 s apart for over 3 s: never idle for the 2.5 s timeout.
        end = time.monotonic() + 3.2
        n = 0
        while time.monotonic() < end:
            assert _ask(s).startswith(b"HTTP/1.1 200 ")
            n += 1
            time.sleep(0.3)
        assert n >= 8
        # Idle past at least one tick of the wheel (its task ended), then asked again.
        time.sleep(1.6)
        assert _ask(s).startswith(b"HTTP/1.1 200 ")
    assert up.connections == 1  # one upstream connection, reused from the pool throughout


def _alive(kind: str) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o).__name__ == kind)


async def _tasks() -> int:
    """Tasks serving client connections (the scripted origin has tasks of its own)."""
    return sum(1 for t in asyncio.all_tasks()
               if getattr(t.get_coro(), "__qualname__", "").endswith("H1ServerConnection._run"))


def _wait_parked(p) -> None:
    """Until every client connection's task has parked. Each parks at the wheel's
    first look after it went idle: the next tick, or BUSY_LOOK later when an earlier
    look found it still answering."""
    deadline = time.monotonic() + BUSY_LOOK + 2 * TICK + 1.0
    while p.lt.run(_tasks()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.lt.run(_tasks()) == 0


def test_an_idle_connection_keeps_no_parser_task_or_request(start_proxy, upstream):
    # What thousands of idle keep-alive connections would each hold: a connection
    # that sent nothing yet has no parser; one that was answered and stayed idle
    # past a wheel tick has neither a parser, nor a task, nor its last request.
    up = upstream()
    p = start_proxy(Forward(up.port))
    parsers, sessions = _alive("HttpRequestParser"), _alive("H1ServerSession")
    socks = [socket.create_connection(("127.0.0.1", p.port), timeout=5) for _ in range(20)]
    try:
        deadline = time.monotonic() + 3
        while p.app.open_connections() < 20 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert p.app.open_connections() == 20
        assert _alive("HttpRequestParser") == parsers
        for s in socks:
            assert _ask(s).startswith(b"HTTP/1.1 200 ")
        assert p.lt.run(_tasks()) > 0  # the answered ones wait for their next request
        _wait_parked(p)
        assert _alive("HttpRequestParser") == parsers
        assert _alive("H1ServerSession") == sessions
        # ...and each still answers its next request.
        for s in socks:
            assert _ask(s).startswith(b"HTTP/1.1 200 ")
    finally:
        for s in socks:
            s.close()


def _read_until(s: socket.socket, end: bytes) -> bytes:
    out = b""
    while not out.endswith(end):
        data = s.recv(4096)
        assert data, out
        out += data
    return out


def test_a_method_cut_after_a_body_survives_the_connection_parking(start_proxy):
    # A read that ends a request's body with the first letters of the next method:
    # the parser holds those letters in its state (no callback has seen them), so a
    # connection parked there keeps its parser and reads the rest as one method.
    p = start_proxy(Echo())
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nabDE")
        assert _read_until(s, b"\r\n\r\nPOST / ab").startswith(b"HTTP/1.1 200 ")
        _wait_parked(p)
        s.sendall(b"LETE / HTTP/1.1\r\nHost: a\r\n\r\n")
        assert _read_until(s, b"\r\n\r\nDELETE / ").startswith(b"HTTP/1.1 200 ")
