"""``Session``: one downstream request as the hooks see it."""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import TYPE_CHECKING, Optional, Union

from ..errors import Error, ErrorType
from ..protocols.digest import Digest, SocketAddr
from ..protocols.http.compression import CompressionOptions
from ..protocols.http.header import RequestHeader, ResponseHeader

if TYPE_CHECKING:
    from ..protocols.http.interfaces import DownstreamSession

__all__ = ["Session"]

_date_cache = [0, b""]


def http_date() -> bytes:
    """The current time as an HTTP date, rebuilt at most once a second."""
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0] = now
        _date_cache[1] = formatdate(now, usegmt=True).encode()
    return _date_cache[1]  # type: ignore[return-value]


class Session:
    """The client's request and the means to answer it.

    ``req_header`` is the request head as received (hooks may change it);
    ``client_addr``/``server_addr`` and ``digest`` describe the connection.
    A hook that answers by itself uses ``respond_error``,
    ``write_response_header`` and ``write_response_body``.

    ``compression`` is the response compression for this request (the service's
    ``CompressionOptions``, or None: off); hooks change it with
    ``adjust_compression`` or replace it, up to ``response_filter``.
    """

    __slots__ = ("downstream", "req_header", "_retry_buf", "_retry_len", "retry_buffer_truncated",
                 "upstream_reused", "compression")

    def __init__(self, downstream: "DownstreamSession",
                 compression: Optional[CompressionOptions] = None) -> None:
        self.downstream = downstream
        self.compression = compression
        self.req_header: RequestHeader = downstream.req
        self._retry_buf: Optional[list] = None
        self._retry_len = 0
        self.retry_buffer_truncated = False
        self.upstream_reused = False

    # --- the connection ------------------------------------------------------------
    @property
    def digest(self) -> Optional[Digest]:
        return self.downstream.digest

    @property
    def client_addr(self) -> Optional[SocketAddr]:
        """The client's address: ``(ip, port)``, or a path for Unix sockets."""
        d = self.downstream.digest
        return d.socket.peer_addr if d is not None else None

    @property
    def client_ip(self) -> Optional[str]:
        addr = self.client_addr
        return addr[0] if isinstance(addr, tuple) else None

    @property
    def server_addr(self) -> Optional[SocketAddr]:
        d = self.downstream.digest
        return d.socket.local_addr if d is not None else None

    @property
    def downstream_reused(self) -> bool:
        """True when this is not the first request on the client's connection."""
        return self.downstream.requests_before > 0

    def is_process_shutting_down(self) -> bool:
        return self.downstream.shutting_down

    def get_header(self, name: Union[str, bytes]) -> Optional[str]:
        """A request header's first value as text, or None."""
        return self.req_header.headers.get(name)

    def get_header_bytes(self, name: Union[str, bytes]) -> Optional[bytes]:
        return self.req_header.headers.get_bytes(name)

    def set_keepalive(self, enabled: bool) -> None:
        """Allow or forbid serving another request on this client connection."""
        if not enabled:
            self.downstream.keepalive = False

    def adjust_compression(self, level: Optional[int] = None, **fields: object) -> None:
        """Change this request's response compression (Pingora's ``adjust_level``
        and friends): ``level`` sets every coding's level (0: none), ``fields`` are
        ``CompressionOptions`` fields (``gzip_level=1``, ``decompress_upstream=True``...).
        Takes effect when called before the response head is decided (up to and in
        ``response_filter``); ``session.compression = None`` turns it all off."""
        base = self.compression if self.compression is not None else CompressionOptions()
        self.compression = base.adjusted(level, **fields)

    # --- the request body ------------------------------------------------------------
    async def read_request_body(self) -> Optional[bytes]:
        """The next piece of the request body, or None once it is all read.

        What a hook reads here is consumed: it is not sent upstream afterwards.
        """
        return await self.downstream.read_body()

    def is_body_done(self) -> bool:
        return self.downstream.body_complete()

    # --- answering -----------------------------------------------------------------------
    def response_written(self) -> Optional[ResponseHeader]:
        """The response head already sent to the client, or None."""
        return self.downstream.response_written

    async def respond_error(self, code: int) -> None:
        """Answer with an empty error response (``Content-Length: 0``,
        ``Cache-Control: private, no-store``) and close the connection afterwards.
        Does nothing if a response head was already sent."""
        await self.respond_error_with_body(code, b"")

    async def respond_error_with_body(self, code: int, body: Union[bytes, str]) -> None:
        """Like ``respond_error`` with a body."""
        ds = self.downstream
        if ds.response_written is not None:
            return
        if isinstance(body, str):
            body = body.encode()
        resp = ResponseHeader.build(code)
        h = resp.headers
        h.append(b"Server", b"Propylon")
        h.append(b"Date", http_date())
        h.append(b"Content-Length", str(len(body)).encode())
        h.append(b"Cache-Control", b"private, no-store")
        ds.keepalive = False
        ds.write_header(resp, end_of_stream=not body)
        if body:
            ds.write_body(body)
            ds.finish()
        await ds.drain()

    async def write_response_header(self, resp: ResponseHeader, end_of_stream: bool = False) -> None:
        """Send a response head to the client (from a hook that answers by itself)."""
        if resp.status < 200 and resp.status != 101:
            self.downstream.write_interim(resp)
            return
        self.downstream.write_header(resp, end_of_stream)
        await self.downstream.drain()

    async def write_response_body(self, data: Optional[bytes], end_of_stream: bool = False) -> None:
        """Send a piece of response body; ``end_of_stream=True`` ends the response."""
        ds = self.downstream
        if ds.response_written is None:
            raise Error.new_in(ErrorType.H1_ERROR, "response body written before its header")
        if data:
            ds.write_body(data)
        if end_of_stream:
            ds.finish()
        await ds.drain()

    async def write_response(self, status: int, body: Union[bytes, str] = b"",
                             headers: Optional[dict] = None) -> None:
        """Send a whole small response in one go (status, headers, body)."""
        if isinstance(body, str):
            body = body.encode()
        resp = ResponseHeader.build(status)
        for k, v in (headers or {}).items():
            resp.insert_header(k, v)
        resp.insert_header(b"Content-Length", str(len(body)).encode())
        ds = self.downstream
        ds.write_header(resp, end_of_stream=not body)
        if body:
            ds.write_body(body)
            ds.finish()
        await ds.drain()

    # --- retry buffer (used by the engine) ---------------------------------------------
    def _remember_body(self, data: bytes, limit: int) -> None:
        if self.retry_buffer_truncated:
            return
        if self._retry_len + len(data) > limit:
            self.retry_buffer_truncated = True
            self._retry_buf = None
            return
        if self._retry_buf is None:
            self._retry_buf = []
        self._retry_buf.append(data)
        self._retry_len += len(data)

    def _retry_body(self) -> Optional[bytes]:
        if self._retry_buf is None:
            return None
        return b"".join(self._retry_buf)
