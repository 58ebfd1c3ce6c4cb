"""One request on a downstream HTTP/1 connection: its body as it arrives and the
writer of its response (the engine's ``DownstreamSession`` for HTTP/1).

Framing of the response is decided by its head: ``Content-Length`` when present,
else chunked for HTTP/1.1 clients and close-delimited for HTTP/1.0 ones. The
connection (``server.H1ServerConnection``) feeds the body in (``feed_body``,
``end_body``, ``fail_body``) and owns the socket; the session uses only the
connection's public methods (``write``, ``drain``, ``pause_reading``...).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Callable, Optional

from ....errors import Error, ErrorSource, ErrorType
from ...digest import Digest
from ...flow import wake
from ..header import HeaderMap, RequestHeader, ResponseHeader
from .common import chunk, last_chunk

if TYPE_CHECKING:
    from .server import H1ServerConnection

__all__ = ["H1ServerSession"]


class H1ServerSession:
    """One request on a downstream HTTP/1 connection, and its response."""

    __slots__ = (
        "conn", "req", "keepalive", "has_body", "body_received", "_chunks", "buffered",
        "_waiter", "body_error", "trailers", "expect_continue", "_continue_sent",
        "written_head", "_resp_mode", "_resp_left", "finished", "body_bytes_read",
        "body_bytes_sent", "upgrade", "_pending_head", "is_head", "requests_before", "on_lost",
        "write_timeout", "min_send_rate", "close_on_early_response", "__weakref__",
    )

    def __init__(self, conn: "H1ServerConnection", req: RequestHeader, keepalive: bool) -> None:
        self.conn = conn
        self.req = req
        self.keepalive = keepalive
        self._chunks: list[bytes] = []
        self.is_head = req.method_bytes == b"HEAD"
        self.requests_before = conn.requests_served
        self.has_body = False
        self.body_received = False
        self.buffered = 0  # body bytes received and not yet read
        self._waiter: Optional[asyncio.Future] = None
        self.body_error: Optional[Error] = None
        self.trailers: Optional[HeaderMap] = None
        self.expect_continue = False
        self._continue_sent = False
        self.written_head: Optional[ResponseHeader] = None
        self._resp_mode = 0  # 0 none, 1 length, 2 chunked, 3 until close
        self._resp_left = 0
        self.finished = False
        self.body_bytes_read = 0
        self.body_bytes_sent = 0
        self.upgrade = False
        self._pending_head: Optional[bytes] = None
        # Set by the engine while the request is proxied: called if the client goes away.
        self.on_lost: Optional[Callable[[], None]] = None
        # Per-request settings (see DownstreamSession): the connection's write
        # timeout, no minimum send rate, and no reuse when the response is written
        # before the request body was read in full (Pingora's defaults).
        self.write_timeout: Optional[float] = conn.options.write_timeout
        self.min_send_rate: Optional[int] = None
        self.close_on_early_response = True

    # --- request body, fed by the connection ---------------------------------------
    def feed_body(self, data: bytes) -> None:
        self._chunks.append(data)
        self.buffered += len(data)
        wake(self._waiter)
        self.conn.flow.received(self.buffered)

    def end_body(self) -> None:
        self.body_received = True
        wake(self._waiter)

    def fail_body(self, err: Error) -> None:
        self.body_error = err
        wake(self._waiter)

    async def read_body(self) -> Optional[bytes]:
        """The next piece of the request body, or None once it is complete."""
        while True:
            chunks = self._chunks
            if chunks:
                # Join what already waits: fewer, larger writes upstream.
                data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                chunks.clear()
                self.buffered = 0
                self.body_bytes_read += len(data)
                self.conn.resume_reading()
                return data
            if self.body_error is not None:
                raise self.body_error
            if self.body_received:
                return None
            if self.expect_continue and not self._continue_sent:
                self._continue_sent = True
                self.conn.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            conn = self.conn
            conn.resume_reading()
            self._waiter = waiter = conn.loop.create_future()
            timer = conn.loop.call_later(conn.options.body_read_timeout, self._body_timed_out, waiter)
            try:
                await waiter
            finally:
                self._waiter = None
                timer.cancel()

    def _body_timed_out(self, waiter: asyncio.Future) -> None:
        if not waiter.done():
            # Like nginx's client_body_timeout: a stalled upload is answered 408.
            self.fail_body(Error(ErrorType.http_status(408),
                                 f"no request body for {self.conn.options.body_read_timeout}s",
                                 source=ErrorSource.DOWNSTREAM))

    def is_body_done(self) -> bool:
        """True when the whole request body was read by the application."""
        return self.body_received and not self._chunks

    # --- the connection, as the engine sees it ------------------------------------
    @property
    def digest(self) -> Optional[Digest]:
        return self.conn.digest

    @property
    def shutting_down(self) -> bool:
        return self.conn.shutting_down

    @property
    def closed(self) -> bool:
        return self.conn.closed

    @property
    def write_blocked(self) -> bool:
        """True when the client is slow and ``drain()`` should be awaited."""
        return self.conn.flow.write_paused

    # --- response ---------------------------------------------------------------
    def write_interim(self, resp: ResponseHeader) -> None:
        """Send a 1xx response (not for 101)."""
        self.conn.write(resp.to_h1_bytes())

    def write_header(self, resp: ResponseHeader, end_of_stream: bool = False, hold: bool = False) -> None:
        """Send the response head, choosing the body framing.

        Content-Length is kept when present; otherwise an HTTP/1.1 client gets
        chunked encoding and an HTTP/1.0 client a body delimited by closing the
        connection. ``hold=True`` keeps the head back so it leaves together with the
        first piece of body (one write instead of two).
        """
        if self.written_head is not None:
            raise Error.new_in(ErrorType.H1_ERROR, "response header already written")
        self.written_head = resp
        resp.version = (1, 1)  # e.g. a head that came from an HTTP/2 origin
        status = resp.status
        headers = resp.headers
        if status == 101:
            self._resp_mode = 3
            self.upgrade = True
            self.keepalive = False
        elif self.is_head or status in (204, 304) or status < 200:
            self._resp_mode = 0
        else:
            cl = headers.get_bytes(b"content-length")
            if cl is not None:
                try:
                    self._resp_left = int(cl)
                    self._resp_mode = 1
                except ValueError:
                    headers.remove(b"content-length")
                    cl = None
            if cl is None:
                if end_of_stream:
                    headers.insert(b"Content-Length", b"0")
                    self._resp_mode = 1
                    self._resp_left = 0
                elif self.req.version >= (1, 1):
                    headers.remove(b"transfer-encoding")
                    headers.append(b"Transfer-Encoding", b"chunked")
                    self._resp_mode = 2
                else:
                    self._resp_mode = 3
                    self.keepalive = False
        self._connection_field(resp)
        head = resp.to_h1_bytes()
        if end_of_stream:
            self.conn.write(head)
            self._finish_response()
        elif hold:
            self._pending_head = head
        else:
            self.conn.write(head)

    def _connection_field(self, resp: ResponseHeader) -> bytes:
        """Whether the connection outlives this response (``keepalive``), and the
        ``Connection`` field that tells the client: added to ``resp`` and returned as
        an HTTP/1 line (b"" when none is needed)."""
        status = resp.status
        conn = self.conn
        if conn.requests_left == 0 or (conn.shutdown.triggered and not conn.input_pending()):
            # Shutting down: this is the last answer unless another request already
            # arrived (it is answered too, see H1ServerConnection.close_if_idle).
            self.keepalive = False
        if self.upgrade and status != 101:
            self.keepalive = False  # bytes after the head were not HTTP: no reuse
        elif not self.body_received and not self.upgrade and self.close_on_early_response:
            # Answered before the request body arrived in full: do not reuse.
            self.keepalive = False
        if status == 101:
            return b""
        if not self.keepalive:
            resp.headers.insert(b"Connection", b"close")
            return b"Connection: close\r\n"
        if self.req.version == (1, 0):
            resp.headers.insert(b"Connection", b"keep-alive")
            return b"Connection: keep-alive\r\n"
        return b""

    def write_head_and_body(self, resp: ResponseHeader, body: bytes, h1_head: Optional[bytes] = None) -> None:
        """``write_header(resp, hold=True)`` and ``write_body(body)`` as one write. With
        ``h1_head`` (``resp`` in HTTP/1 form without its final blank line, framing
        ``body`` by a Content-Length of its length; see DownstreamSession), the head
        is not serialised again: only the Connection field and the blank line are
        added."""
        status = resp.status
        if (h1_head is None or self.written_head is not None or self.is_head
                or status < 200 or status == 204 or status == 304):
            self.write_header(resp, hold=True)
            self.write_body(body)
            return
        # What write_header decides for a head with a Content-Length, and write_body
        # for a body of that length.
        self.written_head = resp
        resp.version = (1, 1)
        self._resp_mode = 1
        self._resp_left = 0
        self.body_bytes_sent += len(body)
        self.conn.write(b"".join((h1_head, self._connection_field(resp), b"\r\n", body)))

    def write_body(self, data: bytes) -> None:
        """Send a piece of the response body with the framing chosen by the head."""
        mode = self._resp_mode
        head = self._pending_head
        if head is not None:
            self._pending_head = None
        if not data:
            if head is not None:
                self.conn.write(head)
            return
        if mode == 2:
            data = chunk(data)
        elif mode == 1:
            self._resp_left -= len(data)
        elif mode == 0:
            if head is not None:
                self.conn.write(head)
            return
        self.body_bytes_sent += len(data)
        self.conn.write(head + data if head is not None else data)

    def finish(self, trailers: Optional[HeaderMap] = None) -> None:
        """End the response body (the last chunk, with trailers when chunked)."""
        if self.finished:
            return
        head = self._pending_head
        self._pending_head = None
        if self._resp_mode == 2:
            tail = last_chunk(trailers)
            self.conn.write(head + tail if head is not None else tail)
        elif head is not None:
            self.conn.write(head)
        if self._resp_mode == 1 and self._resp_left != 0:
            # The body did not match its Content-Length: the client cannot find the
            # next response, so this connection ends here.
            self.keepalive = False
        self._finish_response()

    def _finish_response(self) -> None:
        self.finished = True
        if self._resp_mode == 3:
            self.keepalive = False

    async def drain(self) -> None:
        conn = self.conn
        if conn.flow.write_paused:
            timeout = self.write_timeout
            rate = self.min_send_rate
            if rate is not None:
                # Pingora's rule: the time the bytes waiting should take at the
                # minimum rate, at least a second; it overrides write_timeout.
                timeout = max(1.0, conn.transport.get_write_buffer_size() / rate)
            await conn.drain(timeout)

    def into_tunnel(self, on_data: Callable[[bytes], None], on_eof: Callable[[], None],
                    on_writable: Callable[[], object]):
        """After a 101: the client connection becomes one end of a byte tunnel
        (see ``DownstreamSession.into_tunnel``)."""
        return self.conn, self.conn.into_tunnel(on_data, on_eof, on_writable)
