"""Listening services: endpoints bound to a :class:`~propylon.apps.ListeningApp`."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..protocols.digest import SocketAddr
from ..server.shutdown import ShutdownWatch
from .listeners import Listener, TcpSocketOptions, describe_socket

if TYPE_CHECKING:  # apps.base imports the server package; avoid a cycle at import time
    from ..apps.base import ListeningApp

__all__ = ["Service", "ConnectionFilter"]

log = logging.getLogger(__name__)

ConnectionFilter = Callable[[Optional[SocketAddr]], bool]
_LINGER_RESET = struct.pack("ii", 1, 0)


class Service:
    """A named set of listening endpoints served by one app (Pingora's listening ``Service``).

    ``add_tcp("127.0.0.1:6142")``, ``add_uds("/tmp/app.sock", perms=0o660)`` and
    ``add_tls_context("0.0.0.0:6443", ctx)`` add endpoints; the server binds them
    (or takes them over during a graceful upgrade) and, in each worker process,
    accepts connections for ``app``. ``set_connection_filter(fn)`` decides at
    accept time, before any byte is read, whether a peer is served at all.
    """

    def __init__(self, name: str, app: "ListeningApp") -> None:
        self.name = name
        self.app = app
        self.listeners: list[Listener] = []
        self.connection_filter: Optional[ConnectionFilter] = None
        self._servers: list[asyncio.AbstractServer] = []

    # --- configuration ---------------------------------------------------------------
    def add_tcp(self, addr: str, opts: Optional[TcpSocketOptions] = None) -> None:
        """Listen on ``"host:port"`` (``"[::1]:6142"`` for IPv6); ``opts`` tunes the socket."""
        self.listeners.append(Listener.tcp(addr, opts))

    def add_uds(self, path: str, perms: Optional[int] = None) -> None:
        """Listen on a Unix socket at ``path``; ``perms`` (e.g. ``0o660``) sets its file mode."""
        self.listeners.append(Listener.uds(path, perms))

    def add_tls_context(self, addr: str, context: ssl.SSLContext,
                        opts: Optional[TcpSocketOptions] = None) -> None:
        """Listen on ``addr`` with TLS: connections are handshaken with ``context``
        before the app sees them."""
        self.listeners.append(Listener.tcp(addr, opts, ssl_context=context))

    def add_listener(self, listener: Listener) -> None:
        """Add a prepared :class:`Listener` (for endpoint kinds built elsewhere)."""
        self.listeners.append(listener)

    def set_connection_filter(self, fn: Optional[ConnectionFilter]) -> None:
        """Serve only peers for which ``fn(peer_addr)`` is true (None removes the filter).

        ``peer_addr`` is ``(host, port)`` for TCP and a path or None for Unix
        sockets. A refused connection is reset at once and never reaches the app;
        for TLS endpoints the decision is made before the handshake.
        """
        self.connection_filter = fn

    # --- runtime, called by the server in each worker ---------------------------------
    async def start_serving(self, bound: list[tuple[Listener, socket.socket]],
                            shutdown: ShutdownWatch) -> None:
        """Start accepting on the given bound sockets in the running event loop."""
        loop = asyncio.get_running_loop()
        factory = self.app.protocol_factory(shutdown)
        for listener, sock in bound:
            ctx = listener.ssl_context
            if self.connection_filter is not None:
                proto_factory = _gate_factory(self.connection_filter, factory, ctx)
                ctx = None  # the gate starts TLS itself, after the filter said yes
            else:
                proto_factory = factory
            if sock.family == socket.AF_UNIX:
                server = await loop.create_unix_server(proto_factory, sock=sock, ssl=ctx,
                                                       backlog=listener.backlog)
            else:
                server = await loop.create_server(proto_factory, sock=sock, ssl=ctx,
                                                  backlog=listener.backlog)
            self._servers.append(server)
            log.info("%s: listening on %s", self.name, describe_socket(sock))

    def stop_accepting(self) -> None:
        """Stop accepting new connections; connections being served go on."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()

    async def wait_drained(self) -> None:
        """Wait until the app serves no connection."""
        await self.app.wait_drained()

    def __repr__(self) -> str:
        return f"<Service {self.name!r} {[l.key for l in self.listeners]}>"


def _gate_factory(accept: ConnectionFilter, factory: Callable[[], Any],
                  ctx: Optional[ssl.SSLContext]) -> Callable[[], asyncio.Protocol]:
    return lambda: _FilterGate(accept, factory, ctx)


class _FilterGate(asyncio.Protocol):
    """Asks the connection filter before the app's protocol is even created."""

    __slots__ = ("_accept", "_factory", "_ctx")

    def __init__(self, accept: ConnectionFilter, factory: Callable[[], Any],
                 ctx: Optional[ssl.SSLContext]) -> None:
        self._accept = accept
        self._factory = factory
        self._ctx = ctx

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        if isinstance(peer, (tuple, list)):
            peer = (peer[0], peer[1])
        elif not peer:
            peer = None
        try:
            allowed = bool(self._accept(peer))
        except Exception:
            log.exception("connection filter failed for %s; refusing the connection", peer)
            allowed = False
        if not allowed:
            log.debug("connection from %s refused by the connection filter", peer)
            _reset(transport)
            return
        if self._ctx is None:
            _hand_over(transport, self._factory())
        else:
            asyncio.get_running_loop().create_task(self._start_tls(transport))

    async def _start_tls(self, transport: asyncio.BaseTransport) -> None:
        loop = asyncio.get_running_loop()
        try:
            tls = await loop.start_tls(transport, self, self._ctx, server_side=True)  # type: ignore[arg-type]
        except (OSError, ssl.SSLError, asyncio.TimeoutError, ConnectionError) as e:
            log.debug("TLS handshake failed: %s", e)
            transport.abort()
            return
        if tls is None:  # closed during the handshake
            return
        _hand_over(tls, self._factory())

    def data_received(self, data: bytes) -> None:
        # Only reachable if the peer sends before the TLS handover completes.
        pass

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        pass


def _hand_over(transport: asyncio.BaseTransport, protocol: asyncio.BaseProtocol) -> None:
    transport.set_protocol(protocol)
    protocol.connection_made(transport)


def _reset(transport: asyncio.BaseTransport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family != socket.AF_UNIX:
        try:
            # Linger 0 turns the close into a RST: the peer learns at once.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError:
            pass
    transport.abort()
