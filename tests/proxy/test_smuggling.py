"""Malformed or ambiguous requests are refused and never reach the upstream."""

from __future__ import annotations

import time

import pytest

from propylon import HttpPeer, ProxyHttp
from propylon.protocols.http.v1.server import HttpServerOptions

from proxy_support import raw_exchange


class Forward(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.port = port

    async def upstream_peer(self, session, ctx):
        return HttpPeer(("127.0.0.1", self.port), False, "")


CASES = {
    "content-length with transfer-encoding": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "differing duplicate content-length": (
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    "content-length list": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd", 400),
    "negative content-length": (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
    "invalid chunk size": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
    "chunk size overflow": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nabc\r\n0\r\n\r\n", 400),
    "obs-fold": (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400),
    "NUL in header": (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n", 400),
    "bare CR in header": (b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400),
    "space before colon": (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    "transfer-encoding not chunked": (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    "transfer-encoding on HTTP/1.0": (
        b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "no Host on HTTP/1.1": (b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
    "two Host headers": (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    "CONNECT": (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 405),
    "request line too long": (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414),
    "header block too large": (
        b"GET / HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-%d: %s\r\n" % (i, b"v" * 1000) for i in range(80)) + b"\r\n",
        431),
}


@pytest.mark.parametrize("name", list(CASES))
def test_malformed_request_refused(name, start_proxy, upstream):
    data, status = CASES[name]
    up = upstream()
    p = start_proxy(Forward(up.port))
    reply = raw_exchange(p.port, data)
    assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:200]
    assert b"connection: close" in reply.lower()
    time.sleep(0.05)
    assert up.connections == 0 and not up.received


def test_smuggled_second_request_is_not_forwarded(start_proxy, upstream):
    """A valid first request followed by a malformed one: only the first goes up."""
    up = upstream()
    p = start_proxy(Forward(up.port))
    data = (b"GET /first HTTP/1.1\r\nHost: a\r\n\r\n"
            b"POST /second HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    reply = raw_exchange(p.port, data)
    assert reply.startswith(b"HTTP/1.1 200 ")
    assert b"/first" in bytes(up.received)
    assert b"/second" not in bytes(up.received)


def test_slow_header_is_cut_off(start_proxy, upstream):
    import socket

    up = upstream()
    p = start_proxy(Forward(up.port), options=HttpServerOptions(header_read_timeout=0.5))
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\n")  # never finishes the head
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert 0.3 < time.monotonic() - t0 < 3
    assert up.connections == 0


def test_stalled_request_body_gets_408(start_proxy, upstream):
    import socket

    up = upstream()
    p = start_proxy(Forward(up.port), options=HttpServerOptions(body_read_timeout=0.3))
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")  # 7 bytes never come
        t0 = time.monotonic()
        reply = s.recv(4096)
        assert reply.startswith(b"HTTP/1.1 408 "), reply
        assert 0.2 < time.monotonic() - t0 < 3


def test_client_that_stops_reading_is_dropped(lab, start_proxy):
    import socket

    p = start_proxy(Forward(lab.address("blue")[1]), options=HttpServerOptions(write_timeout=0.5))
    with socket.create_connection(("127.0.0.1", p.port), timeout=5) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(b"GET /size?bytes=200000000 HTTP/1.1\r\nHost: a\r\n\r\n")
        deadline = time.monotonic() + 10
        while p.app._connections and time.monotonic() < deadline:
            time.sleep(0.1)  # never read: the proxy's buffers fill, then its timer fires
        assert not p.app._connections
