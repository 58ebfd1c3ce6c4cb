"""Driving the codecs with bytes alone: an in-memory transport and the codec
constructors, written once so a change of signature is fixed in one place.

A codec is an asyncio protocol: it is handed a transport (``connection_made``),
fed bytes (``data_received``), told of the peer's EOF (``eof_received``) and of
the end (``connection_lost``); it answers by writing to the transport.
:class:`MemoryTransport` records what it writes and behaves like the event
loop's transports where the codecs can tell (a close is reported to the protocol
on the next loop iteration, reading can be paused, the write buffer has limits).
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Optional

import h2.config
import h2.connection
import h2.settings

from propylon.protocols.http.header import ResponseHeader
from propylon.protocols.http.v1.client import H1ClientConnection
from propylon.protocols.http.v1.server import H1ServerConnection, HttpServerOptions
from propylon.protocols.http.v2.client import H2ClientConnection
from propylon.protocols.http.v2.server import H2Options, H2ServerConnection
from propylon.shutdown import ShutdownWatch

#: Loop iterations ``settle`` allows: the codecs and the handlers in these tests
#: do no I/O of their own, so a few passes of the loop finish whatever was fed.
SETTLE_PASSES = 50


class MemoryTransport(asyncio.Transport):
    """A transport to nowhere: ``written`` holds every byte the protocol sent."""

    def __init__(self, protocol: Optional[asyncio.BaseProtocol] = None,
                 peer: tuple = ("127.0.0.1", 50000)) -> None:
        super().__init__()
        self.protocol = protocol
        self.written = bytearray()
        self.closed = False
        self.aborted = False
        self.reading = True
        self.write_limits: Optional[tuple] = None
        self._peer = peer

    # what the codecs call
    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.written += data

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._lost()

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def set_write_buffer_limits(self, high: Optional[int] = None, low: Optional[int] = None) -> None:
        self.write_limits = (high, low)

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self._peer, "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def _lost(self) -> None:
        # The loop reports a close to the protocol on its next iteration.
        if self.protocol is not None:
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    # what the tests call
    def take(self) -> bytes:
        """The bytes written since the last call."""
        out = bytes(self.written)
        self.written.clear()
        return out


async def settle(until: Callable[[], bool] = lambda: False) -> None:
    """Let the loop run until ``until()`` holds or :data:`SETTLE_PASSES` passes."""
    for _ in range(SETTLE_PASSES):
        if until():
            return
        await asyncio.sleep(0)


async def read_all(exchange: Any) -> bytes:
    """Every body byte ``exchange.read_body()`` gives, up to its end."""
    body = b""
    while (piece := await exchange.read_body()) is not None:
        body += piece
    return body


def answer(session: Any, status: int, body: bytes, length: Optional[int] = None) -> None:
    """Write a whole response on ``session``: the head (with ``Content-Length:
    length`` unless None), ``body`` and the end."""
    resp = ResponseHeader.build(status)
    if length is not None:
        resp.insert_header(b"Content-Length", str(length))
    session.write_header(resp)
    session.write_body(body)
    session.finish()


def connect(protocol: Any, **kwargs: Any) -> MemoryTransport:
    """Hand ``protocol`` a fresh :class:`MemoryTransport`."""
    transport = MemoryTransport(protocol, **kwargs)
    protocol.connection_made(transport)
    return transport


# --- the codecs -------------------------------------------------------------------------
Handler = Callable[[Any], Awaitable[bool]]


def h1_server(handler: Handler, options: Optional[HttpServerOptions] = None,
              shutdown: Optional[ShutdownWatch] = None) -> H1ServerConnection:
    """A downstream HTTP/1 connection that serves each request with ``handler``."""
    return H1ServerConnection(handler, shutdown or ShutdownWatch(), options or HttpServerOptions())


def h1_client() -> H1ClientConnection:
    """An upstream HTTP/1 connection."""
    return H1ClientConnection()


def h2_server(handler: Handler, options: Optional[H2Options] = None,
              shutdown: Optional[ShutdownWatch] = None) -> H2ServerConnection:
    """A downstream HTTP/2 connection that serves each stream with ``handler``."""
    return H2ServerConnection(handler, shutdown or ShutdownWatch(), options or H2Options())


def h2_client(max_streams: int = 100) -> H2ClientConnection:
    """An upstream HTTP/2 connection."""
    return H2ClientConnection(max_streams=max_streams)


class H2Peer:
    """The other end of an HTTP/2 codec, played by the ``h2`` library.

    ``client_side=True`` plays a client against our server codec, False an origin
    against our client codec. ``validate=False`` lets it send what a conforming
    peer would not (to see our codec refuse it).
    """

    def __init__(self, client_side: bool, validate: bool = True, **settings: int) -> None:
        cfg = h2.config.H2Configuration(client_side=client_side, header_encoding=None,
                                        validate_outbound_headers=validate,
                                        normalize_outbound_headers=validate)
        self.h2 = h2.connection.H2Connection(config=cfg)
        if settings:
            codes = {getattr(h2.settings.SettingCodes, name.upper()): value
                     for name, value in settings.items()}
            self.h2.local_settings = h2.settings.Settings(client=client_side, initial_values=codes)
        self.h2.initiate_connection()
        self.events: list = []

    def out(self) -> bytes:
        """Frames the peer has queued for us."""
        return self.h2.data_to_send()

    def hear(self, transport: "MemoryTransport") -> list:
        """Take what our codec wrote, feed it to the peer; the new events."""
        events = self.h2.receive_data(transport.take())
        self.events += events
        return events

    def of(self, kind: type, stream_id: Optional[int] = None) -> list:
        """The events of type ``kind`` seen so far (on ``stream_id`` if given)."""
        return [e for e in self.events if isinstance(e, kind)
                and (stream_id is None or getattr(e, "stream_id", None) == stream_id)]
