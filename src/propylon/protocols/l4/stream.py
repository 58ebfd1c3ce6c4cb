"""A byte stream over one accepted (or connected) socket, with flow control both ways.

``StreamProtocol`` is the asyncio protocol; ``Stream`` is what application code
holds. Reading: received bytes are buffered, and reading from the socket is paused
once more than ``high_water`` bytes wait unread (resumed below a quarter of it), so a
fast sender cannot fill our memory. Writing: ``write`` never blocks; ``drain`` waits
while the transport's send buffer is above its own high-water mark, so a slow reader
slows us down instead of growing the buffer. Both are one
``protocols.flow.FlowControl``.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Optional

from ..digest import Digest, SocketDigest, TlsDigest
from ..flow import DRAIN_LOST, FlowControl, wake

__all__ = ["Stream", "StreamProtocol", "DEFAULT_HIGH_WATER"]

DEFAULT_HIGH_WATER = 64 * 1024


class StreamProtocol(asyncio.Protocol):
    """Buffers incoming bytes for a :class:`Stream` and tracks write pressure.

    ``on_connected(stream)`` is called from ``connection_made`` with the new stream.
    """

    __slots__ = (
        "transport", "stream", "flow", "_on_connected", "_buf", "_eof", "_exc", "_lost",
        "_read_waiter", "_high", "_closed", "_half_close",
    )

    def __init__(self, on_connected: Optional[Callable[["Stream"], None]] = None,
                 high_water: int = DEFAULT_HIGH_WATER) -> None:
        self.transport: Optional[asyncio.Transport] = None
        self.stream: Optional[Stream] = None
        self._on_connected = on_connected
        self._buf = bytearray()
        self._eof = False
        self._exc: Optional[BaseException] = None
        self._lost = False
        self._read_waiter: Optional[asyncio.Future] = None
        self.flow: Optional[FlowControl] = None
        self._high = high_water
        self._closed: Optional[asyncio.Future] = None
        self._half_close = True

    # --- asyncio callbacks -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.flow = FlowControl(transport, self._high)  # resumes reading at a quarter of it
        # TLS transports cannot stay half-open (asyncio warns if we ask).
        self._half_close = transport.get_extra_info("ssl_object") is None
        self.stream = Stream(self, transport)  # type: ignore[arg-type]
        if self._on_connected is not None:
            self._on_connected(self.stream)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        self._wake_reader()
        self.flow.received(len(self._buf))  # type: ignore[union-attr]

    def eof_received(self) -> bool:
        self._eof = True
        self._wake_reader()
        # Keep the transport open: the app may still want to write after the peer
        # finished sending (half-close); it closes the stream itself.
        return True

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self._lost = True
        self._eof = True
        self._exc = exc
        self._wake_reader()
        self.flow.connection_lost()  # type: ignore[union-attr]
        wake(self._closed)

    def pause_writing(self) -> None:
        self.flow.pause_writing()  # type: ignore[union-attr]

    def resume_writing(self) -> None:
        self.flow.resume_writing()  # type: ignore[union-attr]

    # --- helpers for Stream ------------------------------------------------------
    def _wake_reader(self) -> None:
        wake(self._read_waiter)
        self._read_waiter = None


class Stream:
    """An accepted connection as seen by a stream application.

    ``read(n)`` returns up to ``n`` bytes, ``b""`` at end of stream, and raises
    ``ConnectionResetError`` if the connection broke. ``write`` queues bytes;
    ``drain`` waits until the send buffer is below its high-water mark;
    ``write_all`` does both. ``digest.socket`` holds the peer and local addresses,
    ``digest.tls`` the TLS facts when the connection is encrypted.
    """

    __slots__ = ("_p", "transport", "digest")

    def __init__(self, protocol: StreamProtocol, transport: asyncio.Transport) -> None:
        self._p = protocol
        self.transport = transport
        self.digest = Digest(SocketDigest.from_transport(transport), _tls_digest(transport))

    # --- reading -------------------------------------------------------------------
    async def read(self, n: int = 65536) -> bytes:
        """Up to ``n`` buffered or newly received bytes; ``b""`` once the peer is done."""
        p = self._p
        while not p._buf:
            if p._eof:
                if p._exc is not None:
                    raise ConnectionResetError(str(p._exc))
                return b""
            p._read_waiter = fut = asyncio.get_running_loop().create_future()
            await fut
        if n >= len(p._buf):
            data = bytes(p._buf)
            p._buf.clear()
        else:
            data = bytes(p._buf[:n])
            del p._buf[:n]
        p.flow.consumed(len(p._buf))  # type: ignore[union-attr]
        return data

    async def read_exact(self, n: int) -> bytes:
        """Exactly ``n`` bytes; raises ``asyncio.IncompleteReadError`` on an early end."""
        out = bytearray()
        while len(out) < n:
            chunk = await self.read(n - len(out))
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(out), n)
            out += chunk
        return bytes(out)

    def at_eof(self) -> bool:
        """True once the peer finished sending and every received byte was read."""
        return self._p._eof and not self._p._buf

    # --- writing -------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Queue ``data`` for sending (never blocks; call :meth:`drain` for back-pressure)."""
        if self._p._lost or self.transport.is_closing():
            raise ConnectionResetError("stream is closed")
        self.transport.write(data)

    async def drain(self) -> None:
        """Wait until the send buffer is below its high-water mark."""
        p = self._p
        if p._lost:
            if p._exc is not None:
                raise ConnectionResetError(str(p._exc))
            raise ConnectionResetError("connection lost")
        if await p.flow.drain() == DRAIN_LOST and p._exc is not None:  # type: ignore[union-attr]
            raise ConnectionResetError(str(p._exc))

    async def write_all(self, data: bytes) -> None:
        """Write ``data`` and wait for the send buffer to drain below its mark."""
        self.write(data)
        await self.drain()

    def write_eof(self) -> None:
        """Half-close: tell the peer we will send nothing more (no-op if unsupported)."""
        if self.transport.can_write_eof() and not self.transport.is_closing():
            self.transport.write_eof()

    # --- closing -------------------------------------------------------------------
    def close(self) -> None:
        """Close after the queued bytes are sent."""
        self.transport.close()

    def abort(self) -> None:
        """Close at once, discarding queued bytes (the peer sees a reset)."""
        self.transport.abort()

    def is_closing(self) -> bool:
        """True once the stream is closed or closing (writes would fail)."""
        return self._p._lost or self.transport.is_closing()

    async def wait_closed(self) -> None:
        """Wait until the connection is fully closed."""
        p = self._p
        if p._lost:
            return
        if p._closed is None:
            p._closed = asyncio.get_running_loop().create_future()
        await p._closed

    # --- facts ----------------------------------------------------------------------
    @property
    def peer_addr(self):
        """The peer's address: ``(host, port)`` for TCP, a path (or None) for Unix sockets."""
        return self.digest.socket.peer_addr

    @property
    def local_addr(self):
        """Our side's address: ``(host, port)`` for TCP, a path for Unix sockets."""
        return self.digest.socket.local_addr

    def __repr__(self) -> str:
        return f"<Stream peer={self.peer_addr!r} local={self.local_addr!r}>"


def _tls_digest(transport: asyncio.BaseTransport) -> Optional[TlsDigest]:
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    return TlsDigest(
        version=ssl_object.version(),
        cipher=cipher[0] if cipher else None,
        sni=getattr(ssl_object, "server_hostname", None),
        alpn=ssl_object.selected_alpn_protocol(),
        peer_cert=ssl_object.getpeercert() or None,
        peer_cert_der=ssl_object.getpeercert(binary_form=True),
    )
