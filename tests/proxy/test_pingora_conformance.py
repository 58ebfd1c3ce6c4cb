"""Behaviours Pingora's own proxy tests assert (pingora-proxy/tests), over loopback
with a raw-socket or curl client and origins scripted like Pingora's test origin:
full duplex uploads, an Upgrade request's body, per-session downstream settings
and CONNECT proxying."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time

from proxy_support import read_request, read_response, replying

from propylon import HttpPeer, ProxyHttp
from propylon.protocols.http.v1.server import HttpServerOptions

MIB = 1 << 20


class Forward(ProxyHttp):
    """Forwards to one origin; like Pingora's test proxy, request headers pick the
    per-session settings (``x-write-timeout``, ``x-min-rate``,
    ``x-close-on-response-before-downstream-finish``)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.errors: list = []

    async def request_filter(self, session, ctx) -> bool:
        wt = session.get_header("x-write-timeout")
        if wt is not None:
            session.set_write_timeout(float(wt))
        rate = session.get_header("x-min-rate")
        if rate is not None:
            session.set_write_timeout(None)
            session.set_min_send_rate(int(rate))
        session.set_close_on_response_before_downstream_finish(
            session.get_header("x-close-on-response-before-downstream-finish") is not None)
        return False

    async def upstream_peer(self, session, ctx) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.port), False, "")

    async def logging(self, session, e, ctx) -> None:
        self.errors.append((time.monotonic(), e))


def early_answering(received: list, pause: float = 0.0):
    """Pingora's /duplex origin: answers after 1 KiB of the upload, then (after
    ``pause`` seconds) still reads the rest of it; records each body's size."""
    async def handler(up, reader, writer) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            first = await reader.readexactly(min(1024, length))
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nearly")
            await writer.drain()
            await asyncio.sleep(pause)
            rest = await reader.readexactly(length - len(first))
            received.append(len(first) + len(rest))

    return handler


def post(size: int, extra: bytes = b"") -> bytes:
    return (b"POST /duplex HTTP/1.1\r\nHost: origin.test\r\nContent-Length: %d\r\n" % size
            + extra + b"\r\n" + b"b" * size)


def test_full_duplex_answer_before_upload_ends_keeps_the_client_connection(start_proxy, upstream):
    received: list = []
    origin = upstream(early_answering(received))
    p = start_proxy(Forward(origin.port))
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(post(MIB))
        head, body = read_response(s)
        assert head.startswith(b"HTTP/1.1 200") and body == b"early"
        assert b"connection: close" not in head.lower()
        # The same client connection carries the next request.
        s.sendall(b"POST /duplex HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 3\r\n\r\nabc")
        head, body = read_response(s)
        assert head.startswith(b"HTTP/1.1 200") and body == b"early"
    deadline = time.monotonic() + 10
    while len(received) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert received == [MIB, 3]  # the origin got the whole upload, then the next one


def test_close_on_response_before_downstream_finish_closes_without_draining(start_proxy, upstream):
    # Pingora's test uploads 15 MB; 32 MiB stays larger than what loopback socket
    # buffers hold, so the answer surely comes before the upload ends.
    received: list = []
    origin = upstream(early_answering(received, pause=0.3))
    p = start_proxy(Forward(origin.port))
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        def upload() -> None:
            try:
                s.sendall(post(32 * MIB, b"X-Close-On-Response-Before-Downstream-Finish: 1\r\n"))
            except OSError:
                pass  # the proxy closed the connection: the rest is not wanted

        sender = threading.Thread(target=upload)
        sender.start()
        head, body = read_response(s)
        assert head.startswith(b"HTTP/1.1 200") and body == b"early"
        assert b"connection: close" in head.lower()
        try:
            assert s.recv(1) == b""  # closed after the answer, the upload cut short
        except ConnectionResetError:
            pass
        sender.join(20)
        assert not sender.is_alive()


def upgrade_origin(seen: list):
    """Pingora's /upgrade_echo_body origin: reads the Content-Length body, answers
    101, sends the body back in the new protocol, then echoes."""
    async def handler(up, reader, writer) -> None:
        head = await read_request(up, reader)
        seen.append(head)
        body = bytes(up.received[len(head):])
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        writer.write(b"body=" + body)
        await writer.drain()
        while True:
            data = await reader.read(65536)
            if not data:
                return
            writer.write(data)
            await writer.drain()

    return handler


def test_upgrade_request_body_goes_before_the_101(start_proxy, upstream):
    seen: list = []
    origin = upstream(upgrade_origin(seen))
    p = start_proxy(Forward(origin.port))
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        # Head and body in one segment, as Pingora's test sends them.
        s.sendall(b"POST /upgrade_echo_body HTTP/1.1\r\nHost: origin.test\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nContent-Length: 10\r\n\r\n0123456789")
        buf = b""
        while b"body=0123456789" not in buf:
            chunk = s.recv(65536)
            assert chunk, buf
            buf += chunk
        assert buf.startswith(b"HTTP/1.1 101")
        assert b"\r\n\r\nbody=0123456789" in buf
        s.sendall(b"ping")
        echoed = b""
        while len(echoed) < 4:
            echoed += s.recv(65536)
        assert echoed == b"ping"
    head = seen[0].lower()
    assert b"content-length: 10" in head and b"upgrade: websocket" in head
    assert b"transfer-encoding" not in head


def test_upgrade_body_arriving_after_the_head(start_proxy, upstream):
    seen: list = []
    origin = upstream(upgrade_origin(seen))
    p = start_proxy(Forward(origin.port))
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(b"POST /upgrade_echo_body HTTP/1.1\r\nHost: origin.test\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\nContent-Length: 10\r\n\r\n01234")
        time.sleep(0.2)
        s.sendall(b"56789ping")  # the body's end, then the new protocol at once
        buf = b""
        while b"ping" not in buf.partition(b"body=0123456789")[2]:
            chunk = s.recv(65536)
            assert chunk, buf
            buf += chunk
        assert buf.startswith(b"HTTP/1.1 101")


def slow_client_origin():
    """An origin streaming a large chunked body, far more than socket buffers hold."""
    async def handler(up, reader, writer) -> None:
        await read_request(up, reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
        for _ in range(4096):  # 256 MiB at most
            writer.write(piece)
            await writer.drain()

    return handler


def stalled_client_error(p, proxy: Forward, extra: bytes) -> tuple[float, object]:
    """A client that asks and never reads: how long until the proxy drops it."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", p.port))
    try:
        started = time.monotonic()
        s.sendall(b"GET /big HTTP/1.1\r\nHost: origin.test\r\n" + extra + b"\r\n")
        deadline = started + 30
        while not proxy.errors and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proxy.errors, "the stalled client was never dropped"
        at, err = proxy.errors[0]
        return at - started, err
    finally:
        s.close()


def test_per_session_write_timeout_drops_a_stalled_client(start_proxy, upstream):
    origin = upstream(slow_client_origin())
    proxy = Forward(origin.port)
    p = start_proxy(proxy)  # the server's write_timeout stays at 60 s
    took, err = stalled_client_error(p, proxy, b"X-Write-Timeout: 1\r\n")
    assert err is not None and err.esource.name == "DOWNSTREAM"
    assert took < 20  # the session's 1 s, not the server's 60 s


def test_per_session_min_send_rate_drops_a_slow_client(start_proxy, upstream):
    origin = upstream(slow_client_origin())
    proxy = Forward(origin.port)
    p = start_proxy(proxy)
    # 1 GB/s minimum with no write timeout: each wait may last 1 s (the floor).
    took, err = stalled_client_error(p, proxy, b"X-Min-Rate: 1000000000\r\n")
    assert err is not None and err.esource.name == "DOWNSTREAM"
    assert took < 20


CONNECT = b"CONNECT tunnel.test:443 HTTP/1.1\r\nHost: tunnel.test:443\r\n\r\n"


def test_connect_is_refused_by_default(start_proxy, upstream):
    origin = upstream()
    p = start_proxy(Forward(origin.port))
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(CONNECT)
        head, _ = read_response(s)
    assert head.startswith(b"HTTP/1.1 405")
    assert origin.connections == 0


def test_connect_is_proxied_when_the_server_allows_it(start_proxy, upstream):
    origin = upstream(replying(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
    p = start_proxy(Forward(origin.port), options=HttpServerOptions(allow_connect_method_proxying=True))
    with socket.create_connection(("127.0.0.1", p.port), timeout=10) as s:
        s.sendall(CONNECT)
        head, body = read_response(s)
    assert head.startswith(b"HTTP/1.1 200") and body == b"ok"
    assert origin.received.startswith(b"CONNECT tunnel.test:443 HTTP/1.1\r\n")


def test_full_duplex_with_curl(start_proxy, upstream, tmp_path):
    """The same upload from curl: the early answer arrives, and a second URL on the
    same command line reuses the connection."""
    received: list = []
    origin = upstream(early_answering(received))
    p = start_proxy(Forward(origin.port))
    data = tmp_path / "upload"
    data.write_bytes(b"c" * MIB)
    out = subprocess.run(
        ["curl", "-sv", "--data-binary", f"@{data}", f"{p.url}/one", "--next",
         "--data-binary", "abc", f"{p.url}/two"],
        capture_output=True, timeout=30)
    assert out.stdout == b"earlyearly"
    assert b"Re-using existing connection" in out.stderr or b"Reusing existing" in out.stderr
    deadline = time.monotonic() + 10
    while len(received) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert received == [MIB, 3]
