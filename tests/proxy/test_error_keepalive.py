"""After an error response the proxy made itself (502 for a dead origin...), the
client connection carries the next request when the request body arrived in full
and the client did not ask to close, as with nginx; otherwise it closes."""

from __future__ import annotations

import http.client
import socket

import pytest

from propylon import HttpPeer, ProxyHttp
from propylon.errors import Error, ErrorType
from propylon.proxy.proxy_trait import FailToProxy
from proxy_support import dead_port, read_response


class DeadOrAlive(ProxyHttp):
    """``/dead...`` goes to a port nothing listens on, anything else to the origin."""

    def __init__(self, live: int) -> None:
        self.live = live
        self.dead = dead_port()

    async def upstream_peer(self, session, ctx):
        port = self.dead if session.req_header.path.startswith("/dead") else self.live
        return HttpPeer(("127.0.0.1", port), False, "")


class ClosingOnError(DeadOrAlive):
    """Pingora's behaviour, chosen by the proxy: close after every error response."""

    async def fail_to_proxy(self, session, e: Error, ctx) -> FailToProxy:
        await session.respond_error(502)
        return FailToProxy(502, False)


def _closed(s: socket.socket) -> bool:
    """True when the peer closed the connection (EOF or reset) within the timeout."""
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_the_connection_that_got_a_502_serves_the_next_request(start_proxy, upstream):
    origin = upstream()
    p = start_proxy(DeadOrAlive(origin.port))
    conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
    try:
        conn.request("GET", "/dead")
        r = conn.getresponse()
        assert r.status == 502 and r.read() == b""
        assert r.getheader("Connection") is None and not r.will_close
        sock = conn.sock
        assert sock is not None
        local = sock.getsockname()
        conn.request("GET", "/dead/again")
        r = conn.getresponse()
        assert r.status == 502 and r.read() == b""
        conn.request("GET", "/")
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b"ok")
        # http.client would have opened a new socket had the proxy closed this one.
        assert conn.sock is sock and conn.sock.getsockname() == local
    finally:
        conn.close()
    assert origin.connections == 1


def test_a_body_that_arrived_whole_is_dropped_and_the_connection_kept(start_proxy, upstream):
    origin = upstream()
    p = start_proxy(DeadOrAlive(origin.port))
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        # The body is never read (the connect fails first); what follows it must be
        # taken as the next request, not as the rest of this one.
        s.sendall(b"POST /dead HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world")
        head, body = read_response(s)
        assert head.startswith(b"HTTP/1.1 502 ") and body == b""
        assert b"connection: close" not in head.lower()
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        head, body = read_response(s)
        assert head.startswith(b"HTTP/1.1 200 ") and body == b"ok"


def test_a_body_still_on_its_way_closes_the_connection_after_the_502(start_proxy, upstream):
    p = start_proxy(DeadOrAlive(upstream().port))
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        # 100 bytes announced, 10 sent: where the next request would start is unknown.
        s.sendall(b"POST /dead HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789")
        head, body = read_response(s)
        assert head.startswith(b"HTTP/1.1 502 ") and body == b""
        assert b"\r\nconnection: close" in head.lower()
        assert _closed(s)


@pytest.mark.parametrize("proxy_class, extra", [
    (DeadOrAlive, b"Connection: close\r\n"),  # the client asked to close
    (ClosingOnError, b""),                      # the proxy's fail_to_proxy says no reuse
], ids=["client-asked", "fail_to_proxy-said-no"])
def test_the_connection_closes_after_the_502_when_asked_to(start_proxy, upstream, proxy_class, extra):
    p = start_proxy(proxy_class(upstream().port))
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(b"GET /dead HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n")
        head, _ = read_response(s)
        assert head.startswith(b"HTTP/1.1 502 ") and b"\r\nconnection: close" in head.lower()
        assert _closed(s)


class RefusesBeforeUpstream(DeadOrAlive):
    """A hook error before the upstream (an ``Error`` with a status): answered by the
    default ``fail_to_proxy``, and the connection is kept as after a 502."""

    async def request_filter(self, session, ctx) -> bool:
        if session.req_header.path == "/teapot":
            raise Error.explain(ErrorType.http_status(418), "no coffee here")
        return False


def test_an_error_status_raised_by_a_hook_keeps_the_connection(start_proxy, upstream):
    p = start_proxy(RefusesBeforeUpstream(upstream().port))
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(b"GET /teapot HTTP/1.1\r\nHost: t\r\n\r\n")
        head, _ = read_response(s)
        assert head.startswith(b"HTTP/1.1 418 ") and b"connection: close" not in head.lower()
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        head, body = read_response(s)
        assert head.startswith(b"HTTP/1.1 200 ") and body == b"ok"


def _fields(head: bytes) -> list[bytes]:
    return [line for line in head.split(b"\r\n")[1:] if not line.lower().startswith(b"date:")]


def test_error_answers_keep_their_exact_fields_on_every_connection_kind(start_proxy, upstream):
    # The empty error answer's head is made once per status and second and reused:
    # a Connection field added for one client must not reach the next one.
    origin = upstream()
    p = start_proxy(DeadOrAlive(origin.port))
    plain = [b"Server: Propylon", b"Content-Length: 0", b"Cache-Control: private, no-store"]
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(b"GET /dead HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, body = read_response(s)
        assert head.startswith(b"HTTP/1.1 502 Bad Gateway\r\n") and body == b""
        assert _fields(head) == plain + [b"Connection: close"]
        assert _closed(s)
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(b"GET /dead HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        head, _ = read_response(s)
        assert _fields(head) == plain + [b"Connection: keep-alive"]
        for _ in range(2):
            s.sendall(b"GET /dead HTTP/1.1\r\nHost: x\r\n\r\n")
            head, body = read_response(s)
            assert _fields(head) == plain and body == b""
        s.sendall(b"HEAD /dead HTTP/1.1\r\nHost: x\r\n\r\n")
        head, body = read_response(s)  # Content-Length 0: nothing follows a HEAD's head either
        assert head.startswith(b"HTTP/1.1 502 ") and _fields(head) == plain and body == b""
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _ = read_response(s)
        assert head.startswith(b"HTTP/1.1 200 ")
