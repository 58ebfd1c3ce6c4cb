"""Idle keep-alive connections: the loop's idle wheel closes them at their timeout,
and a connection idle past a wheel tick (its task parked) still serves what comes."""

from __future__ import annotations

import socket
import time

from propylon import HttpPeer, ProxyHttp
from propylon.protocols.http.v1.server import HttpServerOptions

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
