"""Opening upstream connections (TCP, Unix socket, custom L4, TLS) and reusing them."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import socket
import ssl
from functools import lru_cache, partial
from typing import Awaitable, Callable, Optional

from ..errors import Error, ErrorType
from ..protocols.http.v1.client import H1ClientConnection
from ..protocols.http.v2.client import H2ClientConnection, H2ClientStream
from ..upstreams.peer import ALPN, HttpPeer, PeerOptions
from .pool import ConnectionPool
from .tls import check_peer_name, client_context, remember_session

__all__ = ["HttpConnector"]

log = logging.getLogger("propylon.connectors")

_NO_ROUTE = {errno.ENETUNREACH, errno.EHOSTUNREACH}
# Read once: each is a module attribute lookup per refused connect otherwise.
_RawSocket = socket.SocketType
_NONBLOCKING_STREAM = socket.SOCK_STREAM | socket.SOCK_NONBLOCK
_SOL_SOCKET = socket.SOL_SOCKET
_SO_ERROR = socket.SO_ERROR
_EINPROGRESS = errno.EINPROGRESS
_ECONNREFUSED = errno.ECONNREFUSED
_REFUSED_TEXT = os.strerror(errno.ECONNREFUSED)


@lru_cache(maxsize=1024)
def _literal_family(host: str) -> Optional[int]:
    """The address family of an IP literal, or None for a name to resolve (parsed
    once per host: every new connection asks)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET
_H1 = ALPN.H1
_H2 = ALPN.H2


async def _writable(sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
    """Until ``sock`` (a connect in progress) is writable: connected or failed."""
    done = loop.create_future()
    loop.add_writer(sock, _set_done, done)
    try:
        await done
    finally:
        loop.remove_writer(sock)


def _set_done(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _connect_error(e: OSError, peer: HttpPeer, opts: PeerOptions) -> Error:
    """The upstream error for a failed TCP or Unix-socket connect."""
    if isinstance(e, TimeoutError):  # asyncio.TimeoutError too
        return Error.explain(ErrorType.CONNECT_TIMEDOUT,
                             f"connecting to {peer} took over {opts.connection_timeout}s").into_up()
    if isinstance(e, ConnectionRefusedError):
        return Error.because(ErrorType.CONNECT_REFUSED, f"{peer} refused the connection", e).into_up()
    if isinstance(e, FileNotFoundError):
        return Error.because(ErrorType.CONNECT_REFUSED, f"no socket at {peer.address}", e).into_up()
    etype = ErrorType.CONNECT_NO_ROUTE if e.errno in _NO_ROUTE else ErrorType.CONNECT_ERROR
    return Error.because(etype, f"cannot connect to {peer}", e).into_up()


class _ConnectDeadlines:
    """The connect timeouts of one connector, on one timer.

    With an origin down every request connects, so a connect's timeout must cost
    little: ``asyncio.timeout`` costs more than the failed connect itself, and a
    timer per connect is a libuv timer started and stopped each time. Here a
    connect in flight is an entry (its task → its deadline); the one timer is
    armed for the earliest deadline and, when it fires, cancels the tasks whose
    deadline passed and re-arms for the next. ``with deadlines.within(seconds):``
    around the connect turns that cancellation into ``TimeoutError``.
    """

    __slots__ = ("_due", "_timer", "_armed_at", "_loop")

    def __init__(self) -> None:
        self._due: dict = {}  # task → deadline (loop time), None once cancelled for it
        self._timer: Optional[asyncio.TimerHandle] = None
        self._armed_at = 0.0
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    def within(self, timeout: float) -> "_ConnectDeadlines":
        """Give the current task's connect ``timeout`` seconds (use it in a ``with``)."""
        loop = asyncio.get_running_loop()
        when = loop.time() + timeout
        self._due[asyncio.current_task()] = when
        timer = self._timer
        if timer is None or when < self._armed_at or loop is not self._loop:
            if timer is not None and loop is self._loop:
                timer.cancel()
            self._loop = loop  # a timer of an earlier loop (tests run several) is dropped
            self._arm(loop, when)
        return self

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> None:
        task = asyncio.current_task()
        if self._due.pop(task, 0.0) is None and exc_type is asyncio.CancelledError:
            # Cancelled for its deadline (and by nobody else): a connect timeout.
            if task.uncancel() == 0:  # type: ignore[union-attr]
                raise TimeoutError

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        self._armed_at = when
        self._timer = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        loop = self._loop
        now = loop.time()  # type: ignore[union-attr]
        due = self._due
        later = None
        for task, when in due.items():
            if when is None:
                continue
            if when <= now:
                due[task] = None
                task.cancel()
            elif later is None or when < later:
                later = when
        if later is not None:
            self._arm(loop, later)  # type: ignore[arg-type]


class HttpConnector:
    """Hands out upstream HTTP/1 connections: a pooled one when possible, else a new one.

    One connector lives in each worker process (its pool is bounded by
    ``pool_size``, Pingora's ``upstream_keepalive_pool_size``).
    """

    def __init__(self, pool_size: int = 128, ca_file: Optional[str] = None,
                 bind_to_v4: tuple = (), bind_to_v6: tuple = ()) -> None:
        self.pool = ConnectionPool(pool_size)
        self._h2: dict[tuple, list[H2ClientConnection]] = {}
        self._h2_pending: dict[tuple, asyncio.Future] = {}
        self.ca_file = ca_file
        self.bind_to_v4 = tuple(bind_to_v4)
        self.bind_to_v6 = tuple(bind_to_v6)
        self._deadlines = _ConnectDeadlines()
        # Addresses whose last plain connect was refused: the next connect to one is
        # made by hand so that a refusal the kernel reports at once (a loopback or
        # local port with nothing listening) fails without a round of the event loop.
        self._refused: set = set()

    def reuse(self, peer: HttpPeer):
        """A pooled HTTP/1 connection to ``peer``, or None (no waiting: the hot path)."""
        if peer.settings().alpn is _H2:
            return None
        return self.pool.get(peer.reuse_key())

    async def get(self, peer: HttpPeer):
        """An exchange with ``peer`` once ``reuse(peer)`` found no pooled HTTP/1
        connection, and whether its connection was reused.

        HTTP/1 peers get a new connection; peers whose ALPN allows HTTP/2 get a
        stream of a shared connection when one has room (an ``H2H1`` peer has
        already tried a pooled HTTP/1 connection through ``reuse``, as in Pingora).
        """
        if peer.settings().alpn is _H1:
            return await self.connect(peer), False
        key = peer.reuse_key()
        stream = self._h2_stream(key)
        if stream is not None:
            return stream, True
        pending = self._h2_pending.get(key)
        while pending is not None:
            # Another request is already opening a connection to this peer: share
            # it rather than opening one connection per concurrent request.
            await asyncio.shield(pending)
            stream = self._h2_stream(key)
            if stream is not None:
                return stream, True
            pending = self._h2_pending.get(key)
        done = asyncio.get_running_loop().create_future()
        self._h2_pending[key] = done
        try:
            conn = await self.connect(peer)
            if isinstance(conn, H2ClientConnection):
                self._h2.setdefault(key, []).append(conn)
                return conn.open_stream(), False
            return conn, False
        finally:
            if self._h2_pending.get(key) is done:
                del self._h2_pending[key]
            done.set_result(None)

    def _h2_stream(self, key) -> Optional[H2ClientStream]:
        conns = self._h2.get(key)
        if not conns:
            return None
        for conn in list(conns):
            if not conn.is_usable():
                conns.remove(conn)
            elif conn.available_streams() > 0:
                return conn.open_stream()
        return None

    def release(self, peer: HttpPeer, conn) -> None:
        """Give a finished exchange back: its connection is pooled (HTTP/1) or its
        stream slot freed (HTTP/2) when it can carry another request."""
        if type(conn) is H2ClientStream:
            conn.close()  # frees the slot; the shared connection stays
            return
        if conn.digest.tls is not None:
            remember_session(conn.transport)  # TLS 1.3 tickets arrive after the handshake
        if conn.reusable():
            group = peer.idle_group
            if group is None:
                self.pool.put(peer.reuse_key(), conn, peer.settings().idle_timeout)
            else:
                self.pool.put_in_group(peer.reuse_key(), conn, peer.settings().idle_timeout, group)
        else:
            conn.close()

    def connect(self, peer: HttpPeer) -> Awaitable[H1ClientConnection]:
        """A new connection to ``peer`` (to await): HTTP/1, or HTTP/2 when ALPN chose it.

        Not a coroutine itself: the connect's own coroutine is handed out, one
        layer less for every connect (and every failed one) to go through."""
        opts = peer.settings()
        loop = asyncio.get_running_loop()
        if self._plain(peer, opts):
            if self._refused and peer.address in self._refused:
                connecting = self._connect_after_refusal(peer, opts, loop)
            else:
                connecting = self._connect_plain(peer, opts, loop)
        else:
            connecting = self._connect(peer, opts, loop)
        total = opts.total_connection_timeout
        if total is None:
            return connecting
        return self._connect_within(connecting, peer, total)

    async def _connect_within(self, connecting: Awaitable[H1ClientConnection], peer: HttpPeer,
                              total: float) -> H1ClientConnection:
        try:
            return await asyncio.wait_for(connecting, total)
        except asyncio.TimeoutError:
            etype = ErrorType.TLS_HANDSHAKE_TIMEDOUT if peer.tls else ErrorType.CONNECT_TIMEDOUT
            raise Error.explain(etype, f"connecting to {peer} took over {total}s").into_up() from None

    async def _connect(self, peer: HttpPeer, opts: PeerOptions,
                       loop: asyncio.AbstractEventLoop) -> H1ClientConnection:
        sock = await self._l4(peer, opts, loop)
        ctx = None
        server_hostname = None
        if peer.tls:
            server_hostname = peer.sni or (None if peer.is_uds else peer.address[0])
            ctx = client_context(opts, self.ca_file, peer.client_cert_key, server_hostname)
        if ctx is None and opts.alpn is _H1:
            factory: Callable[[], asyncio.Protocol] = H1ClientConnection
        else:
            factory = partial(_Negotiator, peer, ctx is not None)
        try:
            _, conn = await loop.create_connection(
                factory, sock=sock, ssl=ctx, server_hostname=server_hostname,
                ssl_handshake_timeout=opts.total_connection_timeout or 60.0 if ctx else None,
            )
        except ssl.SSLCertVerificationError as e:
            sock.close()
            raise Error.because(ErrorType.INVALID_CERT, f"TLS verification of {peer} failed", e).into_up() from None
        except ssl.SSLError as e:
            sock.close()
            raise Error.because(ErrorType.TLS_HANDSHAKE_FAILURE, f"TLS handshake with {peer} failed", e).into_up() from None
        except (asyncio.TimeoutError, TimeoutError) as e:
            sock.close()
            raise Error.because(ErrorType.TLS_HANDSHAKE_TIMEDOUT, f"TLS handshake with {peer} timed out", e).into_up() from None
        except OSError as e:
            sock.close()
            raise Error.because(ErrorType.HANDSHAKE_ERROR, f"handshake with {peer} failed", e).into_up() from None
        if isinstance(conn, _Negotiator):
            conn = conn.chosen
        if ctx is not None:
            remember_session(conn.transport)
        if ctx is not None and not ctx.check_hostname:
            check_peer_name(conn, peer, server_hostname)
        return conn  # type: ignore[return-value]

    async def _l4(self, peer: HttpPeer, opts: PeerOptions, loop: asyncio.AbstractEventLoop) -> socket.socket:
        if opts.custom_l4 is not None:
            try:
                sock = await opts.custom_l4.connect(peer)
            except Error as e:
                raise e.into_up()
            except OSError as e:
                raise Error.because(ErrorType.CONNECT_ERROR, f"custom connect to {peer} failed", e).into_up() from None
            sock.setblocking(False)
            return sock
        if peer.is_uds:
            return await self._connect_one(peer, opts, loop, socket.AF_UNIX, peer.address)
        host, port = peer.address  # type: ignore[misc]
        family = _literal_family(host)
        if family is not None:
            targets = [(family, (host, port))]  # an IP address: nothing to resolve
        else:
            targets = await self._resolve(host, port, loop)
        for i, (family, target) in enumerate(targets):
            try:
                return await self._connect_one(peer, opts, loop, family, target)
            except Error:
                # A name with several addresses (e.g. localhost: ::1 and 127.0.0.1):
                # try the next one before giving up.
                if i == len(targets) - 1:
                    raise
        raise AssertionError("unreachable")

    def _plain(self, peer: HttpPeer, opts: PeerOptions) -> bool:
        """Plain HTTP/1 over TCP to an IP address, with no socket option of ours to set."""
        return (not peer.tls and opts.alpn is _H1 and opts.custom_l4 is None and opts.tcp_keepalive is None
                and opts.bind_to is None and not peer.is_uds and not self.bind_to_v4 and not self.bind_to_v6
                and _literal_family(peer.address[0]) is not None)

    async def _connect_plain(self, peer: HttpPeer, opts: PeerOptions,
                             loop: asyncio.AbstractEventLoop) -> H1ClientConnection:
        """The loop makes the socket and connects it itself (uvloop: in C, TCP_NODELAY
        set): about half the CPU of a socket made here and ``sock_connect``, which is
        what a dead origin costs per request."""
        host, port = peer.address  # type: ignore[misc]
        family = _literal_family(host)
        try:
            if opts.connection_timeout is not None:
                with self._deadlines.within(opts.connection_timeout):
                    _, conn = await loop.create_connection(H1ClientConnection, host, port, family=family)
            else:
                _, conn = await loop.create_connection(H1ClientConnection, host, port, family=family)
        except (asyncio.TimeoutError, TimeoutError, OSError) as e:
            if isinstance(e, ConnectionRefusedError):
                self._remember_refusal(peer.address)
            raise _connect_error(e, peer, opts) from None
        return conn  # type: ignore[return-value]

    def _connect_after_refusal(self, peer: HttpPeer, opts: PeerOptions,
                               loop: asyncio.AbstractEventLoop) -> Awaitable[H1ClientConnection]:
        """A plain connect to an address that refused the last one.

        The connect is started here, synchronously: when nothing listens on a local
        port the kernel has already answered with a reset by the time ``connect``
        returns, and the refusal is raised at once, with no loop round, timer or
        future (what an origin that is down costs per request). Otherwise the
        connect goes on in the loop as usual, on this socket."""
        host, port = peer.address  # type: ignore[misc]
        # The plain C socket type (a socket.socket is made in Python), non-blocking
        # from its creation: a refused connect costs two calls and a close.
        sock = _RawSocket(_literal_family(host), _NONBLOCKING_STREAM)
        try:
            err = sock.connect_ex((host, port))
            if err == _EINPROGRESS:
                err = sock.getsockopt(_SOL_SOCKET, _SO_ERROR)
        except OSError as e:  # an address the kernel will not even try (not an errno return)
            sock.close()
            self._refused.discard(peer.address)
            raise _connect_error(e, peer, opts) from None
        if err == 0 or err == _EINPROGRESS:
            return self._finish_connect(sock, peer, opts, loop)
        sock.close()
        if err == _ECONNREFUSED:
            e = ConnectionRefusedError(err, _REFUSED_TEXT)
        else:
            e = OSError(err, os.strerror(err))  # the OSError subclass of its errno
            self._refused.discard(peer.address)
        raise _connect_error(e, peer, opts)

    async def _finish_connect(self, raw, peer: HttpPeer, opts: PeerOptions,
                              loop: asyncio.AbstractEventLoop) -> H1ClientConnection:
        """Wait for a connect started by ``_connect_after_refusal`` and put the
        connection on the loop."""
        sock = socket.socket(fileno=raw.detach())  # what the loop's transports expect
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if opts.connection_timeout is not None:
                with self._deadlines.within(opts.connection_timeout):
                    await _writable(sock, loop)
            else:
                await _writable(sock, loop)
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, os.strerror(err))
            _, conn = await loop.create_connection(H1ClientConnection, sock=sock)
        except (asyncio.TimeoutError, TimeoutError, OSError) as e:
            sock.close()
            if not isinstance(e, ConnectionRefusedError):
                self._refused.discard(peer.address)
            raise _connect_error(e, peer, opts) from None
        except BaseException:
            sock.close()
            raise
        self._refused.discard(peer.address)
        return conn  # type: ignore[return-value]

    def _remember_refusal(self, address) -> None:
        refused = self._refused
        if len(refused) >= 1024:  # peers made per request must not grow it without end
            refused.clear()
        refused.add(address)

    async def _connect_one(self, peer: HttpPeer, opts: PeerOptions, loop: asyncio.AbstractEventLoop,
                           family: int, target) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            if family != socket.AF_UNIX:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._bind(sock, opts, family)
                if opts.tcp_keepalive is not None:
                    ka = opts.tcp_keepalive
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, int(ka.idle)))
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, int(ka.interval)))
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, max(1, int(ka.count)))
            if opts.connection_timeout is not None:
                with self._deadlines.within(opts.connection_timeout):
                    await loop.sock_connect(sock, target)
            else:
                await loop.sock_connect(sock, target)
        except (asyncio.TimeoutError, TimeoutError, OSError) as e:
            sock.close()
            raise _connect_error(e, peer, opts) from None
        except BaseException:
            sock.close()
            raise
        return sock

    def _bind(self, sock: socket.socket, opts: PeerOptions, family: int) -> None:
        addr = opts.bind_to
        if addr is None:
            pool = self.bind_to_v6 if family == socket.AF_INET6 else self.bind_to_v4
            if pool:
                import random

                addr = random.choice(pool)
        if addr:
            try:
                sock.bind((addr, 0))
            except OSError as e:
                sock.close()
                raise Error.because(ErrorType.BIND_ERROR, f"cannot bind to {addr}", e).into_up() from None

    async def _resolve(self, host: str, port: int, loop: asyncio.AbstractEventLoop) -> list[tuple[int, tuple]]:
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise Error.because(ErrorType.CONNECT_ERROR, f"cannot resolve {host}", e).into_up() from None
        seen: list[tuple[int, tuple]] = []
        for family, _, _, _, sockaddr in infos:
            entry = (family, sockaddr[:2])
            if entry not in seen:
                seen.append(entry)
        return seen

    def close(self) -> None:
        self.pool.close_all()
        for conns in self._h2.values():
            for conn in conns:
                conn.close()
        self._h2.clear()


class _Negotiator(asyncio.Protocol):
    """Picks the protocol once the connection is up: HTTP/2 if ALPN chose ``h2``
    (or, without TLS, if the peer asks for h2c), else HTTP/1.1.

    On TLS transports ``connection_made`` runs after the handshake, before any
    byte is delivered, so the choice is made before the origin's first frame.
    """

    def __init__(self, peer: HttpPeer, tls: bool) -> None:
        self.peer = peer
        self.tls = tls
        self.chosen: asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        opts = self.peer.settings()
        if self.tls:
            sslobj = transport.get_extra_info("ssl_object")
            use_h2 = sslobj is not None and sslobj.selected_alpn_protocol() == "h2"
        else:
            use_h2 = opts.alpn is ALPN.H2
        if use_h2:
            proto = H2ClientConnection(max_streams=max(1, opts.max_h2_streams))
            proto.scheme = b"https" if self.tls else b"http"
            host = self.peer.sni or ("localhost" if self.peer.is_uds else str(self.peer.address[0]))
            proto.default_authority = host.encode()
        else:
            proto = H1ClientConnection()
        self.chosen = proto
        transport.set_protocol(proto)
        proto.connection_made(transport)  # type: ignore[arg-type]
