"""Listening services: endpoints bound to a :class:`~propylon.apps.ListeningApp`."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
from typing import Any, Callable, Optional

from ..apps.base import ListeningApp
from ..protocols.digest import SocketAddr
from ..protocols.tls import TlsSettings
from ..shutdown import ShutdownWatch
from .listeners import Listener, TcpSocketOptions, describe_socket

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

    def __init__(self, name: str, app: ListeningApp) -> None:
        self.name = name
        self.app = app
        self.listeners: list[Listener] = []
        self.connection_filter: Optional[ConnectionFilter] = None
        self._servers: list[asyncio.AbstractServer] = []
        self._endpoints: list[str] = []

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

    def add_tls(self, addr: str, cert_file: str, key_file: str,
                opts: Optional[TcpSocketOptions] = None) -> None:
        """Listen on ``addr`` with TLS (Mozilla's intermediate profile, HTTP/1.1 by
        ALPN). A certificate or key that cannot be loaded fails here, naming the file."""
        self.add_tls_with_settings(addr, TlsSettings.intermediate(cert_file, key_file), opts)

    def add_tls_with_settings(self, addr: str, settings: TlsSettings,
                              opts: Optional[TcpSocketOptions] = None) -> None:
        """Listen on ``addr`` with TLS as ``settings`` describe (SNI certificates,
        ``enable_h2()``, client certificates)."""
        self.add_tls_context(addr, settings.build_context(), opts)

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
            accept = self.connection_filter
            if accept is not None and ctx is not None:
                # TLS behind a filter: accept the raw socket ourselves so the filter
                # decides before the handshake reads a byte.
                server: Any = _FilteredTlsAcceptor(sock, accept, factory, ctx, listener.backlog)
            else:
                proto_factory = factory if accept is None else _gate_factory(accept, factory)
                if sock.family == socket.AF_UNIX:
                    server = await loop.create_unix_server(proto_factory, sock=sock, ssl=ctx,
                                                           backlog=listener.backlog)
                else:
                    server = await loop.create_server(proto_factory, sock=sock, ssl=ctx,
                                                      backlog=listener.backlog)
            self._servers.append(server)
            self._endpoints.append(self._url(sock, ctx is not None))
            _announce("listening on %s (%s)", self._endpoints[-1], self.name)

    def _url(self, sock: socket.socket, tls: bool) -> str:
        """``http://127.0.0.1:6188``; the scheme is the app's (``scheme``, default ``tcp``)."""
        where = describe_socket(sock)
        if sock.family == socket.AF_UNIX:
            return f"unix:{where}"
        scheme = getattr(self.app, "scheme", "tcp")
        if tls:
            scheme = "https" if scheme == "http" else "tls"
        return f"{scheme}://{where}"

    def stop_accepting(self) -> None:
        """Stop accepting new connections; connections being served go on."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        if servers:
            _announce("stopped listening on %s (%s)", ", ".join(self._endpoints), self.name)
            self._endpoints = []

    async def wait_drained(self) -> None:
        """Wait until the app serves no connection."""
        await self.app.wait_drained()

    def __repr__(self) -> str:
        return f"<Service {self.name!r} {[l.key for l in self.listeners]}>"


def _announce(msg: str, *args: Any) -> None:
    """Log a start or stop line at INFO, shown at the default level (warning) too, as
    uvicorn and Caddy print theirs; only a level above warning hides it."""
    if log.getEffectiveLevel() <= logging.WARNING and not log.disabled:
        log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, msg, args, None))


def _gate_factory(accept: ConnectionFilter, factory: Callable[[], Any]) -> Callable[[], asyncio.Protocol]:
    return lambda: _FilterGate(accept, factory)


def _peer(addr: Any) -> Optional[SocketAddr]:
    if isinstance(addr, (tuple, list)):
        return (addr[0], addr[1])
    return addr or None


def _allowed(accept: ConnectionFilter, peer: Optional[SocketAddr]) -> bool:
    try:
        allowed = bool(accept(peer))
    except Exception:
        log.exception("connection filter failed for %s; refusing the connection", peer)
        return False
    if not allowed:
        log.debug("connection from %s refused by the connection filter", peer)
    return allowed


class _FilterGate(asyncio.Protocol):
    """Asks the connection filter before the app's protocol is even created.

    The swap happens inside ``connection_made``, before the loop starts reading,
    so no byte can reach the gate itself.
    """

    __slots__ = ("_accept", "_factory")

    def __init__(self, accept: ConnectionFilter, factory: Callable[[], Any]) -> None:
        self._accept = accept
        self._factory = factory

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if _allowed(self._accept, _peer(transport.get_extra_info("peername"))):
            _hand_over(transport, self._factory())
        else:
            _reset(transport.get_extra_info("socket"))
            transport.abort()


class _FilteredTlsAcceptor:
    """An accept loop for a TLS endpoint with a connection filter (see start_serving)."""

    def __init__(self, sock: socket.socket, accept: ConnectionFilter, factory: Callable[[], Any],
                 ctx: ssl.SSLContext, backlog: int) -> None:
        self._sock = sock
        self._accept = accept
        self._factory = factory
        self._ctx = ctx
        self._handshakes: set[asyncio.Task] = set()
        sock.listen(backlog)
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, addr = await loop.sock_accept(self._sock)
            except asyncio.CancelledError:
                raise
            except OSError as e:
                # Out of descriptors and the like: keep the endpoint alive.
                log.error("accept failed on %s: %s", describe_socket(self._sock), e)
                await asyncio.sleep(0.1)
                continue
            if not _allowed(self._accept, _peer(addr)):
                _reset(conn)
                conn.close()
                continue
            task = loop.create_task(self._handshake(conn))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _handshake(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(self._factory, conn, ssl=self._ctx)
        except (OSError, ssl.SSLError, asyncio.TimeoutError) as e:
            log.debug("TLS handshake failed: %s", e)
            conn.close()

    def close(self) -> None:
        self._task.cancel()
        self._sock.close()


def _hand_over(transport: asyncio.BaseTransport, protocol: asyncio.BaseProtocol) -> None:
    transport.set_protocol(protocol)
    protocol.connection_made(transport)


def _reset(sock: Any) -> None:
    """Make the coming close a RST (linger 0), so the refused peer learns at once."""
    if sock is not None and sock.family != socket.AF_UNIX:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        except OSError:
            pass
