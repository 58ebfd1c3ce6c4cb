"""The downstream side of HTTP/1.x: one protocol object per client connection.

Theory of operation
-------------------
``H1ServerConnection`` is an asyncio protocol fed by the event loop and parsed with
httptools (llhttp). Each request head that completes becomes an
``H1ServerSession``: the request header, its body as it arrives, and the writer of
its response. One task per connection (``_run``) takes sessions in order and hands
them to the application's handler, so a request costs no task of its own.

Flow control (one ``protocols.flow.FlowControl`` per connection): body bytes wait
in the session until the application reads them; above ``HIGH_WATER`` buffered
bytes the socket stops being read. A pipelined request that arrives while another
is being answered also pauses reading, so a client cannot make us queue requests
without bound. Writes go straight to the transport; when the transport says its
buffer is full, ``drain()`` waits.

Hop-by-hop fields (RFC 9110 7.6.1) are set aside as the head arrives: the request
the application sees carries only end-to-end fields (``Upgrade`` and
``Connection`` stay on an upgrade request, ``TE: trailers`` stays), just as the
upstream side hands over clean response heads.

The session and the connection talk through a small public API: the session
writes with ``write``, waits with ``drain``, asks to ``pause_reading`` /
``resume_reading``; the connection feeds it with ``feed_body``, ``end_body`` and
``fail_body``.

Strictness: llhttp already refuses Content-Length with Transfer-Encoding,
duplicate Content-Length, bad chunk sizes, obs-fold, NUL and bare CR. We add
limits on the request line (414) and the header block (431), refuse transfer
codings other than plain ``chunked`` (501) and ``Transfer-Encoding`` on
HTTP/1.0 (400). Every refusal answers once and closes the connection; nothing from
a refused message reaches the application.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import termios
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional

import httptools

from ....errors import Error, ErrorType
from ...digest import Digest, SocketDigest
from ...flow import DRAIN_TIMED_OUT, FlowControl, wake
from ...tls.settings import tls_digest
from ..header import HeaderMap, RequestHeader
from ..small_response import small_response
from .common import HIGH_WATER, HOP_BY_HOP, LOW_WATER, WRITE_HIGH_WATER, is_chunked_only, strip_hop_by_hop
from .idle import BUSY_LOOK, idle_wheel
from .refusal import log_refusal
from .server_session import H1ServerSession

log = logging.getLogger("propylon.http.v1")

__all__ = ["HttpServerOptions", "H1ServerConnection"]


@dataclass(slots=True)
class HttpServerOptions:
    """Limits and timeouts of the downstream HTTP/1 side.

    * ``max_request_line``: longest request target in bytes (longer: 414).
    * ``max_header_bytes``: largest header block, names and values (larger: 431).
    * ``header_read_timeout``: seconds a new connection may take to send its first
      request head, and any request its head (slow clients are closed).
    * ``keepalive_timeout``: seconds an idle keep-alive connection is kept.
    * ``keepalive_request_limit``: requests served on one connection (None: no limit).
    * ``body_read_timeout``: seconds the request body may stall before the request
      is answered 408 (nginx's ``client_body_timeout``).
    * ``write_timeout``: seconds a client may leave response bytes unread before the
      connection is dropped (nginx's ``send_timeout``).
    * ``h2c``: accept HTTP/2 with prior knowledge on cleartext listeners (TLS
      listeners offer HTTP/2 through ALPN when their settings ``enable_h2()``).
    * ``allow_connect_method_proxying``: let ``CONNECT`` requests reach the proxy's
      hooks (Pingora's option of the same name). Off by default: a ``CONNECT`` is
      answered 405 and the connection closed.
    """

    max_request_line: int = 8192
    max_header_bytes: int = 64 * 1024
    header_read_timeout: float = 60.0
    keepalive_timeout: float = 60.0
    keepalive_request_limit: Optional[int] = None
    body_read_timeout: float = 60.0
    write_timeout: float = 60.0
    h2c: bool = False
    allow_connect_method_proxying: bool = False


class _Refuse(Exception):
    """Raised inside parser callbacks to refuse a request with a status; ``phase``
    and ``where`` (the offending field) go to the log line saying why."""

    def __init__(self, status: int, reason: str, phase: str = "header", where: Optional[str] = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.phase = phase
        self.where = where


_VERSIONS = {"1.1": (1, 1), "1.0": (1, 0), "0.9": (0, 9)}
_NOTED = frozenset((b"host", b"transfer-encoding", b"content-length", b"expect")) | HOP_BY_HOP


def _block_size(fields: list) -> int:
    """Bytes of a header block as sent: each field's name, value, ": " and CRLF."""
    size = 0
    for _, name, value in fields:
        size += len(name) + len(value) + 4
    return size


def _largest_field(fields: list) -> str:
    """The largest field of a header block too large, for the log line saying why."""
    _, name, value = max(fields, key=lambda f: len(f[1]) + len(f[2]))
    return (f"{len(fields)} fields; the largest {name[:40].decode('latin-1')!r} "
            f"of {len(name) + len(value)} bytes")


def _discard(data: bytes) -> None:
    return None


#: During shutdown, a connection idle for less than this may still have a request
#: on its way (a busy client sends the next one as soon as it has an answer): it
#: is given this long before it is closed, and such a request is answered.
LAST_CALL = 0.1


def _unread(transport) -> int:
    """Bytes waiting in the socket's receive buffer, not yet read by the loop."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, ValueError):
        return 0
    return int.from_bytes(buf, "little")


Handler = Callable[[H1ServerSession], Awaitable[bool]]


class H1ServerConnection:
    """One downstream HTTP/1 connection. See the module docstring."""

    # Slots: thousands of these may sit idle at once (the compiled build declares
    # the same fields in server.pxd).
    __slots__ = (
        "_handler", "shutdown", "options", "_tracker", "loop", "_wheel", "flow", "transport", "_digest",
        "_accepted", "_parser", "_ready", "_last", "_parsing", "_url", "_hdrs", "_max_header_bytes",
        "_max_request_line", "_first_version", "_wheel_key", "_idle_since", "closed", "_active",
        "_tunnel", "_tunnel_eof", "_raw", "_raw_len", "_upgrade_body_left", "requests_left",
        "_h2_factory", "_switched", "requests_served", "_task", "_waiter", "_ended_line", "__weakref__",
    )

    def __init__(self, handler: Handler, shutdown, options: HttpServerOptions,
                 tracker: Optional[set] = None,
                 h2_factory: Optional[Callable[[], asyncio.Protocol]] = None) -> None:
        self._handler = handler
        self.shutdown = shutdown
        self.options = options
        self._tracker = tracker
        self.loop = loop = asyncio.get_event_loop()
        self._wheel = idle_wheel(loop)
        self.flow: Optional[FlowControl] = None
        self.transport: Optional[asyncio.Transport] = None
        self._digest: Optional[Digest] = None  # made when first asked for
        self._accepted = 0.0
        # The parser (~0.9 KB with its callbacks) is made when the first bytes come
        # (a connection opened ahead of use holds none) and dropped while the
        # connection is parked between whole requests.
        self._parser: Optional[httptools.HttpRequestParser] = None
        # Whether the last read ended with b"\n". A read that ends a message may
        # also hold the first bytes of the next one; while those are only part of
        # a method, llhttp keeps them in its state and tells us nothing. A read
        # ending with a line feed cannot end inside a method, so only then may a
        # parked connection drop its parser.
        self._ended_line = False
        # Lists are made when first needed: an idle connection holds none.
        self._ready: Optional[list] = None  # pipelined requests waiting their turn (a few at most)
        # The request whose head came last, until its response is done (an upgrade
        # request's body and tunnel bytes are routed to it).
        self._last: Optional[H1ServerSession] = None
        self._parsing: Optional[H1ServerSession] = None
        self._url = b""
        self._hdrs: Optional[list] = None
        self._max_header_bytes = options.max_header_bytes
        self._max_request_line = options.max_request_line
        self._first_version: Optional[tuple] = None
        self._wheel_key = -1  # the slot of the loop's IdleWheel it is registered in (-1: none)
        self._idle_since = 0.0
        self.closed = False
        self._active: Optional[H1ServerSession] = None
        # While set, received bytes go here instead of the parser (h2c sniffing,
        # an upgraded connection, a refused one).
        self._tunnel: Optional[Callable[[bytes], None]] = None
        self._tunnel_eof: Optional[Callable[[], None]] = None
        self._raw: Optional[list] = None  # bytes after an upgrade head, until the tunnel takes over
        self._raw_len = 0
        self._upgrade_body_left = 0  # Content-Length body of an upgrade request still to come
        self.requests_left = options.keepalive_request_limit  # None: no limit
        self._h2_factory = h2_factory
        self._switched = False
        self.requests_served = 0
        # The task serving requests. Between requests it waits on ``_waiter`` for the
        # next head; a connection still idle at the next tick of the IdleWheel lets
        # it end ("parks"), and the next request head starts another.
        self._task: Optional[asyncio.Task] = None
        self._waiter: Optional[asyncio.Future] = None

    @property
    def shutting_down(self) -> bool:
        return self.shutdown.triggered

    # --- asyncio protocol -----------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self.transport = transport
        transport.set_write_buffer_limits(WRITE_HIGH_WATER)
        self.flow = FlowControl(transport, HIGH_WATER, LOW_WATER)
        self._accepted = time.time()
        if self._h2_factory is not None:
            sslobj = transport.get_extra_info("ssl_object")
            if sslobj is not None and sslobj.selected_alpn_protocol() == "h2":
                self._become_h2(b"")  # ALPN chose HTTP/2 during the handshake
                return
            if sslobj is None and self.options.h2c:
                self._tunnel = self._sniff_preface
        if self._tracker is not None:
            self._tracker.add(self)
        self._became_idle()

    @property
    def digest(self) -> Optional[Digest]:
        """Addresses and TLS facts of the connection, gathered on first use."""
        d = self._digest
        if d is None and self.transport is not None:
            t = self.transport
            d = self._digest = Digest(SocketDigest.from_transport(t), tls_digest(t), self._accepted)
        return d

    def _sniff_preface(self, data: bytes) -> None:
        # The first bytes of a cleartext connection: HTTP/2 with prior knowledge
        # starts with its preface ("PRI * HTTP/2.0..."), anything else is HTTP/1.
        self._tunnel = None
        if data.startswith(b"PRI "):
            self._switched = True
            if self._tracker is not None:
                self._tracker.discard(self)
            self._leave_wheel()
            self._become_h2(data)
        else:
            self.data_received(data)

    def _become_h2(self, data: bytes) -> None:
        proto = self._h2_factory()  # type: ignore[misc]
        self._switched = True
        self.transport.set_protocol(proto)  # type: ignore[union-attr]
        proto.connection_made(self.transport)
        if data:
            proto.data_received(data)

    def data_received(self, data: bytes) -> None:
        if self._tunnel is not None:
            self._tunnel(data)
            return
        fresh = self._parsing is None and not self._url and not self._hdrs
        if fresh:
            # A read that starts a request usually holds its whole request line: its
            # version is read here rather than formatted by the parser per request.
            end = data.find(b"\r\n", 0, self._max_request_line + 32)
            self._first_version = (1, 1) if end > 0 and data.endswith(b" HTTP/1.1", 0, end) else None
        parser = self._parser
        if parser is None:
            self._parser = parser = httptools.HttpRequestParser(self)
        self._ended_line = data[-1] == 10
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._on_upgrade(data, exc)
        except _Refuse as r:
            self._refuse(r.status, r.reason, r.phase, r.where)
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refuse):
                self._refuse(cause.status, cause.reason, cause.phase, cause.where)
            else:
                # llhttp does not say where: the log line looks for it in this read.
                self._refuse(400, str(exc) or "malformed request", data=data, fresh=fresh)
        else:
            # A head (or trailer block) still incomplete after a read is measured
            # here, so it cannot grow by more than one read past the limit.
            hdrs = self._hdrs
            if hdrs and _block_size(hdrs) > self._max_header_bytes:
                self._refuse(431, "request header fields too large", where=_largest_field(hdrs))

    def eof_received(self) -> Optional[bool]:
        if self._tunnel_eof is not None:
            self._tunnel_eof()
            return True
        # Like nginx, a client that closes its side has given up on the request:
        # the connection ends and a request being proxied is aborted upstream.
        p = self._parsing
        if p is not None and not p.body_received:
            p.fail_body(Error.new_down(ErrorType.CONNECTION_CLOSED, "client closed the connection mid-body"))
        if self._task is None:
            self.close()  # parked: nothing left to answer
        else:
            wake(self._waiter)
        return None

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.closed = True
        self.flow.connection_lost()  # type: ignore[union-attr]
        active = self._active
        if active is not None and active.on_lost is not None:
            active.on_lost()
        if self._tracker is not None:
            self._tracker.discard(self)
        self._leave_wheel()
        if self._tunnel_eof is not None:
            self._tunnel_eof()
        for s in (self._parsing, self._active):
            if s is not None and not s.body_received:
                s.fail_body(Error.new_down(ErrorType.CONNECTION_CLOSED, "client went away"))
        wake(self._waiter)

    def pause_writing(self) -> None:
        self.flow.pause_writing()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        self.flow.resume_writing()  # type: ignore[union-attr]

    # --- parser callbacks -------------------------------------------------------
    # No on_message_begin: per-message state is reset when a message completes
    # (one parser callback fewer for every request).
    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._max_request_line:
            raise _Refuse(414, "request target too long", "request line",
                          f"a request target of more than {self._max_request_line} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        # After the head, fields are trailers (on_headers_complete took the head's list).
        hdrs = self._hdrs
        if hdrs is None:
            self._hdrs = hdrs = []
        hdrs.append((name.lower(), name, value))

    def on_headers_complete(self) -> None:
        hdrs = self._hdrs
        if hdrs is None:
            hdrs = []
        elif _block_size(hdrs) > self._max_header_bytes:
            raise _Refuse(431, "request header fields too large", where=_largest_field(hdrs))
        self._hdrs = None  # the trailers, if any, go to a list of their own
        parser = self._parser
        method = parser.get_method()
        version = self._first_version
        if version is None:
            version = _VERSIONS.get(parser.get_http_version(), (1, 1))
        else:
            self._first_version = None  # only the first request of that read
        sess = H1ServerSession(self, RequestHeader(method, self._url, version, HeaderMap(hdrs)),
                               parser.should_keep_alive())
        self._check_framing(sess, hdrs, version, method)
        self._parsing = sess
        self._last = sess
        w = self._waiter
        if w is not None and not self._ready and not w.done():
            w.set_result(sess)
        elif self._task is None:
            # Parked: a new task serves it; the wheel looks at the connection again
            # at its next tick (to park it again if it became idle).
            self._task = self.loop.create_task(self._run(sess))
            self._leave_wheel()
            self._wheel_key = self._wheel.add(self, self.loop.time())
        else:
            # A pipelined request: hold it, and read no further until its turn.
            ready = self._ready
            if ready is None:
                self._ready = ready = []
            ready.append(sess)
            self.flow.pause_reading()  # type: ignore[union-attr]

    def _check_framing(self, sess: H1ServerSession, hdrs: list, version: tuple, method: bytes) -> None:
        if method == b"CONNECT" and not self.options.allow_connect_method_proxying:
            raise _Refuse(405, "CONNECT is not supported", "request line", "the method CONNECT")
        hosts = 0
        te = cl = expect = None
        hop = False
        for lower, _, value in hdrs:
            if lower not in _NOTED:
                continue
            if lower == b"host":
                hosts += 1
            elif lower == b"content-length":
                cl = value
            elif lower == b"transfer-encoding":
                te = value
                hop = True
            elif lower == b"expect":
                expect = value
            else:
                hop = True
        if hosts != 1 and version >= (1, 1):
            raise _Refuse(400, "exactly one Host header is required", where=f"{hosts} Host fields")
        if te is not None:
            if version < (1, 1):
                raise _Refuse(400, "Transfer-Encoding in an HTTP/1.0 request", where="the field 'transfer-encoding'")
            if not is_chunked_only(te):
                raise _Refuse(501, "unsupported transfer coding", where=f"transfer-encoding: {te[:40]!r}")
            sess.has_body = True
        elif cl is not None and cl.strip() != b"0":
            sess.has_body = True
        if expect is not None and sess.has_body and expect.lower() == b"100-continue":
            sess.expect_continue = True
        if self._parser.should_upgrade():
            sess.upgrade = True
            if sess.has_body:
                # llhttp hands everything after an upgrade head over as the new
                # protocol: the body is split off here (see _upgrade_data).
                if te is not None:
                    raise _Refuse(400, "chunked body on an upgrade request", where="the field 'transfer-encoding'")
                self._upgrade_body_left = int(cl)  # type: ignore[arg-type]
        if hop:
            # Set aside on arrival: what the application sees is end to end.
            strip_hop_by_hop(sess.req.headers, keep_upgrade=sess.upgrade)

    def on_body(self, body: bytes) -> None:
        self._parsing.feed_body(body)  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        p = self._parsing
        if p is not None:
            if self._hdrs:
                p.trailers = HeaderMap(self._hdrs)
            self._hdrs = None
            if not self._upgrade_body_left:  # else _upgrade_data ends it
                p.end_body()
        self._parsing = None
        self._url = b""

    # --- errors and upgrades --------------------------------------------------
    def _on_upgrade(self, data: bytes, exc: Exception) -> None:
        sess = self._last
        if sess is None or not sess.upgrade:
            self._refuse(400, "unexpected protocol switch", where="an Upgrade the request did not announce")
            return
        # The rest of the buffer belongs to the new protocol (after a 101).
        offset = exc.args[0] if exc.args and isinstance(exc.args[0], int) else len(data)
        rest = data[offset:]
        self._parsing = None
        self._tunnel = self._upgrade_data  # held until the engine takes over
        if rest:
            self._upgrade_data(rest)

    def _upgrade_data(self, data: bytes) -> None:
        # After an upgrade head: first its Content-Length body, then the new protocol.
        left = self._upgrade_body_left
        if left:
            sess = self._last
            body = data[:left]
            self._upgrade_body_left = left - len(body)
            sess.feed_body(body)  # type: ignore[union-attr]
            if not self._upgrade_body_left:
                sess.end_body()  # type: ignore[union-attr]
            data = data[len(body):]
        if data:
            if self._raw is None:
                self._raw = []
            self._raw.append(data)  # type: ignore[union-attr]
            self._raw_len += len(data)
            self.flow.received(self._raw_len)  # type: ignore[union-attr]

    def _refuse(self, status: int, reason: str, phase: Optional[str] = None, where: Optional[str] = None,
                data: bytes = b"", fresh: bool = False) -> None:
        sess = self._parsing
        if phase is None:
            # What the connection knows; the log line makes "head" precise.
            phase = "head" if sess is None else ("trailers" if self._hdrs else "body")
        log_refusal(self.loop, status, reason, self._peer(), phase, where, data, fresh)
        self._parsing = None
        # Nothing after a malformed message can be trusted: read no more of it.
        self._tunnel = _discard
        if sess is not None:
            # The head was fine but its body is not: the handler sees a read error
            # and answers through fail_to_proxy (a downstream error: 400).
            sess.fail_body(Error.new_down(ErrorType.INVALID_HTTP_HEADER, reason))
        if self._task is not None and (self._waiter is None or self._waiter.done()):
            return  # the request being served ends the connection when it is done
        self.write(small_response(status, f"{reason}\n".encode(), extra=((b"Connection", b"close"),)))
        self.close()

    def _peer(self) -> object:
        return self.digest.socket.peer_addr if self.digest else None

    # --- the session's side: writing, waiting, reading pace -------------------------
    def write(self, data: bytes) -> None:
        """Queue bytes for the client (dropped once the connection is closed)."""
        if not self.closed:
            self.transport.write(data)  # type: ignore[union-attr]

    async def drain(self, timeout: Optional[float]) -> None:
        """Wait while the client reads slowly; after ``timeout`` seconds without
        progress the client is dropped, like nginx's ``send_timeout``."""
        if not self.closed and self.flow.write_paused:  # type: ignore[union-attr]
            if await self.flow.drain(timeout) == DRAIN_TIMED_OUT:  # type: ignore[union-attr]
                log.info("client %s read nothing for %ss; closing", self._peer(), timeout)
                self.abort()
        if self.closed:
            raise Error.new_down(ErrorType.WRITE_ERROR, "client went away")

    def pause_reading(self) -> None:
        self.flow.pause_reading()  # type: ignore[union-attr]

    def resume_reading(self) -> None:
        """Read again, unless the request being served still holds more than the low
        mark of unread body or a pipelined request waits for its turn."""
        flow = self.flow
        if flow.read_paused and not self.closed:  # type: ignore[union-attr]
            a = self._active
            if a is not None and a.buffered > LOW_WATER:
                return
            if self._ready and a is not None:
                return
            flow.resume_reading()  # type: ignore[union-attr]

    # --- the tunnel's side (after a 101) ----------------------------------------------
    def into_tunnel(self, on_data: Callable[[bytes], None], on_eof: Callable[[], None],
                    on_writable: Callable[[], object]) -> bytes:
        """Hand the connection's bytes over to a tunnel: from now on received bytes go
        to ``on_data``, the end of the connection to ``on_eof``, and ``on_writable``
        runs when the client took the bytes it was slow to take. Returns the bytes
        that already arrived after the upgrade request."""
        pending = b"".join(self._raw) if self._raw is not None else b""
        self._raw = None
        self._raw_len = 0
        self._tunnel = on_data
        self._tunnel_eof = on_eof
        self.flow.on_writable = on_writable  # type: ignore[union-attr]
        if self.closed:
            on_eof()
        else:
            self.flow.resume_reading()  # type: ignore[union-attr]
        return pending

    def send(self, data: bytes) -> bool:
        """A tunnel write; True when the client reads slowly (pause the other side)."""
        if self.closed:
            return False
        self.transport.write(data)  # type: ignore[union-attr]
        return self.flow.write_paused  # type: ignore[union-attr]

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.transport.close()  # type: ignore[union-attr]
        wake(self._waiter)

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
        self.closed = True

    # --- idleness, shutdown and the request loop ----------------------------------------
    def _idle_timeout(self) -> float:
        opts = self.options
        return opts.keepalive_timeout if self.requests_served else opts.header_read_timeout

    def _became_idle(self) -> None:
        self._idle_since = now = self.loop.time()
        if self._wheel_key < 0:
            # Registered once, for the wheel's next tick; a busy connection stays
            # registered and is looked at once per BUSY_LOOK (see idle.py).
            self._wheel_key = self._wheel.add(self, now)

    def _leave_wheel(self) -> None:
        if self._wheel_key >= 0:
            self._wheel.discard(self, self._wheel_key)
            self._wheel_key = -1

    def idle_deadline_passed(self) -> None:
        """The loop's IdleWheel calls this when the connection's slot comes (it has
        dropped the connection). Busy: look again in ``BUSY_LOOK`` seconds. Idle: end the
        waiting task (the next head starts another), and close the connection once
        it stayed idle (or slow to send a head) for its timeout."""
        self._wheel_key = -1
        if self.closed or self._switched:
            return
        now = self.loop.time()
        if self._task is not None and self._waiter is None:
            when = now + BUSY_LOOK  # serving a request: no idle timeout meanwhile
        else:
            timeout = self._idle_timeout()
            if now - self._idle_since >= timeout:
                log.debug("closing idle or slow connection from %s", self._peer())
                self.close()
                return
            wake(self._waiter, _PARK)
            when = self._idle_since + timeout
        self._wheel_key = self._wheel.add(self, when)

    def input_pending(self) -> bool:
        """True when bytes of another request already arrived: parsed (a pipelined
        request, a head being read) or still in the socket's receive buffer."""
        p = self._parsing
        return bool(self._ready or (p is not None and p is not self._active) or self._url or self._hdrs
                    or (self.transport is not None and not self.closed and _unread(self.transport)))

    def close_if_idle(self) -> None:
        """Called when shutdown begins and while it drains: a connection with nothing
        to answer ends now. Requests whose bytes already arrived are answered first
        (the last answer says ``Connection: close``), and a connection that became
        idle less than ``LAST_CALL`` seconds ago gets that long for a request
        already on its way."""
        if self.closed or self._switched or (self._task is not None and self._waiter is None):
            return
        if self.input_pending():
            return
        left = LAST_CALL - (self.loop.time() - self._idle_since)
        if left > 0:
            # Looked at again by itself, so shutdown closes it even when nobody
            # polls (a service stopped without draining).
            self.loop.call_later(left, self.close_if_idle)
            return
        self.close()

    async def _run(self, sess: H1ServerSession) -> None:
        """Serve ``sess`` and the requests that follow, until the connection ends or
        the task is parked (see ``idle_deadline_passed``)."""
        handler = self._handler
        loop = self.loop
        close = True
        try:
            while True:
                self._active = sess
                if self.requests_left is not None:
                    self.requests_left -= 1
                try:
                    keep = await handler(sess)
                except Exception:  # a bug in the engine: never leave the client hanging
                    log.exception("unhandled error while serving %s", self._peer())
                    keep = False
                self.requests_served += 1
                self._active = None
                if self._last is sess:
                    self._last = None  # done: an idle connection keeps no request
                if not keep or self.closed or self._tunnel is _discard:
                    break
                if self.flow.read_paused:  # type: ignore[union-attr]
                    self.resume_reading()
                ready = self._ready
                if ready:
                    sess = ready.pop(0)
                    continue
                if self.shutdown.triggered and not self.input_pending():
                    break
                self._became_idle()
                # Waiting, the task keeps nothing of the request it answered (its
                # session holds both heads and its buffers).
                sess = None
                self._waiter = waiter = loop.create_future()
                try:
                    got = await waiter
                finally:
                    self._waiter = None
                if got is None:
                    break
                if got is _PARK:
                    if self._ready:  # a head completed after the wheel parked us
                        sess = self._ready.pop(0)
                        continue
                    if self._ended_line and self._parsing is None and not self._url and not self._hdrs:
                        self._parser = None  # between whole requests: no parser state to keep
                    close = False
                    break
                sess = got
        finally:
            self._active = None
            self._task = None
            if close and not self._switched:
                self.close()


#: What a parked connection's waiter receives (see ``idle_deadline_passed``).
_PARK = object()
