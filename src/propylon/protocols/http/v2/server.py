"""The downstream side of HTTP/2: one protocol object per client connection.

Theory of operation
-------------------
``H2ServerConnection`` is an asyncio protocol; the codec (``codec``: libnghttp2, or
the ``h2`` library) turns the bytes it receives into events and the frames it must
send into bytes. Each request stream
becomes an ``H2ServerStream`` (a ``DownstreamSession``) served by one task of its own
running the engine's handler, so a slow stream never holds up a fast one.

The request head is given to the engine in HTTP/1 form: ``:authority`` becomes a
``Host`` field placed first, the other pseudo-headers become the method and target,
and the version is (2, 0). Response heads go out with ``:status`` and lowercased
names, without connection-specific fields.

Flow control follows ``common``: request DATA is acknowledged only as the
application reads it; response DATA goes out as the client's windows allow, the rest
waits in the stream and makes it ``write_blocked``.

Protection (limits in ``H2Options``, guards in ``guard``):

* SETTINGS advertise ``max_concurrent_streams`` and ``max_header_list_size``; a
  larger request head is answered 431, a header block too large to decode within
  the limit ends the connection before it is buffered;
* floods of control frames (PING, SETTINGS, WINDOW_UPDATE, RST_STREAM, PRIORITY,
  empty DATA or CONTINUATION) and clients that keep cancelling streams or opening
  more than allowed (rapid reset, CVE-2023-44487) get GOAWAY (ENHANCE_YOUR_CALM)
  and are disconnected; the frames are counted before the codec parses them, by the
  same guard whichever codec is in use;
* a client that does not read what we send is not read from either: while more
  than ``max_write_buffer`` bytes wait to be sent, reading pauses, so replies to
  its frames (PING and SETTINGS acknowledgements) cannot pile up; if what it sent
  meanwhile asks for more such replies than a reading client leaves unanswered
  (``guard.STALLED_REPLIES``), it is cut off as a flooder;
* cutting a client off sends GOAWAY (ENHANCE_YOUR_CALM) as far as the socket takes
  it and drops the connection at once (a reset, since the client's unread frames
  are still in the kernel): no frame of it is handled after that, and no close
  handshake waits for a client that does not read;
* one read is handled ``max_frames_per_turn`` frames at a time, the rest in the
  following turns of the event loop (reading paused meanwhile), so one connection's
  burst cannot hold the loop;
* a stream the client reset before its request went upstream is never sent
  upstream: its reads fail at once and the engine sees it ``closed``.

Shutdown: when the shutdown watch fires, a GOAWAY naming the last stream accepted
goes out, streams already open run to their end, and the connection closes once none
is left. An idle connection closes after ``idle_timeout``.

The app can also switch a cleartext connection that started as HTTP/1 to this
protocol once it sees the client preface: ``transport.set_protocol(p)``,
``p.connection_made(transport)``, ``p.data_received(already_read)``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Optional

from ....errors import Error, ErrorType
from ...digest import Digest, SocketDigest
from ...tls.settings import tls_digest
from ..header import HeaderMap, RequestHeader, ResponseHeader
from .codec import (DATA, END, ENHANCE_YOUR_CALM, GOAWAY, HEADERS, INTERNAL_ERROR, NO_ERROR, REFUSED,
                    REFUSED_STREAM, RESET, SETTINGS, TRAILERS, WINDOW, Codec, CodecError, reset_code_name)
from .common import H2ConnBase, H2StreamBase, h2_fields, header_map, split_fields
from .guard import FrameGuard, ResetGuard
from .options import HEAD_SLACK, H2Options

log = logging.getLogger("propylon.http.v2")

__all__ = ["H2Options", "H2ServerConnection", "H2ServerStream"]

# :status values of the usual responses, made once.
_STATUS = {code: b"%d" % code for code in (200, 201, 204, 206, 301, 302, 304, 307, 308, 400, 401,
                                           403, 404, 405, 429, 500, 502, 503, 504)}


def _options(options: Any) -> H2Options:
    """H2Options as given, or derived from the HTTP/1 options the app holds."""
    if isinstance(options, H2Options):
        return options
    return H2Options.from_server_options(options)


class H2ServerStream(H2StreamBase):
    """One request stream on a downstream HTTP/2 connection, and its response."""

    def __init__(self, conn: "H2ServerConnection", stream_id: int, req: RequestHeader) -> None:
        self._init_stream(conn, stream_id)
        self.conn = conn
        self.req = req
        self.keepalive = True  # streams are never reused, the connection stays
        self.has_body = False
        self.body_received = False
        self.body_error: Optional[Error] = None
        self.trailers: Optional[HeaderMap] = None
        self.expect_continue = False
        self._continue_sent = False
        self.upgrade = False
        self.is_head = req.method_bytes == b"HEAD"
        self.written_head: Optional[ResponseHeader] = None
        self.finished = False
        self.requests_before = conn.requests_served
        self.on_lost: Optional[Callable[[], None]] = None
        self.scheme: Optional[bytes] = None
        self.body_bytes_read = 0
        self.body_bytes_sent = 0
        self._no_body = self.is_head
        # Per-request settings of the DownstreamSession contract; a stream that
        # ends early never costs the connection, so the last one has no effect.
        self.write_timeout: Optional[float] = None
        self.min_send_rate: Optional[int] = None
        self.close_on_early_response = True
        self._task: Optional[asyncio.Task] = None  # the one serving it (see _on_request)

    # --- the connection, as the engine sees it ----------------------------------------
    @property
    def digest(self) -> Optional[Digest]:
        """The connection's digest (addresses, TLS)."""
        return self.conn.digest

    @property
    def shutting_down(self) -> bool:
        """True once graceful shutdown began or GOAWAY was sent."""
        return bool(self.conn._shutdown) or self.conn._goaway_sent

    @property
    def closed(self) -> bool:
        """True once the client reset this stream or the connection is gone."""
        return self._reset or self.conn._closed

    # --- request body -------------------------------------------------------------------
    async def read_body(self) -> Optional[bytes]:
        """The next piece of the request body, or None once it is complete.

        Reading gives the window back to the client, so it may send more.
        """
        while True:
            if self._chunks:
                data = self._take()
                self.body_bytes_read += len(data)
                return data
            if self.body_error is not None:
                raise self.body_error
            if self.body_received:
                return None
            if self.expect_continue and not self._continue_sent:
                self._continue_sent = True
                self._send_head([(b":status", b"100")], False)
            self._waiter = self.conn.loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def is_body_done(self) -> bool:
        """True when the whole request body was read by the application."""
        return self.body_received and not self._chunks

    # --- response -----------------------------------------------------------------------
    def _send_head(self, fields: list, end_stream: bool) -> None:
        conn = self.conn
        if self._reset or conn._closed:
            return
        try:
            conn.codec.send_headers(self.stream_id, fields, end_stream)
        except CodecError as exc:
            log.debug("stream %d: head not sent: %s", self.stream_id, exc)
            self._on_send_failed(exc)
            return
        conn.want_flush()

    def write_interim(self, resp: ResponseHeader) -> None:
        """Send a 1xx head (103 Early Hints...); 100 and 101 are not forwarded."""
        if 100 < resp.status < 200 and resp.status != 101:
            self._send_head([(b":status", b"%d" % resp.status)] + h2_fields(resp.headers), False)

    def write_header(self, resp: ResponseHeader, end_of_stream: bool = False, hold: bool = False) -> None:
        """Send the response head (HEADERS goes out at the end of this loop turn,
        together with the first body piece when it follows at once, so ``hold`` needs
        no special treatment)."""
        if self.written_head is not None:
            raise Error.new_in(ErrorType.H2_ERROR, "response header already written")
        self.written_head = resp
        status = resp.status
        if self.is_head or status in (204, 304):
            self._no_body = True
        code = _STATUS.get(status)
        if code is None:
            code = b"%d" % status
        fields = [(b":status", code)]
        fields += h2_fields(resp.headers)
        self._send_head(fields, end_of_stream)
        if end_of_stream:
            self._end_asked = self._end_sent = True
            self._finish_response()

    def write_body(self, data: bytes) -> None:
        """Queue a piece of the response body; it leaves as the client's windows allow."""
        if not data or self._no_body:
            return
        self.body_bytes_sent += len(data)
        self._queue(data)

    def write_head_and_body(self, resp: ResponseHeader, body: bytes, h1_head: Optional[bytes] = None) -> None:
        """The head and a body all at hand (``h1_head`` is for HTTP/1: not used here).
        With no body, the head ends the stream (the ``finish`` that follows has
        nothing left to do)."""
        if not body:
            self.write_header(resp, end_of_stream=True)
            return
        self.write_header(resp, hold=True)
        self.write_body(body)

    def finish(self, trailers: Optional[HeaderMap] = None) -> None:
        """End the response: END_STREAM on the last DATA, or a trailers HEADERS frame."""
        if self.finished or self.written_head is None:
            return  # with no head sent, the stream is reset when the handler returns
        fields = h2_fields(trailers) if trailers else None
        self._queue_end(fields)
        self._finish_response()

    def _finish_response(self) -> None:
        self.finished = True
        self.conn._guard.on_complete()

    async def drain(self) -> None:
        """Wait until the client has taken enough of the response to write more."""
        if self.closed:
            raise Error.new_down(ErrorType.WRITE_ERROR, "client went away")
        timeout = self.write_timeout
        if self.min_send_rate is not None:
            timeout = max(1.0, self._out_len / self.min_send_rate)
        if not await self._wait_drain(timeout):
            raise Error.new_down(ErrorType.WRITE_ERROR, f"client took no data for {timeout}s")
        if self.closed:
            raise Error.new_down(ErrorType.WRITE_ERROR, "client went away")

    def into_tunnel(self, on_data, on_eof, on_writable):
        """HTTP/2 streams are never upgraded (``upgrade`` is always False)."""
        raise Error.new_in(ErrorType.H2_ERROR, "an HTTP/2 stream cannot become a tunnel")

    # --- losses ---------------------------------------------------------------------------
    def _lost(self, err: Error) -> None:
        # Even with the whole request here, the stream is gone: the error tells the
        # engine not to send the request upstream if it has not yet.
        self._reset = True
        if self.body_error is None:
            self.body_error = err
        self._out.clear()
        self._out_len = 0
        self.wake_reader()
        self._wake_drain()
        cb = self.on_lost
        if cb is not None:
            self.on_lost = None
            cb()


Handler = Callable[[H2ServerStream], Awaitable[bool]]


class H2ServerConnection(H2ConnBase):
    """One downstream HTTP/2 connection. See the module docstring."""

    def __init__(self, handler: Handler, shutdown: Any = None, options: Any = None,
                 tracker: Optional[set] = None) -> None:
        self._init_base()
        self._handler = handler
        self._shutdown = shutdown
        self._opts = opts = _options(options)
        self._tracker = tracker
        self.codec: Codec = None  # type: ignore[assignment]  # made with the connection
        self._streams: dict[int, H2ServerStream] = {}
        self._guard = ResetGuard(opts.rapid_reset_max, opts.rapid_reset_window,
                                 opts.rapid_reset_min_streams, opts.rapid_reset_ratio)
        self._frames = FrameGuard(opts)
        # Bytes of the last read left for the next turn (reading is paused meanwhile).
        self._backlog: Optional[memoryview] = None
        self._backlog_handle: Optional[asyncio.Handle] = None
        self._goaway_sent = False
        self._last_stream = 0
        self._calmed = False
        self._timer: Optional[asyncio.TimerHandle] = None
        self._idle_since = 0.0
        self.requests_served = 0

    @property
    def shutting_down(self) -> bool:
        """True once graceful shutdown began or GOAWAY was sent."""
        return bool(self._shutdown) or self._goaway_sent

    @property
    def open_streams(self) -> int:
        """Streams whose handler is still running."""
        return len(self._streams)

    # --- asyncio protocol ---------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Send our SETTINGS and window, arm the idle timer, watch for shutdown."""
        self.transport = transport
        self.start_flow(transport, self._opts.max_write_buffer)
        self.digest = Digest(SocketDigest.from_transport(transport), tls_digest(transport))
        if self._tracker is not None:
            self._tracker.add(self)
        opts = self._opts
        # Heads a little over the limit are decoded and answered 431 by us; only
        # absurd ones make HPACK give up on the whole connection.
        self.codec = Codec(False, initial_window_size=opts.initial_window_size,
                            connection_window_size=opts.connection_window_size,
                            max_concurrent_streams=opts.max_concurrent_streams,
                            max_header_list_size=opts.max_header_list_size, header_slack=HEAD_SLACK)
        self._flush()
        self._idle_since = self.loop.time()
        self._timer = self.loop.call_later(opts.idle_timeout, self._on_timeout)
        if self._shutdown is not None and hasattr(self._shutdown, "on_shutdown"):
            self._shutdown.on_shutdown(self._on_shutdown)

    def data_received(self, data: bytes) -> None:
        """Count the frames, feed h2 a turn's worth, dispatch its events, write once."""
        if self._closed:
            return
        backlog = self._backlog
        if backlog is not None or self.flow.write_paused:  # type: ignore[union-attr]
            # Reading is paused, but a TLS transport may still hand over what it
            # had decrypted: it joins the backlog, handled when reading resumes.
            self._backlog = memoryview(data if backlog is None else bytes(backlog) + data)
            self._schedule_backlog()
            return
        self._receive(data)

    def _receive(self, data: Any) -> None:
        frames = self._frames
        cut = frames.scan(data, self.loop.time(), self._data_frames_sent)
        if frames.tripped is not None:
            self._calm_down(f"too many {frames.tripped} frames" if frames.tripped != "header block"
                            else "header block over the limit")
            return
        if cut < len(data):
            view = memoryview(data)
            self._backlog = view[cut:]
            data = view[:cut]
            self._sync_reading()
            self._schedule_backlog()
        self._feed(data)

    def _schedule_backlog(self) -> None:
        if self._backlog_handle is None:
            self._backlog_handle = self.loop.call_soon(self._work_backlog)

    def _work_backlog(self) -> None:
        """The next turn's worth of a read that was too long for one turn."""
        self._backlog_handle = None
        data = self._backlog
        if data is None or self._closed:
            return
        if self.flow.write_paused:  # type: ignore[union-attr]
            # The client does not read our replies; resume_writing() calls again
            # once it does. Asking for still more of them meanwhile is a flood.
            if self._frames.owes_replies(data):
                self._calm_down("PING or SETTINGS frames sent on while our replies go unread")
            return
        self._backlog = None
        self._receive(data)
        self._sync_reading()

    def _sync_reading(self) -> None:
        """Read from the client only when no backlog waits and it reads our replies."""
        flow = self.flow
        if self._closed or flow is None:
            return
        if self._backlog is None and not flow.write_paused:
            flow.resume_reading()
        else:
            flow.pause_reading()

    def pause_writing(self) -> None:
        """More than ``max_write_buffer`` waits for the client: stop reading it too."""
        super().pause_writing()
        self._sync_reading()

    def resume_writing(self) -> None:
        """The client read what we sent: read from it again."""
        super().resume_writing()
        if self._backlog is not None:
            self._schedule_backlog()
        else:
            self._sync_reading()

    def _feed(self, data: Any) -> None:
        self._in_receive = True
        codec = self.codec
        try:
            while data is not None and not self._closed:
                try:
                    events = codec.receive(data)
                except CodecError as exc:
                    if exc.abuse:
                        self._calm_down(str(exc))
                        return
                    log.info("HTTP/2 protocol error from %s: %s", self._peer(), exc)
                    self._flush()
                    self._close()
                    return
                for ev in events:
                    if self._closed:
                        break
                    try:
                        self._on_event(ev)
                    except CodecError as exc:
                        # A stream that changed state under us: only that stream suffers.
                        log.debug("HTTP/2 event %d from %s not handled: %s", ev[0], self._peer(), exc)
                data = codec.unconsumed  # the codec paused: its events are handled, go on
        finally:
            self._in_receive = False
        if not self._closed:
            self._flush()

    def eof_received(self) -> Optional[bool]:
        """The client closed its side: the connection ends (streams are lost)."""
        return None  # half-closed HTTP/2 makes no sense: close, and lose the streams

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        """Every open stream fails its reads and its ``on_lost`` is called."""
        self._closed = True
        if self._tracker is not None:
            self._tracker.discard(self)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._backlog_handle is not None:
            self._backlog_handle.cancel()
            self._backlog_handle = None
        self._backlog = None
        if self._shutdown is not None and hasattr(self._shutdown, "remove_callback"):
            self._shutdown.remove_callback(self._on_shutdown)
        self.send_blocked.clear()
        for st in list(self._streams.values()):
            st._lost(Error.new_down(ErrorType.CONNECTION_CLOSED, "client went away"))
        self._lose_flow()

    # --- events -----------------------------------------------------------------------------
    def _on_event(self, ev: tuple) -> None:
        kind, sid, a, b = ev
        if kind == DATA:
            st = self._streams.get(sid)
            if st is not None and not st._reset:
                st._feed(a, b)
            else:
                self.codec.acknowledge(sid, b)
        elif kind == HEADERS:
            self._on_request(sid, a, b)
        elif kind == END:
            st = self._streams.get(sid)
            if st is not None:
                st.body_received = True
                st.wake_reader()
        elif kind == WINDOW:
            if sid == 0:
                self._pump_all()
            else:
                st = self.send_blocked.get(sid)
                if st is not None:
                    self._pump(st)
            if self._goaway_sent and not self._streams and not self.send_blocked:
                self._close_after_flush()
        elif kind == TRAILERS:
            st = self._streams.get(sid)
            if st is not None:
                st.trailers = header_map(a)
        elif kind == RESET:
            self._on_reset(sid, a)
        elif kind == REFUSED:
            # Refused by the codec itself (over the limit it enforces): counted as
            # the streams the connection refuses are.
            if self._guard.on_reset():
                self._calm_down("too many cancelled or refused streams")
        elif kind == SETTINGS:
            if a:
                self._pump_all()
        elif kind == GOAWAY:
            self._on_goaway(sid, a)

    def _on_request(self, sid: int, fields: Optional[list], ended: bool) -> None:
        if (self._goaway_sent and sid > self._last_stream) or \
                len(self._streams) >= self._opts.max_concurrent_streams:
            # A refused stream costs us a decoded head and a reply: it counts as
            # a cancelled one, or a client could open and cancel streams faster
            # than their handlers end and never be counted.
            if self._guard.on_reset():
                self._calm_down("too many cancelled or refused streams")
                return
            self.codec.reset_stream(sid, REFUSED_STREAM)
            return
        if fields is None:
            size, items, pseudo = 0, None, None
        else:
            pseudo = {}
            size, items = split_fields(fields, pseudo)
        if items is None or size > self._opts.max_header_list_size:
            log.info("refusing request from %s: header list too large (431)", self._peer())
            self._answer_directly(sid, 431, ended)
            return
        method = pseudo.get(b":method", b"")
        path = pseudo.get(b":path")
        if method == b"CONNECT" or path is None:
            self._answer_directly(sid, 405 if method == b"CONNECT" else 400, ended)
            return
        headers = HeaderMap(items)
        authority = pseudo.get(b":authority")
        if authority is None:
            authority = headers.get_bytes(b"host")
        if authority is not None:
            headers.remove(b"host")  # :authority wins (RFC 9113 8.3.1)
            headers.fields.insert(0, (b"host", b"Host", authority))
        st = H2ServerStream(self, sid, RequestHeader(method, path, (2, 0), headers))
        st.scheme = pseudo.get(b":scheme")
        st.has_body = not ended
        st.body_received = ended
        if not ended:
            exp = headers.get_bytes(b"expect")
            if exp is not None and exp.lower() == b"100-continue":
                st.expect_continue = True
        self._streams[sid] = st
        self.requests_served += 1
        # The stream holds its task (the loop keeps only weak references) for as long
        # as the connection holds the stream: no done-callback per stream.
        st._task = self.loop.create_task(self._serve(st))

    def _answer_directly(self, sid: int, status: int, ended: bool) -> None:
        self.codec.send_headers(sid, [(b":status", b"%d" % status), (b"content-length", b"0")], True)
        if not ended:
            # The answer is complete: the client need not send the body.
            self.codec.reset_stream(sid, NO_ERROR)

    def _on_reset(self, sid: int, code: int) -> None:
        st = self._streams.get(sid)
        if st is None or st._reset:
            return
        self.send_blocked.pop(sid, None)
        unanswered = not (st.finished and st._end_sent)
        st._lost(Error.new_down(ErrorType.CONNECTION_CLOSED,
                                f"client reset the stream ({reset_code_name(code)})"))
        if unanswered and self._guard.on_reset():
            self._calm_down("too many cancelled or refused streams")

    def _on_goaway(self, last_stream: int, code: int) -> None:
        if code == NO_ERROR and self._streams:
            # Streams already open may still be answered (RFC 9113 6.8).
            self._goaway_sent = True
            self._last_stream = self.codec.last_stream_id()
            return
        self._close()

    def _on_terminated(self) -> None:
        self._close()

    def _calm_down(self, why: str) -> None:
        """GOAWAY (ENHANCE_YOUR_CALM) and the connection dropped: the client is abusing it."""
        if self._calmed or self._closed:
            return
        self._calmed = True
        counts = ", ".join(f"{k} {v}" for k, v in self._frames.counts().items() if v)
        log.warning("closing HTTP/2 connection from %s: %s (this window: %s; streams: %d "
                    "cancelled or refused, %d complete)", self._peer(), why, counts or "-",
                    self._guard.resets, self._guard.completed)
        self.codec.goaway(ENHANCE_YOUR_CALM)
        self._flush()
        # The GOAWAY went to the socket as far as it would go; the connection ends
        # now rather than once the client has read it (or, over TLS, answered our
        # close_notify): a client that floods us without reading would keep it,
        # its buffers and our reading of its frames alive for as long as it likes.
        # What it sent that we did not read makes the kernel reset the connection.
        self.abort()

    # --- serving ----------------------------------------------------------------------------
    async def _serve(self, st: H2ServerStream) -> None:
        try:
            await self._handler(st)
        except Exception:  # a bug in the engine: never leave the stream hanging
            log.exception("unhandled error while serving %s", self._peer())
        finally:
            self._stream_done(st)

    def _stream_done(self, st: H2ServerStream) -> None:
        sid = st.stream_id
        self._streams.pop(sid, None)
        st._task = None  # the task is ending: no cycle through the stream
        if not self._closed and not st._reset:
            if not st.finished:
                # No complete response will come: tell the client so.
                self.send_blocked.pop(sid, None)
                st._reset = True
                self.codec.reset_stream(sid, INTERNAL_ERROR)
            elif not st.body_received and st._end_sent:
                self.codec.reset_stream(sid, NO_ERROR)  # answered: stop the upload
            st.ack_all()
            self.want_flush()
        if not self._streams:
            self._idle_since = self.loop.time()
            if self._goaway_sent and not self.send_blocked:
                self._close_after_flush()

    # --- shutdown and idleness -------------------------------------------------------
    def _goaway(self) -> None:
        if self._goaway_sent or self._closed:
            return
        self._goaway_sent = True
        self._last_stream = self.codec.last_stream_id()
        # Open streams still finish after a graceful GOAWAY.
        self.codec.goaway(NO_ERROR, self._last_stream)
        self._flush()

    def _on_shutdown(self) -> None:
        self._goaway()
        if not self._streams:
            self._close_after_flush()

    def close_if_idle(self) -> None:
        """Called when shutdown begins: a connection with no open stream ends now."""
        if not self._streams:
            self._goaway()
            self._close_after_flush()

    def _close_after_flush(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
        self._flush()
        self._close()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.transport is not None:
                self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once."""
        if self.transport is not None:
            self.transport.abort()
        self._closed = True

    def _on_timeout(self) -> None:
        self._timer = None
        if self._closed:
            return
        timeout = self._opts.idle_timeout
        if self._streams:
            self._timer = self.loop.call_later(timeout, self._on_timeout)
            return
        idle = self.loop.time() - self._idle_since
        if idle >= timeout:
            log.debug("closing idle HTTP/2 connection from %s", self._peer())
            self._goaway()
            self._close_after_flush()
        else:
            self._timer = self.loop.call_later(timeout - idle, self._on_timeout)

    def _peer(self) -> object:
        return self.digest.socket.peer_addr if self.digest else None
