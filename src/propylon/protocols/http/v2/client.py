"""The upstream side of HTTP/2: one protocol object per connection to an origin,
carrying many exchanges at once, one per stream.

``H2ClientConnection`` is created by the connector (``loop.create_connection(
H2ClientConnection, sock=..., ssl=...)``, TLS with ALPN ``h2`` or cleartext with
prior knowledge). ``open_stream()`` takes a slot and returns an ``H2ClientStream``,
an ``UpstreamExchange`` for one request and its response. A stream never closes
the shared connection: ``close()`` resets it if unfinished and frees its slot.

Errors, all tagged upstream:

* the origin resets a stream: ``H2_ERROR`` (retryable when the code is
  REFUSED_STREAM: the origin did not process it);
* the connection is lost: ``CONNECTION_CLOSED``, with retry ``REUSED_ONLY`` for a
  stream that received nothing of its response;
* GOAWAY: streams above its last stream id fail retryable (the origin never saw
  them), the others may finish when the GOAWAY was graceful; the connection takes no
  new stream either way and closes when its last stream ends.

A response body with a Content-Length is complete once that many bytes arrived,
even if END_STREAM has not come yet (as Pingora does): the exchange ends there and
the stream is cancelled when released, so a late END_STREAM holds nobody up.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from typing import Optional

from ....errors import Error, ErrorType
from ...digest import Digest, SocketDigest
from ...tls.settings import tls_digest
from ..header import HeaderMap, RequestHeader, ResponseHeader
from ...flow import wake
from ..v1.common import WRITE_HIGH_WATER
from .codec import (CANCEL, DATA, END, GOAWAY, HEADERS, NO_ERROR, PING_ACK, REFUSED_STREAM, RESET,
                    SETTINGS, TRAILERS, WINDOW, Codec, CodecError, reset_code_name)
from .common import H2ConnBase, H2StreamBase, h2_fields, header_map

log = logging.getLogger("propylon.http.v2")

__all__ = ["H2ClientConnection", "H2ClientStream"]


class H2ClientStream(H2StreamBase):
    """One request/response exchange on a shared upstream HTTP/2 connection."""

    def __init__(self, conn: "H2ClientConnection") -> None:
        self._init_stream(conn, 0)
        self.conn: H2ClientConnection = conn
        self.digest: Optional[Digest] = conn.digest
        self.read_timeout: Optional[float] = None
        self.write_timeout: Optional[float] = None
        self.trailers: Optional[HeaderMap] = None
        self._heads: deque[ResponseHeader] = deque()
        self._error: Optional[Error] = None
        self._got_response = False
        self._no_reuse = False
        self._released = False
        self._final_seen = False
        self._head_request = False
        # Response body bytes still due by Content-Length; -1 when it has none.
        self._body_left = -1
        self._length_met = False

    @property
    def closed(self) -> bool:
        """True once the stream was reset, released, failed or its connection lost."""
        return self._reset or self._released or self.conn._closed or self._error is not None

    # --- request ------------------------------------------------------------------------
    def send_request_header(self, req: RequestHeader, has_body: bool, body_length_known: bool) -> None:
        """Open the stream with the request head (END_STREAM when there is no body).

        ``Host`` becomes ``:authority``; connection-specific fields are dropped and
        ``te`` survives only as ``trailers``.
        """
        conn = self.conn
        if self._released or self.stream_id:
            raise Error.explain(ErrorType.H2_ERROR, "stream already used").into_in()
        if conn._closed or conn._goaway:
            err = Error.explain(ErrorType.CONNECTION_CLOSED, "upstream connection is closing").into_up()
            err.set_retry(True)  # nothing was sent: safe on another connection
            raise err
        authority = req.headers.get_bytes(b"host") or conn.default_authority
        fields = [(b":method", req.method_bytes), (b":scheme", conn.scheme),
                  (b":authority", authority), (b":path", req.raw_path or b"/")]
        fields += h2_fields(req.headers, keep_te_trailers=True, drop=frozenset((b"host",)))
        try:
            sid = conn.codec.request(fields, not has_body)
        except CodecError as exc:
            err = Error.because(ErrorType.H2_ERROR, "cannot send the request head", exc).into_up()
            err.set_retry(True)  # nothing went out
            raise err from None
        self.stream_id = sid
        self._head_request = req.method_bytes == b"HEAD"
        conn._streams[sid] = self
        if not has_body:
            self._end_asked = self._end_sent = True
        conn.want_flush()

    def write_body(self, data: bytes) -> None:
        """Queue a piece of the request body; it leaves as the origin's windows allow."""
        if data:
            self._queue(data)

    def finish_body(self, trailers: Optional[HeaderMap] = None) -> None:
        """End the request body, with trailers in a final HEADERS frame if given."""
        self._queue_end(h2_fields(trailers) if trailers else None)

    async def drain(self) -> None:
        """Wait until the origin's windows and the socket take more of the body."""
        if self._error is not None:
            raise self._error
        if self.conn._closed:
            raise Error.explain(ErrorType.WRITE_ERROR, "upstream connection closed").into_up()
        if not await self._wait_drain(self.write_timeout):
            raise Error.explain(ErrorType.WRITE_TIMEDOUT,
                                f"upstream took no data for {self.write_timeout}s").into_up()
        if self._error is not None:
            raise self._error

    # --- response -----------------------------------------------------------------------
    async def read_response_header(self) -> ResponseHeader:
        """The next response head (1xx heads too, one by one)."""
        while True:
            if self._heads:
                return self._heads.popleft()
            if self._error is not None:
                raise self._error
            if self._recv_done:
                raise Error.explain(ErrorType.H2_ERROR, "stream ended without a response").into_up()
            await self._wait()

    async def read_body(self) -> Optional[bytes]:
        """The next piece of response body, or None at its end."""
        while True:
            data = self.take_body()
            if data is None or data:
                return data
            await self._wait()

    def take_body(self) -> Optional[bytes]:
        """The body bytes already received (``b""`` if none yet), or None at its end."""
        if self._chunks:
            return self._take()
        if self._recv_done or self._length_met:
            return None
        if self._error is not None:
            raise self._error
        return b""

    def body_ready(self) -> bool:
        """True when a ``read_body`` call would return without waiting."""
        return bool(self._chunks) or self._recv_done or self._length_met or self._error is not None

    def at_end(self) -> bool:
        """True when the response body was read to its end."""
        return (self._recv_done or self._length_met) and not self._chunks

    async def _wait(self) -> None:
        conn = self.conn
        self._waiter = conn.loop.create_future()
        timer = None
        if self.read_timeout is not None:
            timer = conn.loop.call_later(self.read_timeout, self._on_read_timeout)
        try:
            await self._waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()

    def _on_read_timeout(self) -> None:
        self.fail(Error.explain(ErrorType.READ_TIMEDOUT, f"no response data for {self.read_timeout}s").into_up())

    # --- endings ----------------------------------------------------------------------------
    def client_gone(self) -> None:
        """The client of this exchange disappeared: stop waiting on the origin."""
        self.fail(Error.explain(ErrorType.CONNECTION_CLOSED, "client went away").into_down())

    def fail(self, err: Error) -> None:
        """Abort the exchange: pending and later reads (and drains) raise ``err``."""
        if self._error is None:
            self._error = err
        self.wake_reader()
        self._wake_drain()

    def reusable(self) -> bool:
        """The stream ended cleanly (its Content-Length met counts, a late END_STREAM
        is cancelled on close) and the connection can take more streams."""
        return (not self._no_reuse and self._error is None and not self._reset
                and (self._recv_done or self._length_met) and self._end_sent and self.conn.is_usable())

    def mark_no_reuse(self) -> None:
        """Make ``reusable()`` false for this stream."""
        self._no_reuse = True

    def close(self) -> None:
        """Reset the stream if it is unfinished and free its slot (the connection stays)."""
        conn = self.conn
        sid = self.stream_id
        if sid and not self._reset and not conn._closed and not (self._recv_done and self._end_sent):
            self._reset = True
            conn.codec.reset_stream(sid, CANCEL)
            conn.want_flush()
        self._out.clear()
        self._out_len = 0
        self.ack_all()
        self._release()

    def abort(self) -> None:
        """Same as ``close()``: a stream never takes the shared connection down."""
        self.close()

    def into_tunnel(self, on_data, on_eof, on_writable):
        """HTTP/2 streams answer no upgrade with 101: never a tunnel."""
        raise Error.explain(ErrorType.H2_ERROR, "an HTTP/2 stream cannot become a tunnel").into_up()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            conn = self.conn
            conn._active.discard(self)
            conn.send_blocked.pop(self.stream_id, None)
            conn._streams.pop(self.stream_id, None)
            conn._after_release()

    def _maybe_done(self) -> None:
        if self._recv_done and self._end_sent:
            # Both directions are over: h2 has closed the stream, the slot is free.
            self.conn._active.discard(self)
            self.conn._streams.pop(self.stream_id, None)
            self.conn._after_release()

    def _on_end_sent(self) -> None:
        self._maybe_done()

    # --- events from the connection -----------------------------------------------------------
    def _on_head(self, fields: list) -> None:
        self._got_response = True
        status = 0
        for name, value in fields:
            if name == b":status":
                status = int(value)
                break
        # Version 1.1: the head is in HTTP/1 form whichever side writes it next.
        head = ResponseHeader(status, (1, 1), header_map(fields))
        self._heads.append(head)
        if status >= 200:
            self._final_seen = True
            if not self._head_request and status not in (204, 304):
                length = head.headers.get_bytes(b"content-length")
                if length is not None and length.isdigit():
                    self._body_left = int(length)
                    self._length_met = self._body_left == 0
        self.wake_reader()

    def _on_data(self, data: bytes, flow_len: int) -> None:
        if self._body_left > 0:
            self._body_left -= len(data)
            if self._body_left <= 0:
                self._length_met = True  # complete, END_STREAM or not
        self._feed(data, flow_len)

    def _on_end(self) -> None:
        self._recv_done = True
        self.wake_reader()
        self._maybe_done()

    def _on_peer_reset(self, code: int) -> None:
        self._reset = True
        self._out.clear()
        self._out_len = 0
        self.conn.send_blocked.pop(self.stream_id, None)
        if code == NO_ERROR and self._recv_done:
            # The origin answered in full and needs no more of the request body
            # (RFC 9113 8.1): a clean end, not an error.
            self._end_sent = True
            self._no_reuse = True
            self._wake_drain()
            self._maybe_done()
            return
        err = Error.explain(ErrorType.H2_ERROR,
                            f"upstream reset the stream ({reset_code_name(code)})").into_up()
        if code == REFUSED_STREAM:
            err.set_retry(True)  # RFC 9113 8.7: not processed, safe to retry
        self.fail(err)
        self.conn._active.discard(self)
        self.conn._after_release()


class H2ClientConnection(H2ConnBase, asyncio.Protocol):
    """One HTTP/2 connection to an origin, shared by many streams. See the module docstring.

    ``max_streams`` is the local cap on concurrent streams (the connector sets it;
    default 100); ``initial_window_size`` (1 MiB) and ``connection_window_size``
    (4 MiB) bound how much response body may wait unread.
    """

    def __init__(self, max_streams: int = 100, initial_window_size: int = 1 << 20,
                 connection_window_size: int = 4 << 20) -> None:
        self._init_base()
        self.codec: Codec = None  # type: ignore[assignment]  # made with the connection
        self.max_streams = max_streams
        self._initial_window = initial_window_size
        self._conn_window = connection_window_size
        self._streams: dict[int, H2ClientStream] = {}
        self._active: set[H2ClientStream] = set()
        self._goaway = False
        self._pings: dict[bytes, asyncio.Future] = {}
        self._ping_ids = itertools.count(1)
        self.scheme = b"http"
        self.default_authority = b"localhost"
        self.streams_opened = 0

    # --- what the pool asks ------------------------------------------------------------
    def is_usable(self) -> bool:
        """Not closed and no GOAWAY received: new streams may be opened."""
        return not self._closed and not self._goaway and self.transport is not None

    def available_streams(self) -> int:
        """Streams that may still be opened now (peer's limit and local cap)."""
        if not self.is_usable():
            return 0
        limit = min(self.codec.peer_max_concurrent_streams(), self.max_streams)
        return max(0, limit - len(self._active))

    @property
    def active_streams(self) -> int:
        """Streams opened and not yet finished or released."""
        return len(self._active)

    def open_stream(self) -> H2ClientStream:
        """Take a stream slot; raises ``Error`` if the connection is closing or full."""
        if not self.is_usable():
            err = Error.explain(ErrorType.CONNECTION_CLOSED, "upstream HTTP/2 connection is closing").into_up()
            err.set_retry(True)
            raise err
        if self.available_streams() <= 0:
            raise Error.explain(ErrorType.H2_ERROR, "no free stream on the upstream connection").into_up()
        st = H2ClientStream(self)
        self._active.add(st)
        self.streams_opened += 1
        return st

    async def ping(self, timeout: float = 5.0) -> float:
        """Send a PING and return the round trip in seconds; raises ``Error`` on timeout."""
        if self._closed:
            raise Error.explain(ErrorType.CONNECTION_CLOSED, "upstream connection closed").into_up()
        opaque = next(self._ping_ids).to_bytes(8, "big")
        fut = self.loop.create_future()
        self._pings[opaque] = fut
        start = self.loop.time()
        self.codec.ping(opaque)
        self.want_flush()
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            raise Error.explain(ErrorType.READ_TIMEDOUT, f"no PING answer in {timeout}s").into_up() from None
        finally:
            self._pings.pop(opaque, None)
        return self.loop.time() - start

    def close(self) -> None:
        """Say GOAWAY and close the connection; open streams fail."""
        if self._closed:
            return
        if self.codec is not None:
            self.codec.goaway(NO_ERROR)
            self._flush()
        self._shut(Error.explain(ErrorType.CONNECTION_CLOSED, "upstream connection closed locally").into_in())

    def abort(self) -> None:
        """Drop the connection at once; open streams fail."""
        if self.transport is not None:
            self.transport.abort()
        self._shut(Error.explain(ErrorType.CONNECTION_CLOSED, "upstream connection aborted").into_in())

    @property
    def closed(self) -> bool:
        """True once the connection is closed or lost."""
        return self._closed

    # --- asyncio protocol -------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Send our preface and SETTINGS (push off, our windows) at once."""
        self.transport = transport
        self.start_flow(transport, WRITE_HIGH_WATER)
        self.digest = Digest(SocketDigest.from_transport(transport), tls_digest(transport))
        if transport.get_extra_info("ssl_object") is not None:
            self.scheme = b"https"
        peer = self.digest.socket.peer_addr
        if isinstance(peer, tuple):
            host = peer[0]
            host = f"[{host}]" if ":" in host else host
            self.default_authority = f"{host}:{peer[1]}".encode()
        self.codec = Codec(True, initial_window_size=self._initial_window,
                            connection_window_size=self._conn_window)
        self._flush()

    def data_received(self, data: bytes) -> None:
        """Feed the codec; dispatch its events to the streams; one write for all replies."""
        if self._closed:
            return
        self._in_receive = True
        try:
            try:
                events = self.codec.receive(data)
            except CodecError as exc:
                log.info("HTTP/2 protocol error from upstream %s: %s", self._peer(), exc)
                self._flush()
                self._shut(Error.because(ErrorType.INVALID_H2, "upstream broke HTTP/2", exc).into_up())
                return
            for ev in events:
                try:
                    self._on_event(ev)
                except CodecError as exc:
                    log.debug("HTTP/2 event %d from upstream %s not handled: %s", ev[0], self._peer(), exc)
        finally:
            self._in_receive = False
        if not self._closed:
            self._flush()

    def eof_received(self) -> Optional[bool]:
        """The origin closed its side: close ours too (streams fail in connection_lost)."""
        return None

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        """Fail every unfinished stream with CONNECTION_CLOSED."""
        err = (Error.because(ErrorType.CONNECTION_CLOSED, "upstream closed the connection", exc) if exc
               else Error.explain(ErrorType.CONNECTION_CLOSED, "upstream closed the connection"))
        self._shut(err.into_up())

    def _shut(self, err: Error) -> None:
        was_closed = self._closed
        self._closed = True
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.send_blocked.clear()
        for st in list(self._active) + list(self._streams.values()):
            if st._recv_done:
                continue
            e = Error(err.etype, err.context, source=err.esource, cause=err.cause)
            if not st._got_response:
                # Nothing of the response arrived: the origin may have closed the
                # connection just as we used it.
                e.set_retry_reused_only()
            st.fail(e)
        self._active.clear()
        for fut in self._pings.values():
            if not fut.done():
                fut.set_exception(Error.explain(ErrorType.CONNECTION_CLOSED, "upstream connection closed").into_up())
        self._lose_flow()
        if not was_closed and self.transport is not None:
            self.transport.close()

    # --- events ---------------------------------------------------------------------------
    def _on_event(self, ev: tuple) -> None:
        kind, sid, a, b = ev
        st = self._streams.get(sid) if sid else None
        if kind == DATA:
            if st is not None and not st._released:
                st._on_data(a, b)
            else:
                self.codec.acknowledge(sid, b)
        elif kind == HEADERS:
            if st is not None:
                if a is None:
                    st.fail(Error.explain(ErrorType.H2_ERROR, "upstream response head too large").into_up())
                    st.close()
                else:
                    st._on_head(a)
        elif kind == END:
            if st is not None:
                st._on_end()
        elif kind == WINDOW:
            if sid == 0:
                self._pump_all()
            elif sid in self.send_blocked:
                self._pump(self.send_blocked[sid])
        elif kind == TRAILERS:
            if st is not None:
                st.trailers = header_map(a)
        elif kind == RESET:
            if st is not None:
                st._on_peer_reset(a)
        elif kind == SETTINGS:
            if a:
                self._pump_all()
        elif kind == PING_ACK:
            wake(self._pings.get(a))
        elif kind == GOAWAY:
            self._on_goaway(sid, a)

    def _on_goaway(self, last: int, code: int) -> None:
        self._goaway = True
        graceful = code == NO_ERROR
        log.debug("GOAWAY from upstream %s (last stream %s, %s)", self._peer(), last, reset_code_name(code))
        for sid, st in list(self._streams.items()):
            if sid > last:
                err = Error.explain(ErrorType.H2_ERROR, "stream refused by upstream GOAWAY").into_up()
                err.set_retry(True)  # the origin never processed it
                st._reset = True
                st.fail(err)
                self._active.discard(st)
                self.send_blocked.pop(sid, None)
            elif not graceful and not st._recv_done:
                err = Error.explain(ErrorType.H2_ERROR,
                                    f"upstream ended the connection ({reset_code_name(code)})").into_up()
                if not st._got_response:
                    err.set_retry_reused_only()
                st.fail(err)
        if not (graceful and any(sid <= last and not st._recv_done for sid, st in self._streams.items())):
            # Streams up to the last id still complete after a graceful GOAWAY
            # (RFC 9113 6.8); otherwise the connection is done.
            self._flush()
            self._shut(Error.explain(ErrorType.CONNECTION_CLOSED, "upstream sent GOAWAY").into_up())

    def _on_terminated(self) -> None:
        # After a GOAWAY either way (or the codec's answer to a protocol error) with
        # no stream left to finish.
        self._shut(Error.explain(ErrorType.CONNECTION_CLOSED, "upstream HTTP/2 connection ended").into_up())

    def _after_release(self) -> None:
        if self._goaway and not self._closed and not self._active and not self.send_blocked:
            self.loop.call_soon(self._close_if_done)

    def _close_if_done(self) -> None:
        if not self._closed and not self._active:
            self._flush()
            self._shut(Error.explain(ErrorType.CONNECTION_CLOSED, "upstream sent GOAWAY").into_up())

    def _peer(self) -> object:
        return self.digest.socket.peer_addr if self.digest else None
