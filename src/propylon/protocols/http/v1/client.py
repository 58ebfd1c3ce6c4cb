"""The upstream side of HTTP/1.1: one protocol object per connection to an origin.

A connection carries one request at a time (no upstream pipelining). The engine
writes the request head and body, then reads the response head (1xx heads come
first, one by one) and the body piece by piece. When the exchange ends cleanly and
both sides allow keep-alive, the connection goes back to the pool; while it sits
there, any byte or EOF from the origin makes it unusable and it removes itself
(``on_idle_event``), so a pooled connection that became readable is never reused.
Back-pressure both ways is one ``protocols.flow.FlowControl``.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Optional

import httptools

from ....errors import Error, ErrorType
from ...digest import Digest, SocketDigest
from ...flow import DRAIN_TIMED_OUT, FlowControl, wake
from ...tls.settings import tls_digest
from ..header import HeaderMap, RequestHeader, ResponseHeader, named_by_connection
from .common import HIGH_WATER, HOP_BY_HOP, LOW_WATER, WRITE_HIGH_WATER, chunk, last_chunk

try:  # built with the compiled hot path only
    from .plain_head import plain_response
except ImportError:
    plain_response = None

__all__ = ["H1ClientConnection"]

_VERSIONS = {"1.1": (1, 1), "1.0": (1, 0)}
#: The longest response head read without the parser (others go to it).
_FAST_HEAD = 8192
_NONE: list = []  # (no fields; never changed)


class H1ClientConnection:
    """One connection to an upstream HTTP/1 server."""

    def __init__(self) -> None:
        self._loop = asyncio.get_event_loop()
        self.transport: Optional[asyncio.Transport] = None
        self.flow: Optional[FlowControl] = None
        self.digest: Optional[Digest] = None
        # Made with the connection (connection_made): the loop builds this object
        # before it connects, and a connect that fails (an origin that is down)
        # then leaves no parser behind, whose callbacks would make it a cycle for
        # the collector.
        self._parser = None
        self._hdrs: list = []
        self._hop: list = []
        self._framed = False
        # Plain lists (a head or two, a few chunks at most): compiled, their
        # operations are C calls.
        self._heads: list = []
        self._chunks: list = []
        self._buffered = 0
        self._waiter: Optional[asyncio.Future] = None
        self._error: Optional[Error] = None
        self._in_body = False
        self._done = False
        self._eof = False
        self._closed = False
        self._keepalive = True
        self._req_chunked = False
        self._is_head = False
        self._close_delimited = False
        self._got_bytes = False
        self._first_version: Optional[tuple] = None
        self._upgraded = False
        self.trailers: Optional[HeaderMap] = None
        self.idle = False
        self.on_idle_event: Optional[Callable[["H1ClientConnection"], None]] = None
        self.read_timeout: Optional[float] = None
        self.write_timeout: Optional[float] = None
        self._read_deadline = 0.0
        self._read_timer_at = 0.0
        self._read_timer: Optional[asyncio.TimerHandle] = None
        self.requests = 0
        self._tunnel: Optional[Callable[[bytes], None]] = None
        self._tunnel_eof: Optional[Callable[[], object]] = None
        # Compiled, a response whose head comes whole in its first read, plainly
        # written and framed by Content-Length, is read in one pass (_one_read), not
        # through llhttp's callbacks; anything else goes to the parser, which then
        # reads every later response of the connection too (it must start each
        # message at its beginning).
        self._parser_used = plain_response is None
        self._body_left = 0  # of a Content-Length body being read that way

    # --- asyncio protocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        self._parser = httptools.HttpResponseParser(self)
        transport.set_write_buffer_limits(WRITE_HIGH_WATER)
        self.flow = FlowControl(transport, HIGH_WATER, LOW_WATER)
        self.digest = Digest(SocketDigest.from_transport(transport), tls_digest(transport))

    def data_received(self, data: bytes) -> None:
        if self.idle:
            self._unusable()
            return
        if self._tunnel is not None:
            self._tunnel(data)
            return
        if self._body_left:
            self._rest_of_body(data)
            return
        if not self._got_bytes:
            self._got_bytes = True
            if not self._parser_used:
                if self._one_read(data):
                    wake(self._waiter)
                    return
                self._parser_used = True
            # The first read of an exchange starts with the status line: its version
            # is read here rather than formatted by the parser for every response.
            self._first_version = (1, 1) if data.startswith(b"HTTP/1.1 ") else None
        elif not self._parser_used:
            # Bytes after a whole response read in one pass are none of ours: the
            # connection is not used again.
            self._keepalive = False
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
            self._upgraded = True
            self._keepalive = False
            rest = data[offset:]
            if rest:
                self._chunks.append(rest)
            self._done = True
            self._tunnel = self._chunks.append
            self._wake()
        except _HeadDone:
            self._finish_head_response()
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadDone):
                self._finish_head_response()
                return
            self._fail(Error.because(ErrorType.INVALID_HTTP_HEADER, "invalid response from upstream", exc).into_up())
            self.transport.close()  # type: ignore[union-attr]
        else:
            # One wake-up per read, whatever it completed (a head, body, the end).
            wake(self._waiter)

    def eof_received(self) -> Optional[bool]:
        self._eof = True
        if self._tunnel_eof is not None:
            self._tunnel_eof()
            return True
        if self.idle:
            self._unusable()
            return None
        self._on_eof()
        return None

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._closed = True
        self._keepalive = False
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None
        if self._tunnel_eof is not None:
            self._tunnel_eof()
        if self.idle:
            self._unusable()
        self._on_eof(exc)
        self.flow.connection_lost()  # type: ignore[union-attr]

    def _on_eof(self, exc: Optional[BaseException] = None) -> None:
        if self._done:
            return
        if self._in_body and self._close_delimited:
            self._done = True
            self._keepalive = False
            self._wake()
            return
        err = Error.because(ErrorType.CONNECTION_CLOSED, "upstream closed the connection", exc) if exc else \
            Error.explain(ErrorType.CONNECTION_CLOSED, "upstream closed the connection")
        err.into_up()
        if not self._got_bytes:
            # Nothing of a response arrived: the origin may have closed an idle
            # connection just as we reused it, so a retry on a new one is safe.
            err.set_retry_reused_only()
        self._fail(err)

    def pause_writing(self) -> None:
        self.flow.pause_writing()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        self.flow.resume_writing()  # type: ignore[union-attr]

    # --- parser callbacks ---------------------------------------------------------
    # No on_message_begin: _hdrs is renewed when a head completes (it then collects
    # the trailers) and when a message completes.
    def on_header(self, name: bytes, value: bytes) -> None:
        lower = name.lower()
        if lower in HOP_BY_HOP and not self._in_body:
            # Hop-by-hop fields describe the upstream connection only: kept aside,
            # so the head the hooks see is already clean (back in place for a 101).
            self._hop.append((lower, name, value))
        else:
            self._hdrs.append((lower, name, value))
            if lower == b"content-length":
                self._framed = True

    def on_headers_complete(self) -> None:
        p = self._parser
        status = p.get_status_code()
        hdrs = self._hdrs
        self._hdrs = []
        framed = self._framed
        self._framed = False
        hop = self._hop
        if hop:
            self._hop = []
        version = self._first_version
        if version is None:
            version = _VERSIONS.get(p.get_http_version(), (1, 1))
        else:
            self._first_version = None  # only the first head of the exchange
        self._head(status, version, hdrs, hop, framed, p.should_keep_alive())
        if self._is_head and status >= 200:
            raise _HeadDone()

    def _head(self, status, version: tuple, hdrs: list, hop: list, framed: bool, keepalive: bool) -> None:
        """A response head is complete (``hdrs``: its end-to-end fields, ``hop``:
        the hop-by-hop ones, ``framed``: a Content-Length came): hand it over."""
        if hop:
            if status == 101:
                hdrs.extend(hop)
            elif _drop_named_by_connection(hdrs, hop):
                framed = True  # chunked
        self._heads.append(ResponseHeader(status, version, HeaderMap(hdrs)))
        if status >= 200 or status == 101:
            self._in_body = True
            if not keepalive:
                self._keepalive = False
            if status >= 200 and status not in (204, 304) and not self._is_head:
                self._close_delimited = not framed
                if not framed:
                    self._keepalive = False

    def on_body(self, body: bytes) -> None:
        self._body(body)

    def _body(self, body: bytes) -> None:
        self._chunks.append(body)
        self._buffered += len(body)
        self.flow.received(self._buffered)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        if self._in_body:
            if self._hdrs:
                self.trailers = HeaderMap(self._hdrs)
                self._hdrs = []
            self._done = True

    # --- a response in one read, without the parser ------------------------------------
    def _one_read(self, data: bytes) -> bool:
        """Take the response starting ``data`` if ``plain_head`` can read it whole
        (see there), as the parser's callbacks would have handed it over; else
        change nothing and return False (the parser reads it, and decides what is
        wrong)."""
        if self._is_head:
            return False
        found = plain_response(data, _FAST_HEAD)  # type: ignore[misc]
        if found is None:
            return False
        status, fields, length, keepalive, start = found
        # Hop-by-hop fields are set aside; none names another field here (Connection
        # is keep-alive or close), so none is kept for _head to look at.
        hdrs = [field for field in fields if field[0] not in HOP_BY_HOP]
        # What on_header, on_headers_complete, on_body and on_message_complete do:
        self._head(status, (1, 1), hdrs, _NONE, True, keepalive)
        if start < len(data):
            self._body(data[start:])
        self._body_left = length - (len(data) - start)
        if not self._body_left:
            self._done = True
        return True

    def _rest_of_body(self, data: bytes) -> None:
        # More of a body whose head _one_read took; bytes past its end are not a
        # response of ours: the connection is not used again.
        left = self._body_left
        if len(data) > left:
            data = data[:left]
            self._keepalive = False
        self._body(data)
        self._body_left = left - len(data)
        if not self._body_left:
            self._done = True
        wake(self._waiter)

    def _finish_head_response(self) -> None:
        # llhttp cannot be told that a response to HEAD has no body, so the head
        # ends the message here and a fresh parser waits for the next one.
        self._done = True
        self._parser = httptools.HttpResponseParser(self)
        self._wake()

    # --- helpers --------------------------------------------------------------------
    def _wake(self) -> None:
        wake(self._waiter)

    def fail(self, err: Error) -> None:
        """End the exchange with ``err``: whoever waits on the response gets it."""
        self._fail(err)

    def client_gone(self) -> None:
        """The client of this exchange disappeared: stop waiting on the origin."""
        self._fail(Error.explain(ErrorType.CONNECTION_CLOSED, "client went away").into_down())

    def _fail(self, err: Error) -> None:
        if self._error is None:
            self._error = err
        self._keepalive = False
        self._wake()
        if self.flow is not None:
            self.flow.interrupt()  # a writer waiting on the origin gives up too

    def _unusable(self) -> None:
        self.idle = False
        self._keepalive = False
        cb = self.on_idle_event
        if cb is not None:
            cb(self)
        if self.transport is not None:
            self.transport.close()

    # Read timeout: each wait sets a deadline; one timer per connection checks it and
    # is re-armed lazily, so a request that waits costs no timer of its own (the
    # timeout is on by default: 60 s). A check that finds no wait in progress lets
    # the timer lapse; the next wait arms it again.
    def _start_read_deadline(self, timeout: float) -> None:
        deadline = self._read_deadline = self._loop.time() + timeout
        timer = self._read_timer
        if timer is None or deadline < self._read_timer_at:
            # None armed, or this wait's timeout is shorter than the one armed
            # (a pooled connection reused by a peer with another read_timeout).
            if timer is not None:
                timer.cancel()
            self._arm_read_timer(deadline)

    def _arm_read_timer(self, when: float) -> None:
        self._read_timer_at = when
        self._read_timer = self._loop.call_at(when, self._check_read_deadline)

    def _check_read_deadline(self) -> None:
        self._read_timer = None
        if self._waiter is None or self._closed:
            return
        if self._loop.time() >= self._read_deadline:
            self._fail(Error.explain(ErrorType.READ_TIMEDOUT, f"no response data for {self.read_timeout}s").into_up())
        else:
            self._arm_read_timer(self._read_deadline)

    async def _wait(self) -> None:
        self._waiter = self._loop.create_future()
        if self.read_timeout is not None:
            self._start_read_deadline(self.read_timeout)
        try:
            await self._waiter
        finally:
            self._waiter = None

    # --- request ----------------------------------------------------------------------
    def send_request_header(self, req: RequestHeader, has_body: bool, body_length_known: bool) -> None:
        """Write the request head; a body of unknown length goes chunked."""
        # A reused connection ended its last exchange cleanly (see reusable()):
        # only the per-exchange flags need resetting.
        self.requests += 1
        self._done = False
        self._got_bytes = False
        self._in_body = False
        self._close_delimited = False
        self.trailers = None
        self._is_head = req.method_bytes == b"HEAD"
        req.version = (1, 1)  # e.g. a request that arrived over HTTP/2
        headers = req.headers
        self._req_chunked = has_body and not body_length_known
        if self._req_chunked:
            headers.remove(b"content-length")
            headers.append(b"Transfer-Encoding", b"chunked")
        self.transport.write(req.to_h1_bytes())  # type: ignore[union-attr]

    def write_body(self, data: bytes) -> None:
        if data and not self._closed:
            self.transport.write(chunk(data) if self._req_chunked else data)  # type: ignore[union-attr]

    def finish_body(self, trailers: Optional[HeaderMap] = None) -> None:
        if self._req_chunked and not self._closed:
            self.transport.write(last_chunk(trailers))  # type: ignore[union-attr]

    async def drain(self) -> None:
        if self._closed:
            raise Error.explain(ErrorType.WRITE_ERROR, "upstream connection closed").into_up()
        if not self.flow.write_paused:  # type: ignore[union-attr]
            return
        if await self.flow.drain(self.write_timeout) == DRAIN_TIMED_OUT:  # type: ignore[union-attr]
            raise Error.explain(ErrorType.WRITE_TIMEDOUT,
                                f"upstream took no data for {self.write_timeout}s").into_up()
        if self._error is not None:
            raise self._error
        if self._closed:
            raise Error.explain(ErrorType.WRITE_ERROR, "upstream connection closed").into_up()

    # --- response ---------------------------------------------------------------------
    async def read_response_header(self) -> ResponseHeader:
        """The next response head from the upstream (1xx heads are returned too)."""
        heads = self._heads
        while not heads:
            if self._error is not None:
                raise self._error
            # Waits inline rather than through _wait(): this runs once per request.
            self._waiter = waiter = self._loop.create_future()
            if self.read_timeout is not None:
                self._start_read_deadline(self.read_timeout)
            try:
                await waiter
            finally:
                self._waiter = None
        return heads.pop(0)

    async def read_body(self) -> Optional[bytes]:
        """The next piece of response body, or None at its end."""
        while True:
            data = self.take_body()
            if data is None or data:
                return data
            await self._wait()

    def take_body(self) -> Optional[bytes]:
        """The body bytes already received (``b""`` if none yet), or None at its end."""
        chunks = self._chunks
        if chunks:
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            self._buffered = 0
            flow = self.flow
            if flow.read_paused:  # type: ignore[union-attr]
                flow.resume_reading()  # type: ignore[union-attr]
            return data
        if self._done:
            return None
        if self._error is not None:
            raise self._error
        return b""

    def body_ready(self) -> bool:
        """True when a ``read_body`` call would return without waiting."""
        return bool(self._chunks) or self._done or self._error is not None

    def at_end(self) -> bool:
        """True when the response body has been read to its end."""
        return self._done and not self._chunks

    def reusable(self) -> bool:
        return (self._keepalive and self._done and not self._closed and not self._eof
                and not self._chunks and not self._upgraded)

    def mark_no_reuse(self) -> None:
        self._keepalive = False

    def close(self) -> None:
        self._closed = True
        self._keepalive = False
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        self._closed = True
        self._keepalive = False
        if self.transport is not None:
            self.transport.abort()

    @property
    def closed(self) -> bool:
        return self._closed

    # --- the tunnel's side (after a 101) ----------------------------------------------
    def into_tunnel(self, on_data: Callable[[bytes], None], on_eof: Callable[[], object],
                    on_writable: Callable[[], object]):
        """After a 101: this connection as a tunnel end (see
        ``UpstreamExchange.into_tunnel``), and the bytes that followed the 101."""
        pending = b"".join(self._chunks)
        self._chunks.clear()
        self._buffered = 0
        self._tunnel = on_data
        self._tunnel_eof = on_eof
        flow = self.flow
        flow.on_writable = on_writable  # type: ignore[union-attr]
        if self._closed or self._eof:
            on_eof()
        else:
            flow.resume_reading()  # type: ignore[union-attr]
        return self, pending

    def send(self, data: bytes) -> bool:
        """A tunnel write; True when the origin reads slowly (pause the other side)."""
        if self._closed:
            return False
        self.transport.write(data)  # type: ignore[union-attr]
        return self.flow.write_paused  # type: ignore[union-attr]

    def pause_reading(self) -> None:
        self.flow.pause_reading()  # type: ignore[union-attr]

    def resume_reading(self) -> None:
        self.flow.resume_reading()  # type: ignore[union-attr]


def _drop_named_by_connection(hdrs: list, hop: list) -> bool:
    """Remove, in place, the fields a ``Connection`` header in ``hop`` names (RFC 9110
    7.6.1); return whether ``hop`` holds a Transfer-Encoding (the body is framed)."""
    chunked = False
    named = None  # (the usual Connection values, keep-alive and close, name nothing)
    for field in hop:
        lower = field[0]
        if lower == b"transfer-encoding":
            chunked = True
        elif lower == b"connection":
            more = named_by_connection(field[2])
            if more:
                named = more if named is None else named | more
    if named:
        hdrs[:] = [it for it in hdrs if it[0] not in named]
    return chunked


class _HeadDone(Exception):
    """Stops llhttp after the head of a response to HEAD."""
