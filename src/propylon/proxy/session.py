"""``Session``: one downstream request as the hooks see it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional, Union

from ..cache.http_cache import HttpCache
from ..errors import Error, ErrorType
from ..protocols.digest import Digest, SocketAddr
from ..protocols.http.compression import CompressionOptions
from ..protocols.http.header import RequestHeader, ResponseHeader
from ..protocols.http.small_response import NO_STORE, error_head, small_response_header

if TYPE_CHECKING:
    from ..protocols.http.interfaces import DownstreamSession

__all__ = ["Session", "RETRY_BUFFER_LIMIT"]

#: Largest request body kept for a retry on a new connection (Pingora: 64 KiB).
RETRY_BUFFER_LIMIT = 64 * 1024


class Session:
    """The client's request and the means to answer it.

    ``req_header`` is the request head as received (hooks may change it);
    ``client_addr``/``server_addr`` and ``digest`` describe the connection.
    A hook that answers by itself uses ``respond_error``,
    ``write_response_header`` and ``write_response_body``.

    The request body sent upstream is also kept, up to ``RETRY_BUFFER_LIMIT``
    bytes, so a retry on a new connection can send it again (``retry_body``);
    past the limit ``retry_buffer_truncated`` is True and such retries are off.

    ``compression`` is the response compression for this request (the service's
    ``CompressionOptions``, or None: off); hooks change it with
    ``adjust_compression`` or replace it, up to ``response_filter``.
    """

    __slots__ = ("downstream", "req_header", "_retry_buf", "_retry_len", "retry_buffer_truncated",
                 "upstream_reused", "compression", "observation", "http_cache", "phase", "peer")

    def __init__(self, downstream: "DownstreamSession",
                 compression: Optional[CompressionOptions] = None) -> None:
        self.downstream = downstream
        self.compression = compression
        self.req_header: RequestHeader = downstream.req
        self._retry_buf: Optional[list] = None
        self._retry_len = 0
        self.retry_buffer_truncated = False
        self.upstream_reused = False
        #: the observer's record of this request (``propylon.metrics``), or None
        self.observation = None
        self.http_cache: Optional[HttpCache] = None
        #: where the request is: the hook running before the upstream, then
        #: ``upstream_peer``, ``connect``, ``upstream_request``, ``upstream_response``,
        #: ``response_body`` (named in the log line of a failed request)
        self.phase = "request"
        #: the peer of the current (or last) upstream attempt, or None
        self.peer = None

    @property
    def cache(self) -> HttpCache:
        """This request's cache state (Pingora's ``session.cache``): ``enable(storage,
        eviction, predictor, lock)`` in ``request_cache_filter``,
        ``set_max_file_size_bytes``, ``phase()``, ``enabled()``, ``lock_duration()``,
        ``bypass()``, ``disable(reason)``. Made on first use: a proxy that never
        caches never creates one."""
        cache = self.http_cache
        if cache is None:
            cache = self.http_cache = HttpCache()
        return cache

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

    # --- per-request settings of the client connection (Pingora's setters) ------------
    def set_write_timeout(self, seconds: Optional[float]) -> None:
        """Drop the client when it takes no response bytes for ``seconds`` (None: never).
        Default: the server's ``write_timeout``. A minimum send rate, when set,
        takes precedence."""
        self.downstream.write_timeout = seconds

    def set_min_send_rate(self, bytes_per_second: Optional[int]) -> None:
        """Drop the client when it reads the response slower than this: each wait
        for a slow client may last as long as the bytes waiting take at this rate,
        and at least one second. ``None`` or 0 turns it off (the default)."""
        self.downstream.min_send_rate = bytes_per_second if bytes_per_second else None

    def set_close_on_response_before_downstream_finish(self, close: bool) -> None:
        """Whether the client connection ends after a response that was written
        before the request body arrived in full. Default True (Pingora's): the
        connection closes after the response and the rest of the body is neither
        read nor forwarded. With False the rest of the body is still read and
        forwarded upstream (full duplex), and the connection serves the next
        request."""
        self.downstream.close_on_early_response = close

    # --- response compression ----------------------------------------------------------
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
        """True once the whole request body was read (by the engine or a hook)."""
        return self.downstream.is_body_done()

    # --- answering -----------------------------------------------------------------------
    def response_written(self) -> Optional[ResponseHeader]:
        """The response head already sent to the client, or None."""
        return self.downstream.written_head

    async def respond_error(self, code: int, keepalive: bool = False) -> None:
        """Answer with an empty error response (``Content-Length: 0``,
        ``Cache-Control: private, no-store``). Does nothing if a response head was
        already sent.

        The connection closes afterwards (Pingora's behaviour) unless ``keepalive``
        is True: then, as nginx does, it stays open for the client's next request
        when that is safe, that is when the client did not ask to close and its
        request body arrived in full (what of it was not read is dropped here). A
        body still on its way or a malformed one closes it (``Connection: close``):
        where the next request would start is not known."""
        await self.respond_error_with_body(code, b"", keepalive)

    async def respond_error_with_body(self, code: int, body: Union[bytes, str], keepalive: bool = False) -> None:
        """Like ``respond_error`` with a body."""
        ds = self.downstream
        if ds.written_head is not None:
            return
        if isinstance(body, str):
            body = body.encode()
        if not keepalive or ds.body_error is not None or not ds.body_received:
            ds.keepalive = False  # asked to close, or the body's end is not known
        elif not ds.is_body_done():
            while await ds.read_body() is not None:  # all here already: no wait
                pass
        if body:
            ds.write_header(small_response_header(code, body, extra=NO_STORE))
            ds.write_body(body)
        else:
            # The head of an empty answer is made once per status and second.
            resp, h1_head = error_head(code)
            ds.write_head_and_body(resp, b"", h1_head)
        ds.finish()
        if ds.write_blocked:
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
        if ds.written_head is None:
            raise Error.new_in(ErrorType.H1_ERROR, "response body written before its header")
        if data:
            ds.write_body(data)
        if end_of_stream:
            ds.finish()
        await ds.drain()

    async def write_response(self, status: int, body: Union[bytes, str] = b"",
                             headers: Optional[dict] = None) -> None:
        """Send a whole small response in one go: ``Server``, ``Date``,
        ``Content-Length``, ``Content-Type`` (text by default, when there is a body)
        and ``headers`` after them."""
        if isinstance(body, str):
            body = body.encode()
        ds = self.downstream
        ds.write_header(small_response_header(status, body, extra=headers), end_of_stream=not body)
        if body:
            ds.write_body(body)
            ds.finish()
        await ds.drain()

    # --- retry buffer (filled by the engine) -------------------------------------------
    def remember_body(self, data: bytes) -> None:
        """Keep a piece of request body sent upstream, for a retry."""
        if self.retry_buffer_truncated:
            return
        if self._retry_len + len(data) > RETRY_BUFFER_LIMIT:
            self.retry_buffer_truncated = True
            self._retry_buf = None
            return
        if self._retry_buf is None:
            self._retry_buf = []
        self._retry_buf.append(data)
        self._retry_len += len(data)

    def retry_body(self) -> Optional[bytes]:
        """The request body kept for a retry, or None when nothing was kept."""
        if self._retry_buf is None:
            return None
        return b"".join(self._retry_buf)
