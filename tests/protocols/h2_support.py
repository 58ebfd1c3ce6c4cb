"""Helpers for the HTTP/2 codec tests: a server thread, a test handler, certificates."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import json
import os
import socket
import ssl
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional
from urllib.parse import parse_qs

from propylon.protocols.http.header import HeaderMap, ResponseHeader
from propylon.protocols.http.v2.server import H2Options, H2ServerConnection, H2ServerStream
from propylon.shutdown import ShutdownWatch
from support import LoopThread, pattern


async def demo_handler(st: H2ServerStream) -> bool:
    """A tiny application served over the stream, by path:

    * ``/big?n=N``: N pattern bytes, Content-Length set, written in 64 KiB pieces
      with drain();
    * ``/slow?ms=N``: answers after N ms;
    * ``/trailers``: a body then trailers ``x-checksum`` and ``x-done``;
    * ``/nobody``: 204;
    * anything else: JSON with method, path, host, scheme, the body's length and
      sha256, request trailers and the request's header names.
    """
    req = st.req
    q = parse_qs(req.query or "")
    if req.path == "/slow":
        await asyncio.sleep(int(q.get("ms", ["100"])[0]) / 1000)
    sha = hashlib.sha256()
    length = 0
    while True:
        data = await st.read_body()
        if data is None:
            break
        sha.update(data)
        length += len(data)
    if req.path == "/big":
        n = int(q.get("n", ["0"])[0])
        resp = ResponseHeader.build(200)
        resp.append_header("Content-Length", str(n))
        resp.append_header("Connection", "keep-alive")  # must not reach the wire
        st.write_header(resp)
        sent = 0
        while sent < n:
            piece = pattern(min(65536, n - sent))
            st.write_body(piece)
            sent += len(piece)
            if st.write_blocked:
                await st.drain()
        st.finish()
        return True
    if req.path == "/nobody":
        st.write_header(ResponseHeader.build(204), end_of_stream=True)
        return True
    if req.path == "/trailers":
        resp = ResponseHeader.build(200)
        st.write_header(resp)
        st.write_body(b"body before trailers")
        st.finish(HeaderMap.from_pairs([("X-Checksum", "abc123"), ("X-Done", "yes")]))
        return True
    doc = {
        "method": req.method,
        "path": req.uri,
        "host": req.headers.get("host"),
        "first_header": req.headers.raw_items()[0][0].decode() if len(req.headers) else None,
        "scheme": (st.scheme or b"").decode(),
        "version": list(req.version),
        "length": length,
        "sha256": sha.hexdigest(),
        "trailers": dict(st.trailers.items()) if st.trailers else None,
        "headers": [n for n, _ in req.headers.items()],
        "cookie": req.headers.get("cookie"),
        "requests_before": st.requests_before,
    }
    body = json.dumps(doc).encode()
    resp = ResponseHeader.build(200)
    resp.append_header("Content-Type", "application/json")
    resp.append_header("Content-Length", str(len(body)))
    resp.append_header("Transfer-Encoding", "chunked")  # must not reach the wire
    st.write_header(resp, hold=True)
    st.write_body(body)
    st.finish()
    if st.write_blocked:
        await st.drain()
    return True


Handler = Callable[[H2ServerStream], Awaitable[bool]]


class ServerThread:
    """An ``H2ServerConnection`` server on 127.0.0.1, port 0, in a uvloop thread."""

    def __init__(self, handler: Handler = demo_handler, options: Optional[H2Options] = None,
                 ssl_ctx: Optional[ssl.SSLContext] = None) -> None:
        self.handler = handler
        self.options = options or H2Options()
        self.ssl_ctx = ssl_ctx
        self.shutdown = ShutdownWatch()
        self.connections: set = set()
        self.port = 0
        self._lt: Optional[LoopThread] = None
        self._server: Optional[asyncio.AbstractServer] = None

    def __enter__(self) -> "ServerThread":
        self._lt = LoopThread()

        async def start() -> asyncio.AbstractServer:
            return await asyncio.get_running_loop().create_server(
                lambda: H2ServerConnection(self.handler, self.shutdown, self.options, self.connections),
                "127.0.0.1", 0, ssl=self.ssl_ctx)

        self._server = self._lt.run(start(), 10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop and return its result."""
        assert self._lt is not None
        return self._lt.call(fn)

    def trigger_shutdown(self) -> None:
        """Begin graceful shutdown, as the server would."""
        self.call(self.shutdown.trigger)

    def stop(self) -> None:
        lt, self._lt = self._lt, None
        if lt is None:
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for c in list(self.connections):
                c.abort()
            await asyncio.sleep(0.05)

        try:
            lt.run(close(), 10)
        finally:
            lt.close()


def make_cert(directory: Path) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and localhost; returns (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def server_tls_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    return ctx


def raw_h2_socket(port: int, timeout: float = 5.0) -> socket.socket:
    """A plain TCP socket to the server, for speaking HTTP/2 by hand with ``h2``."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return sock


def proc_cpu_seconds() -> float:
    """CPU time (user + system) this process has used so far."""
    t = os.times()
    return t.user + t.system


class ProxyThread(LoopThread):
    """A Propylon listener (the app of ``http_proxy_service``: HTTP/1, and HTTP/2
    with prior knowledge) for ``proxy`` on 127.0.0.1, port 0, on a loop thread.

    ``run(coro)`` runs a coroutine on the same loop (to start origins there);
    ``call(fn)`` runs a function there (to look at the server's connections).
    """

    def __init__(self, proxy: Any, h2_options: Optional[H2Options] = None,
                 sndbuf: Optional[int] = None) -> None:
        from propylon import HttpServerOptions, http_proxy_service

        super().__init__()
        service = http_proxy_service(None, proxy, server_options=HttpServerOptions(h2c=True),
                                     h2_options=h2_options)
        self.app = service.app
        self.shutdown = ShutdownWatch()
        self.port = 0
        self.sndbuf = sndbuf  # the kernel send buffer of accepted sockets, if set
        self._server: Optional[asyncio.AbstractServer] = None
        self._h2_seen: Optional[list] = None

    def __enter__(self) -> "ProxyThread":
        sock = socket.socket()
        if self.sndbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
        sock.bind(("127.0.0.1", 0))

        async def start() -> asyncio.AbstractServer:
            return await self.loop.create_server(self.app.protocol_factory(self.shutdown), sock=sock)

        self._server = self.run(start())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: Any) -> None:
        self._h2_seen = None  # (stops the watch)

        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for c in list(self.app._connections):
                c.abort()
            await asyncio.sleep(0.05)

        try:
            self.run(close())
        finally:
            self.close()

    def h2_connections(self) -> list:
        """The HTTP/2 connections the listener has open now."""
        return self.call(lambda: [c for c in self.app._connections if isinstance(c, H2ServerConnection)])

    def watch_h2(self) -> None:
        """From now on, note every HTTP/2 connection the listener opens, looking on
        each turn of the loop (a flooder may be cut off before a look from the test's
        thread finds it open); ``h2_connections_seen`` returns them."""
        seen: list = []

        def look() -> None:
            if self._h2_seen is not seen:
                return
            for c in self.app._connections:
                if isinstance(c, H2ServerConnection) and c not in seen:
                    seen.append(c)
            self.loop.call_soon(look)

        self._h2_seen = seen
        self.loop.call_soon_threadsafe(look)

    def h2_connections_seen(self) -> list:
        """Every HTTP/2 connection opened since ``watch_h2``, open or closed, in order."""
        return self.call(lambda: list(self._h2_seen or ()))


class CountingOrigin(asyncio.Protocol):
    """An HTTP/1 origin that answers ``200 ok`` to every request and counts
    connections and request heads (``counts`` is shared by all its connections)."""

    def __init__(self, counts: dict) -> None:
        self.counts = counts
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.counts["connections"] += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            self.counts["requests"] += 1
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


async def start_counting_origin() -> tuple[asyncio.AbstractServer, dict]:
    """A ``CountingOrigin`` on 127.0.0.1, port 0: (server, counts)."""
    counts = {"connections": 0, "requests": 0}
    server = await asyncio.get_running_loop().create_server(lambda: CountingOrigin(counts), "127.0.0.1", 0)
    return server, counts
