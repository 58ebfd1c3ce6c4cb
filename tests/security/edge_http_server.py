"""A small loopback HTTP/1.1 server that guards its paths with the edge building blocks.

It stands in for the proxy engine's ``request_filter`` / ``request_body_filter`` so the
blocks are exercised with real clients (curl) and real peer addresses. One request per
connection; paths:

* every path: the client address must pass the ``IpAccessList``;
* ``/basic``, ``/bearer``: answer from ``BasicAuth`` / ``BearerAuth``;
* ``/upload``: ``BodySizeLimit`` on the declared length, then on the streamed body;
* ``/rate``: at most ``rate_limit`` requests per client address per window (``Rate``);
* ``/slow``: at most ``inflight_limit`` requests at once (``Inflight``), each held a while.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass, field

import httptools

from propylon.errors import Error
from propylon.limits import Inflight, Rate
from propylon.security import BasicAuth, BearerAuth, BodySizeLimit, IpAccessList

REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 413: "Payload Too Large", 429: "Too Many Requests"}


@dataclass
class EdgeConfig:
    acl: IpAccessList = field(default_factory=IpAccessList)
    basic: BasicAuth = field(default_factory=lambda: BasicAuth({"admin": "password"}, realm="PingoraProxy"))
    bearer: BearerAuth = field(default_factory=lambda: BearerAuth(["super-secret-token"]))
    max_body: int = 100
    rate: Rate = field(default_factory=lambda: Rate(1.0))
    rate_limit: int = 5
    inflight: Inflight = field(default_factory=Inflight)
    inflight_limit: int = 2
    hold: float = 0.5
    body_bytes_seen: list = field(default_factory=list)


class _Request:
    def __init__(self, max_body: int) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.headers_done = False
        self.body_error: Error | None = None
        # Per request, like a ctx made by new_ctx: the body may arrive in the same
        # read as the headers, so the counter must exist before parsing starts.
        self.size = BodySizeLimit(max_body)
        self.complete = False

    # httptools callbacks
    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if self.body_error is None:
            try:
                self.size.add(len(body))
            except Error as exc:
                self.body_error = exc

    def on_message_complete(self) -> None:
        self.complete = True


async def _handle(cfg: EdgeConfig, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    peer_ip = writer.get_extra_info("peername")[0]
    req = _Request(cfg.max_body)
    parser = httptools.HttpRequestParser(req)
    guard = None

    async def answer(status: int, extra: list[tuple[str, str]] = (), body: bytes = b"") -> None:
        head = f"HTTP/1.1 {status} {REASONS[status]}\r\ncontent-length: {len(body)}\r\nconnection: close\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in extra)
        writer.write(head.encode() + b"\r\n" + body)
        await writer.drain()

    checked = False
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            try:
                parser.feed_data(data)
            except httptools.HttpParserError:
                await answer(400)
                return
            if req.headers_done and not checked:
                checked = True
                # --- what request_filter would do ---
                if not cfg.acl.allows(peer_ip):
                    return await answer(403, body=b"denied " + peer_ip.encode())
                path = req.url.split(b"?")[0]
                if path in (b"/basic", b"/bearer"):
                    result = (cfg.basic if path == b"/basic" else cfg.bearer).check(req.headers.get(b"authorization"))
                    if not result.ok:
                        return await answer(result.status, result.headers)
                    user = (result.user or "token").encode()
                    return await answer(200, body=b"hello " + user)
                if path == b"/upload":
                    if not req.size.check_content_length(req.headers.get(b"content-length")):
                        return await answer(413, body=b"declared too large")
                if path == b"/rate":
                    if cfg.rate.observe(peer_ip) > cfg.rate_limit:
                        return await answer(429)
                    return await answer(200)
                if path == b"/slow":
                    guard = cfg.inflight.try_incr("global", cfg.inflight_limit)
                    if guard is None:
                        return await answer(429)
                    async with guard:
                        await asyncio.sleep(cfg.hold)
                    return await answer(200)
            # --- what request_body_filter would do ---
            if req.body_error is not None:
                cfg.body_bytes_seen.append(req.size.received)
                return await answer(req.body_error.etype.code, body=b"streamed too large")
            if req.complete:
                cfg.body_bytes_seen.append(req.size.received)
                return await answer(200, body=b"received %d" % req.size.received)
    finally:
        writer.close()


class EdgeServer:
    """Runs the edge server on its own event loop thread, on 127.0.0.1 and (if any) ::1."""

    def __init__(self, cfg: EdgeConfig) -> None:
        self.cfg = cfg
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.port6: int | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start():
            handler = lambda r, w: _handle(self.cfg, r, w)  # noqa: E731
            s4 = await asyncio.start_server(handler, "127.0.0.1", 0)
            self.port = s4.sockets[0].getsockname()[1]
            if socket.has_ipv6:
                try:
                    s6 = await asyncio.start_server(handler, "::1", 0)
                    self.port6 = s6.sockets[0].getsockname()[1]
                except OSError:
                    self.port6 = None
            self._ready.set()

        self.loop.run_until_complete(start())
        self.loop.run_forever()

    def start(self) -> "EdgeServer":
        self._thread.start()
        self._ready.wait(5)
        return self

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"
