"""What both sides of the HTTP/2 codec share: header mapping, and the per-stream
send and receive buffers with their flow control.

The codec (``codec``: libnghttp2 or the ``h2`` library) does the framing, HPACK and
the protocol state; this module keeps the two things the codec leaves to its user:

* **Sending** – the codec is given no more DATA than the peer's windows allow. A
  stream keeps what did not fit in its own small queue (``H2StreamBase._out``) and the
  connection sends it when a WINDOW_UPDATE arrives. A stream with queued bytes is
  *write blocked*: its writer awaits ``drain()``, so memory stays bounded by one
  window plus one piece per stream.
* **Receiving** – DATA is acknowledged (``Codec.acknowledge``) only when the
  application reads it, so the peer can never send more than the windows we granted:
  a slow reader back-pressures the sender.

Output is batched: whatever the streams produce during one turn of the event loop
leaves in one ``transport.write`` (``H2ConnBase.want_flush``).

The transport's own back-pressure (asyncio's ``pause_writing``/``resume_writing``,
pausing reads) is the connection's ``protocols.flow.FlowControl``, as on every
other transport. A stream's drain is wider than the transport's: it also waits for
the peer's stream and connection windows, and it must end as soon as that one
stream is reset even while the socket stays full. So a stream waits on a future of
its own, woken by the pump (its queue emptied), by ``FlowControl.on_writable`` (the
socket drained) or by its loss, rather than in ``FlowControl.drain``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Optional

from ...digest import Digest
from ...flow import DRAIN_TIMED_OUT, FlowControl, wake
from ..header import HeaderMap, named_by_connection
from .codec import INTERNAL_ERROR, Codec, CodecError

# RFC 9113 8.2.2: fields that describe one connection; an HTTP/2 message carrying
# them is malformed, so they are dropped when a message goes out.
CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"te")
)

# Flush early once this much DATA waits in the codec's output within one loop turn.
FLUSH_EARLY = 64 * 1024


def h2_fields(headers: HeaderMap, keep_te_trailers: bool = False,
              drop: frozenset = frozenset()) -> list[tuple[bytes, bytes]]:
    """``headers`` as lowercased HTTP/2 fields, without connection-specific ones.

    Fields named in ``Connection`` go too. ``te: trailers`` survives when
    ``keep_te_trailers`` (requests); ``drop`` names more fields to leave out.
    """
    items = headers.fields
    named: Optional[set] = None  # made only when a Connection field names some
    for lower, _, value in items:
        if lower == b"connection":
            if named is None:
                named = set()
            named |= named_by_connection(value)
    out = []
    for lower, _, value in items:
        if lower in CONNECTION_SPECIFIC or (named is not None and lower in named) or (drop and lower in drop):
            if keep_te_trailers and lower == b"te" and b"trailers" in value.lower():
                out.append((b"te", b"trailers"))
            continue
        out.append((lower, value))
    return out


def split_fields(fields: list, pseudo: Optional[dict] = None) -> tuple[int, list]:
    """One pass over received HTTP/2 fields: their size as SETTINGS_MAX_HEADER_LIST_SIZE
    counts it, and the regular fields as ``HeaderMap`` triples.

    Pseudo-headers are left out of the triples; those before the first regular field
    go into ``pseudo`` when it is given. Several ``cookie`` fields are joined into one
    with ``; `` (RFC 9113 8.2.3), as an HTTP/1 peer expects.
    """
    size = 0
    items = []
    cookies = None
    cookie_at = -1
    regular = False
    for name, value in fields:
        size += len(name) + len(value) + 32
        if name and name[0] == 58:  # b":" (compiled: a C read of the first byte)
            if pseudo is not None and not regular:
                pseudo[name] = value
            continue
        regular = True
        if name == b"cookie":
            if cookies is None:
                cookie_at = len(items)
                items.append((b"cookie", b"cookie", value))
                cookies = [value]
            else:
                cookies.append(value)
            continue
        items.append((name, name, value))
    if cookies is not None and len(cookies) > 1:
        items[cookie_at] = (b"cookie", b"cookie", b"; ".join(cookies))
    return size, items


def header_map(fields: list) -> HeaderMap:
    """Received HTTP/2 fields as a ``HeaderMap`` (see ``split_fields``)."""
    return HeaderMap(split_fields(fields)[1])


def fields_size(fields: list) -> int:
    """The size of a header list as SETTINGS_MAX_HEADER_LIST_SIZE counts it."""
    return split_fields(fields)[0]


class H2ConnBase:
    """Transport plumbing both protocol classes share (the base of both asyncio protocols).

    Public names here are the API of the two sides (``server``, ``client``) and
    of the streams: ``loop``, ``codec``, ``flow``, ``send_blocked``, ``want_flush()``.
    """

    # Set by the subclass: ``codec`` (a Codec), ``transport``, ``digest`` (a Digest).
    # When compiled, the fields are those of common.pxd.

    def _init_base(self) -> None:
        self.loop = asyncio.get_event_loop()
        self.transport = None
        self.digest = None
        self._closed = False
        # Made with the transport (``start_flow``); None before.
        self.flow: Optional[FlowControl] = None
        self._in_receive = False
        self._flush_handle: Optional[asyncio.Handle] = None
        self._unflushed = 0
        self._data_frames_sent = 0  # a client's PING and WINDOW_UPDATE allowances grow with it
        # Streams with DATA queued that the peer's windows do not admit yet.
        self.send_blocked: dict[int, "H2StreamBase"] = {}
        self._drain_waiting: set["H2StreamBase"] = set()

    def start_flow(self, transport: asyncio.Transport, high_water: int) -> None:
        """Set the transport's write limit and take over its back-pressure."""
        transport.set_write_buffer_limits(high_water)
        self.flow = flow = FlowControl(transport)
        flow.on_writable = self._on_writable

    # --- output -----------------------------------------------------------------
    def _flush(self) -> None:
        self._flush_handle = None
        self._unflushed = 0
        data = self.codec.data_to_send()
        if data and not self._closed and self.transport is not None:
            self.transport.write(data)
        if self.codec.terminated and not self._closed:
            self._on_terminated()

    def _on_terminated(self) -> None:
        """The codec ended the connection (a protocol error it answered with GOAWAY)."""

    def want_flush(self) -> None:
        """Flush at the end of this loop turn (or now, when much is waiting)."""
        if self._in_receive:
            return  # data_received flushes once when it is done
        if self._unflushed >= FLUSH_EARLY:
            if self._flush_handle is not None:
                self._flush_handle.cancel()
            self._flush()
        elif self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)

    # --- flow control of sending --------------------------------------------------
    def _pump(self, st: "H2StreamBase") -> None:
        """Send what the windows allow of ``st``'s queue, then its end if asked."""
        codec = self.codec
        sid = st.stream_id
        out = st._out
        try:
            while out:
                room = codec.send_window(sid)
                if room <= 0:
                    break
                piece = out[0]
                if len(piece) > room:
                    out[0] = piece[room:]
                    piece = piece[:room]
                else:
                    out.popleft()
                st._out_len -= len(piece)
                last = not out and st._end_asked and st._end_trailers is None
                codec.send_data(sid, piece, last)
                self._unflushed += len(piece)
                self._data_frames_sent += 1
                if last:
                    st._end_sent = True
                    st._on_end_sent()
            if not out and st._end_asked and not st._end_sent:
                st._end_sent = True
                if st._end_trailers:
                    codec.send_headers(sid, st._end_trailers, True)
                else:
                    codec.end_stream(sid)
                st._on_end_sent()
        except CodecError as exc:
            # The peer reset the stream (or the connection is going): nothing more
            # of this stream can leave.
            out.clear()
            st._out_len = 0
            st._end_sent = True
            st._on_send_failed(exc)
        if out:
            self.send_blocked[sid] = st
        else:
            self.send_blocked.pop(sid, None)
            wake(st._drain_waiter)
        self.want_flush()

    def _pump_all(self) -> None:
        """A window grew: give every blocked stream its turn, oldest first."""
        for st in list(self.send_blocked.values()):
            self._pump(st)

    # --- asyncio write flow control -----------------------------------------------------
    def pause_writing(self) -> None:
        """The socket buffer is full: every stream is write blocked."""
        self.flow.pause_writing()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        """The socket buffer drained (``_on_writable`` wakes the waiting streams)."""
        self.flow.resume_writing()  # type: ignore[union-attr]

    def _on_writable(self) -> None:
        for st in list(self._drain_waiting):
            if not st.write_blocked:
                wake(st._drain_waiter)

    def _lose_flow(self) -> None:
        """The connection is gone: no stream may wait for it any more."""
        if self.flow is not None:
            self.flow.connection_lost()
        for st in list(self._drain_waiting):
            wake(st._drain_waiter)


class H2StreamBase:
    """One stream's send queue and receive buffer. Subclassed by each side."""

    # ``conn``: the H2ConnBase the stream belongs to. When compiled, the fields are
    # those of common.pxd.

    def _init_stream(self, conn: H2ConnBase, stream_id: int) -> None:
        self.conn = conn
        self.stream_id = stream_id
        # sending
        self._out: deque[bytes] = deque()
        self._out_len = 0
        self._end_asked = False
        self._end_trailers: Optional[list] = None
        self._end_sent = False
        self._drain_waiter: Optional[asyncio.Future] = None
        # receiving
        self._chunks: deque[bytes] = deque()
        self._unacked = 0
        self._recv_done = False
        self._waiter: Optional[asyncio.Future] = None
        self._reset = False

    # --- sending ------------------------------------------------------------------
    def _queue(self, data: bytes) -> None:
        if self._end_asked or self._reset or self.conn._closed:
            return
        self._out.append(data)
        self._out_len += len(data)
        self.conn._pump(self)

    def _queue_end(self, trailers: Optional[list]) -> None:
        if self._end_asked or self._reset or self.conn._closed:
            return
        self._end_asked = True
        self._end_trailers = trailers or None
        self.conn._pump(self)

    def _on_send_failed(self, exc: BaseException) -> None:
        # Usually the peer reset the stream already; if not, tell it this stream
        # is dead rather than leave it waiting.
        self._reset = True
        self.conn.codec.reset_stream(self.stream_id, INTERNAL_ERROR)

    def _on_end_sent(self) -> None:
        """The END_STREAM flag went out (subclasses may free things then)."""

    @property
    def write_blocked(self) -> bool:
        """True when the peer reads slowly (its window or the socket is full): await ``drain()``."""
        if self._out_len > 0:
            return True
        flow = self.conn.flow
        return flow is not None and flow.write_paused

    def _wake_drain(self) -> None:
        wake(self._drain_waiter)

    async def _wait_drain(self, timeout: Optional[float]) -> bool:
        """Wait until the stream may write again; False when ``timeout`` seconds
        pass in one wait with nothing taken."""
        conn = self.conn
        loop = conn.loop
        while self.write_blocked and not self._reset and not conn._closed:
            self._drain_waiter = waiter = loop.create_future()
            conn._drain_waiting.add(self)
            # A timer rather than wait_for: no extra task per wait.
            timer = loop.call_later(timeout, wake, waiter, DRAIN_TIMED_OUT) if timeout is not None else None
            try:
                if await waiter == DRAIN_TIMED_OUT:
                    return False
            finally:
                if timer is not None:
                    timer.cancel()
                self._drain_waiter = None
                conn._drain_waiting.discard(self)
        return True

    # --- receiving ------------------------------------------------------------------
    def _feed(self, data: bytes, flow_len: int) -> None:
        if data:
            self._chunks.append(data)
            self._unacked += len(data)
        padding = flow_len - len(data)
        if padding > 0:
            # Padding is never read by anyone: give its window back at once.
            self.conn.codec.acknowledge(self.stream_id, padding)
        self.wake_reader()

    def _take(self) -> bytes:
        """Everything buffered, joined; its window goes back to the peer."""
        chunks = self._chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.ack_all()
        return data

    def ack_all(self) -> None:
        """Give the window of every byte received so far back to the peer."""
        n = self._unacked
        if n:
            self._unacked = 0
            conn = self.conn
            if not conn._closed:
                conn.codec.acknowledge(self.stream_id, n)
                conn.want_flush()

    def wake_reader(self) -> None:
        """Wake the task waiting for this stream's input (data, end, error)."""
        wake(self._waiter)
